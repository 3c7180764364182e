"""Suite ``se``: the SE block alone against the textbook module and the memory-bandwidth floor.

Inputs are (8, C, H, W) at the four stage shapes of SE-ResNet-50, NCHW and channels_last, float32.
Contenders, timed in interleaved rounds:

- ``textbook``: :class:`TextbookSE`, the module most public code uses (adaptive pooling, two 1x1
  convolutions on (N, C, 1, 1), ``x * s``), with the same weights as ours;
- ``ours``: ``senet.SqueezeExcite(C)``, the default (fast) path;
- ``reference``: ``senet.SqueezeExcite(C, fast=False)``, our own textbook path, for information;
- ``clone``: ``x.clone()``, one read and one write of x. SE must read x once to squeeze it, and read
  it again and write y to scale it: 1.5 clones is the floor no implementation can beat.

Inference runs under ``torch.inference_mode`` in eval mode; training is forward and backward
(``torch.autograd.grad`` of y against x and the parameters with a fixed random grad_output).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..layers import SqueezeExcite
from .harness import Comparison, compare, geometric_mean, timer_for
from .report import fmt_ms, fmt_ratio
from .result import Check, SuiteResult, Table
from .runner import BenchOptions

STAGE_SHAPES = ((256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7))  # SE-ResNet-50, stages 2-5
QUICK_SHAPES = ((256, 56, 56), (2048, 7, 7))
FORMATS = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}
FLOOR_CLONES = 1.5  # SE reads x twice and writes y once; a clone reads once and writes once


class TextbookSE(nn.Module):
    """The SE block as most public code writes it (Hu et al. 2018, arXiv:1709.01507).

    Args:
        channels: C.
        reduction: r; the hidden width is C // r.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)  # W1, b1
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)  # W2, b2
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))  # (N, C, 1, 1)
        return x * s


def _case_name(shape: tuple[int, int, int], fmt: str) -> str:
    return f"{'x'.join(map(str, shape))} {fmt}"


def _modules(channels: int, device: torch.device) -> dict[str, nn.Module]:
    ours = SqueezeExcite(channels)
    textbook = TextbookSE(channels)
    textbook.load_state_dict(ours.state_dict())  # the same function: fc1/fc2 are 1x1 convolutions in both
    reference = SqueezeExcite(channels, fast=False)
    reference.load_state_dict(ours.state_dict())
    return {"textbook": textbook.to(device), "ours": ours.to(device), "reference": reference.to(device)}


def _inference(modules: dict[str, nn.Module], x: Tensor, *, repeats: int, min_time: float) -> tuple[Comparison, float]:
    for m in modules.values():
        m.eval()
    with torch.inference_mode():
        expected = modules["textbook"](x)
        error = max(float((modules[n](x) - expected).abs().max()) for n in ("ours", "reference"))
        contenders: dict[str, Callable[[], object]] = {name: (lambda m=m: m(x)) for name, m in modules.items()}
        contenders["clone"] = x.clone
        comparison = compare(contenders, repeats=repeats, warmup=2, min_time=min_time, timer=timer_for(x.device))
    return comparison, error


def _training(modules: dict[str, nn.Module], x: Tensor, *, repeats: int, min_time: float) -> Comparison:
    x = x.detach().clone().requires_grad_()
    grad_output = torch.randn_like(x)  # same memory format as x, hence as y

    def step(m: nn.Module) -> Callable[[], object]:
        m.train()
        inputs = [x, *m.parameters()]
        return lambda: torch.autograd.grad(m(x), inputs, grad_output)

    contenders = {name: step(m) for name, m in modules.items()}
    return compare(contenders, repeats=repeats, warmup=2, min_time=min_time, timer=timer_for(x.device))


