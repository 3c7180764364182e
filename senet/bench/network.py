"""Suite ``network``: what SE costs a whole network, SE-ResNet-50 over ResNet-50 (both ours).

Both networks are built by ``create_model`` with the same seed, in channels_last, float32:

- inference at batch 1, 224 px, eval mode under ``torch.inference_mode`` (the paper's Table 2 gives
  SE-ResNet-50 / ResNet-50 = 167 ms / 164 ms = 1.018 on a CPU at batch 1);
- one training step at batch 8: forward, cross-entropy, backward, SGD (momentum) step;
- the peak memory of that step (``senet.bench.memory``): above the state (parameters, buffers,
  optimizer state) and including it, and the activation peak (without the parameters' gradients).

The helpers here (``build``, ``training_step``, ``inputs``) are shared with the ``compile`` suite.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..models import create_model
from .harness import Comparison, compare, timer_for
from .memory import MemoryPeak, measure_step_memory
from .report import fmt_bytes, fmt_ms, fmt_ratio
from .result import Check, SuiteResult, Table
from .runner import BenchOptions

MODELS = ("se_resnet50", "resnet50")  # (with SE, without): every ratio is the first over the second
LR = 0.01


def settings(options: BenchOptions) -> dict[str, object]:
    """Image size, batches and rounds of the network suites (small and few under ``--quick``)."""
    return {
        "image_size": 64 if options.quick else 224,
        "inference_batch": 1,
        "training_batch": 2 if options.quick else 8,
        "memory_format": "channels_last",
        "dtype": "float32",
        "inference_repeats": options.rounds(full=10, quick=2),
        "training_repeats": options.rounds(full=7, quick=2),
        "inference_min_sample_seconds": 0.01 if options.quick else 0.25,
        "optimizer": f"SGD(lr={LR}, momentum=0.9)",
    }


def build(name: str, device: torch.device, seed: int) -> nn.Module:
    """``create_model(name)`` seeded, on ``device``, in channels_last."""
    torch.manual_seed(seed)
    return create_model(name).to(device=device, memory_format=torch.channels_last)


def inputs(batch: int, size: int, device: torch.device, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded random batch (channels_last) and its labels."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=generator).to(device).contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, 1000, (batch,), generator=generator).to(device)


def training_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor, *, zero_grad: bool = True
) -> Callable[[], None]:
    """One SGD step on (x, y): ``zero_grad`` (optional), forward, cross-entropy, backward, ``step``."""

    def step() -> None:
        if zero_grad:
            optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)


def time_inference(models: dict[str, nn.Module], x: Tensor, *, repeats: int, min_time: float) -> Comparison:
    """Interleaved inference timings of ``models`` on ``x`` (eval mode, inference mode)."""
    for m in models.values():
        m.eval()
    with torch.inference_mode():
        return compare({name: (lambda m=m: m(x)) for name, m in models.items()}, repeats=repeats, warmup=1,
                       min_time=min_time, timer=timer_for(x.device))  # fmt: skip


def time_training(steps: dict[str, Callable[[], None]], *, repeats: int, device: torch.device) -> Comparison:
    """Interleaved timings of training steps (one step per sample)."""
    return compare(steps, repeats=repeats, warmup=1, number=1, timer=timer_for(device))


def memory_row(label: str, peaks: dict[str, MemoryPeak | None]) -> list[str]:
    """A table row: each model's total, step and activation peaks and the ratios."""
    a, b = (peaks[name] for name in MODELS)
    if a is None or b is None:
        return [label, "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"]
    act = "n/a" if a.activations is None or not b.activations else f"{a.activations / b.activations:.3f}"
    return [
        label, f"{fmt_bytes(a.total)} / {fmt_bytes(b.total)}", f"{fmt_bytes(a.step)} / {fmt_bytes(b.step)}",
        "n/a" if a.activations is None else f"{fmt_bytes(a.activations)} / {fmt_bytes(b.activations)}",
        f"{a.total / b.total:.3f}", f"{a.step / b.step:.3f}", act,
    ]  # fmt: skip


