"""What the fault tests share (test_faults.py, test_faults_signals.py): the quick run they all train, its
uninterrupted references (trained once for all workers), the checks that two runs ended identical and that no
checkpoint on disk is partial, and a ``senet`` subprocess that a test can signal and wait on.

Subprocesses run in sessions of their own and are killed as a process group on leaving ``running``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from shared_runs import shared_train
from states import assert_same_state

from senet.cli.main import main
from senet.data import load_dataset
from senet.io import LATEST_FILE as LATEST
from senet.io import (
    MODEL_FILE,
    STATE_FILE,
    is_complete,
    read_safetensors,
)
from senet.train.checkpoint import read_state

QUICK = [
    "--model", "cifar_resnet20", "--subset", "100", "--test-subset", "50", "--batch-size", "25",
    "--drop-rate", "0.2", "--epochs", "2", "--no-progress", "--device", "cpu",
]  # fmt: skip
STEPS = 8  # 2 epochs x 4 steps
TIMINGS = {"train_seconds", "train_images_per_second"}


@pytest.fixture(scope="module")
def cifar10():
    """The embedded CIFAR-10, decoded once into the session's cache (subprocesses then read the cache)."""
    return load_dataset("cifar10", progress=False)


@pytest.fixture(scope="module")
def reference(cifar10) -> Path:
    """The uninterrupted run, keeping a checkpoint after every step (trained once for all workers)."""
    return shared_train("faults-reference", [*QUICK, "--save-every", "1", "--keep-checkpoints", "100"])


def se_twin_reference() -> Path:
    """The SE twin of a 1-epoch comparison, uninterrupted (trained once for all workers)."""
    return shared_train("faults-se-1-epoch", [*QUICK, "--epochs", "1", "--attention", "se"])


def reduction_8_reference() -> Path:
    """The reduction=8 setting of a 1-epoch ablation, uninterrupted (trained once for all workers)."""
    return shared_train("faults-reduction-8-1-epoch", [*QUICK, "--model", "se_cifar_resnet20", "--reduction", "8",
                                                       "--epochs", "1"])  # fmt: skip


def metrics_without_timings(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in records]


def assert_identical_runs(run: Path, reference: Path) -> None:
    assert (run / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes(), (
        "the resumed run's final weights differ from the uninterrupted run's"
    )
    assert metrics_without_timings(run) == metrics_without_timings(reference)


def assert_same_checkpoint(a: Path, b: Path) -> None:
    """Two checkpoints hold the same training state: the weights byte for byte; the optimiser, scheduler, RNG,
    position and the epoch's running sums equal (all of its state but the seconds the epoch has taken)."""
    assert (a / MODEL_FILE).read_bytes() == (b / MODEL_FILE).read_bytes(), f"{a.name}: the weights differ"
    states = [read_state(c / STATE_FILE) for c in (a, b)]
    for state in states:
        (state.get("progress") or {}).pop("seconds", None)
    assert_same_state(*states, a.name)


def assert_no_partial_checkpoint(run: Path, keep: int | None = None) -> list[Path]:
    """Every visible checkpoint directory is complete and loadable, and LATEST names one of them."""
    root = run / "checkpoints"
    if not root.is_dir():
        return []
    visible = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for path in visible:
        assert is_complete(path), f"{path.name} is incomplete: {sorted(f.name for f in path.iterdir())}"
        assert read_safetensors(path / "model.safetensors")
        assert read_state(path / "state.pt")["epoch"] == json.loads((path / "meta.json").read_text())["epoch"]
    if (root / LATEST).exists():
        named = root / (root / LATEST).read_text().strip()
        assert named in visible, f"LATEST names {named.name}, which is not a complete checkpoint"
    if keep is not None:
        assert len(visible) <= keep + 1, [p.name for p in visible]  # + one a kill may leave before pruning
    return visible


class Process:
    """A ``senet`` subprocess (or a 2-process torchrun of it) in a session of its own, its output read by
    threads as it comes (so a test can wait for a line)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, *, torchrun: bool = False) -> None:
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun else []
        self.popen = subprocess.Popen(
            [sys.executable, *launcher, "-m", "senet", *args], text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, start_new_session=True,
        )  # fmt: skip
        self.out: list[str] = []
        self.err: list[str] = []
        streams = ((self.popen.stdout, self.out), (self.popen.stderr, self.err))
        self._readers = [threading.Thread(target=self._read, args=pair, daemon=True) for pair in streams]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def signal(self, signum: int) -> None:
        """Sends ``signum`` to the process itself (torchrun's agent, under torchrun)."""
        self.popen.send_signal(signum)

    def wait(self, timeout: float = 120) -> tuple[int, str, str]:
        """Waits for the end; returns (exit code, stdout, stderr)."""
        code = self.popen.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code, "".join(self.out), "".join(self.err)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str] | None = None, *, torchrun: bool = False):
    """A :class:`Process`; on leaving, whatever is left of its process group is killed."""
    proc = Process(args, env, torchrun=torchrun)
    try:
        yield proc
    finally:
        proc.kill_group()


def wait_for(condition, proc: Process, timeout: float = 60, what: str = "") -> None:
    """Polls ``condition`` until it holds; fails if the process ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.popen.poll() is not None:
            code, out, err = proc.wait()
            raise AssertionError(f"the process ended (exit {code}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def latest_name(run: Path) -> str | None:
    with contextlib.suppress(OSError):
        return (run / "checkpoints" / LATEST).read_text().strip()
    return None


def saving_now(run: Path) -> bool:
    """Whether a checkpoint is being written (its temporary directory exists)."""
    return any((run / "checkpoints").glob(".epoch_*")) if (run / "checkpoints").is_dir() else False


def finish(run: Path, *extra: str) -> None:
    assert main(["train", *QUICK, "--out", str(run), "--resume", *extra]) == 0


def checkpoint_files(run: Path) -> dict[str, bytes]:
    """The files of the complete checkpoints and LATEST (not of a checkpoint being written)."""
    root = run / "checkpoints"
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and not p.relative_to(root).parts[0].startswith("."))
    return {str(p.relative_to(root)): p.read_bytes() for p in files}