def run(options: BenchOptions) -> SuiteResult:
    """Runs the suite as ``options`` say (device, quick, repeats, seed)."""
    device = torch.device(options.device)
    shapes = QUICK_SHAPES if options.quick else STAGE_SHAPES
    batch = 2 if options.quick else 8
    repeats = options.rounds(full=11, quick=3)
    min_time = 0.002 if options.quick else 0.05
    suite = SuiteResult(
        "se",
        "SE block alone: textbook module vs ours vs the memory-bandwidth floor (1.5 x the time of x.clone()).",
        config={"batch": batch, "shapes_chw": [list(s) for s in shapes], "memory_formats": list(FORMATS),
                "dtype": "float32", "reduction": 16, "repeats": repeats, "min_sample_seconds": min_time,
                "device": str(device), "threads": torch.get_num_threads()},  # fmt: skip
    )
    inference_table = Table(
        "SE block, inference (ms per call, median)",
        ["shape (C x H x W)", "format", "textbook", "ours", "reference", "floor", "textbook/ours",
         "reference/ours", "ours/floor", "clone GB/s"],
    )  # fmt: skip
    training_table = Table(
        "SE block, forward + backward (ms per call, median)",
        ["shape (C x H x W)", "format", "textbook", "ours", "reference", "textbook/ours", "reference/ours"],
    )
    speedups, train_speedups, floor_ratios = [], [], {}
    cases: dict[str, dict] = {}
    for shape in shapes:
        torch.manual_seed(options.seed)
        modules = _modules(shape[0], device)
        for fmt_name, fmt in FORMATS.items():
            name = _case_name(shape, fmt_name)
            x = torch.randn(batch, *shape, device=device).contiguous(memory_format=fmt)
            infer, error = _inference(modules, x, repeats=repeats, min_time=min_time)
            train = _training(modules, x, repeats=repeats, min_time=min_time)
            speedup = infer.ratio("textbook", "ours")
            floor = infer.ratio("ours", "clone").scaled(1 / FLOOR_CLONES)
            floor_ms = infer.stats("clone").scaled(FLOOR_CLONES)
            clone_gbs = 2 * x.numel() * x.element_size() / infer.stats("clone").median / 1e9
            train_speedup = train.ratio("textbook", "ours")
            speedups.append(speedup.value)
            train_speedups.append(train_speedup.value)
            floor_ratios[name] = floor.value
            inference_table.rows.append([
                "x".join(map(str, shape)), fmt_name, fmt_ms(infer.stats("textbook")), fmt_ms(infer.stats("ours")),
                fmt_ms(infer.stats("reference")), fmt_ms(floor_ms), fmt_ratio(speedup),
                fmt_ratio(infer.ratio("reference", "ours")), fmt_ratio(floor), f"{clone_gbs:.1f}",
            ])  # fmt: skip
            training_table.rows.append([
                "x".join(map(str, shape)), fmt_name, fmt_ms(train.stats("textbook")), fmt_ms(train.stats("ours")),
                fmt_ms(train.stats("reference")), fmt_ratio(train_speedup), fmt_ratio(train.ratio("reference", "ours")),
            ])  # fmt: skip
            cases[name] = {
                "shape": [batch, *shape], "memory_format": fmt_name, "max_abs_error_vs_textbook": error,
                "inference": infer.to_dict(), "training": train.to_dict(),
                "ratios": {"inference_textbook_over_ours": speedup.to_dict(),
                           "inference_reference_over_ours": infer.ratio("reference", "ours").to_dict(),
                           "inference_ours_over_floor": floor.to_dict(),
                           "training_textbook_over_ours": train_speedup.to_dict(),
                           "training_reference_over_ours": train.ratio("reference", "ours").to_dict()},
                "clone_gb_per_s": clone_gbs,
            }  # fmt: skip
    inference_table.note = (
        "floor = 1.5 x the time of x.clone(); ours/floor = 1 is the memory-bandwidth limit. "
        "reference = SqueezeExcite(C, fast=False). clone GB/s counts one read and one write."
    )
    suite.tables += [inference_table, training_table]
    suite.data = {
        "cases": cases,
        "inference_speedup_geomean": geometric_mean(speedups),
        "inference_speedup_min": min(speedups),
        "training_speedup_geomean": geometric_mean(train_speedups),
        "ours_over_floor": floor_ratios,
    }
    big = "x".join(map(str, STAGE_SHAPES[0]))
    suite.checks += [
        Check("inference textbook/ours, geometric mean", geometric_mean(speedups), ">=", 1.5,
              f"over {len(speedups)} (shape, format) cases"),
        Check("inference textbook/ours, worst case", min(speedups), ">=", 1.0, "every case at least as fast"),
        *[Check(f"inference ours/floor at {big} {fmt}", floor_ratios.get(f"{big} {fmt}"), "<=", 1.2,
                "within 1.2x of the bandwidth floor") for fmt in FORMATS],
        Check("forward+backward textbook/ours, geometric mean", geometric_mean(train_speedups), ">=", 1.3,
              f"over {len(train_speedups)} cases"),
    ]  # fmt: skip
    worst = max(c["max_abs_error_vs_textbook"] for c in cases.values())
    suite.notes.append(f"ours and reference match the textbook module to {worst:.1e} (max abs difference).")
    if options.quick:
        suite.notes.append("--quick: batch 2, two shapes, 3 rounds: a smoke run, not a measurement.")
    return suite
