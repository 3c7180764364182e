"""Run directories: where a run goes by default, what is already there, and what a new start may replace.

Every run gets a folder of its own unless told otherwise: ``runs/<model>-<YYYYmmdd-HHMMSS>`` (a counter is
appended if that exists). ``plan_run`` decides, without writing anything, what a start will do with its
folder (begin, resume from a checkpoint, start over, or replace a run with ``--force``) and refuses, in
one line that names the way out, what would lose a run. ``claim_run_dir`` then makes the folder, only once
the data and the model are ready, so a start that fails leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .._plural import plural
from ..io import (
    CONFIG_FILE,
    META_FILE,
    RUN_FILES,
    SUMMARY_FILE,
    checkpoint_position,
    holds_run,
    latest_checkpoint,
)
from . import distributed as dist
from .checkpoint import describe_position
from .config import RESUMABLE_OPTIONS, TrainConfig

RUNS_ROOT = Path("runs")
# Options a resume takes from the command line when given (else the run's recorded ones).
TAKEN_ON_RESUME = ("data_dir", "skip_corrupt", "save_every", "keep_checkpoints")


def new_run_dir(stem: str, root: Path = RUNS_ROOT) -> Path:
    """A folder name that does not exist yet: ``root/<stem>-<YYYYmmdd-HHMMSS>[-N]``."""
    base = root / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 2
    while path.exists():
        path, n = Path(f"{base}-{n}"), n + 1
    return path


def newest_run_dir(stem: str, root: Path = RUNS_ROOT, marker: str = CONFIG_FILE) -> Path | None:
    """The most recently started folder ``root/<stem>-*`` holding ``marker``, or ``None``."""
    runs = [p for p in root.glob(f"{stem}-*") if (p / marker).is_file()]
    return max(runs, key=lambda p: (p / marker).stat().st_mtime) if runs else None


def describe_run(out: Path) -> str:
    """A few words on the run in ``out``: its model and how far it got."""
    try:
        stored = json.loads((out / CONFIG_FILE).read_text())
        model, epochs = stored.get("model", "?"), stored.get("epochs")
    except (OSError, ValueError):
        return "a run"
    ckpt = latest_checkpoint(out)
    done, step = _position(ckpt) if ckpt is not None else (0, 0)
    if (out / SUMMARY_FILE).is_file():
        return f"a finished run of {model} ({_epochs(epochs)})"
    if done == 0 and step == 0:
        return f"a run of {model} stopped before its first checkpoint"
    if step:
        return f"a run of {model} stopped at {describe_position(done, step)} ({_epochs(epochs)} in all)"
    return f"a run of {model} stopped after epoch {done} of {epochs}"


def _epochs(epochs: object) -> str:
    return plural(epochs, "epoch") if isinstance(epochs, int) else f"{epochs} epochs"


def _position(ckpt: Path) -> tuple[int, int]:
    """(completed epochs, steps into the next) of a checkpoint, from its meta.json (else its name)."""
    try:
        meta = json.loads((ckpt / META_FILE).read_text())
        return int(meta["epoch"]), int(meta.get("step", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return checkpoint_position(ckpt) or (0, 0)


@dataclass
class RunPlan:
    """What a start does with its folder.

    Attributes:
        out: The run directory.
        checkpoint: The checkpoint to resume from (``None``: start at epoch 0).
        replace: Delete the run files in ``out`` first (``--force``, or a resume with no checkpoint).
        notes: Lines to tell the user (what is replaced, resumed or changed).
    """

    out: Path
    checkpoint: Path | None = None
    replace: bool = False
    notes: list[str] = field(default_factory=list)


def default_out(cfg: TrainConfig) -> Path:
    """The folder of a run given no ``--out``: a new one, or on ``--resume`` the newest run of the model.

    Raises:
        FileNotFoundError: On ``--resume`` when no run of the model exists under ``runs/``.
    """
    if cfg.resume:
        newest = newest_run_dir(cfg.model)
        if newest is None:
            raise FileNotFoundError(f"--resume: no run of {cfg.model} under {RUNS_ROOT}/; name the run with --out")
        return newest
    return new_run_dir(cfg.model)


def plan_run(cfg: TrainConfig) -> tuple[TrainConfig, RunPlan]:
    """Decides what the run does with its folder; writes nothing.

    On ``resume`` the recorded configuration is taken, and options the user gave that differ from it are
    refused (``--epochs`` may grow: the schedule is then recomputed, which is said).

    Returns:
        The configuration to run (with ``out`` set) and the plan.

    Raises:
        FileExistsError: If ``out`` holds a run and neither ``resume`` nor ``force`` is set.
        FileNotFoundError: On ``resume`` when ``out`` holds no run.
        ValueError: On ``resume`` with options that differ from the run's, or another model.
    """
    out = Path(cfg.out) if cfg.out is not None else None
    if out is None:  # rank 0 chooses, so that every process of a multi-process run writes to one place
        choice: tuple[str | None, str | None] = (None, None)
        if dist.is_main_process():
            try:
                choice = (str(default_out(cfg)), None)
            except FileNotFoundError as e:  # every rank fails alike, none waits for the others
                choice = (None, str(e))
        path, error = dist.broadcast_object(choice)
        if error is not None:
            raise FileNotFoundError(error)
        out = Path(path)
    cfg = dataclasses.replace(cfg, out=str(out))
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder")
    if cfg.resume:
        return _plan_resume(cfg, out)
    if holds_run(out):
        what = describe_run(out)
        if not cfg.force:
            hint = "to start it over" if latest_checkpoint(out) is None else "to continue it"
            raise FileExistsError(
                f"{out} already holds {what}; pass --resume {hint}, --force to replace it, or another --out"
            )
        return cfg, RunPlan(out, replace=True, notes=[f"--force: replacing {what} in {out}"])
    return cfg, RunPlan(out)


def refuse_changed_options(cfg: TrainConfig, stored: TrainConfig, out: Path, *, resumable: frozenset[str],
                           label: str, start_anew: str) -> None:  # fmt: skip
    """Refuses a resume given options (``cfg.given``) that differ from the recorded ones (``stored``), other
    than those in ``resumable``, naming each with both values ('--lr 0.05 (the run's: 0.1)').

    Raises:
        ValueError: If any differ.
    """
    try:  # an option left to the recipe was recorded as None: the value the run used is the recipe's
        used = stored.resolve()
    except ValueError:
        used = stored
    differ = [
        f"--{name.replace('_', '-')} {getattr(cfg, name)} ({label}: {getattr(used, name)})"
        for name in cfg.given
        if name not in resumable and _value(getattr(cfg, name)) != _value(getattr(used, name))
    ]
    if differ:
        raise ValueError(f"--resume continues {out} with the options it was started with; these differ: "
                         f"{', '.join(differ)}. Drop them, or {start_anew}")  # fmt: skip


def _plan_resume(cfg: TrainConfig, out: Path) -> tuple[TrainConfig, RunPlan]:
    path = out / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--resume: {out} holds no run (no config.json); start one without --resume")
    try:
        stored = TrainConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise ValueError(f"--resume: {path} is not a readable run configuration ({e})") from None
    if stored.model != cfg.model:
        raise ValueError(f"--resume: {out} holds a run of {stored.model!r}, not {cfg.model!r}")
    refuse_changed_options(cfg, stored, out, resumable=RESUMABLE_OPTIONS, label="the run's",
                           start_anew="start a new run (another --out, or --force to replace this one)")  # fmt: skip
    ckpt = latest_checkpoint(out)
    done, step = _position(ckpt) if ckpt is not None else (0, 0)
    notes = []
    if "epochs" in cfg.given and cfg.epochs != stored.epochs:
        if cfg.epochs < done or (step and cfg.epochs == done):
            trained = plural(done, "epoch") + (f" and {plural(step, 'step')}" if step else "")
            raise ValueError(f"--resume: {out} has already trained {trained}; --epochs {cfg.epochs} is fewer")
        notes.append(
            f"--epochs {cfg.epochs}: the run was set for {stored.epochs}; its learning-rate schedule is "
            f"recomputed for {plural(cfg.epochs, 'epoch')} from epoch {done + 1} on"
        )
        stored.epochs = cfg.epochs
    stored = dataclasses.replace(
        stored, out=str(out), resume=True, force=False, progress=cfg.progress, device=cfg.device,
        workers=cfg.workers if "workers" in cfg.given else None, given=cfg.given,
        **{name: getattr(cfg, name) if name in cfg.given else getattr(stored, name) for name in TAKEN_ON_RESUME},
    )  # fmt: skip
    if ckpt is None:
        notes.append(f"{out} has no checkpoint yet: starting the run over with its recorded options")
        return stored, RunPlan(out, replace=True, notes=notes)
    if step:
        notes.append(f"resuming {out} at {describe_position(done, step)} ({plural(stored.epochs, 'epoch')} in all)")
    else:
        notes.append(f"resuming {out} after epoch {done} of {stored.epochs}")
    return stored, RunPlan(out, checkpoint=ckpt, notes=notes)


def _value(v: object) -> object:
    return tuple(v) if isinstance(v, list) else v


def claim_run_dir(plan: RunPlan) -> None:
    """Makes the run directory, first deleting the run files a replacing plan replaces (rank 0 only)."""
    if plan.replace:
        for name in RUN_FILES:
            target = plan.out / name
            if target.is_dir():  # renamed away first: a kill while deleting leaves no half checkpoint in view
                hidden = target.with_name(f".{name}.deleted")
                shutil.rmtree(hidden, ignore_errors=True)
                os.rename(target, hidden)
                shutil.rmtree(hidden)
            elif target.exists():
                target.unlink()
    plan.out.mkdir(parents=True, exist_ok=True)
