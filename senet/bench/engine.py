"""Suite ``engine``: what the training engine costs over a bare loop, ResNet-20 on CIFAR-10.

Two contenders train the same initial ResNet-20 (``create_model('cifar_resnet20', num_classes=10)``)
on the same number of images per round, in interleaved rounds:

- ``engine``: ``senet.train.engine.train_one_epoch`` over a ``TensorLoader`` of the embedded
  CIFAR-10 (``load_dataset('cifar10', subset=N)``, ``create_loader(..., 'train', batch_size=128,
  seed=0, drop_last=True)``: augmentation and normalisation happen inside the timed epoch), with the
  optimizer and one-cycle schedule of ``senet.train.run.fit`` (the ``quick_cifar`` recipe) and a
  progress callback (a disabled ``ProgressBar``), called every ``log_every`` = 20 steps as in ``fit``;
- ``bare``: forward, cross-entropy, backward and ``optimizer.step`` of a plain ``torch.optim.SGD``
  (same learning rate, momentum, Nesterov and weight decay) over the same batches, augmented
  beforehand and held in memory.

One round is one pass over the N images; images/s = N / its time.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..data import create_loader, load_dataset
from ..models import create_model
from ..train.engine import StepOptions, train_one_epoch
from ..train.logging import ProgressBar
from ..train.optim import build_optimizer, build_scheduler
from ..train.recipes import get_recipe
from .harness import compare, timer_for
from .report import fmt_ratio
from .result import Check, SuiteResult, Table
from .runner import BenchOptions

MODEL = "cifar_resnet20"
BATCH = 128


def _engine(model: nn.Module, loader: object, *, rounds: int, device: torch.device) -> Callable[[], object]:
    recipe = get_recipe("quick_cifar")
    optimizer = build_optimizer(model, lr=recipe["lr"], momentum=recipe["momentum"],
                                weight_decay=recipe["weight_decay"], nesterov=recipe["nesterov"])  # fmt: skip
    steps = len(loader)
    scheduler = build_scheduler(optimizer, schedule=recipe["schedule"], total_steps=rounds * steps,
                                warmup_steps=int(round(recipe["warmup_epochs"] * steps)))  # fmt: skip
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe["label_smoothing"])
    options = StepOptions()

    def epoch() -> dict[str, float]:
        bar = ProgressBar(steps, "bench", enabled=False)
        metrics = train_one_epoch(model, loader, optimizer, loss_fn, device=device, scheduler=scheduler,
                                  options=options, progress=bar.update)  # fmt: skip
        bar.close()
        return metrics

    return epoch


def _bare(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> Callable[[], None]:
    recipe = get_recipe("quick_cifar")
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe["lr"], momentum=recipe["momentum"],
                                weight_decay=recipe["weight_decay"], nesterov=recipe["nesterov"])  # fmt: skip
    model.train()

    def epoch() -> None:
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return epoch


def run(options: BenchOptions) -> SuiteResult:
    """Runs the suite as ``options`` say (device, quick, repeats, seed)."""
    device = torch.device(options.device)
    batches = 2 if options.quick else 20  # 20 = log_every: the progress callback runs once per round
    repeats = options.rounds(full=3, quick=1)
    images = batches * BATCH
    suite = SuiteResult(
        "engine",
        "Training throughput of ResNet-20 on CIFAR-10: train_one_epoch over a TensorLoader vs a bare loop over "
        "batches in memory.",
        config={"model": MODEL, "dataset": "cifar10 (embedded)", "batch": BATCH, "batches_per_round": batches,
                "images_per_round": images, "repeats": repeats, "warmup_rounds": 1, "memory_format": "NCHW",
                "dtype": "float32", "recipe": "quick_cifar", "log_every": StepOptions().log_every,
                "device": str(device), "threads": torch.get_num_threads()},  # fmt: skip
    )
    data = load_dataset("cifar10", subset=images, seed=options.seed, progress=False)
    loader = create_loader(data, "train", batch_size=BATCH, seed=0, drop_last=True, device=device)
    prepared = create_loader(data, "train", batch_size=BATCH, seed=0, drop_last=True, device=device)
    made = [(x.clone(), y.clone()) for x, y in prepared]  # epoch 0's augmented batches, held in memory
    torch.manual_seed(options.seed)
    initial = create_model(MODEL, num_classes=data.num_classes).to(device)
    contenders = {
        "engine": _engine(copy.deepcopy(initial), loader, rounds=repeats + 1, device=device),
        "bare": _bare(copy.deepcopy(initial), made),
    }
    comparison = compare(contenders, repeats=repeats, warmup=1, number=1, timer=timer_for(device))
    engine_ips = images / comparison.stats("engine").median
    bare_ips = images / comparison.stats("bare").median
    ratio = comparison.ratio("bare", "engine")  # time(bare) / time(engine) = images/s(engine) / images/s(bare)
    suite.tables.append(Table(
        f"ResNet-20, CIFAR-10, batch {BATCH}, {images} images per round",
        ["contender", "seconds per round (median)", "images/s", "range images/s (min-max)"],
        [["engine (train_one_epoch + TensorLoader)", f"{comparison.stats('engine').median:.2f}", f"{engine_ips:,.0f}",
          f"{images / comparison.stats('engine').max:,.0f}-{images / comparison.stats('engine').min:,.0f}"],
         ["bare loop", f"{comparison.stats('bare').median:.2f}", f"{bare_ips:,.0f}",
          f"{images / comparison.stats('bare').max:,.0f}-{images / comparison.stats('bare').min:,.0f}"],
         ["engine/bare (images/s)", "", fmt_ratio(ratio), ""]],
        note="The engine's time includes its data loading (index, crop, flip, normalise) and bookkeeping; the bare "
        "loop's batches were made beforehand.",
    ))  # fmt: skip
    suite.data = {
        "seconds": comparison.to_dict(),
        "images_per_second": {"engine": engine_ips, "bare": bare_ips},
        "ratio_engine_over_bare_images_per_second": ratio.to_dict(),
    }
    suite.checks.append(Check("training images/s engine/bare", ratio.value, ">=", 0.95))
    if options.quick:
        suite.notes.append("--quick: 2 batches, 1 round: a smoke run, not a measurement.")
    return suite
