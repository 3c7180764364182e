"""Training a list of settings over several seeds, resumable run by run: the engine of ``senet ablate``
and ``senet reproduce``.

Every (setting, seed) pair is one ordinary training run (``senet.train.run.fit``) in a folder of its own,
``<out>/<setting>-seed<k>``. Runs go seed by seed (every setting with the first seed, then every
setting with the next), so an experiment stopped half-way already holds a one-seed picture of all its
settings. All settings share the recipe, the data order and the augmentation of a seed
(``data_order_seed`` = seed), and each seed initialises every model from the same generator state.

On ``--resume`` a finished run (its final weights and summary written) is kept as it is, an unfinished
one continues from its last checkpoint, and a run that had not started starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..factory import MODEL_OPTIONS
from ..io import CONFIG_FILE, atomic_write_text
from ..train import distributed as dist
from ..train.compile_choice import experiment_mode
from ..train.config import RESUMABLE_OPTIONS, TrainConfig
from ..train.interrupt import TrainingStopped
from ..train.results import finished_run_record
from ..train.run import fit
from ..train.rundir import (
    RUNS_ROOT,
    TAKEN_ON_RESUME,
    describe_run,
    holds_run,
    new_run_dir,
    newest_run_dir,
    refuse_changed_options,
)
from ..utils.timing import format_duration

# What a resumed experiment may change: where and how it runs. Unlike a single run, not --epochs: a table
# whose rows trained for different lengths would compare nothing.
EXPERIMENT_RESUMABLE = RESUMABLE_OPTIONS - {"epochs"}

Results = dict[str, list[dict[str, Any]]]  # setting name -> one {'summary', 'history'} per finished seed


@dataclass(frozen=True)
class Setting:
    """One row of an experiment: how its runs differ from the experiment's base configuration.

    Attributes:
        name: Names its run folders (``<name>-seed<k>``) and its row in the JSON report.
        label: The row's label in the table.
        changes: ``TrainConfig`` fields to set, as (field, value) pairs (e.g. ``(('reduction', 8.0),)``).
        model_options: Further ``create_model`` arguments (e.g. ``(('se_placement', 'pre'),)``), recorded in
            the run's configuration (``TrainConfig.extra['create_model']``).
    """

    name: str
    label: str
    changes: tuple[tuple[str, Any], ...] = ()
    model_options: tuple[tuple[str, Any], ...] = ()

    def apply(self, base: TrainConfig) -> TrainConfig:
        """``base`` with this setting's changes."""
        cfg = dataclasses.replace(base, **dict(self.changes))
        if self.model_options:
            options = {**base.extra.get(MODEL_OPTIONS, {}), **dict(self.model_options)}
            cfg = dataclasses.replace(cfg, extra={**base.extra, MODEL_OPTIONS: options})
        return cfg

    def run_dir(self, out: Path, seed: int) -> Path:
        """The folder of this setting's run with ``seed``."""
        return out / f"{self.name}-seed{seed}"


def run_order(settings: Sequence[Setting], seeds: int, first_seed: int) -> list[tuple[Setting, int]]:
    """The (setting, seed) runs in the order they are trained: seed by seed."""
    return [(setting, first_seed + i) for i in range(seeds) for setting in settings]


def experiment_dir(out: str | None, *, stem: str, marker: str, report: str, what: str, resume: bool,
                   force: bool, started_by: Sequence[str] = ()) -> Path:  # fmt: skip
    """The experiment's folder: ``out``, else a new ``runs/<stem>-<time>`` (on ``resume`` the newest one
    holding ``marker``). Refuses to start over one that holds an experiment unless told to; writes nothing.

    In a multi-process run only rank 0 refuses: the others may find the marker rank 0 has just written
    for this very start (rank 0's error then ends the whole run).

    Args:
        out: The folder the user named, or ``None``.
        stem: The default folder's name before its time stamp.
        marker: The file an experiment writes when it starts.
        report: The file it writes when it ends (a JSON object with ``"complete": true``).
        what: What the experiment is called in messages ('ablation', 'reproduction', 'comparison').
        resume: Continue the experiment in the folder.
        force: Replace it.
        started_by: Glob patterns of further files or folders that show an experiment had started (those
            of older versions, which wrote their marker later).

    Raises:
        FileExistsError: If the folder holds an experiment and neither resume nor force is set, or holds a
            ``senet train`` run (with or without them).
        FileNotFoundError: On ``resume`` when there is nothing to resume.
        ValueError: For a multi-process run without ``out``.
    """
    if out is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(f"a multi-process {what} needs --out (the processes must agree on one folder)")
    if out is None and resume:
        path = newest_run_dir(stem, marker=marker)
        if path is None:
            raise FileNotFoundError(f"--resume: no {what} named {stem}-* under {RUNS_ROOT}/; name it with --out")
    else:
        path = Path(out) if out is not None else new_run_dir(stem)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"--out {path} is a file, not a folder")
    if holds_run(path):  # as `senet train` refuses it; --force replaces an experiment, never a training run
        raise FileExistsError(f"{path} already holds {describe_run(path)} (of `senet train`); the {what} needs "
                              "a folder of its own: give another --out")  # fmt: skip
    started = (path / marker).is_file() or any(next(path.glob(p), None) for p in started_by)
    if resume and not started:
        raise FileNotFoundError(f"--resume: {path} holds no {what}; start one without --resume")
    if started and not (resume or force) and int(os.environ.get("RANK", "0")) == 0:
        state = "a finished" if _complete(path / report) else "an unfinished"
        raise FileExistsError(f"{path} already holds {state} {what}; pass --resume to continue it, --force to "
                              "replace it, or another --out")  # fmt: skip
    return path


