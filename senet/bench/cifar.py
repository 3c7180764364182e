"""Suite ``cifar``: what SE costs the CIFAR networks' training step, eager and compiled.

For each pair (SE network, plain network) of ``PAIRS`` (ResNet-20, ResNet-56, WRN-16-8), both built by
``create_model`` with the same seed, float32, contiguous (NCHW, as ``senet train`` runs by default):
one training step at batch 128 on 32 x 32 inputs (forward, cross-entropy, backward, SGD with momentum),
timed in interleaved rounds, first eagerly, then under ``torch.compile`` (mode 'default'; the time of
each model's first compiled step, compilation included, is recorded). The ratios are SE/plain in each
mode and eager/compiled for each network.

The SE bottleneck of these networks is narrow (C/16 = 1 to 4 hidden units), so per-operator overhead,
not arithmetic, is what SE costs them in eager mode; ``torch.compile`` fuses those small operators.
``--quick`` times ResNet-20 alone at batch 16, eagerly: a smoke run, not a measurement.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..models import create_model
from .harness import Comparison, first_call_seconds
from .network import sgd, time_training, training_step
from .report import fmt_ms, fmt_ratio
from .result import Check, SuiteResult, Table
from .runner import BenchOptions

PAIRS = (
    ("ResNet-20", "se_cifar_resnet20", "cifar_resnet20"),
    ("ResNet-56", "se_cifar_resnet56", "cifar_resnet56"),
    ("WRN-16-8", "se_wrn16_8", "wrn16_8"),
)


def settings(options: BenchOptions) -> dict[str, object]:
    """Pairs, batch and rounds (ResNet-20 alone, batch 16, 2 rounds, no compiling under ``--quick``)."""
    return {
        "pairs": [p[0] for p in (PAIRS[:1] if options.quick else PAIRS)],
        "batch": 16 if options.quick else 128,
        "image_size": 32,
        "memory_format": "contiguous",
        "dtype": "float32",
        "repeats": options.rounds(full=7, quick=2),
        "compiled": not options.quick,
        "optimizer": "SGD(lr=0.01, momentum=0.9)",
    }


def _models(names: tuple[str, str], device: torch.device, seed: int) -> dict[str, nn.Module]:
    models = {}
    for name in names:
        torch.manual_seed(seed)
        models[name] = create_model(name, num_classes=10).to(device).train()
    return models


def _steps(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor) -> dict[str, Callable[[], None]]:
    return {name: training_step(m, sgd(m), x, y) for name, m in models.items()}


def run(options: BenchOptions) -> SuiteResult:
    """Runs the suite as ``options`` say (device, quick, repeats, seed)."""
    device = torch.device(options.device)
    cfg = settings(options)
    pairs = [p for p in PAIRS if p[0] in cfg["pairs"]]
    suite = SuiteResult(
        "cifar",
        "CIFAR networks, SE/plain: one training step at batch "
        f"{cfg['batch']}, eager{' and compiled' if cfg['compiled'] else ''}.",
        config={**cfg, "device": str(device), "threads": torch.get_num_threads()},
    )
    generator = torch.Generator().manual_seed(options.seed)
    x = torch.randn(cfg["batch"], 3, 32, 32, generator=generator).to(device)
    y = torch.randint(0, 10, (cfg["batch"],), generator=generator).to(device)
    rows, data = [], {}
    for label, se, plain in pairs:
        models = _models((se, plain), device, options.seed)
        eager: Comparison = time_training(_steps(models, x, y), repeats=cfg["repeats"], device=device)
        record = {"eager": eager.to_dict(), "eager_se_over_plain": eager.ratio(se, plain).to_dict()}
        row = [label, fmt_ms(eager.stats(plain)), fmt_ms(eager.stats(se)), fmt_ratio(eager.ratio(se, plain))]
        suite.checks.append(Check(f"{label} training step SE/plain, eager", eager.ratio(se, plain).value, "<=",
                                  1.05, "the paper: SE is nearly free; per-operator overhead is not"))  # fmt: skip
        if cfg["compiled"]:
            torch._dynamo.reset()
            compiled_models = {name: torch.compile(m) for name, m in models.items()}
            steps = _steps(compiled_models, x, y)
            first = first_call_seconds(steps, device)
            compiled = time_training(steps, repeats=cfg["repeats"], device=device)
            ratio = compiled.ratio(se, plain)
            speedups = {name: eager.stats(name).median / compiled.stats(name).median for name in (se, plain)}
            record.update(compiled=compiled.to_dict(), compiled_se_over_plain=ratio.to_dict(),
                          first_compiled_step_seconds=first, eager_over_compiled=speedups)  # fmt: skip
            row += [fmt_ms(compiled.stats(plain)), fmt_ms(compiled.stats(se)), fmt_ratio(ratio),
                    f"{speedups[plain]:.2f}x / {speedups[se]:.2f}x",
                    f"{first[plain]:.0f} / {first[se]:.0f}"]  # fmt: skip
            suite.checks.append(Check(f"{label} training step SE/plain, compiled", ratio.value, "<=", 1.05))
        rows.append(row)
        data[label] = record
    columns = ["network", "eager plain", "eager SE", "eager SE/plain"]
    if cfg["compiled"]:
        columns += ["compiled plain", "compiled SE", "compiled SE/plain", "compile speed-up (plain / SE)",
                    "first compiled step, s (plain / SE)"]  # fmt: skip
    suite.tables.append(Table(
        f"Training step, batch {cfg['batch']}, 32 px (ms, median)", columns, rows,
        note="Each mode's two networks timed in interleaved rounds; the first compiled step (compilation "
        "included) is not in the medians. Compile times depend on Inductor's on-disk cache.",
    ))  # fmt: skip
    suite.data = data
    if options.quick:
        suite.notes.append("--quick: ResNet-20 alone, batch 16, 2 rounds, eager: a smoke run, not a measurement.")
    return suite
