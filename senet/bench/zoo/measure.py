"""The zoo's measurements of one pair (SE network, the same network with SE off), one kind at a time.

Kinds (``KINDS``), each stored apart in the record so that a stopped run resumes where it stopped:

- ``cost``: parameters and multiply-adds of both networks at their natural input, batch 1, counted by
  ``senet.profiler`` on the meta device (nothing is run or timed);
- ``latency``: batch-1 inference, eval mode under ``torch.inference_mode``; the two networks timed in
  interleaved rounds after a warm-up, each sample at least ``inference_min_sample_seconds`` long;
- ``training``: one training step (forward, cross-entropy, backward, SGD with momentum) at a small batch
  (``training_batch_cifar`` for 32 px networks, ``training_batch_imagenet`` for the others), timed in
  interleaved rounds, one step per sample;
- ``latency_compiled`` and ``training_compiled``: the same under ``torch.compile`` (mode 'default'),
  after ``torch._dynamo.reset()``; the first call of each network (compilation included) is timed
  apart and not in the medians.

Both networks of a pair are built by ``create_model`` with the same seed, in float32, NCHW; the SE one as
registered, the plain one with ``attention=None``. A timing stores every sample, the medians and the
paired ratio SE/plain (the median of the per-round ratios, with its quartiles): ratio > 1 means SE is
slower.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ...models import create_model
from ...profiler.zoo import profile_model
from ..harness import Comparison, compare, first_call_seconds, timer_for
from ..network import sgd, training_step
from .pairs import ZooPair

KINDS = ("cost", "latency", "training", "latency_compiled", "training_compiled")
EAGER_KINDS = KINDS[:3]
COMPILED_KINDS = KINDS[3:]
CONTENDERS = ("plain", "se")  # every ratio is the second over the first


def settings(*, quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Batches, rounds and sample lengths: batch 2 and one round under ``quick`` (a smoke run).

    Args:
        quick: Tiny settings for tests, not a measurement.
        repeats: Interleaved rounds of every timing, overriding the defaults (7 for latency, 5 for training).
    """
    return {
        "quick": quick,
        "inference_batch": 1,
        "training_batch_cifar": 2 if quick else 64,
        "training_batch_imagenet": 2 if quick else 8,
        "inference_repeats": repeats or (1 if quick else 7),
        "training_repeats": repeats or (1 if quick else 5),
        "inference_min_sample_seconds": 0.0 if quick else 0.2,
        "warmup": 1,
        "memory_format": "contiguous",
        "dtype": "float32",
        "optimizer": "SGD(lr=0.01, momentum=0.9)",
        "compile_mode": "default",
    }


def training_batch(pair: ZooPair, cfg: dict[str, Any]) -> int:
    """The training batch of ``pair``: the CIFAR one for 32 px networks, the ImageNet one for the others."""
    return cfg["training_batch_cifar"] if pair.is_cifar else cfg["training_batch_imagenet"]


def timing_batch(pair: ZooPair, kind: str, cfg: dict[str, Any]) -> int:
    """The batch of a timing ``kind`` of ``pair``: the inference batch, or the training batch of its input size."""
    return cfg["inference_batch"] if kind.startswith("latency") else training_batch(pair, cfg)


def measure_cost(pair: ZooPair) -> dict[str, Any]:
    """Parameters and multiply-adds of both networks at their natural input, batch 1 (on the meta device).

    Returns:
        ``{'input_size': [C, H, W], 'plain': {'params', 'macs'}, 'se': {'params', 'macs'}}``.
    """
    reports = {"plain": profile_model(pair.name, attention=None), "se": profile_model(pair.name)}
    return {"input_size": list(pair.input_size),
            **{k: {"params": r.params, "macs": r.macs} for k, r in reports.items()}}  # fmt: skip


