"""What a benchmark ran on and which code it ran: the machine and the code version, as plain dicts.

Both never fail: a missing ``/proc/cpuinfo``, no ``git`` or no repository give ``None`` fields.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from .. import __version__

_REPO = Path(__file__).resolve().parents[2]


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str | None:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``, else ``None``."""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """The machine: CPU model and count, torch and Python versions, threads, and the CUDA device if any.

    Args:
        device: The benchmark's device; CUDA details are given whenever CUDA is available.
    """
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "num_interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": None,
        "device": str(device),
        "load_average": _load_average(),
    }
    if torch.cuda.is_available():
        index = torch.device(device).index if torch.device(device).type == "cuda" else None
        index = torch.cuda.current_device() if index is None else index
        info.update(cuda_device=torch.cuda.get_device_name(index), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())  # fmt: skip
    return info


def _load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: other work on the machine makes timings noisy."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


class CpuMonitor:
    """Measures how busy the CPUs were with *other* processes between ``start()`` and ``stop()``.

    Reads ``/proc/stat`` (all CPUs' busy time) and subtracts this process's own CPU time
    (``os.times``) and that of its descendants (``/proc/<pid>/stat``, e.g. compile workers). Timings
    taken while other processes compete for the cores are unreliable: with 2 cores and 2 threads, one
    busy neighbour can slow small kernels tenfold. ``None`` off Linux.
    """

    def __init__(self) -> None:
        self._start: tuple[float, float, float] | None = None

    def start(self) -> CpuMonitor:
        self._start = _cpu_sample()
        return self

    def stop(self) -> float | None:
        """The fraction (0..1) of all CPUs' time used by other processes since ``start()``."""
        end = _cpu_sample()
        if self._start is None or end is None:
            return None
        busy, total, own = (e - s for e, s in zip(end, self._start, strict=True))
        return round(min(1.0, max(0.0, (busy - own) / total)), 3) if total > 0 else None


def other_cpu_load(interval: float = 0.5) -> float | None:
    """The fraction of all CPUs' time used by other processes over the next ``interval`` seconds."""
    monitor = CpuMonitor().start()
    time.sleep(interval)
    return monitor.stop()


def _cpu_sample() -> tuple[float, float, float] | None:
    """(busy seconds of all CPUs, total seconds of all CPUs, this process's CPU seconds), or ``None``."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(values) / ticks
    idle = (values[3] + values[4]) / ticks
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system + _descendants_ticks() / ticks
    return total - idle, total, own


def _descendants_ticks() -> int:
    """CPU ticks of this process's live descendants and of the children they waited for.

    Compile workers (``torch.compile``'s subprocess pool and its C++ compilers) are ours, not others'.
    """
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state ppid ...
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        ticks[pid] = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - mine
        mine |= frontier
    return sum(ticks[pid] for pid in mine)


def code_version(
    repo: str | os.PathLike | None = None, *, ignore: Iterable[str | os.PathLike] = ()
) -> dict[str, Any]:
    """The code that ran: ``git describe``, the commit, whether the tree has uncommitted changes.

    Args:
        repo: The repository (default: the one holding this package).
        ignore: Files whose uncommitted changes do not make the tree dirty: what the caller itself writes
            into the checkout (the zoo's record in ``docs/``), which would otherwise mark every run after the
            first as run by changed code.

    Returns:
        ``{'describe', 'commit', 'dirty', 'dirty_files', 'senet'}``; the git fields are ``None`` without
        git or outside a repository. ``describe`` ends in ``-dirty`` when ``dirty_files`` is not empty.
    """
    root = Path(repo) if repo is not None else _REPO
    describe = _git(root, "describe", "--always", "--tags")
    commit = _git(root, "rev-parse", "HEAD")
    top = _git(root, "rev-parse", "--show-toplevel")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    dirty_files = None
    if status is not None and top is not None:  # porcelain paths are relative to the top of the repository
        skip = {Path(f).resolve() for f in ignore}
        changed = [line[3:] for line in status.splitlines() if line.strip()]
        dirty_files = [f for f in changed if (Path(top) / f).resolve() not in skip]
    if describe is not None and dirty_files:
        describe += "-dirty"
    return {
        "senet": __version__,
        "describe": describe,
        "commit": commit,
        "dirty": None if dirty_files is None else bool(dirty_files),
        "dirty_files": dirty_files,
    }


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.rstrip("\n") if out.returncode == 0 else None
