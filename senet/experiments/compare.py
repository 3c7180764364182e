"""Trains a network with and without attention under one recipe and reports what attention bought.

Both twins see the same data order, augmentation and seeds (``data_order_seed`` is shared); each
seed initialises both models from the same generator state. The report gives accuracy mean and spread
over seeds, parameters, multiply-adds, train and inference images/s and the overhead in percent.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._plural import plural
from ..data.provenance import data_line, data_record
from ..factory import is_recorded_source, load_model
from ..io import CONFIG_FILE, MODEL_FILE, atomic_write_text
from ..models.registry import get_model_entry
from ..retrofit.api import attention_modules
from ..retrofit.api import retrofit as insert
from ..train import distributed as dist
from ..train.checkpoint import load_weights
from ..train.compile_choice import experiment_mode
from ..train.config import TrainConfig
from ..train.device import resolve_device
from ..train.interrupt import resume_command
from ..train.results import finished_run_record
from ..train.run import INITIAL_ACCURACY, build_model, fit
from ..utils.skeleton import meta_skeleton
from .grid import discard_if_nothing_ran, experiment_dir, read_marker, resumable_by, resumed_base, write_marker
from .timing import MIN_TRAINED_STEPS, sgd_step, sync, time_interleaved


def twin_throughputs(
    models: dict[str, nn.Module], input_size: tuple[int, ...], *, num_classes: int, device: torch.device,
    batch_size: int, channels_last: bool = False, clock: Callable[[], float] = time.perf_counter,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """Training and inference images/s of each twin, timed against each other (``time_interleaved``).

    A training step (forward, backward, SGD update) runs on a copy of each model, so the trained weights
    stay as they are; the inference step is a forward pass in eval mode. Both on random inputs of
    ``batch_size`` images.

    Returns:
        ``{'train': images/s, 'inference': images/s}`` by twin name.
    """
    x = torch.randn(batch_size, *input_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch_size,), device=device)

    def inference_step(model: nn.Module) -> Callable[[], None]:
        def step() -> None:
            with torch.inference_mode():
                model(x)
            sync(device)
        return step

    trainees = {name: copy.deepcopy(m).to(device).train() for name, m in models.items()}
    train = time_interleaved(
        {n: sgd_step(m, torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9), x, y, device)
         for n, m in trainees.items()},
        clock=clock,
    )
    inference = time_interleaved({n: inference_step(m.eval().to(device)) for n, m in models.items()}, clock=clock)
    return {n: {"train": batch_size / train[n], "inference": batch_size / inference[n]} for n in models}


def trained_steps(results: list[dict[str, Any]], batch_size: int) -> int | None:
    """The fewest training steps any of ``results``' runs took (``None`` if a run did not record its images)."""
    counts = []
    for r in results:
        images = [h.get("train_images") for h in r["history"]]
        if not images or None in images:
            return None
        counts.append(sum(math.ceil(i / batch_size) for i in images))
    return min(counts) if counts else None


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


MARKER = "compare-config.json"  # written when a comparison starts: what it compares, and its configuration
REPORT = "compare.json"


