"""Faults: a run killed, stopped or starved of disk at any moment resumes to the very weights of an
uninterrupted run, and no checkpoint on disk is ever partial (docs/reliability.md).

Every run here is ResNet-20 with dropout (so the RNG state matters) on 100 CIFAR-10 images in batches of
25: 4 steps per epoch, 2 epochs. "Identical" means the final model.safetensors is byte-identical and
metrics.jsonl equal but for its timings. Subprocesses run in sessions of their own and are killed as a
process group in a ``finally``; the ``SENET_TEST_*`` hooks slow steps or saves so that a signal can land
where the test wants it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from shared_runs import shared_train
from states import assert_same_state
from torch import nn
from two_process import DDP_TRAIN
from two_process import GROUP as TWO_PROCESS

from senet.cli.main import main
from senet.data import load_dataset
from senet.io import LATEST_FILE as LATEST
from senet.io import (
    MODEL_FILE,
    STATE_FILE,
    checkpoint_name,
    is_complete,
    latest_checkpoint,
    list_checkpoints,
    read_safetensors,
)
from senet.io import folder as staging_module
from senet.train import checkpoint as ckpt_module
from senet.train import saving
from senet.train.checkpoint import read_state, save_checkpoint
from senet.train.config import SaveInterval, parse_save_every

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


def _metrics(run: Path) -> list[dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in records]


def assert_identical_runs(run: Path, reference: Path) -> None:
    assert (run / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes(), (
        "the resumed run's final weights differ from the uninterrupted run's"
    )
    assert _metrics(run) == _metrics(reference)


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


# --- options and building blocks -------------------------------------------------------------------------


def test_save_every_reads_steps_and_durations():
    assert parse_save_every("500") == SaveInterval(steps=500) and parse_save_every(3) == SaveInterval(steps=3)
    assert parse_save_every("90s") == SaveInterval(seconds=90.0)
    assert parse_save_every("10m") == SaveInterval(seconds=600.0)
    assert parse_save_every("1.5h") == SaveInterval(seconds=5400.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--save-every", "0"], "--save-every must be a positive number of steps"),
        (["--save-every", "-5"], "--save-every must be a positive number of steps"),
        (["--save-every", "1.5"], "steps are whole numbers"),
        (["--save-every", "nan"], "--save-every must be a positive"),
        (["--save-every", "1e999m"], "--save-every must be a positive"),
        (["--save-every", "10 minutes"], "--save-every must be a positive"),
        (["--keep-checkpoints", "0"], "--keep-checkpoints must be a positive whole number"),
    ],
)
def test_bad_save_options_are_one_line(tmp_path, capsys, args, message):
    assert main(["train", *QUICK, "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_the_saver_checkpoints_on_its_cadence_and_not_on_an_epochs_last_step(tmp_path, monkeypatch):
    from senet.train import saving
    from senet.train.engine import EpochProgress

    written = []

    def saver(interval: SaveInterval) -> saving.CheckpointSaver:
        return saving.CheckpointSaver(out=tmp_path, write=lambda **kw: written.append((kw["epoch"], kw["step"])),
                                      interval=interval, steps_per_epoch=4, device=torch.device("cpu"))  # fmt: skip

    every3 = saver(SaveInterval(steps=3))
    for epoch in range(3):
        for step in range(1, 5):
            every3.after_step(epoch, EpochProgress(step=step))
    # Global steps 3, 6, 9 (12 is an epoch's last step: its end has a checkpoint of its own).
    assert written == [(0, 3), (1, 2), (2, 1)]
    clock = [100.0]
    monkeypatch.setattr(saving.time, "monotonic", lambda: clock[0])
    written.clear()
    timed = saver(SaveInterval(seconds=60))
    for step, now in ((1, 130.0), (2, 161.0), (3, 200.0), (4, 300.0)):
        clock[0] = now
        timed.after_step(0, EpochProgress(step=step))
    clock[0] = 330.0
    timed.after_step(1, EpochProgress(step=1))
    assert written == [(0, 2), (1, 1)]  # 61 s after the start; step 4 is the epoch's last; 169 s after step 2


def _tiny_state():
    model = nn.Linear(3, 2)
    return {"model": model, "optimizer": torch.optim.SGD(model.parameters(), lr=0.1), "scheduler": None}


def test_checkpoints_sort_in_training_order_and_pruning_keeps_the_newest(tmp_path):
    assert checkpoint_name(3) == "epoch_0003" and checkpoint_name(3, 120) == "epoch_0003_step_000120"
    assert sorted(["epoch_0002", "epoch_0001_step_000002", "epoch_0001", "epoch_0001_step_000010"]) == [
        "epoch_0001", "epoch_0001_step_000002", "epoch_0001_step_000010", "epoch_0002"]  # fmt: skip
    run, state = tmp_path / "run", _tiny_state()
    positions = [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
    for i, (epoch, step) in enumerate(positions):
        path = save_checkpoint(run, **state, epoch=epoch, step=step, keep=2, progress={"step": step})
        assert latest_checkpoint(run) == path
        expected = [checkpoint_name(*p) for p in positions[max(0, i - 1) : i + 1]]
        assert [p.name for p in list_checkpoints(run)] == expected
    save_checkpoint(run, **state, epoch=2, step=1, keep=1)
    assert [p.name for p in list_checkpoints(run)] == ["epoch_0002_step_000001"]  # keep 1: only the newest
    # A kill while saving leaves a hidden temporary directory: ignored, then removed by the next save.
    leftover = run / "checkpoints" / ".epoch_0002_step_000002.x1y2"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"partial")
    assert latest_checkpoint(run).name == "epoch_0002_step_000001"
    save_checkpoint(run, **state, epoch=2, step=2, keep=2)
    assert not leftover.exists()
    # LATEST lost or naming nothing complete: the newest complete checkpoint is used, not a fresh start.
    (run / "checkpoints" / LATEST).write_text("epoch_0009")
    assert latest_checkpoint(run).name == "epoch_0002_step_000002"
    (run / "checkpoints" / LATEST).unlink()
    assert latest_checkpoint(run).name == "epoch_0002_step_000002"


def test_a_kill_while_pruning_leaves_no_incomplete_checkpoint(tmp_path, monkeypatch):
    """Pruning deletes files one by one; a kill half-way must not leave a visible checkpoint short of a file
    (seen once under SIGKILL before pruning renamed a checkpoint away first)."""
    run, state = tmp_path / "run", _tiny_state()
    for step in (1, 2):
        save_checkpoint(run, **state, epoch=0, step=step, keep=2)

    def killed_half_way(path, *args, **kwargs):
        files = sorted(Path(path).iterdir()) if Path(path).is_dir() else []
        if files:
            files[0].unlink()
            raise SystemExit("killed")

    monkeypatch.setattr(ckpt_module.shutil, "rmtree", killed_half_way)
    with pytest.raises(SystemExit):
        save_checkpoint(run, **state, epoch=0, step=3, keep=2)  # prunes step 1
    monkeypatch.undo()
    kept = sorted(p.name for p in assert_no_partial_checkpoint(run))
    assert kept == ["epoch_0000_step_000002", "epoch_0000_step_000003"]
    save_checkpoint(run, **state, epoch=0, step=4, keep=2)
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]


def test_a_folder_loader_resumes_mid_epoch_without_decoding_the_skipped_images(tmp_path, monkeypatch):
    from PIL import Image

    from senet.data import create_loader
    from senet.data.folder import ImageFolder

    for i in range(12):
        folder = tmp_path / "train" / ("cat", "dog")[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40 + i, 36), (20 * i, 255 - 20 * i, 7 * i)).save(folder / f"{i}.png")
    shutil.copytree(tmp_path / "train", tmp_path / "val")
    data = load_dataset(tmp_path, image_size=32)
    whole = create_loader(data, "train", batch_size=3, num_workers=0, seed=4)
    whole.set_epoch(1)
    expected = list(whole)
    decoded = []
    real_load = ImageFolder.load
    monkeypatch.setattr(ImageFolder, "load", lambda self, i, rng=None: decoded.append(i) or real_load(self, i, rng))
    part = create_loader(data, "train", batch_size=3, num_workers=0, seed=4)
    part.set_epoch(1, start_batch=2)
    resumed = list(part)
    assert len(resumed) == len(expected) - 2 and len(decoded) == 3 * len(resumed)  # the skipped 6: never read
    for (x, y), (ex, ey) in zip(resumed, expected[2:], strict=True):
        assert torch.equal(x, ex) and torch.equal(y, ey)  # the same images, cropped and flipped alike
    assert len(list(part)) == len(expected)  # the pass after is the next epoch, whole


# --- mid-epoch resume, in process ----------------------------------------------------------------------------


def test_resuming_from_any_step_is_bit_identical(reference, tmp_path):
    """The reference kept a checkpoint after each step; a run stopped at step k holds exactly the files of
    the reference at that point. Resuming from each of a few of them ends identical: weights, optimiser
    momentum, scheduler, dropout's RNG, data order, augmentation and the epoch's running metrics."""
    assert [p.name for p in list_checkpoints(reference)] == [
        "epoch_0000_step_000001", "epoch_0000_step_000002", "epoch_0000_step_000003", "epoch_0001",
        "epoch_0001_step_000001", "epoch_0001_step_000002", "epoch_0001_step_000003", "epoch_0002"]  # fmt: skip
    for name in ("epoch_0000_step_000002", "epoch_0001", "epoch_0001_step_000003"):
        run = tmp_path / name
        run.mkdir()
        shutil.copy(reference / "config.json", run)
        shutil.copytree(reference / "checkpoints" / name, run / "checkpoints" / name)
        (run / "checkpoints" / LATEST).write_text(name)
        finish(run)
        assert_identical_runs(run, reference)


# --- full disk, unwritable folder ------------------------------------------------------------------------------


def _fail_on_save(monkeypatch, run: Path, nth: int, error: OSError, where: str) -> dict:
    """Makes the ``nth`` checkpoint write of ``run`` fail with ``error`` in ``where`` ('weights': after part
    of the file, as a full disk does; 'folder': making its directory; 'state': the optimiser's file), and
    records the checkpoints on disk at that moment."""
    owner, name = {"weights": (ckpt_module, "save_file"), "folder": (staging_module.tempfile, "mkdtemp"),
                   "state": (ckpt_module.torch, "save")}[where]  # fmt: skip
    real, seen = getattr(owner, name), {"saves": 0}

    def failing(*args, **kwargs):
        if where == "folder" and not str(kwargs.get("dir", "")).startswith(str(run)):
            return real(*args, **kwargs)  # someone else's temporary directory
        seen["saves"] += 1
        if seen["saves"] != nth:
            return real(*args, **kwargs)
        seen["before"] = _snapshot(run)
        if where == "weights":
            Path(args[1]).write_bytes(b"\0" * 100)
        raise error

    monkeypatch.setattr(owner, name, failing)
    return seen


def _snapshot(run: Path) -> dict[str, bytes]:
    """The files of the complete checkpoints and LATEST (not of a checkpoint being written)."""
    root = run / "checkpoints"
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and not p.relative_to(root).parts[0].startswith("."))
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.mark.parametrize(
    ("where", "nth", "error", "expected"),
    [
        ("weights", 3, OSError(errno.ENOSPC, "No space left on device"),
         "(No space left on device); the last good checkpoint is epoch_0000_step_000002 (epoch 1 step 2); "
         "free space and resume with --resume"),
        ("folder", 4, PermissionError(errno.EACCES, "Permission denied"),
         "(Permission denied); the last good checkpoint is epoch_0000_step_000003 (epoch 1 step 3); make"),
        ("state", 6, OSError(errno.EROFS, "Read-only file system"),
         "(Read-only file system); the last good checkpoint is epoch_0001_step_000001 (epoch 2 step 1); make"),
    ],
)  # fmt: skip
def test_a_full_disk_or_unwritable_folder_keeps_the_last_checkpoint(
    reference, tmp_path, monkeypatch, capsys, where, nth, error, expected
):
    run = tmp_path / "run"
    seen = _fail_on_save(monkeypatch, run, nth, error, where)
    assert main(["train", *QUICK, "--out", str(run), "--save-every", "1"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write checkpoint to {run / 'checkpoints'} {expected}" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _snapshot(run) == seen["before"]  # the previous checkpoints and LATEST untouched, the attempt gone
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert_no_partial_checkpoint(run)
    monkeypatch.undo()  # space is back
    finish(run)
    assert_identical_runs(run, reference)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_a_read_only_checkpoint_folder_fails_clearly(reference, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *QUICK, "--out", str(run), "--epochs", "1"]) == 0
    (run / "checkpoints").chmod(0o555)
    try:
        assert main(["train", *QUICK, "--out", str(run), "--resume", "--epochs", "2"]) == 2
        err = capsys.readouterr().err
        assert "cannot write checkpoint to" in err and "Permission denied" in err and "epoch_0001" in err
    finally:
        (run / "checkpoints").chmod(0o755)
    assert latest_checkpoint(run).name == "epoch_0001"


# --- real signals and kills on a subprocess --------------------------------------------------------------------


def test_sigkill_at_any_moment_then_resume_is_bit_identical(reference, tmp_path):
    """Killed (SIGKILL) after a checkpoint, in the middle of writing the next one, and at a random moment:
    every checkpoint on disk stays complete, and the resumed run ends identical to the uninterrupted one."""
    run = tmp_path / "run"
    args = ["train", *QUICK, "--out", str(run), "--save-every", "1"]
    held = tmp_path / "held"
    hold = {"SENET_TEST_HOLD_IN_SAVE": str(held), "SENET_TEST_HOLD_AFTER_SAVES": "1"}
    with running(args, hold) as proc:  # 1. after the first checkpoint, while the second is written
        wait_for(held.exists, proc, what="a checkpoint being written")  # its weights are written, its state is not
        proc.kill_group()
    assert_no_partial_checkpoint(run, keep=2)
    assert saving_now(run), "the kill was to land while a checkpoint was being written"
    # The first checkpoint is whole and the newest: the write it was killed in never became the newest.
    assert [p.name for p in list_checkpoints(run)] == [latest_name(run)] == [checkpoint_name(0, 1)]
    with running([*args, "--resume"], {"SENET_TEST_STEP_SLEEP": "0.1"}) as proc:  # 2. at a random moment
        wait_for(lambda: any("resuming" in line for line in proc.out), proc, what="training to resume")
        time.sleep(random.Random(13).uniform(0.1, 1.0))
        proc.kill_group()
    assert_no_partial_checkpoint(run, keep=2)
    finish(run)
    assert_identical_runs(run, reference)
    assert not saving_now(run)  # the leftover temporary directory was cleaned up by a later save


def test_sigterm_and_sigint_stop_with_a_checkpoint_and_one_line(reference, tmp_path):
    """SIGTERM (preemption), then SIGINT: each stops after its step with a checkpoint, one line saying how
    to resume, exit 143 / 130. Resumed after both, the run ends identical."""
    run = tmp_path / "run"
    args = ["train", *QUICK, "--out", str(run), "--save-every", "2"]
    for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        before = latest_name(run)
        resume = ["--resume"] if before is not None else []
        with running([*args, *resume], {"SENET_TEST_STEP_SLEEP": "0.3"}) as proc:
            wait_for(lambda b=before: latest_name(run) not in (None, b), proc, what="a checkpoint")
            proc.signal(signum)
            exit_code, out, err = proc.wait(timeout=60)
        assert exit_code == code, err
        name = signal.Signals(signum).name
        assert err.count("\n") == 1 and err.startswith(f"stopped by {name} at "), err
        assert f"; checkpoint written; resume with: senet train --model cifar_resnet20 --out {run} --resume" in err
        assert latest_name(run) == _stop_checkpoint(err)  # written at the step it stopped at, even off the cadence
        assert_no_partial_checkpoint(run, keep=2)
    finish(run)
    assert_identical_runs(run, reference)


@pytest.mark.slow  # a third launch and a save held open for 3 s; the first Ctrl-C is the default tier's, above
def test_a_second_sigint_while_the_checkpoint_is_written_stops_at_once(reference, tmp_path):
    """A second Ctrl-C while the first one's checkpoint is written stops at once: nothing partial, LATEST as it
    was. Resumed, the run ends identical."""
    run = tmp_path / "run"
    args = ["train", *QUICK, "--out", str(run), "--save-every", "2"]
    with running(args, {"SENET_TEST_STEP_SLEEP": "0.3"}) as proc:
        wait_for(lambda: latest_name(run) is not None, proc, what="a checkpoint")
        proc.kill_group()
    before, files = latest_name(run), _snapshot(run)
    env = {"SENET_TEST_STEP_SLEEP": "0.3", "SENET_TEST_PAUSE_IN_SAVE": "3"}
    with running([*args, "--resume", "--save-every", "1000"], env) as proc:
        wait_for(lambda: any("resuming" in line for line in proc.out), proc, what="training to resume")
        proc.signal(signal.SIGINT)
        first = time.monotonic()
        wait_for(lambda: saving_now(run), proc, what="the stop's checkpoint being written")
        time.sleep(max(0.0, first + 1.2 - time.monotonic()))  # a second Ctrl-C, not the first one repeated
        proc.signal(signal.SIGINT)
        exit_code, out, err = proc.wait(timeout=60)
    assert exit_code == 130 and "interrupted" in err and "checkpoint written" not in err, err
    assert latest_name(run) == before and _snapshot(run) == files  # nothing partial, nothing new
    assert not saving_now(run)
    finish(run)
    assert_identical_runs(run, reference)


def _stop_checkpoint(line: str) -> str:
    """The checkpoint a 'stopped by SIGX at epoch E step S; ...' (or '... at the end of epoch E') line means."""
    where = line.split(" at ", 1)[1].split(";")[0].split(" of run ")[0].split()
    if where[0] == "the":  # the end of epoch E
        return checkpoint_name(int(where[-1]))
    return checkpoint_name(int(where[1]) - 1, int(where[3]))


# --- compare and ablate: several runs, one of them killed mid-epoch ------------------------------------------
# Slow tier: a SIGKILL at any moment is the train test's above (the runs of compare and ablate are trainings),
# and that an experiment keeps its finished runs and continues the stopped one to the uninterrupted weights is
# the SIGTERM / SIGINT tests' below, which stay in the default tier.


@pytest.mark.slow
def test_compare_killed_mid_run_keeps_the_finished_twin_and_resumes_the_other(tmp_path, cifar10):
    out = tmp_path / "cmp"
    args = ["compare", *QUICK, "--epochs", "1", "--out", str(out), "--save-every", "1"]
    se = out / "se-seed0"
    with running(args, {"SENET_TEST_STEP_SLEEP": "0.2"}) as proc:
        wait_for(lambda: latest_name(se) == "epoch_0000_step_000002", proc, what="the SE twin's second step")
        proc.kill_group()
    assert_no_partial_checkpoint(se, keep=2)
    plain = {p: p.stat().st_mtime_ns for p in (out / "plain-seed0").rglob("*") if p.is_file()}
    assert main([*args, "--resume"]) == 0
    assert plain == {p: p.stat().st_mtime_ns for p in (out / "plain-seed0").rglob("*") if p.is_file()}
    assert_identical_runs(se, se_twin_reference())


@pytest.mark.slow
def test_ablate_killed_mid_run_resumes_the_interrupted_setting_mid_epoch(tmp_path, cifar10, capsys):
    out = tmp_path / "ablation"
    args = ["ablate", *QUICK, "--model", "se_cifar_resnet20", "--vary", "reduction=4,8", "--epochs", "1",
            "--out", str(out), "--save-every", "1"]  # fmt: skip
    second = out / "reduction-8-seed0"
    with running(args, {"SENET_TEST_STEP_SLEEP": "0.2"}) as proc:
        wait_for(lambda: latest_name(second) == "epoch_0000_step_000003", proc, what="the second setting's step 3")
        proc.kill_group()
    assert_no_partial_checkpoint(second, keep=2)
    assert main([*args, "--resume"]) == 0
    assert f"resuming {second} at epoch 1 step 3" in capsys.readouterr().out
    assert_identical_runs(second, reduction_8_reference())


# --- compare, ablate and reproduce: a signal stops the run in progress after a checkpoint --------------------


def _stopped_line(err: str, name: str, run: str) -> str:
    """The one line a stopped experiment prints; returns its resume command."""
    assert err.count("\n") == 1 and err.startswith(f"stopped by {name} at "), err
    assert f" of {run}; checkpoint written; resume with: senet " in err, err
    return err.split("resume with: ", 1)[1].strip()


def _stop_experiment(
    args: list[str], started: str, what: str, delay: float, sig: signal.Signals, run: str, step_sleep: float = 0.3
):
    """Runs the experiment ``args`` with steps slowed by ``step_sleep`` s, sends ``sig`` ``delay`` s after a line
    containing ``started``, and checks the exit code (128 + signal) and the one line; returns (resume command,
    stderr)."""
    with running(args, {"SENET_TEST_STEP_SLEEP": str(step_sleep)}) as proc:
        wait_for(lambda: any(started in line for line in proc.out), proc, what=what)
        time.sleep(delay)
        proc.signal(sig)
        code, _, err = proc.wait(timeout=60)
    assert code == 128 + sig, err
    return _stopped_line(err, sig.name, run), err


def test_sigterm_stops_compare_with_a_checkpoint_and_its_short_resume_command_continues_it(tmp_path, cifar10):
    """SIGTERM in the SE twin: a checkpoint at that step, one line, exit 143. The line's command names only
    the model and the folder: the comparison continues with its recorded options (subset, batch, dropout,
    ...), keeps the finished twin, and the SE twin ends identical to an uninterrupted run."""
    out = tmp_path / "cmp"
    args = ["compare", *QUICK, "--epochs", "1", "--out", str(out), "--save-every", "1000"]
    se = out / "se-seed0"
    command, err = _stop_experiment(args, "se-seed0", "the SE twin to start", 0.5, signal.SIGTERM, "run 2/2 (se-seed0)")
    assert command == f"senet compare --model cifar_resnet20 --out {out} --resume"
    assert latest_name(se) == _stop_checkpoint(err)
    assert_no_partial_checkpoint(se, keep=2)
    plain = {p: p.stat().st_mtime_ns for p in (out / "plain-seed0").rglob("*") if p.is_file()}
    assert main(command.split()[1:]) == 0
    assert plain == {p: p.stat().st_mtime_ns for p in (out / "plain-seed0").rglob("*") if p.is_file()}
    assert json.loads((out / "compare.json").read_text())["complete"]
    assert_identical_runs(se, se_twin_reference())


# Slow tier: a real SIGINT is the train test's above, an experiment stopped by a real signal and continued by
# the command it prints is compare's and reproduce's tests here, and ablate's line after Ctrl-C and its
# continuation are test_ablate.py's end-to-end test (in process); this one is their combination for ablate.
@pytest.mark.slow
def test_sigint_stops_ablate_with_a_checkpoint_and_the_command_that_continues_it(tmp_path, cifar10):
    """Ctrl-C in the second setting of an ablation writes a checkpoint at the step it stopped at, prints one
    line naming the run and the resume command, and exits 130; that command finishes the ablation, the
    interrupted setting identical to an uninterrupted run."""
    out = tmp_path / "ablation"
    args = ["ablate", *QUICK, "--model", "se_cifar_resnet20", "--vary", "reduction=4,8", "--epochs", "1",
            "--out", str(out)]  # fmt: skip
    second = out / "reduction-8-seed0"
    command, err = _stop_experiment(args, "reduction-8", "the second setting", 0.5, signal.SIGINT,
                                    "run 2/2 (reduction-8-seed0)")
    assert command.startswith("senet ablate --model se_cifar_resnet20 --vary reduction=4,8 ") and "--resume" in command
    assert latest_name(second) == _stop_checkpoint(err)
    assert main(command.split()[1:]) == 0
    assert_identical_runs(second, reduction_8_reference())


def test_sigterm_stops_reproduce_with_a_checkpoint_and_the_command_that_continues_it(tmp_path, cifar10, capsys,
                                                                                     monkeypatch):  # fmt: skip
    """SIGTERM in the first run of a reproduction: a checkpoint at the step it stopped at, one line naming the
    run and the resume command, exit 143; that command finishes the reproduction.

    In process: the signal is sent to this process after the first run's first step (the handler that
    ``senet reproduce`` installs turns it into a stop request, as for an outside signal); that a signal from
    outside reaches a running experiment is the compare test's above."""
    out = tmp_path / "repro"
    # 300 images: 2 steps of the protocol's batch of 128 per run (a third of the work of 1,000 images).
    args = ["reproduce", "cifar10", "--protocol", "quick", "--seeds", "1", "--epochs", "1", "--subset", "300",
            "--test-subset", "50", "--device", "cpu", "--no-progress", "--out", str(out)]  # fmt: skip
    first = out / "resnet20-plain-seed0"
    sent = []

    def sigterm_after_the_first_step(rank: int, global_step: int) -> None:
        if not sent:
            sent.append(global_step)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(saving, "injected_faults_after_step", sigterm_after_the_first_step)
    capsys.readouterr()
    assert main(args) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    command = _stopped_line(err, "SIGTERM", "run 1/2 (resnet20-plain-seed0)")
    assert command == f"senet reproduce cifar10 --protocol quick --models resnet20 --seeds 1 --out {out} --resume"
    assert latest_name(first) == _stop_checkpoint(err) == checkpoint_name(0, 1)  # after step 1, where it stopped
    assert_no_partial_checkpoint(first, keep=2)
    monkeypatch.undo()
    assert main(command.split()[1:]) == 0
    report = json.loads((out / "reproduce.json").read_text())
    assert report["complete"] and report["runs_done"] == 2


