"""Trains a network with and without attention under one recipe and reports what attention bought.

Both twins see the same data order, augmentation and seeds (``data_order_seed`` is shared); each
seed initialises both models from the same generator state. The report gives accuracy mean and spread
over seeds, parameters, multiply-adds, train and inference images/s and the overhead in percent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import atomic_write_text, load_weights
from .config import TrainConfig
from .run import build_model, finished_run_record, fit, resolve_device
from .rundir import RUNS_ROOT, new_run_dir, newest_run_dir


def inference_throughput(
    model: nn.Module, input_size: tuple[int, ...], *, device: torch.device, batch_size: int = 64, repeats: int = 5,
    channels_last: bool = False,
) -> float:
    """Median images/s of ``model`` in eval mode on random inputs (after a warm-up)."""
    model = model.eval().to(device)
    x = torch.randn(batch_size, *input_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return batch_size / statistics.median(times)


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def compare(base: TrainConfig, *, attention: str = "se", seeds: int = 1) -> dict[str, Any]:
    """Trains ``base.model`` without attention and with ``attention``, ``seeds`` times each.

    Args:
        base: The training configuration; ``out`` is the comparison's directory (runs go below it).
        attention: The attention the second twin uses (a registered name).
        seeds: How many seeds (``base.seed``, ``base.seed + 1``, ...).

    Returns:
        The comparison (also written to ``compare.json``, ``compare.md`` and ``curves.png``).

    Raises:
        ValueError: On an invalid configuration, or ``seeds < 1``.
        FileExistsError: If the directory holds a comparison and neither resume nor force is set.
    """
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if attention is None or str(attention).lower() == "none":
        raise ValueError("--attention none would compare the plain network with itself; name one: se, eca, cbam, ...")
    base.resolve()  # every option is valid before anything runs or is written
    device = resolve_device(base.device)
    out = _compare_dir(base)
    base = dataclasses.replace(base, out=str(out))
    twins = {"plain": "none", attention: attention}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in twins}
    models: dict[str, nn.Module] = {}
    for seed_index in range(seeds):
        seed = base.seed + seed_index
        for name, attn in twins.items():
            cfg = dataclasses.replace(
                base, attention=attn, seed=seed, data_order_seed=seed, out=str(out / f"{name}-seed{seed}")
            )
            finished = _finished_run(cfg) if cfg.resume else None
            if finished is not None:  # --resume keeps a twin that had finished
                print(f"{cfg.out} had finished: kept", flush=True)
                runs[name].append(finished[0])
                models[name] = finished[1]
                continue
            if cfg.resume and not (Path(cfg.out) / "config.json").is_file():
                cfg = dataclasses.replace(cfg, resume=False)  # this twin had not started
            result = fit(cfg)
            runs[name].append({"summary": result.summary, "history": result.history})
            models[name] = result.model
            if not (out / "compare-config.json").is_file():  # the comparison has started: --resume finds it
                config = {"attention": attention, "seeds": seeds, **base.to_dict()}
                atomic_write_text(out / "compare-config.json", json.dumps(config, indent=1))
    input_size = tuple(runs["plain"][0]["summary"].get("input_size") or (3, 32, 32))
    report = _report(base, attention, runs, models, input_size, device)
    atomic_write_text(out / "compare.json", json.dumps(report, indent=1))
    atomic_write_text(out / "compare.md", render_markdown(report))
    plot_curves(runs, out / "curves.png", title=f"{base.model}: plain vs {attention}")
    return report


def _compare_dir(base: TrainConfig) -> Path:
    """The comparison's folder (default: a new ``runs/compare-<model>-<time>``, or on ``--resume`` the
    newest comparison of the model); refuses to start over one that holds a comparison unless told to.

    Raises:
        FileExistsError: If the folder holds a comparison and neither resume nor force is set.
        FileNotFoundError: On ``--resume`` when there is no comparison to resume.
    """
    stem = f"compare-{base.model}"
    if base.out is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("a multi-process compare needs --out (the processes must agree on one folder)")
    if base.out is None and base.resume:
        out = newest_run_dir(stem, marker="compare-config.json")
        if out is None:
            raise FileNotFoundError(f"--resume: no comparison of {base.model} under {RUNS_ROOT}/; name it with --out")
    else:
        out = Path(base.out) if base.out is not None else new_run_dir(stem)
    started = (out / "compare-config.json").is_file() or any(out.glob("plain-seed*"))
    if base.resume and not started:
        raise FileNotFoundError(f"--resume: {out} holds no comparison; start one without --resume")
    if started and not (base.resume or base.force):
        what = "a finished comparison" if (out / "compare.json").is_file() else "an unfinished comparison"
        raise FileExistsError(f"{out} already holds {what}; pass --resume to continue it, --force to replace it, "
                              "or another --out")  # fmt: skip
    return out


def _finished_run(cfg: TrainConfig) -> tuple[dict[str, Any], nn.Module] | None:
    """The summary, history and trained model of a twin whose run had finished, or ``None``."""
    record = finished_run_record(cfg.out)
    if record is None:
        return None
    summary = record["summary"]
    stored = TrainConfig.from_dict(summary["config"])
    model = build_model(stored, len(summary["classes"]))
    load_weights(model, Path(cfg.out) / "model.safetensors")
    return record, model


def _report(
    base: TrainConfig, attention: str, runs: dict[str, list[dict[str, Any]]], models: dict[str, nn.Module],
    input_size: tuple[int, ...], device: torch.device,
) -> dict[str, Any]:
    rows = {}
    for name, results in runs.items():
        accs = [r["summary"]["test_accuracy"] for r in results]
        first = results[0]["summary"]
        rows[name] = {
            "test_accuracy_mean": statistics.fmean(accs),
            "test_accuracy_std": _spread(accs),
            "test_accuracies": accs,
            "params": first["params"],
            "macs": first["macs"],
            "train_images_per_second": statistics.fmean(r["summary"]["images_per_second"] for r in results),
            "inference_images_per_second": inference_throughput(
                models[name], input_size, device=device, channels_last=base.channels_last
            ),
            "train_seconds": statistics.fmean(r["summary"]["train_seconds"] for r in results),
        }
    plain, se = rows["plain"], rows[attention]

    def overhead(key: str, inverse: bool = False) -> float | None:
        a, b = plain.get(key), se.get(key)
        if not a or not b:
            return None
        return 100.0 * ((a / b - 1) if inverse else (b / a - 1))

    return {
        "model": base.model,
        "attention": attention,
        "dataset": base.dataset,
        "seeds": len(runs["plain"]),
        "epochs": runs["plain"][0]["summary"]["epochs"],
        "recipe": runs["plain"][0]["summary"]["config"]["recipe"],
        "results": rows,
        "overhead_percent": {
            "params": overhead("params"),
            "macs": overhead("macs"),
            "train_time": overhead("train_images_per_second", inverse=True),
            "inference_time": overhead("inference_images_per_second", inverse=True),
        },
        "accuracy_gain_points": 100.0 * (se["test_accuracy_mean"] - plain["test_accuracy_mean"]),
        "out": base.out,
        "runs": {name: [r["summary"]["config"]["out"] for r in results] for name, results in runs.items()},
        "torch": torch.__version__,
        "device": str(device),
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The comparison as a markdown table."""
    att = report["attention"]
    lines = [
        f"# {report['model']}: plain vs {att} on {report['dataset']}",
        "",
        f"{report['epochs']} epochs, recipe `{report['recipe']}`, {report['seeds']} seed(s), "
        f"device {report['device']}.",
        "",
        f"| variant | test accuracy{' (mean ± sd)' if report['seeds'] > 1 else ''} | params | multiply-adds | "
        "train img/s | inference img/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in report["results"].items():
        macs = f"{r['macs'] / 1e6:,.1f} M" if r["macs"] else "n/a"
        spread = f" ± {100 * r['test_accuracy_std']:.2f}" if report["seeds"] > 1 else ""
        lines.append(
            f"| {name} | {100 * r['test_accuracy_mean']:.2f}%{spread} | "
            f"{r['params']:,} | {macs} | {r['train_images_per_second']:,.0f} | "
            f"{r['inference_images_per_second']:,.0f} |"
        )
    o = report["overhead_percent"]

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:+.1f}%"

    lines += [
        "",
        f"{att} overhead: params {pct(o['params'])}, multiply-adds {pct(o['macs'])}, "
        f"training time {pct(o['train_time'])}, inference time {pct(o['inference_time'])}.",
        f"Accuracy gain: {report['accuracy_gain_points']:+.2f} points.",
        "",
    ]
    return "\n".join(lines)


def plot_curves(runs: dict[str, list[dict[str, Any]]], path: Path, *, title: str) -> None:
    """Plots train loss and test accuracy per epoch for each twin (mean over seeds) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for name, results in runs.items():
        epochs = [h["epoch"] for h in results[0]["history"]]
        loss = [statistics.fmean(r["history"][i]["train_loss"] for r in results) for i in range(len(epochs))]
        ax_loss.plot(epochs, loss, marker="o", label=name)
        points = [
            (h["epoch"], statistics.fmean(r["history"][i].get("test_accuracy", float("nan")) for r in results))
            for i, h in enumerate(results[0]["history"])
            if "test_accuracy" in h
        ]
        if points:
            ax_acc.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o", label=name)
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