def compare(base: TrainConfig, *, attention: str | None = None, seeds: int | None = None) -> dict[str, Any]:
    """Trains ``base.model`` without attention and with ``attention``, ``seeds`` times each.

    On ``base.resume`` the comparison continues with the attention, seeds and training options it was
    started with (``compare-config.json``): a twin that had finished is kept, an unfinished one continues
    from its last checkpoint, one that had not started starts with the recorded options.

    Args:
        base: The training configuration; ``out`` is the comparison's directory (runs go below it).
        attention: The attention the second twin uses (a registered name; default ``se``, or the
            recorded one on resume).
        seeds: How many seeds (``base.seed``, ``base.seed + 1``, ...; default 1, or the recorded number on
            resume, which may be raised).

    Returns:
        The comparison (also written to ``compare.json``, ``compare.md`` and ``curves.png``).

    Raises:
        ValueError: On an invalid configuration, ``seeds < 1``, or a resume given another attention or options
            that differ from the recorded ones.
        FileExistsError: If the directory holds a comparison and neither resume nor force is set.
        FileNotFoundError: On resume with no comparison to resume.
    """
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    if attention is not None and str(attention).lower() == "none":
        raise ValueError("--attention none would compare the plain network with itself; name one: se, eca, cbam, ...")
    if base.retrofit is not None:  # --retrofit X: the second twin is the first with X retrofitted
        if attention is not None and attention != base.retrofit:
            raise ValueError(f"--retrofit {base.retrofit} and --attention {attention}: the second twin is the first "
                             f"with {base.retrofit} retrofitted; give one of them")  # fmt: skip
        attention = base.retrofit
    asked_retrofit, base = base.retrofit is not None, dataclasses.replace(base, retrofit=None)
    base.resolve()  # every option is valid before anything runs or is written
    device = resolve_device(base.device)
    out = experiment_dir(base.out, stem=f"compare-{base.model}", marker=MARKER, report=REPORT, what="comparison",
                         resume=base.resume, force=base.force, started_by=("plain-seed*",))  # fmt: skip
    recorded = _recorded(out) if base.resume else None
    if recorded is not None:
        if attention is not None and attention != recorded["attention"]:
            raise ValueError(f"--resume: {out} compares plain with {recorded['attention']}, not {attention}; drop "
                             "--attention, or start anew (another --out, or --force)")  # fmt: skip
        attention, seeds = recorded["attention"], seeds or recorded["seeds"]
        base = resumed_base(recorded["config"], base, out)
    else:  # a fresh comparison (or one whose first twin was stopped before it wrote its record)
        attention, seeds = attention or "se", seeds or 1
        base = dataclasses.replace(base, out=str(out))
    twins = {"plain": "none", attention: attention}
    retrofits = asked_retrofit or base.init_from is not None or recorded_retrofit(recorded)
    _check_twins(base, twins.values(), retrofit=retrofits)
    _check_recorded_network(base)
    if base.force and dist.is_main_process():  # a report of the comparison being replaced would mislead
        for name in (REPORT, "compare.md", "curves.png"):
            (out / name).unlink(missing_ok=True)
    if recorded is None:
        write_marker(out / MARKER, {"attention": attention, "seeds": seeds, "config": base.to_dict(),
                                    "retrofit": retrofits})  # fmt: skip
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in twins}
    recorded_network = base.init_from is not None and is_recorded_source(base.init_from)
    models: dict[str, nn.Module] = {}
    order = [(seed, name, attn) for seed in range(base.seed, base.seed + seeds) for name, attn in twins.items()]
    with discard_if_nothing_ran(out, MARKER, fresh=recorded is None and not base.resume):
        for index, (seed, name, attn) in enumerate(order, 1):
            # From trained weights (--init-from) the attention twin is the same network with the attention
            # retrofitted as the identity: both start at the checkpoint's accuracy.
            twin = {"attention": None, "retrofit": attn} if retrofits and attn != "none" else {"attention": attn}
            if attn == "none" and recorded_network:  # a run records its network: no attention option may change it
                twin = {"attention": None}
            cfg = dataclasses.replace(
                base, **twin, seed=seed, data_order_seed=seed, out=str(out / f"{name}-seed{seed}")
            )
            finished = _finished_run(cfg) if cfg.resume else None
            if finished is not None:  # --resume keeps a twin that had finished
                print(f"{cfg.out} had finished: kept", flush=True)
                runs[name].append(finished[0])
                models[name] = finished[1]
                base = dataclasses.replace(base, compile=experiment_mode(base.compile, finished[0]["summary"]))
                continue
            if cfg.resume and not (Path(cfg.out) / CONFIG_FILE).is_file():
                cfg = dataclasses.replace(cfg, resume=False)  # this twin had not started
            with resumable_by(resume_command(["compare", "--model", base.model, "--out", str(out), "--resume"]),
                              f"run {index}/{len(order)} ({Path(cfg.out).name})"):  # fmt: skip
                result = fit(cfg)
            runs[name].append({"summary": result.summary, "history": result.history})
            models[name] = result.model
            base = dataclasses.replace(base, compile=experiment_mode(base.compile, result.summary))  # twins alike
    input_size = tuple(runs["plain"][0]["summary"].get("input_size") or (3, 32, 32))
    report = _report(base, attention, runs, models, input_size, device, retrofits=retrofits)
    if dist.is_main_process():
        atomic_write_text(out / REPORT, json.dumps(report, indent=1))
        atomic_write_text(out / "compare.md", render_markdown(report))
        plot_curves(runs, out / "curves.png", title=f"{base.model}: plain vs {attention}")
    return report