# --- two processes -----------------------------------------------------------------------------------------------

DDP = DDP_TRAIN  # QUICK on 200 images: 100 per process, 4 steps of 25 per epoch (the shared reference's options)


@TWO_PROCESS
@pytest.mark.slow  # three 2-process launches (~10 s each on 2 cores, both cores busy); `make test-all`
def test_two_process_run_survives_a_dead_rank_and_a_preemption(tmp_path, cifar10, ddp_reference):
    """Rank 1 dies after step 3 (before its checkpoint): rank 0 stops within seconds with one clear line, not
    a hang. The run then resumes on two processes and is preempted (SIGTERM to torchrun): the checkpoint it
    stops with holds the very state of the uninterrupted two-process run at that step (CPU, gloo), which the
    resumed run reached from the dead rank's last checkpoint; then it resumes again and ends identical to the
    uninterrupted run. (The default tier keeps a one-process preemption and its bit-identical resume, above,
    and the 2-process run's correctness in test_train.py.)"""
    (ref, result), run = ddp_reference, tmp_path / "run"
    assert result.returncode == 0, result.stderr[-3000:]

    args = ["train", *DDP, "--out", str(run), "--save-every", "1"]
    start = time.monotonic()
    with running(args, {"SENET_TEST_DIE_AT_STEP": "1:3", "SENET_DIST_TIMEOUT": "30"}, torchrun=True) as proc:
        code, out, err = proc.wait()
    took = time.monotonic() - start
    assert code != 0
    assert "senet train: error: rank 0: another process of this 2-process run died or stopped answering" in err, err
    assert "The last good checkpoint is epoch_0000_step_000002 (epoch 1 step 2); resume the run with --resume" in err
    assert took < 60, f"rank 0 took {took:.0f} s to give up"  # measured: the whole run ~9 s, the death < 1 s of it
    assert_no_partial_checkpoint(run, keep=2)
    assert latest_name(run) == "epoch_0000_step_000002"

    with running([*args, "--resume"], {"SENET_TEST_STEP_SLEEP": "0.3"}, torchrun=True) as proc:
        wait_for(lambda: latest_name(run) not in ("epoch_0000_step_000002", None), proc, what="a new checkpoint")
        proc.signal(signal.SIGTERM)  # to torchrun's agent, which passes it on to both workers
        code, out, err = proc.wait(timeout=60)
    stopped = [line for line in err.splitlines() if line.startswith("stopped by SIGTERM")]
    assert len(stopped) == 1 and "resume with: torchrun --nproc_per_node=2 -m senet train" in stopped[0], err
    assert_no_partial_checkpoint(run, keep=2)
    assert latest_name(run) == _stop_checkpoint(stopped[0])
    # The checkpoints the resumed run wrote hold the uninterrupted run's state at their steps (the reference
    # kept one after every step; a stop on an epoch's last step is named as a step, the reference's as the
    # epoch, and has no twin there, but the one before it has).
    written = [p.name for p in list_checkpoints(run) if p.name != "epoch_0000_step_000002"]
    twins = [name for name in written if (ref / "checkpoints" / name).is_dir()]
    assert twins, (written, [p.name for p in list_checkpoints(ref)])
    for name in twins:
        assert_same_checkpoint(run / "checkpoints" / name, ref / "checkpoints" / name)

    with running([*args, "--resume"], torchrun=True) as proc:
        code, out, err = proc.wait()
    assert code == 0, err[-3000:]
    assert json.loads((run / "summary.json").read_text())["ranks_identical"] is True
    assert_identical_runs(run, ref)
