"""``senet ablate``: the paper's ablations (Sec. 6 of arXiv:1709.01507) on any registered network.

One option of the SE block is varied over a list of values (``--vary reduction=2,4,8,16,32``, see
``senet.experiments.vary``); every setting is trained with the same recipe, data and seeds
(``senet.experiments.grid``), and the result is the paper-style table: test error mean ± standard
deviation over seeds, parameters, multiply-adds and training time per setting, with the paper's
SE-ResNet-50 (ImageNet) number of the same setting beside it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

from .._plural import plural
from ..bench.environment import code_version
from ..data.provenance import data_line, data_record
from ..io import atomic_write_text
from ..models.registry import get_model_entry
from ..train import distributed as dist
from ..train.config import TrainConfig
from ..train.interrupt import resume_command
from ..train.run import build_model
from ..utils.timing import format_duration
from .grid import (
    Results,
    Setting,
    discard_if_nothing_ran,
    experiment_dir,
    read_marker,
    resumed_base,
    run_grid,
    write_marker,
)
from .paper_results import ABLATION_BASELINE, ABLATION_SOURCE, PAPER_ABLATIONS, PAPER_CHOICE
from .report import (
    command_lines,
    describe_environment,
    environment,
    error_stats,
    format_count,
    format_error,
    format_params,
    plot_errors,
)
from .vary import Vary, parse_vary, setting_of

MARKER, REPORT = "ablate-config.json", "ablate.json"
BASELINE = "baseline"


def ablation_settings(base: TrainConfig, vary: Vary, *, baseline: bool = False) -> list[Setting]:
    """The settings of an ablation, each checked by building its model once (nothing is trained).

    Args:
        base: The experiment's configuration (its model and attention are what the settings change).
        vary: What varies.
        baseline: Add a row without attention first.

    Raises:
        ValueError: In one line naming the setting, when a setting cannot be built on the model (an
            option its attention does not take, a stage it does not have, a placement its family lacks),
            when the model has no attention to vary, when an option is set twice, or for fewer than two rows.
    """
    entry = get_model_entry(base.model)
    attention = base.attention if base.attention is not None else entry.attention
    if vary.key != "attention" and (attention is None or str(attention).lower() == "none"):
        raise ValueError(f"{base.model} has no attention whose {vary.key} could vary; ablate an SE network "
                         f"(e.g. se_{base.model}) or add --attention se")  # fmt: skip
    if vary.key in ("reduction", "attention") and vary.key in base.given:
        raise ValueError(f"--{vary.key} and --vary {vary.key} both set the {vary.key}; drop --{vary.key}")
    settings = [Setting(BASELINE, "no attention (baseline)", changes=(("attention", "none"),))] if baseline else []
    if baseline and vary.key == "attention" and "none" in vary.values:
        raise ValueError("--baseline adds the row --vary attention=none already has; drop one")
    settings += [setting_of(vary.key, v) for v in vary.values]
    if len(settings) < 2:
        raise ValueError(f"--vary {vary} gives one setting; an ablation compares at least two (add values, or "
                         "--baseline for a row without attention)")  # fmt: skip
    resolved = base.resolve()
    for setting in settings:
        try:
            build_model(setting.apply(resolved), entry.num_classes)
        except (ValueError, TypeError) as e:
            raise ValueError(f"--vary {vary.key}={setting.label} on {base.model}: {e}") from None
    return settings


def ablate(
    base: TrainConfig, vary: Vary | str, *, seeds: int = 1, baseline: bool = False, command: str | None = None
) -> dict[str, Any]:
    """Trains ``base.model`` once per setting of ``vary`` and seed, and writes the table.

    Args:
        base: The training configuration; ``out`` is the ablation's folder (default: a new
            ``runs/ablate-<model>-<key>-<time>``), ``resume`` continues one, ``force`` replaces one.
        vary: What varies (a ``Vary`` or its ``key=v1,v2`` spelling).
        seeds: Runs per setting (seeds ``base.seed``, ``base.seed + 1``, ...). A resumed ablation may be
            given more seeds than it had.
        baseline: Add a row without attention.
        command: The command line, recorded in the report.

    Returns:
        The report (also written to ``ablate.json``, ``ablate.md`` and ``ablate.png``).

    Raises:
        ValueError: On an invalid configuration or setting (before anything is trained or written).
        FileExistsError: If the folder holds an ablation and neither resume nor force is set.
        FileNotFoundError: On ``resume`` with no ablation to resume.
    """
    code = code_version()  # the code this process imported; the checkout may change while the runs train
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be a positive number of runs per setting, got {seeds!r}")
    vary = parse_vary(vary) if isinstance(vary, str) else vary
    base.resolve()  # every option is valid before anything runs or is written
    out = experiment_dir(base.out, stem=f"ablate-{base.model}-{vary.key}", marker=MARKER, report=REPORT,
                         what="ablation", resume=base.resume, force=base.force)  # fmt: skip
    if base.resume:
        recorded = read_marker(out / MARKER)
        if recorded.get("vary") != str(vary) or recorded.get("baseline", False) != baseline:
            was = recorded.get("vary", "?") + (" --baseline" if recorded.get("baseline") else "")
            raise ValueError(f"--resume: {out} is an ablation of {was}; give the same --vary (and --baseline), or "
                             "start anew (another --out, or --force)")  # fmt: skip
        base, wall_before = resumed_base(recorded["config"], base, out), recorded.get("wall_seconds", 0.0)
        commands = [*recorded.get("commands", []), command]  # the command that started it, then each resume
        codes = [*recorded.get("codes", []), code]
    else:
        base, wall_before, commands, codes = dataclasses.replace(base, out=str(out)), 0.0, [command], [code]
    settings = ablation_settings(base, vary, baseline=baseline)
    if base.force:
        for name in (REPORT, "ablate.md", "ablate.png"):
            (out / name).unlink(missing_ok=True)
    record = {"vary": str(vary), "baseline": baseline, "seeds": seeds, "config": base.to_dict(), "commands": commands,
              "codes": codes}
    write_marker(out / MARKER, {**record, "wall_seconds": wall_before})
    started = time.time()
    hint = resume_command(["ablate", "--model", base.model, "--vary", str(vary), *(["--baseline"] if baseline else []),
                           "--seeds", str(seeds), "--out", str(out), "--resume"])  # fmt: skip

    def write(results: Results) -> dict[str, Any]:  # after every run: the table so far
        wall = wall_before + time.time() - started
        write_marker(out / MARKER, {**record, "wall_seconds": wall})
        report = build_report(base, vary, settings, results, seeds=seeds, commands=commands, wall_seconds=wall,
                              codes=codes)
        if dist.is_main_process():  # (a multi-process run's rank 0)
            atomic_write_text(out / REPORT, json.dumps(report, indent=1))
            atomic_write_text(out / "ablate.md", render_markdown(report))
        return report

    with discard_if_nothing_ran(out, MARKER, fresh=not base.resume):
        results = run_grid(base, settings, seeds=seeds, out=out, on_update=write, resume_hint=hint)
    report = write(results)
    if dist.is_main_process():
        title = f"{base.model}: {vary.key} ({plural(report['epochs'], 'epoch')}, {seeds} seed(s))"
        rows = [(r["label"], r["errors"]) for r in report["rows"]]
        plot_errors(rows, out / "ablate.png", title=title, xlabel=vary.key)
    return report


def build_report(
    base: TrainConfig, vary: Vary, settings: list[Setting], results: Results, *, seeds: int,
    commands: Sequence[str | None] = (), wall_seconds: float | None = None, codes: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:  # fmt: skip
    """The ablation's table as data (what ``ablate.json`` holds)."""
    resolved = base.resolve()
    rows = []
    for setting in settings:
        records = results.get(setting.name, [])
        stats = error_stats(records)
        first = records[0]["summary"] if records else {}
        value = None if setting.name == BASELINE else setting.label
        paper = ABLATION_BASELINE if value is None else PAPER_ABLATIONS.get(vary.key, {}).get(value)
        rows.append({
            "setting": setting.name, "label": setting.label, "value": value,
            "paper_choice": value == PAPER_CHOICE[vary.key],
            "errors": stats["errors"], "error_mean": stats["mean"], "error_std": stats["std"], "seeds_done": stats["n"],
            "params": first.get("params"), "macs": first.get("macs"),
            "train_seconds": (sum(r["summary"]["train_seconds"] for r in records) / len(records)) if records else None,
            "paper_imagenet": None if paper is None else dataclasses.asdict(paper),
            "runs": [r["summary"]["config"]["out"] for r in records],
        })  # fmt: skip
    done = sum(r["seeds_done"] for r in rows)
    first_summary = next((r[0]["summary"] for r in results.values() if r), {})
    return {
        "kind": "ablation",
        "model": base.model,
        "vary": {"key": vary.key, "values": list(vary.values)},
        "baseline": any(s.name == BASELINE for s in settings),
        "dataset": base.dataset,
        "data": data_record(first_summary.get("data_source")),
        "subset": base.subset,
        "test_subset": base.test_subset,
        "recipe": resolved.recipe,
        "epochs": resolved.epochs,
        "batch_size": resolved.batch_size,
        "seeds": seeds,
        "first_seed": base.seed,
        "input_size": first_summary.get("input_size"),
        "rows": rows,
        "complete": done == len(settings) * seeds,
        "runs_done": done,
        "runs_total": len(settings) * seeds,
        "train_seconds_total": sum(r["summary"]["train_seconds"] for rs in results.values() for r in rs),
        "wall_seconds": wall_seconds,
        "paper_reference": {"source": ABLATION_SOURCE, "baseline_resnet50": dataclasses.asdict(ABLATION_BASELINE)},
        "out": base.out,
        "command": commands[0] if commands else None,
        "resumed_with": [c for c in commands[1:] if c],
        **environment(first_summary.get("device", base.device if base.device != "auto" else "cpu"), codes),
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The ablation as a markdown table, the paper's SE-ResNet-50 numbers beside it."""
    key, seeds = report["vary"]["key"], report["seeds"]
    data = report["dataset"] + (f" ({report['subset']:,}-image training subset)" if report["subset"] else "")
    if report["test_subset"]:
        data += f", tested on {report['test_subset']:,} images"
    lines = [
        f"# Ablation of {report['model']}: {key}",
        "",
        f"{data}; recipe `{report['recipe']}`, {plural(report['epochs'], 'epoch')}, batch {report['batch_size']}, "
        f"{seeds} seed(s) from {report['first_seed']}; every setting sees the same data order and seeds.",
        "",
        data_line(report.get("data")),
    ]
    if not report["complete"]:
        lines += ["", f"**In progress: {report['runs_done']} of {report['runs_total']} runs done.**"]
    spread = " (mean ± sd over seeds)" if seeds > 1 else ""
    lines += [
        "",
        f"| {key} | test error %{spread} | params | multiply-adds | train time per run | "
        "paper: SE-ResNet-50, ImageNet top-1 / top-5 % |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        label = f"**{r['label']}** (paper's choice)" if r["paper_choice"] else r["label"]
        paper = r["paper_imagenet"]
        paper_text = "—" if paper is None else _paper_text(paper)
        train = "—" if r["train_seconds"] is None else format_duration(r["train_seconds"])
        error = format_error({"mean": r["error_mean"], "std": r["error_std"], "n": r["seeds_done"]}, seeds=seeds)
        lines.append(
            f"| {label} | {error} | {format_params(r['params'])} | {format_count(r['macs'])} | {train} | {paper_text} |"
        )
    size = report.get("input_size")
    at = f" at {size[1]}x{size[2]}" if size else ""
    lines += [
        "",
        f"Multiply-adds of one image{at}. Training time: the epochs' training passes, mean over seeds; "
        f"{format_duration(report['train_seconds_total'])} for all runs, "
        f"{format_duration(report['wall_seconds'] or 0)} from start to end.",
        f"Paper column: {report['paper_reference']['source']}; its baseline ResNet-50: "
        f"{_paper_text(report['paper_reference']['baseline_resnet50'])}.",
        "",
        f"Machine: {describe_environment(report)}. Runs in `{report['out']}`.",
    ]
    lines += command_lines(report)
    return "\n".join(lines) + "\n"


def _paper_text(paper: dict[str, Any]) -> str:
    params = f" ({paper['params_m']:.1f}M)" if paper.get("params_m") is not None else ""
    return f"{paper['top1']:.2f} / {paper['top5']:.2f}{params}"
