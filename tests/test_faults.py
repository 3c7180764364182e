"""Faults in one process: a run stopped at any step resumes to the very weights of an uninterrupted run, the
checkpoint saver's cadence and pruning, and a full disk or unwritable folder keeps the last good checkpoint
(docs/reliability.md). Signals and kills on real subprocesses: test_faults_signals.py.

Every run here is ResNet-20 with dropout (so the RNG state matters) on 100 CIFAR-10 images in batches of
25: 4 steps per epoch, 2 epochs (``fault_runs.QUICK``). "Identical" means the final model.safetensors is
byte-identical and metrics.jsonl equal but for its timings.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import fault_runs
import pytest
import torch
from fault_runs import (
    QUICK,
    assert_identical_runs,
    assert_no_partial_checkpoint,
    checkpoint_files,
    finish,
)
from torch import nn

from senet.cli.main import main
from senet.data import load_dataset
from senet.io import LATEST_FILE as LATEST
from senet.io import (
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
)
from senet.io import folder as staging_module
from senet.train import checkpoint as ckpt_module
from senet.train import saving
from senet.train.checkpoint import save_checkpoint
from senet.train.config import SaveInterval, parse_save_every

cifar10 = fault_runs.cifar10  # the shared fixtures: pytest finds them by name in the module
reference = fault_runs.reference

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
        seen["before"] = checkpoint_files(run)
        if where == "weights":
            Path(args[1]).write_bytes(b"\0" * 100)
        raise error

    monkeypatch.setattr(owner, name, failing)
    return seen


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
    assert checkpoint_files(run) == seen["before"]  # the previous checkpoints and LATEST untouched, the attempt gone
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
