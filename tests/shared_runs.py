"""Uninterrupted reference runs, trained once per test run and shared by every test (and xdist worker)
that compares an interrupted run with them."""

from __future__ import annotations

import os
from pathlib import Path

from senet.cli.main import main
from senet.data.lock import exclusive_lock


def shared_train(name: str, argv: list[str]) -> Path:
    """The folder of ``senet train *argv`` run to its end once for this test run, as ``<shared>/<name>``.

    The first caller trains it in its own process (under a file lock in SENET_TEST_SHARED, made by
    tests/conftest.py); later callers, in any worker, wait for the lock and get the same folder. A failed
    run is recorded, so that every test needing it fails on it instead of training it again.

    Args:
        name: The folder's name; the same name must always mean the same ``argv``.
        argv: The options of ``senet train`` but ``--out``.
    """
    shared = Path(os.environ["SENET_TEST_SHARED"])
    out, failed = shared / name, shared / f"{name}.failed"
    with exclusive_lock(shared / f".{name}.lock"):
        if not (out / "summary.json").is_file() and not failed.exists():
            if main(["train", *argv, "--out", str(out)]) != 0:
                failed.write_text(" ".join(argv))
    assert not failed.exists(), f"the shared reference run {name} failed: senet train {failed.read_text()}"
    return out