def recorded_retrofit(recorded: dict[str, Any] | None) -> bool:
    """Whether a recorded comparison retrofits its attention twin (``False`` for none, or an older record)."""
    return bool(recorded and recorded.get("retrofit"))


def _check_twins(base: TrainConfig, attentions: Iterable[str], *, retrofit: bool = False) -> None:
    """Builds each twin's network once (on the meta device where it can: no memory; nothing trained), so
    that an attention the network cannot take (or, with ``retrofit``, that cannot be retrofitted into it) is
    refused before the first twin trains, not after it."""
    entry = get_model_entry(base.model)
    for attn in attentions:
        try:
            if retrofit and attn != "none":  # on the CPU: the identity start is checked on real numbers
                plain = build_model(dataclasses.replace(base, attention="none"), entry.num_classes)
                insert(plain, attn, reduction=base.reduction or 16, identity_init=True, inplace=True)
            else:
                with meta_skeleton():
                    build_model(dataclasses.replace(base, attention=attn), entry.num_classes)
        except (ValueError, TypeError) as e:
            how = "--retrofit" if retrofit and attn != "none" else "--attention"
            raise ValueError(f"{how} {attn} on {base.model}: {e}") from None


def _check_recorded_network(base: TrainConfig) -> None:
    """A run given to ``--init-from`` is its plain twin as it was trained, so it must be plain: the attention
    twin retrofits attention into it (refused before the first twin trains, not after it)."""
    if base.init_from is None or not is_recorded_source(base.init_from):
        return
    held = attention_modules(load_model(base.init_from))
    if held:
        raise ValueError(f"--init-from {base.init_from} holds a network with attention already ({len(held)} modules); "
                         "the comparison fine-tunes a plain network plain and with attention retrofitted: give a "
                         "plain one")  # fmt: skip


def _recorded(out: Path) -> dict[str, Any] | None:
    """What the comparison in ``out`` recorded when it started: {'attention', 'seeds', 'config'}, or ``None``
    for one stopped in its first twin by an older version (which wrote its record after that twin)."""
    if not (out / MARKER).is_file():
        return None
    record = read_marker(out / MARKER)
    if "config" not in record:  # the older layout: the configuration's fields beside attention and seeds
        record = {"attention": record.get("attention", "se"), "seeds": record.get("seeds", 1), "config": record}
    return record


def _finished_run(cfg: TrainConfig) -> tuple[dict[str, Any], nn.Module] | None:
    """The summary, history and trained model of a twin whose run had finished, or ``None``."""
    record = finished_run_record(cfg.out)
    if record is None:
        return None
    summary = record["summary"]
    stored = TrainConfig.from_dict(summary["config"])
    model = build_model(stored, len(summary["classes"]))
    load_weights(model, Path(cfg.out) / MODEL_FILE)
    return record, model


