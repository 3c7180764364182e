"""A whole training run: data, model, optimiser, the epoch loop, checkpoints, logs and the summary.

``fit(config)`` is what ``senet train`` calls; it is also the library's one-call training API. A run
killed at any moment and resumed (``--resume``) ends bit-identical (on the CPU) to an uninterrupted one:
it continues from its last checkpoint, at an epoch's end or, with ``--save-every``, part-way through an
epoch (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._plural import plural
from ..factory import ARCHITECTURE, build_run_model
from ..factory.runs import run_create_kwargs
from ..io import (
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    SUMMARY_FILE,
    atomic_write_text,
    one_line,
)
from ..profiler import profile
from ..utils.allocator import tune_cpu_allocator
from . import distributed as dist
from .checkpoint import load_checkpoint, save_checkpoint, save_weights, unwrap
from .compile_choice import CompileChoice, choose_compile
from .config import TrainConfig, parse_save_every
from .device import resolve_device, seed_everything
from .engine import EpochProgress, StepOptions, autocast, evaluate, train_one_epoch
from .init import initial_model
from .interrupt import TrainingStopped
from .loaders import DataBundle, build_data, normalize_as_recorded
from .logging import MetricsLogger, ProgressBar
from .optim import build_optimizer, build_scheduler
from .recipes import default_recipe
from .rundir import RunPlan, claim_run_dir, plan_run
from .saving import CheckpointSaver

# In the summary and checkpoints of an --init-from run: its test accuracy and loss at step 0 (the loaded weights).
INITIAL_ACCURACY, INITIAL_LOSS = "initial_test_accuracy", "initial_test_loss"


def build_model(cfg: TrainConfig, num_classes: int, *, initial: bool = False) -> nn.Module:
    """The model of ``cfg`` for ``num_classes`` classes (``senet.factory.build_run_model``).

    ``cfg.extra[MODEL_OPTIONS]``, when present, holds further ``create_model`` arguments (e.g.
    ``{'se_placement': 'pre', 'se_stages': [2], 'attention_kwargs': {'gate': 'tanh'}}``, as ``senet ablate``
    sets them); being part of the config, they are recorded with the run and rebuilt on resume and eval.

    Args:
        cfg: The run's configuration.
        num_classes: The classifier's size.
        initial: The start of a new run: load ``cfg.init_from`` and retrofit ``cfg.retrofit``, and record in
            ``cfg.extra`` what rebuilds that network (``senet.train.init``). Otherwise (resume, eval) the
            recorded network is rebuilt without its initial weights: the caller loads the run's own.
    """
    if initial and (cfg.init_from is not None or cfg.retrofit is not None):
        model, cfg.extra[ARCHITECTURE] = initial_model(
            cfg.model, run_create_kwargs(cfg.to_dict(), num_classes), init_from=cfg.init_from,
            retrofit=cfg.retrofit, reduction=cfg.reduction,
        )  # fmt: skip
        return model
    return build_run_model(cfg.to_dict(), num_classes)


def count_macs(model: nn.Module, input_size: tuple[int, ...]) -> int | None:
    """Multiply-adds of one image through ``model`` (``None`` when the profiler cannot run)."""
    try:
        return int(profile(unwrap(model), input_size=input_size).total.macs)
    except Exception:  # the summary should not fail over a cost estimate
        return None


@dataclass
class RunResult:
    """What ``fit`` returns: the summary (as written to summary.json) and the metric history."""

    summary: dict[str, Any]
    history: list[dict[str, Any]]
    model: nn.Module


def fit(cfg: TrainConfig) -> RunResult:
    """Trains ``cfg.model`` on ``cfg.dataset`` as ``cfg`` says; see ``senet train --help``.

    Writes config.json, metrics.jsonl (one line per epoch), checkpoints, model.safetensors and
    summary.json into ``cfg.out`` (rank 0 only; ``None``: a new folder ``runs/<model>-<time>``). The
    folder is made only once the data and the model are ready.

    Raises:
        ValueError: On an invalid configuration, model or dataset, or a training loss that becomes
            non-finite or explodes (naming the epoch and step).
        FileExistsError: If ``cfg.out`` holds a run and neither resume nor force is set.
        TrainingStopped: When a stop was requested (``senet.train.interrupt``): after writing a checkpoint.
        OSError: If a checkpoint or log cannot be written (one line naming the last good checkpoint), or
            (``ConnectionError``) another process of a multi-process run died or stopped answering.
    """
    checked = cfg.resolve()  # the options given are valid, before anything runs (a resume re-checks)
    device = resolve_device(checked.device)
    autocast(device, checked.amp)  # an impossible precision fails here, before anything is written
    tune_cpu_allocator()  # keep freed tensors' memory for reuse (page faults cost more than the math)
    owns_group = dist.init_from_env(device)
    finished = False
    try:
        result = _fit(cfg, device)
        finished = True
        return result
    except TrainingStopped:  # every process stops at the same step: they can part in order
        finished = True
        raise
    finally:  # success, error or Ctrl-C: a process group this run created is torn down with it
        if owns_group:
            dist.cleanup(wait=finished)


def run_label(cfg: TrainConfig) -> str:
    """The model of a run as its lines name it: with its attention when that is overridden."""
    if cfg.retrofit is not None:
        return f"{cfg.model} ({cfg.retrofit} retrofitted)"
    return cfg.model if cfg.attention is None else f"{cfg.model} (attention {cfg.attention})"


def start_line(cfg: TrainConfig, given_recipe: bool, *, train_images: int = 0, epoch_images: int = 0,
               mode: str | None = None) -> str:  # fmt: skip
    """The run's first line: the model, the data, the recipe (and why), the main settings and the mode.

    Args:
        cfg: The resolved configuration.
        given_recipe: Whether the recipe was chosen (else the line says it is the data set's default).
        train_images: The training images there are; with ``epoch_images``, when an epoch uses fewer (the
            last partial batch dropped), the line says how many.
        epoch_images: The training images an epoch uses.
        mode: Compiled or eager, and why (``CompileChoice.reason``).
    """
    kind = "CIFAR" if default_recipe(cfg.dataset) == "quick_cifar" else "image folders"
    why = "" if given_recipe else f" (the default for {kind})"
    processes = f" x {dist.world_size()} processes" if dist.world_size() > 1 else ""
    epoch = plural(cfg.epochs, "epoch")
    used = ""
    if 0 < epoch_images < train_images:
        used = (f"; an epoch trains on {epoch_images:,} of the {train_images:,} images (the last partial batch of "
                f"{train_images - epoch_images:,} is dropped: BatchNorm on a tiny batch is noise)")  # fmt: skip
    mode = f"; {mode}" if mode else ""
    return (
        f"{run_label(cfg)} on {cfg.dataset}: recipe {cfg.recipe}{why}, {epoch}, batch {cfg.batch_size}"
        f"{processes}, lr {cfg.lr:g} ({cfg.schedule}){used}{mode}; run in {cfg.out}"
    )


def _steps_done(start_epoch: int, start: EpochProgress | None, steps_per_epoch: int) -> int:
    return start_epoch * steps_per_epoch + (start.step if start is not None else 0)


def _choose_mode(cfg: TrainConfig, model: nn.Module, data: DataBundle, device: torch.device, *,
                 steps_left: int, resumed: bool) -> CompileChoice:  # fmt: skip
    """Compiled or eager (``senet.train.compile_choice``): rank 0 measures and decides for every process."""
    choice = None
    if "compile" in cfg.given:
        set_by = "as set"
    elif resumed:
        set_by = "as the run was started"
    else:  # an experiment's later runs train in its first run's mode (or a TrainConfig set in code)
        set_by = "as configured: an experiment's runs train in its first run's mode"
    if dist.is_main_process():
        choice = choose_compile(cfg.compile, model, batch=(cfg.batch_size, *data.input_size),
                                num_classes=data.num_classes, steps=max(steps_left, 0), device=device, amp=cfg.amp,
                                channels_last=cfg.channels_last, set_by=set_by)  # fmt: skip
    return dist.broadcast_object(choice) if dist.is_distributed() else choice


def _fit(cfg: TrainConfig, device: torch.device) -> RunResult:
    main = dist.is_main_process()
    cfg, plan = plan_run(cfg)
    given_recipe = "recipe" in cfg.given or cfg.resume
    cfg = cfg.resolve()
    seed_everything(cfg.seed)
    data: DataBundle = build_data(cfg, device, rank=dist.rank(), world_size=dist.world_size())
    model = build_model(cfg, data.num_classes, initial=plan.checkpoint is None).to(device)
    normalize_as_recorded(data, cfg)  # fine-tuning: the inputs are normalised as the source's network was trained
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(
        model, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
    )
    steps_per_epoch = len(data.train)
    scheduler = build_scheduler(
        optimizer,
        schedule=cfg.schedule,
        total_steps=cfg.epochs * steps_per_epoch,
        warmup_steps=int(round(cfg.warmup_epochs * steps_per_epoch)),
        milestones=tuple(cfg.milestones),
    )
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    start_epoch, history, start, initial = 0, [], None, {INITIAL_ACCURACY: None, INITIAL_LOSS: None}
    if plan.checkpoint is not None:
        meta = load_checkpoint(plan.checkpoint, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler)
        start_epoch, history = meta["epoch"], meta.get("history", [])
        start = _resumed_progress(meta, plan.checkpoint, steps_per_epoch, device)
        initial = {key: meta.get(key) for key in initial}
    choice = _choose_mode(cfg, model, data, device, steps_left=cfg.epochs * steps_per_epoch - _steps_done(
        start_epoch, start, steps_per_epoch), resumed=plan.checkpoint is not None)
    cfg = dataclasses.replace(cfg, compile=choice.compile)  # recorded: a resume continues in the same mode
    if main:  # the data, the model and the checkpoint are ready: the run starts
        for note in plan.notes:
            print(note, flush=True)
        print(start_line(cfg, given_recipe, train_images=data.train_images, epoch_images=data.epoch_images,
                         mode=choice.reason), flush=True)  # fmt: skip
    if plan.checkpoint is None and cfg.init_from is not None:  # step 0: what the loaded (retrofitted) weights score
        step0 = evaluate(model, data.test, num_classes=data.num_classes, device=device, amp=cfg.amp,
                         channels_last=cfg.channels_last)  # fmt: skip
        initial = {INITIAL_ACCURACY: step0["accuracy"], INITIAL_LOSS: step0["loss"]}
        if main:
            added = f" with {cfg.retrofit} retrofitted" if cfg.retrofit else ""
            replaced = getattr(getattr(model, "pretrained_info", None), "classifier_replaced", False)
            new_head = (f"; the file's classifier was replaced by a new one for {data.num_classes} classes, so this "
                        "is about chance" if replaced else "")  # fmt: skip
            print(f"step 0 (the weights of {cfg.init_from}{added}): test accuracy {100 * step0['accuracy']:.2f}% "
                  f"on {step0['images']:,} images{new_head}", flush=True)  # fmt: skip
    out = _claim(plan, cfg, main)
    train_model: nn.Module = model
    if dist.is_distributed():
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    options = StepOptions(amp=cfg.amp, grad_clip=cfg.grad_clip, channels_last=cfg.channels_last)
    logger = MetricsLogger(out / METRICS_FILE, enabled=main, tensorboard_dir=out / "tensorboard")

    def write(*, epoch: int, step: int, progress: dict[str, Any] | None) -> Path:
        extra = {"model": cfg.model, "history": history, "world_size": dist.world_size(),
                 "steps_per_epoch": steps_per_epoch, **initial}  # fmt: skip
        return save_checkpoint(
            out, model=model, optimizer=optimizer, scheduler=scheduler, epoch=epoch, step=step, extra=extra,
            keep=cfg.keep_checkpoints, scaler=scaler, progress=progress,
        )  # fmt: skip

    saver = CheckpointSaver(
        out=out, write=write, steps_per_epoch=steps_per_epoch, device=device,
        interval=parse_save_every(cfg.save_every) if cfg.save_every is not None else None,
        last=(start_epoch, start.step if start is not None else 0) if plan.checkpoint is not None else None,
    )  # fmt: skip
    if plan.checkpoint is not None:
        with saver.writing(out / METRICS_FILE):
            logger.rewrite(history)
    train_seconds = sum(h.get("train_seconds", 0.0) for h in history)
    label = run_label(cfg)
    with _peer_failures(saver):
        last_test = None  # the last epoch's evaluation, which is the final one (the model is not changed after it)
        for epoch in range(start_epoch, cfg.epochs):
            resumed, start, last_test = start, None, None  # only the first epoch of a resumed run starts part-way
            data.train.set_epoch(epoch, start_batch=resumed.step if resumed is not None else 0)
            bar = ProgressBar(len(data.train), f"{label} epoch {epoch + 1}/{cfg.epochs}", enabled=main and cfg.progress)
            try:
                train = train_one_epoch(
                    train_model, data.train, optimizer, loss_fn, device=device, scheduler=scheduler,
                    scaler=scaler, options=options, progress=bar.update, start=resumed,
                    after_step=lambda progress, epoch=epoch: saver.after_step(epoch, progress),
                )  # fmt: skip
            except FloatingPointError as e:  # one line, nothing written for this epoch
                raise ValueError(f"epoch {epoch + 1}: {e}") from None
            finally:
                bar.close()
            dist.sync_buffers(model)
            train_seconds += train["seconds"]
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": train["loss"],
                "train_accuracy": train["accuracy"],
                "lr": train["lr"],
                "train_seconds": train["seconds"],
                "train_images": train["images"],
                "train_images_per_second": train["images_per_second"],
            }
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                test = last_test = evaluate(
                    model, data.test, num_classes=data.num_classes, device=device, amp=cfg.amp,
                    channels_last=cfg.channels_last,
                )
                record.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
            history.append(record)
            with saver.writing(out / METRICS_FILE):
                logger.log(record)
            if main and cfg.progress:
                print(_epoch_line(label, record, cfg.epochs), flush=True)
            saver.epoch_end(epoch + 1)
        logger.close()
        final = last_test if last_test is not None else evaluate(
            model, data.test, num_classes=data.num_classes, device=device, amp=cfg.amp, channels_last=cfg.channels_last
        )
        identical = dist.ranks_identical(model)
    summary = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "data_source": data.source,
        "classes": data.classes,
        "epochs": cfg.epochs,
        "test_accuracy": final["accuracy"],
        **initial,
        "test_loss": final["loss"],
        "per_class_accuracy": final["per_class_accuracy"],
        "params": sum(p.numel() for p in model.parameters()),
        "macs": count_macs(model, data.input_size),
        "train_seconds": train_seconds,
        "images_per_second": training_throughput(history),
        "eval_images_per_second": final["images_per_second"],
        "input_size": list(data.input_size),
        "world_size": dist.world_size(),
        "ranks_identical": identical,
        "device": str(device),
        "torch": torch.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": cfg.to_dict(),
    }
    skipped = _skipped_images(data)
    if skipped:
        summary["skipped_images"] = skipped
    if main and skipped:
        print(f"skipped {len(skipped)} unreadable image(s) (--skip-corrupt), e.g. {skipped[0]}; all are listed in "
              f"{out / SUMMARY_FILE}", flush=True)  # fmt: skip
    if main:
        with saver.writing(out / MODEL_FILE):
            save_weights(model, out / MODEL_FILE, metadata={"model": cfg.model})
        with saver.writing(out / SUMMARY_FILE):
            atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=1))
    return RunResult(summary, history, model)


def _resumed_progress(
    meta: dict[str, Any], checkpoint: Path, steps_per_epoch: int, device: torch.device
) -> EpochProgress | None:
    """The progress of the epoch a mid-epoch checkpoint stopped in (``None`` for an epoch's end).

    Raises:
        ValueError: If the checkpoint was written by a run whose epochs had another number of steps (another
            number of processes or batch size): its position could not be found again.
    """
    if not meta.get("step"):
        return None
    written = (meta.get("world_size"), meta.get("steps_per_epoch"))
    if meta.get("steps_per_epoch") != steps_per_epoch or meta.get("world_size", 1) != dist.world_size():
        raise ValueError(
            f"{checkpoint} was written part-way through an epoch by {written[0]} process(es) taking {written[1]} "
            f"steps per epoch; this run has {dist.world_size()} taking {steps_per_epoch}. Resume with the same "
            "number of processes, or from an epoch's end (point LATEST at one)"
        )
    if meta.get("progress") is None or meta["step"] > steps_per_epoch:
        raise ValueError(f"{checkpoint} holds no usable progress of its epoch; point LATEST at an older checkpoint")
    return EpochProgress.from_state(meta["progress"], device, rank=dist.rank())


def _epoch_line(label: str, record: dict[str, Any], epochs: int) -> str:
    test = f", test accuracy {100 * record['test_accuracy']:.2f}%" if "test_accuracy" in record else ""
    return (
        f"{label} epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f}, "
        f"accuracy {100 * record['train_accuracy']:.2f}%{test} ({record['train_images_per_second']:.0f} img/s)"
    )


@contextlib.contextmanager
def _peer_failures(saver: CheckpointSaver) -> Iterator[None]:
    """Turns a collective that failed because another process died or stopped answering into one line."""
    try:
        yield
    except RuntimeError as e:
        if not (dist.is_distributed() and dist.is_peer_failure(e)):
            raise
        last = saver.last_good()
        raise ConnectionError(
            f"rank {dist.rank()}: another process of this {dist.world_size()}-process run died or stopped answering "
            f"({one_line(e)}); stopping. {last[0].upper()}{last[1:]}; resume the run with --resume"
        ) from None


def _skipped_images(data: DataBundle) -> list[str]:
    """The unreadable images skipped by ``--skip-corrupt`` (image folders; recorded across workers)."""
    files: list[str] = []
    for loader in (data.train, data.test):
        files += getattr(getattr(loader, "dataset", None), "corrupt_files", [])
    return sorted(set(files))


def training_throughput(history: list[dict[str, Any]]) -> float:
    """Images per second over the whole training: every epoch's images over every epoch's seconds (the
    ``train_seconds`` the summary prints beside it), not the mean of the epochs' rates, which a slow first
    epoch (warm-up) and a fast second one put far from it. Histories of older versions, which did not record
    the images of an epoch, give the mean of the rates."""
    if history and all("train_images" in h and "train_seconds" in h for h in history):
        seconds = sum(h["train_seconds"] for h in history)
        return sum(h["train_images"] for h in history) / seconds if seconds > 0 else 0.0
    return _mean([h["train_images_per_second"] for h in history])


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else 0.0


def _claim(plan: RunPlan, cfg: TrainConfig, main: bool) -> Path:
    """Makes the run directory (rank 0) and records the configuration; the other ranks wait for it."""
    if main:
        claim_run_dir(plan)
        changed = {"epochs", "save_every", "keep_checkpoints"} & set(cfg.given)
        if plan.checkpoint is None or changed:  # a new run, or a resume that changed how long or how it saves
            atomic_write_text(plan.out / CONFIG_FILE, json.dumps(cfg.to_dict(), indent=1))
    dist.barrier()
    return plan.out
