"""``senet demo``: a short demonstration of the SE block and of what it costs."""

from __future__ import annotations

import argparse
import time

ORDER = 90


def register(sub: argparse._SubParsersAction) -> None:
    """Adds the ``demo`` command."""
    p = sub.add_parser(
        "demo",
        help="show the SE block at work on a random feature map",
        description="Builds one SE block, runs it on a random batch of 8 feature maps and prints its parameter "
        "count (with the paper's formula), the gate's statistics and the forward time.",
    )
    p.add_argument("--channels", type=int, default=256, help="C, the feature map's channels (default: 256)")
    p.add_argument("--reduction", type=float, default=16, help="r, the SE reduction ratio (default: 16)")
    p.add_argument("--size", type=int, default=56, help="H = W, the feature map's side in pixels (default: 56)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs ``senet demo``; returns the exit code."""
    for name in ("channels", "size"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.reduction <= 0:
        raise ValueError(f"--reduction must be positive, got {args.reduction:g}")

    import torch

    from ..layers import SqueezeExcite

    torch.manual_seed(0)
    se = SqueezeExcite(args.channels, args.reduction, record_gate=True).eval()
    x = torch.randn(8, args.channels, args.size, args.size)
    with torch.inference_mode():
        y = se(x)
        start = time.perf_counter()
        for _ in range(10):
            se(x)
        ms = (time.perf_counter() - start) / 10 * 1e3
    params = sum(p.numel() for p in se.parameters())
    c, h = args.channels, se.hidden
    print(se)
    print(f"input {tuple(x.shape)} -> output {tuple(y.shape)}")
    print(f"parameters: {params:,} (2*C*C/r + C/r + C = 2*{c}*{h} + {h} + {c} = {2 * c * h + h + c:,})")
    g = se.last_gate
    print(f"gate s: shape {tuple(g.shape)}, mean {g.mean():.3f}, min {g.min():.3f}, max {g.max():.3f}")
    print(f"forward time: {ms:.2f} ms for a batch of 8 on {torch.get_num_threads()} threads")
    return 0
