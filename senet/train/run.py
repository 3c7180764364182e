"""A whole training run: data, model, optimiser, the epoch loop, checkpoints, logs and the summary.

``fit(config)`` is what ``senet train`` calls; it is also the library's one-call training API.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..utils.allocator import tune_cpu_allocator
from . import distributed as dist
from .checkpoint import atomic_write_text, latest_checkpoint, load_checkpoint, save_checkpoint, save_weights, unwrap
from .config import TrainConfig
from .engine import StepOptions, autocast, evaluate, train_one_epoch
from .loaders import DataBundle, build_data
from .logging import MetricsLogger, ProgressBar
from .optim import build_optimizer, build_scheduler

RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "model.safetensors", "checkpoints")


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; otherwise the named device.

    Raises:
        ValueError: If CUDA is asked for and not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    return device


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and torch (all devices)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_run_dir(cfg: TrainConfig) -> Path:
    """Creates the run directory, refusing to overwrite a previous run unless asked to.

    Raises:
        FileExistsError: If ``out`` holds a run and neither ``resume`` nor ``force`` is set.
        FileNotFoundError: If ``resume`` is set and ``out`` holds no checkpoint.
    """
    out = Path(cfg.out)
    taken = out.exists() and any((out / name).exists() for name in RUN_FILES)
    if cfg.resume:
        if latest_checkpoint(out) is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {out} to resume from")
    elif taken and not cfg.force:
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or --force to start anew")
    elif taken and cfg.force and dist.is_main_process():
        for name in RUN_FILES:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    if dist.is_main_process():
        out.mkdir(parents=True, exist_ok=True)
    return out


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The model of ``cfg`` for ``num_classes`` classes."""
    from ..models import create_model

    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if cfg.attention is not None:
        kwargs["attention"] = None if cfg.attention.lower() == "none" else cfg.attention
    if cfg.reduction is not None:
        kwargs["reduction"] = cfg.reduction
    if cfg.drop_rate is not None:
        kwargs["drop_rate"] = cfg.drop_rate
    return create_model(cfg.model, **kwargs)


