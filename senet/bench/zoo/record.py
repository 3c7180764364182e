"""The zoo's record file, ``<out>/zoo.json``: one measurement per (network, kind), written as it finishes.

A run opens the record and skips every measurement it already holds, so a stopped run (Ctrl-C, a
reboot) continues where it stopped. The record is only resumed on what it was measured on: its
``fingerprint`` (CPU model and count, torch, device, threads, and the settings: batches, rounds) must
equal the run's; anything else is refused in one line, as is a file that is not a zoo record. Neither
is ever overwritten: ``fresh=True`` moves the old file aside (``zoo.json.old-<timestamp>``) and says
so, then starts a new record.

Layout::

    {"format": "senet-zoo/1", "fingerprint": {...}, "machine": {...}, "settings": {...},
     "runs": [{"started": ISO time, "code": {...}, "command": "senet bench ..."}, ...],
     "networks": {"se_resnet50": {"plain": "resnet50", "family": "ResNet", "input_size": [3, 224, 224],
                                  "measurements": {"cost": {...}, "latency": {...}, ...}}}}

Each measurement also records when it was made (``measured``) and by which code (``code``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...io import atomic_write_text
from .pairs import ZooPair

FORMAT = "senet-zoo/1"
RECORD_FILE = "zoo.json"
_FINGERPRINT_WORDS = {"cpu": "CPU", "cpu_count": "CPU count", "cuda_device": "CUDA device"}


def fingerprint(machine: dict[str, Any], settings: dict[str, Any], *, threads: int) -> dict[str, Any]:
    """What a record's numbers depend on beyond the code: the machine, torch, device, threads, settings.

    Args:
        machine: ``senet.bench.environment.machine_info()``.
        settings: ``senet.bench.zoo.measure.settings()``.
        threads: The run's ``torch.set_num_threads``.
    """
    return {"cpu": machine.get("cpu"), "cpu_count": machine.get("cpu_count"), "torch": machine.get("torch"),
            "device": machine.get("device"), "cuda_device": machine.get("cuda_device"), "threads": threads,
            "settings": settings}  # fmt: skip


class ZooRecord:
    """The record of a zoo run: its data, and the file it is kept in (``None``: kept in memory only).

    Attributes:
        path: The JSON file, or ``None``.
        data: The record (see the module's docstring); written after every ``put``.
    """

    def __init__(self, path: Path | None, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def open(
        cls, path: str | Path | None, *, fingerprint: dict[str, Any], machine: dict[str, Any],
        fresh: bool = False, echo: Callable[[str], None] | None = None,
    ) -> ZooRecord:  # fmt: skip
        """Opens the record at ``path`` to resume it, or starts a new one.

        Args:
            path: The JSON file (``None``: a record in memory, written nowhere).
            fingerprint: The run's ``fingerprint()``; an existing record must have the same.
            machine: The run's ``machine_info()``, kept by a new record.
            fresh: Start a new record; an existing file is moved aside first (not deleted).
            echo: Told where an old file was moved.

        Raises:
            ValueError: If the file is not a zoo record, or was measured on another machine, torch,
                device, thread count or settings (in one line, saying what to do; the file is left as it is).
        """
        new = {"format": FORMAT, "fingerprint": fingerprint, "machine": machine,
               "settings": fingerprint["settings"], "runs": [], "networks": {}}  # fmt: skip
        if path is None:
            return cls(None, new)
        path = Path(path)
        if not path.exists():
            return cls(path, new)
        if fresh:
            aside = path.with_name(f"{path.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            path.rename(aside)
            if echo is not None:
                echo(f"--fresh: moved the old record {path} to {aside}")
            return cls(path, new)
        data = _read(path)
        differences = _differences(data["fingerprint"], fingerprint)
        if differences:
            raise ValueError(f"{path} was measured with {'; '.join(differences)}: its numbers cannot be continued "
                             "by this run; pass --fresh to start a new record (the old one is moved aside) or "
                             "choose another --out")  # fmt: skip
        return cls(path, data)

    def has(self, name: str, kind: str) -> bool:
        """Whether network ``name``'s measurement ``kind`` is in the record."""
        return kind in self.data["networks"].get(name, {}).get("measurements", {})

    def get(self, name: str, kind: str) -> dict[str, Any] | None:
        """Network ``name``'s measurement ``kind``, or ``None``."""
        return self.data["networks"].get(name, {}).get("measurements", {}).get(kind)

    def start_run(self, code: dict[str, Any], started: str, command: str | None = None) -> None:
        """Notes a run (its start, its code version and its command line) in the record."""
        self.data["runs"].append({"started": started, "code": code, "command": command})

    def put(self, pair: ZooPair, kind: str, value: dict[str, Any], *, code: str | None, measured: str) -> None:
        """Stores ``pair``'s measurement ``kind`` (with when and by which code) and writes the file."""
        network = self.data["networks"].setdefault(pair.name, {"measurements": {}})
        network.update(plain=pair.plain, family=pair.family, input_size=list(pair.input_size))
        network["measurements"][kind] = {**value, "measured": measured, "code": code}
        self.save()

    def save(self) -> None:
        """Writes the record (atomically: the old file or the whole new one, never a part)."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.data, indent=1) + "\n")


def _read(path: Path) -> dict[str, Any]:
    """The record at ``path``; a ``ValueError`` in one line for a file that is not one (left untouched)."""
    refusal = ("; it was left as it is: move it away, choose another --out, or pass --fresh to start a new "
               "record (the file is then moved aside, not deleted)")  # fmt: skip
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a zoo record (not text){refusal}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not a zoo record (invalid JSON at line {e.lineno}: {e.msg}){refusal}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{path} is not a zoo record (format {found!r}, expected {FORMAT!r}){refusal}")
    if not isinstance(data.get("fingerprint"), dict) or not isinstance(data.get("networks"), dict) or not all(
        isinstance(n, dict) and isinstance(n.get("measurements"), dict) for n in data["networks"].values()
    ):
        raise ValueError(f"{path} is not a zoo record (its fingerprint or networks are damaged){refusal}")
    data.setdefault("runs", [])
    return data


def _differences(recorded: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """``'threads 2 (this run: 1)'`` for each field of the fingerprints that differs (settings one by one)."""
    differences = []
    for key, value in run.items():
        old = recorded.get(key)
        if key == "settings" and isinstance(old, dict) and isinstance(value, dict):
            differences += [f"{k} {old.get(k)} (this run: {value.get(k)})" for k in {**old, **value}
                            if old.get(k) != value.get(k)]  # fmt: skip
        elif old != value:
            differences.append(f"{_FINGERPRINT_WORDS.get(key, key)} {old} (this run: {value})")
    return differences
