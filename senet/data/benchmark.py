"""What the data pipeline costs: ``python -m senet.data.benchmark [--decode] [--out FILE]``.

Measures the in-memory loader (ms per batch, training with augmentation and evaluation, channels
first and last, interleaved, medians of several epochs' worth of batches), the cached load of the
embedded CIFAR-10 and, with ``--decode``, its first decode into a temporary cache. Prints one JSON
record with the configuration, the versions and the code revision next to the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..io import atomic_write_text
from ..models import create_model
from .datasets import CIFAR10_MEAN, CIFAR10_STD, load_dataset
from .embedded_cifar10 import load_embedded_cifar10
from .loaders import TensorLoader


def time_loader(loader: TensorLoader, batches: int) -> float:
    """Returns the median milliseconds per batch over ``batches`` batches (after a warm-up batch)."""
    times = []
    while len(times) < batches:
        it = iter(loader)
        next(it)  # warm-up; also excludes the per-epoch plan, measured apart
        start = time.perf_counter()
        for _ in it:
            if loader.device.type == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            times.append(now - start)
            start = now
            if len(times) >= batches:
                break
    return 1e3 * statistics.median(times)


def run(args: argparse.Namespace) -> dict:
    """Runs the measurements described by ``args``; returns the record."""
    torch.set_num_threads(args.threads)
    record: dict = {
        "config": vars(args),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "revision": _revision(),
    }
    if args.decode:
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            load_embedded_cifar10(cache=cache, progress=False)
            record["first_decode_s"] = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
            load_embedded_cifar10(cache=cache, progress=False)
            record["cached_load_s"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    data = load_dataset("cifar10", progress=True)
    record["load_dataset_s"] = round(time.perf_counter() - start, 3)
    results: dict[str, list[float]] = {}
    kinds = [(train, cl) for train in (True, False) for cl in (False, True)]
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit every variant alike
        for train, cl in kinds:
            loader = TensorLoader(
                data.train.images, data.train.labels, batch_size=args.batch_size, mean=CIFAR10_MEAN,
                std=CIFAR10_STD, train=train, channels_last=cl, device=args.device,
            )  # fmt: skip
            name = f"{'train' if train else 'eval'}{'_channels_last' if cl else ''}_ms_per_batch"
            results.setdefault(name, []).append(time_loader(loader, args.batches))
    record.update({name: round(statistics.median(v), 3) for name, v in results.items()})
    loader = TensorLoader(
        data.train.images, data.train.labels, batch_size=args.batch_size, mean=CIFAR10_MEAN, std=CIFAR10_STD,
        device=args.device,
    )  # fmt: skip
    start = time.perf_counter()
    loader.plan(0)
    record["epoch_plan_ms"] = round(1e3 * (time.perf_counter() - start), 2)
    if args.model:
        step = time_training_step(args.model, loader, args.steps)
        record[f"{args.model}_step_ms"] = round(step, 1)
        record["train_loader_fraction_of_step"] = round(record["train_ms_per_batch"] / step, 4)
    return record


def time_training_step(model_name: str, loader: TensorLoader, steps: int) -> float:
    """Returns the median milliseconds of one SGD step of ``model_name`` on the loader's batches."""
    model = create_model(model_name, num_classes=10).to(loader.device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    times = []
    for i, (images, labels) in enumerate(loader):
        if i > steps:
            break
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if loader.device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _revision() -> str | None:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)  # fmt: skip
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv: list[str] | None = None) -> int:
    """Parses the command line, runs the benchmark and prints (or writes) its JSON record."""
    parser = argparse.ArgumentParser(prog="python -m senet.data.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=100, help="batches timed per variant and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="cifar_resnet20", help="time a training step of it too ('' to skip)")
    parser.add_argument("--steps", type=int, default=10, help="training steps timed")
    parser.add_argument("--decode", action="store_true", help="also time a first decode into a temporary cache")
    parser.add_argument("--out", type=Path, help="write the JSON record here too")
    args = parser.parse_args(argv)
    record = run(args)
    text = json.dumps(record, indent=2, default=str)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