def _complete(report: Path) -> bool:
    try:
        return bool(json.loads(report.read_text()).get("complete"))
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def discard_if_nothing_ran(out: Path, marker: str, *, fresh: bool) -> Iterator[None]:
    """On an error before the first run has made its folder, removes what a fresh start wrote (its marker,
    and ``out`` if then empty), so that the same command can simply be run again."""
    try:
        yield
    except BaseException:
        if fresh and dist.is_main_process() and not any(p.is_dir() for p in out.iterdir()):
            (out / marker).unlink(missing_ok=True)
            if not any(out.iterdir()):
                out.rmdir()
        raise


def read_marker(path: Path) -> dict[str, Any]:
    """The record an experiment wrote when it started.

    Raises:
        ValueError: If it cannot be read.
    """
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"--resume: {path} is not a readable experiment record ({e})") from None


def resumed_base(recorded: dict[str, Any], cfg: TrainConfig, out: Path) -> TrainConfig:
    """The base configuration of a resumed experiment: the recorded one, with where and how to run from
    ``cfg``.

    Raises:
        ValueError: If options the user gave differ from the recorded ones (naming them), or the model does.
    """
    stored = TrainConfig.from_dict(recorded)
    if stored.model != cfg.model:
        raise ValueError(f"--resume: {out} is an experiment on {stored.model!r}, not {cfg.model!r}")
    refuse_changed_options(cfg, stored, out, resumable=EXPERIMENT_RESUMABLE, label="recorded",
                           start_anew="start anew (another --out, or --force)")  # fmt: skip
    given = set(cfg.given)
    return dataclasses.replace(
        stored, out=str(out), resume=True, force=False, progress=cfg.progress, device=cfg.device,
        given=tuple(sorted(given & EXPERIMENT_RESUMABLE)),
        **{name: getattr(cfg if name in given else stored, name) for name in ("workers", *TAKEN_ON_RESUME)},
    )  # fmt: skip


@contextlib.contextmanager
def resumable_by(command: str, run: str) -> Iterator[None]:
    """Around one run of an experiment: a stop (``TrainingStopped``, after a checkpoint) or an interruption
    (a second Ctrl-C) leaving it carries the command that continues the whole experiment (as
    ``resume_command``, which ``senet``'s entry point prints), and a stop says which run it stopped in."""
    try:
        yield
    except TrainingStopped as stopped:
        stopped.where = f"{stopped.where} of {run}"
        stopped.resume_command = command or None
        raise
    except KeyboardInterrupt as interrupted:
        interrupted.resume_command = command or None  # type: ignore[attr-defined]
        raise


def write_marker(path: Path, record: dict[str, Any]) -> None:
    """Writes the experiment's record (rank 0)."""
    if dist.is_main_process():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=1))


def run_grid(
    base: TrainConfig, settings: Sequence[Setting], *, seeds: int, out: Path,
    on_update: Callable[[Results], None] | None = None, resume_hint: str = "",
) -> Results:  # fmt: skip
    """Trains every setting with seeds ``base.seed`` .. ``base.seed + seeds - 1``, run by run.

    Args:
        base: The configuration every run starts from (``resume``: keep finished runs, continue the others).
        settings: The rows.
        seeds: Runs per setting.
        out: The experiment's folder.
        on_update: Called with the results so far after each run (finished or kept), e.g. to rewrite a
            partial table.
        resume_hint: The command that continues the experiment, printed when it is stopped.

    Returns:
        For each setting's name, the summary and history of each of its runs, in seed order.
    """
    order = run_order(settings, seeds, base.seed)
    results: Results = {s.name: [] for s in settings}
    main = dist.is_main_process()
    pace: list[float] = []  # wall seconds of the runs trained in this session
    for index, (setting, seed) in enumerate(order, 1):
        tag = f"[{index}/{len(order)}] {setting.name}, seed {seed}"
        run = setting.run_dir(out, seed)
        cfg = dataclasses.replace(setting.apply(base), seed=seed, data_order_seed=seed, out=str(run))
        kept = finished_run_record(run) if base.resume else None
        if kept is not None:
            if main:
                print(f"{tag}: had finished, kept ({run})", flush=True)
            results[setting.name].append(kept)
            base = dataclasses.replace(base, compile=experiment_mode(base.compile, kept["summary"]))
        else:
            if cfg.resume and not (run / CONFIG_FILE).is_file():
                cfg = dataclasses.replace(cfg, resume=False)  # this run had not started
            if main:
                print(f"{tag}: {'resuming' if cfg.resume else 'training'} in {run}", flush=True)
            start = time.perf_counter()
            with resumable_by(resume_hint, f"run {index}/{len(order)} ({run.name})"):
                result = fit(cfg)
            pace.append(time.perf_counter() - start)
            results[setting.name].append({"summary": result.summary, "history": result.history})
            base = dataclasses.replace(base, compile=experiment_mode(base.compile, result.summary))
            if main:
                left = len(order) - index
                eta = f", about {format_duration(left * sum(pace) / len(pace))} at this pace" if left else ""
                error = 100 * (1 - result.summary["test_accuracy"])
                print(f"{tag}: test error {error:.2f}%, {format_duration(pace[-1])}; {left} run(s) left{eta}",
                      flush=True)  # fmt: skip
        if on_update is not None and main:
            on_update(results)
    return results
