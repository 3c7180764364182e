"""Random weights that make every parameter matter, and the public listings of keys and shapes."""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torch import Tensor, nn


def randomize_(model: nn.Module, calibration: Tensor, seed: int = 0) -> nn.Module:
    """Fills every parameter and BatchNorm statistic of ``model`` with random values (in place), so that each
    matters, and returns the model in eval mode.

    Convolutions and linear layers get He-scaled weights (uniform, a third of the cost of normal draws for
    the 100M+ weights of VGG and SENet-154) and random biases; every BatchNorm gets random gamma and beta,
    and running statistics near those its input actually has on ``calibration`` (one forward pass in
    training mode), randomly shifted and scaled. So BN is far from the identity (its eps and statistics
    show in the output) yet, as in a trained network, keeps activations near unit scale: a random deep
    residual network whose BN does not normalise amplifies rounding errors geometrically with depth
    (SENet-154's 50 blocks turn 1e-16 into 1e-5), which would hide the function's equality behind
    ill-conditioning.

    Args:
        model: The network (float64 for the equivalence tests).
        calibration: An input batch of the size the test uses (a few samples).
        seed: Seeds the values.
    """
    g = torch.Generator().manual_seed(seed)

    def uniform_(t: Tensor, lo: float, hi: float) -> Tensor:
        return t.uniform_(lo, hi, generator=g)

    def around_zero(t: Tensor, std: float) -> Tensor:  # uniform with standard deviation ``std``
        return uniform_(t, -std * 3**0.5, std * 3**0.5)

    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                around_zero(m.weight, math.sqrt(2.0 / m.weight[0].numel()))
                if m.bias is not None:
                    around_zero(m.bias, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                uniform_(m.weight, 0.5, 1.5)
                around_zero(m.bias, 0.2)
                m.reset_running_stats()
                m.momentum = None  # a cumulative average: after one batch, that batch's statistics
        model.train()
        model(calibration)
        model.eval()
        for m in norms:
            var = m.running_var.clone()
            m.running_mean.add_(around_zero(torch.empty_like(var), 0.2) * var.sqrt())
            m.running_var.copy_(var * uniform_(torch.empty_like(var), 0.5, 2.0) + 0.1 * var.mean() + 1e-3)
            m.num_batches_tracked.fill_(int(torch.randint(1, 10_000, (), generator=g)))
            m.momentum = 0.1
    return model


KEYS_DIR = Path(__file__).resolve().parents[1] / "reference" / "checkpoint-keys"


def listing_layout(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """The ``(key, shape)`` rows of ``tests/reference/checkpoint-keys/<name>.txt``, in order."""
    rows = []
    for line in (KEYS_DIR / f"{name}.txt").read_text().splitlines()[1:]:
        key, shape = line.split("\t")
        rows.append((key, tuple(int(s) for s in re.findall(r"\d+", shape))))
    return rows
