"""Runs ``senet train`` (the CLI, so ``fit`` and its data sharding) on a small network without BatchNorm, so
that a K-process run at batch B and a 1-process run at batch K*B compute the same steps up to rounding
(BatchNorm's batch statistics would differ between a shard of B and the global batch of K*B).

Each process records, with a Python audit hook, every file-system write it makes under ``--out`` and
saves the list as ``<audit>/writes-rank<R>.json`` (outside ``--out``). Used by tests/test_train.py:

    torchrun --nproc_per_node=2 tests/ddp_worker.py AUDIT_DIR train --model cifar_resnet20 ...
    python tests/ddp_worker.py AUDIT_DIR train ...
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

from senet.layers import SqueezeExcite

WRITE_EVENTS = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "shutil.move", "os.truncate"}


def small_net(num_classes: int) -> nn.Module:
    """conv-ReLU-SE-conv-ReLU-pool-linear, the same initial weights in every process."""
    torch.manual_seed(1234)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), SqueezeExcite(16, reduction=4),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
    )  # fmt: skip


def main() -> int:
    audit_dir, argv = Path(sys.argv[1]), sys.argv[2:]
    out = Path(argv[argv.index("--out") + 1]).resolve()
    rank = int(os.environ.get("RANK", "0"))
    writes: list[str] = []

    def audit(event: str, args: tuple) -> None:
        paths = []
        if event == "open" and args and isinstance(args[0], (str, os.PathLike)):
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else "r"
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            if any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                paths.append(args[0])
        elif event in WRITE_EVENTS or event.startswith("tempfile."):
            paths.extend(a for a in args if isinstance(a, (str, os.PathLike)))
        for p in paths:
            if str(Path(os.fsdecode(p)).resolve()).startswith(str(out)):
                writes.append(f"{event} {os.fsdecode(p)}")

    sys.addaudithook(audit)
    import senet.train.run as run
    from senet.cli.main import main as senet_main

    run.build_model = lambda cfg, num_classes, **kw: small_net(num_classes)
    try:
        return senet_main(argv)
    finally:
        (audit_dir / f"writes-rank{rank}.json").write_text(json.dumps(writes))


if __name__ == "__main__":
    sys.exit(main())