def _report(
    base: TrainConfig, attention: str, runs: dict[str, list[dict[str, Any]]], models: dict[str, nn.Module],
    input_size: tuple[int, ...], device: torch.device, *, retrofits: bool = False,
) -> dict[str, Any]:
    batch = base.resolve().batch_size
    steps = [trained_steps(results, batch) for results in runs.values()]
    # A run shorter than its own timing would spend more on measuring than on training: not measured.
    timed = all(s is None or s >= MIN_TRAINED_STEPS for s in steps)
    speed = (twin_throughputs(models, input_size, num_classes=len(runs["plain"][0]["summary"]["classes"]),
                              device=device, batch_size=batch, channels_last=base.channels_last)
             if timed else {name: {"train": None, "inference": None} for name in runs})  # fmt: skip
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
            # Timed after training, the twins interleaved, warm-up excluded (``senet.experiments.timing``);
            # ``None``: the runs were too short to time.
            "train_images_per_second": speed[name]["train"],
            "inference_images_per_second": speed[name]["inference"],
            "train_seconds": statistics.fmean(r["summary"]["train_seconds"] for r in results),
        }
        starts = [r["summary"].get(INITIAL_ACCURACY) for r in results]
        if base.init_from is not None and None not in starts:  # step 0: what the loaded weights scored
            rows[name]["initial_test_accuracies"] = starts
            rows[name]["initial_test_accuracy_mean"] = statistics.fmean(starts)
    plain, se = rows["plain"], rows[attention]

    def overhead(key: str, inverse: bool = False) -> float | None:
        a, b = plain.get(key), se.get(key)
        if not a or not b:
            return None
        return 100.0 * ((a / b - 1) if inverse else (b / a - 1))

    return {
        "complete": True,
        "model": base.model,
        "attention": attention,
        "dataset": base.dataset,
        "data": data_record(runs["plain"][0]["summary"].get("data_source")),
        "seeds": len(runs["plain"]),
        "epochs": runs["plain"][0]["summary"]["epochs"],
        "recipe": runs["plain"][0]["summary"]["config"]["recipe"],
        "init_from": base.init_from,
        "retrofit": retrofits,
        "subset": base.subset,
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
    starts = all("initial_test_accuracies" in r for r in report["results"].values())
    subset = f", trained on a {report['subset']:,}-image subset" if report.get("subset") else ""
    lines = [
        f"# {report['model']}: plain vs {att}{' retrofitted' if report.get('retrofit') else ''} on "
        f"{report['dataset']}",
        "",
        f"{plural(report['epochs'], 'epoch')}, recipe `{report['recipe']}`, {report['seeds']} seed(s){subset}, "
        f"device {report['device']}.",
        "",
        data_line(report.get("data")),
        "",
    ]
    if report.get("init_from"):
        lines += [f"Both twins start from `{report['init_from']}`; the {att} twin has {att} retrofitted into it, "
                  "starting as the identity." + (" " + _start_line(report) if starts else ""), ""]  # fmt: skip
    sd = " (mean ± sd)" if report["seeds"] > 1 else ""
    lines += [
        f"| variant |{f' step 0 test accuracy{sd} |' if starts else ''} test accuracy{sd} | params | multiply-adds | "
        "train img/s | inference img/s |",
        "|---|---|---|---|---|---|" + ("---|" if starts else ""),
    ]
    for name, r in report["results"].items():
        macs = f"{r['macs'] / 1e6:,.1f} M" if r["macs"] else "n/a"
        spread = f" ± {100 * r['test_accuracy_std']:.2f}" if report["seeds"] > 1 else ""
        start = ""
        if starts:
            values = r["initial_test_accuracies"]
            start = f" {100 * statistics.fmean(values):.2f}%" + (f" ± {100 * _spread(values):.2f}" if sd else "") + " |"
        lines.append(
            f"| {name} |{start} {100 * r['test_accuracy_mean']:.2f}%{spread} | "
            f"{r['params']:,} | {macs} | {_speed(r['train_images_per_second'])} | "
            f"{_speed(r['inference_images_per_second'])} |"
        )
    o = report["overhead_percent"]

    def pct(v: float | None, missing: str = "n/a") -> str:
        return missing if v is None else f"{v:+.1f}%"

    lines += [
        "",
        f"{att} overhead: params {pct(o['params'])}, multiply-adds {pct(o['macs'])}, "
        f"training time {pct(o['train_time'], 'not measured')}, "
        f"inference time {pct(o['inference_time'], 'not measured')}"
        + ("." if o["train_time"] is not None else f" (runs of fewer than {MIN_TRAINED_STEPS} steps are too short "
           "to time).") + (" Times: both twins after training, interleaved, warm-up excluded, the fastest of "
                            "several steps." if o["train_time"] is not None else ""),
        f"Accuracy gain: {report['accuracy_gain_points']:+.2f} points.",
        "",
    ]
    return "\n".join(lines)


def _start_line(report: dict[str, Any]) -> str:
    """Whether each seed's twins scored the same at step 0 (the retrofitted attention an exact identity)."""
    plain, other = (r["initial_test_accuracies"] for r in report["results"].values())
    if plain == other:
        return "At step 0 the twins of each seed score the same: " + ", ".join(f"{100 * a:.2f}%" for a in plain) + "."
    pairs = ", ".join(f"{100 * a:.2f}% vs {100 * b:.2f}%" for a, b in zip(plain, other, strict=True))
    return f"At step 0 the twins do NOT score the same ({pairs}): the retrofitted attention was not the identity."


def _speed(value: float | None) -> str:
    return "not measured" if value is None else f"{value:,.0f}"


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