MEMORY_COLUMNS = ["", "total (SE / plain)", "step (SE / plain)", "activations (SE / plain)", "total SE/plain",
                  "step SE/plain", "activations SE/plain"]  # fmt: skip


def run(options: BenchOptions) -> SuiteResult:
    """Runs the suite as ``options`` say (device, quick, repeats, seed)."""
    device = torch.device(options.device)
    cfg = settings(options)
    suite = SuiteResult(
        "network",
        "Whole network, ours vs ours: SE-ResNet-50 / ResNet-50 (channels_last): inference, training step, "
        "peak training memory.",
        config={**cfg, "models": list(MODELS), "device": str(device), "threads": torch.get_num_threads()},
    )
    size = cfg["image_size"]
    models = {name: build(name, device, options.seed) for name in MODELS}
    x1, _ = inputs(cfg["inference_batch"], size, device, options.seed)
    inference = time_inference(models, x1, repeats=cfg["inference_repeats"],
                               min_time=cfg["inference_min_sample_seconds"])  # fmt: skip

    x8, y8 = inputs(cfg["training_batch"], size, device, options.seed)
    optimizers = {name: sgd(m) for name, m in models.items()}
    for m in models.values():
        m.train()
    steps = {name: training_step(m, optimizers[name], x8, y8) for name, m in models.items()}
    training = time_training(steps, repeats=cfg["training_repeats"], device=device)
    peaks = {
        name: measure_step_memory(training_step(m, optimizers[name], x8, y8, zero_grad=False), m, optimizers[name],
                                  device=device)
        for name, m in models.items()
    }  # fmt: skip

    se, plain = MODELS
    infer_ratio, train_ratio = inference.ratio(se, plain), training.ratio(se, plain)
    times = Table(
        "SE-ResNet-50 / ResNet-50, time (ms, median)",
        ["measurement", "SE-ResNet-50", "ResNet-50", "SE/plain"],
        [[f"inference, batch {cfg['inference_batch']}, {size} px", fmt_ms(inference.stats(se)),
          fmt_ms(inference.stats(plain)), fmt_ratio(infer_ratio)],
         [f"training step, batch {cfg['training_batch']}", fmt_ms(training.stats(se)), fmt_ms(training.stats(plain)),
          fmt_ratio(train_ratio)]],
    )  # fmt: skip
    method = peaks[se].method if peaks[se] is not None else "n/a"
    memory = Table(
        f"SE-ResNet-50 / ResNet-50, peak memory of one training step, batch {cfg['training_batch']}",
        MEMORY_COLUMNS, [memory_row("eager", peaks)],
        note=f"Measured by {method}. total = parameters + buffers + optimizer state + the step's peak; step = the "
        "peak of what the step allocates (activations, gradients, temporaries); activations = the step's peak "
        "without the parameters' gradients. The input batch is in none of them.",
    )  # fmt: skip
    suite.tables += [times, memory]
    suite.data = {
        "inference": inference.to_dict(),
        "training": training.to_dict(),
        "memory_bytes": {name: None if p is None else p.to_dict() for name, p in peaks.items()},
        "ratios": {"inference_se_over_plain": infer_ratio.to_dict(), "training_se_over_plain": train_ratio.to_dict()},
    }
    suite.checks += [
        Check("inference SE-ResNet-50/ResNet-50", infer_ratio.value, "<=", 1.03, "the paper: 1.018 (CPU, batch 1)"),
        Check("training step SE-ResNet-50/ResNet-50", train_ratio.value, "<=", 1.05),
    ]
    if peaks[se] is not None and peaks[plain] is not None:
        suite.checks.append(Check("peak training memory SE-ResNet-50/ResNet-50 (total)",
                                  peaks[se].total / peaks[plain].total, "<=", 1.05, "parameters and state included"))
    if options.quick:
        suite.notes.append("--quick: 64 px, training batch 2, 2 rounds: a smoke run, not a measurement.")
    return suite