def build_pair(pair: ZooPair, device: torch.device, seed: int) -> dict[str, nn.Module]:
    """Both networks of ``pair`` on ``device``, each built after ``torch.manual_seed(seed)``."""
    models = {}
    for contender, options in zip(CONTENDERS, ({"attention": None}, {}), strict=True):
        torch.manual_seed(seed)
        models[contender] = create_model(pair.name, **options).to(device)
    return models


def _inputs(pair: ZooPair, batch: int, num_classes: int, device: torch.device, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *pair.input_size, generator=generator)  # (N, C, H, W)
    return x.to(device), torch.randint(0, num_classes, (batch,), generator=generator).to(device)


def _compiled(models: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """``torch.compile`` of each model, after a reset (no guard or cache of the previous pair counts)."""
    torch._dynamo.reset()
    return {name: torch.compile(m) for name, m in models.items()}


def _timing(comparison: Comparison, batch: int, pair: ZooPair, first: dict[str, float] | None) -> dict[str, Any]:
    """The stored form of a timing: samples and medians by contender, images/s, the paired SE/plain ratio, and
    the compiled networks' first calls (``first``, ``None`` when eager)."""
    medians = {name: comparison.stats(name).median for name in CONTENDERS}
    result = {
        "batch": batch,
        "input_size": list(pair.input_size),
        "times": comparison.to_dict(),
        "images_per_second": {name: batch / medians[name] for name in CONTENDERS},
        "se_over_plain": comparison.ratio("se", "plain").to_dict(),
    }
    if first is not None:
        result["first_call_seconds"] = first
    return result


def measure_latency(
    pair: ZooPair, models: dict[str, nn.Module], cfg: dict[str, Any], device: torch.device, *,
    compiled: bool = False, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Batch-1 inference of both networks (eval mode, ``torch.inference_mode``), interleaved.

    Args:
        pair: The pair.
        models: ``build_pair``'s networks (put in eval mode here).
        cfg: ``settings()``.
        device: Where the models are.
        compiled: Time ``torch.compile`` of the models (their first calls timed apart).
        seed: Seeds the input.

    Returns:
        The stored timing (see ``_timing``), plus ``first_call_seconds`` when compiled.
    """
    x, _ = _inputs(pair, cfg["inference_batch"], 1, device, seed)
    for m in models.values():
        m.eval()
    runnable = _compiled(models) if compiled else models
    with torch.inference_mode():
        calls = {name: (lambda m=runnable[name]: m(x)) for name in CONTENDERS}
        first = first_call_seconds(calls, device) if compiled else None
        comparison = compare(calls, repeats=cfg["inference_repeats"], warmup=cfg["warmup"],
                             min_time=cfg["inference_min_sample_seconds"], timer=timer_for(device))  # fmt: skip
    return _timing(comparison, cfg["inference_batch"], pair, first)


def measure_training(
    pair: ZooPair, models: dict[str, nn.Module], cfg: dict[str, Any], device: torch.device, *,
    compiled: bool = False, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """One SGD training step of both networks at ``training_batch(pair, cfg)``, interleaved, one step a sample.

    Args:
        pair: The pair.
        models: ``build_pair``'s networks (put in train mode here; the steps change their weights).
        cfg: ``settings()``.
        device: Where the models are.
        compiled: Time steps of ``torch.compile`` of the models (their first steps timed apart).
        seed: Seeds the batch.

    Returns:
        The stored timing (see ``_timing``; ``images_per_second`` is the batch over the median step),
        plus ``first_call_seconds`` when compiled.
    """
    batch = training_batch(pair, cfg)
    x, y = _inputs(pair, batch, models["se"].num_classes, device, seed)
    for m in models.values():
        m.train()
    runnable = _compiled(models) if compiled else models
    steps = {name: training_step(runnable[name], sgd(models[name]), x, y) for name in CONTENDERS}
    first = first_call_seconds(steps, device) if compiled else None
    comparison = compare(steps, repeats=cfg["training_repeats"], warmup=cfg["warmup"], number=1,
                         timer=timer_for(device))  # fmt: skip
    return _timing(comparison, batch, pair, first)