def count_macs(model: nn.Module, input_size: tuple[int, ...]) -> int | None:
    """Multiply-adds of one image through ``model`` (``None`` when the profiler cannot run)."""
    try:
        from ..profiler import profile

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
    summary.json into ``cfg.out`` (rank 0 only).

    Raises:
        ValueError: On an invalid configuration, model or dataset.
        FileExistsError: If ``cfg.out`` holds a run and neither resume nor force is set.
    """
    if cfg.resume:
        cfg = _merge_resumed_config(cfg)
    cfg = cfg.resolve()
    device = resolve_device(cfg.device)
    autocast(device, cfg.amp)  # an impossible precision fails here, before anything is written
    tune_cpu_allocator()  # keep freed tensors' memory for reuse (page faults cost more than the math)
    owns_group = dist.init_from_env(device)
    finished = False
    try:
        result = _fit(cfg, device)
        finished = True
        return result
    finally:  # success, error or Ctrl-C: a process group this run created is torn down with it
        if owns_group:
            dist.cleanup(wait=finished)


def _fit(cfg: TrainConfig, device: torch.device) -> RunResult:
    main = dist.is_main_process()
    out = prepare_run_dir(cfg)
    seed_everything(cfg.seed)
    data: DataBundle = build_data(cfg, device, rank=dist.rank(), world_size=dist.world_size())
    model = build_model(cfg, data.num_classes).to(device)
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
    start_epoch, history = 0, []
    if cfg.resume:
        ckpt = latest_checkpoint(out)
        meta = load_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler)
        start_epoch, history = meta["epoch"], meta.get("history", [])
    elif main:
        atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=1))
    train_model: nn.Module = model
    if dist.is_distributed():
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    options = StepOptions(amp=cfg.amp, grad_clip=cfg.grad_clip, channels_last=cfg.channels_last)
    logger = MetricsLogger(out / "metrics.jsonl", enabled=main, tensorboard_dir=out / "tensorboard")
    if cfg.resume:
        logger.rewrite(history)
    train_seconds = sum(h.get("train_seconds", 0.0) for h in history)
    for epoch in range(start_epoch, cfg.epochs):
        data.train.set_epoch(epoch)
        label = cfg.model if cfg.attention is None else f"{cfg.model} (attention {cfg.attention})"
        bar = ProgressBar(len(data.train), f"{label} epoch {epoch + 1}/{cfg.epochs}", enabled=main and cfg.progress)
        train = train_one_epoch(
            train_model, data.train, optimizer, loss_fn, device=device, scheduler=scheduler,
            scaler=scaler, options=options, progress=bar.update,
        )
        bar.close()
        dist.sync_buffers(model)
        train_seconds += train["seconds"]
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": train["loss"],
            "train_accuracy": train["accuracy"],
            "lr": train["lr"],
            "train_seconds": train["seconds"],
            "train_images_per_second": train["images_per_second"],
        }
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            test = evaluate(
                model, data.test, num_classes=data.num_classes, device=device, amp=cfg.amp,
                channels_last=cfg.channels_last,
            )
            record.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
        history.append(record)
        logger.log(record)
        if main and cfg.progress:
            test = f", test accuracy {record['test_accuracy']:.4f}" if "test_accuracy" in record else ""
            print(
                f"{label} epoch {epoch + 1}/{cfg.epochs}: loss {record['train_loss']:.4f}, "
                f"accuracy {record['train_accuracy']:.4f}{test} ({record['train_images_per_second']:.0f} img/s)",
                flush=True,
            )
        if main:
            save_checkpoint(
                out, model=model, optimizer=optimizer, scheduler=scheduler, epoch=epoch + 1,
                extra={"model": cfg.model, "history": history},
            )
        dist.barrier()
    logger.close()
    final = evaluate(
        model, data.test, num_classes=data.num_classes, device=device, amp=cfg.amp, channels_last=cfg.channels_last
    )
    summary = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "classes": data.classes,
        "epochs": cfg.epochs,
        "test_accuracy": final["accuracy"],
        "test_loss": final["loss"],
        "per_class_accuracy": final["per_class_accuracy"],
        "params": sum(p.numel() for p in model.parameters()),
        "macs": count_macs(model, data.input_size),
        "train_seconds": train_seconds,
        "images_per_second": _mean([h["train_images_per_second"] for h in history]),
        "eval_images_per_second": final["images_per_second"],
        "input_size": list(data.input_size),
        "world_size": dist.world_size(),
        "ranks_identical": dist.ranks_identical(model),
        "device": str(device),
        "torch": torch.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": cfg.to_dict(),
    }
    if main:
        save_weights(model, out / "model.safetensors", metadata={"model": cfg.model})
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return RunResult(summary, history, model)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else 0.0


def _merge_resumed_config(cfg: TrainConfig) -> TrainConfig:
    """On --resume the stored configuration wins, except for the directory, an explicit --epochs and the device.

    Raises:
        ValueError: If the stored run trained another model.
    """
    path = Path(cfg.out) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"--resume: {path} is missing; is {cfg.out} a senet run directory?")
    stored = TrainConfig.from_dict(json.loads(path.read_text()))
    if stored.model != cfg.model:
        raise ValueError(f"--resume: {cfg.out} holds a run of {stored.model!r}, not {cfg.model!r}")
    if cfg.epochs is not None:
        stored.epochs = cfg.epochs
    stored.out, stored.device, stored.resume, stored.progress = cfg.out, cfg.device, True, cfg.progress
    return stored


def find_weights(path: Path) -> tuple[Path, Path]:
    """Finds the weights and the run directory of ``path``: a run directory or one of its checkpoints.

    Raises:
        FileNotFoundError: If ``path`` holds neither final weights nor a checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if (path / "model.safetensors").is_file() and (path / "config.json").is_file():
        return path / "model.safetensors", path
    if (path / "model.safetensors").is_file() and (path.parent.parent / "config.json").is_file():
        return path / "model.safetensors", path.parent.parent  # run/checkpoints/epoch_NNNN
    ckpt = latest_checkpoint(path)
    if ckpt is not None:
        return ckpt / "model.safetensors", path
    raise FileNotFoundError(f"{path} holds no senet weights (model.safetensors + config.json, or checkpoints/)")


def evaluate_checkpoint(
    path: Path, *, dataset: str | None = None, data_dir: str | None = None, device: str = "auto",
    batch_size: int = 256,
) -> dict[str, Any]:
    """Evaluates the weights of a run (its final weights, else its newest checkpoint).

    Args:
        path: A run directory (or a checkpoint directory inside one).
        dataset: Evaluate on this data set instead of the run's own.
        data_dir: Where official archives are.
        device: 'auto', 'cpu' or 'cuda'.
        batch_size: Evaluation batch size.

    Returns:
        ``evaluate``'s metrics plus 'model', 'dataset', 'classes' and 'weights'.

    Raises:
        FileNotFoundError: If ``path`` holds no weights.
        ValueError: If the weights do not fit the run's model or the data set's classes.
    """
    from ..train.checkpoint import load_weights

    weights, run_dir = find_weights(path)
    cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    cfg.dataset = dataset or cfg.dataset
    cfg.data_dir = data_dir or cfg.data_dir
    cfg.subset, cfg.batch_size, cfg.device = None, batch_size, device
    cfg = cfg.resolve()
    dev = resolve_device(device)
    data = build_data(cfg, dev, rank=0, world_size=1, train=False)
    model = build_model(cfg, data.num_classes).to(dev)
    load_weights(model, weights)
    metrics = evaluate(model, data.test, num_classes=data.num_classes, device=dev)
    return {"model": cfg.model, "dataset": cfg.dataset, "classes": data.classes, "weights": str(weights), **metrics}
