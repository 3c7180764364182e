"""``senet reproduce``: the paper's CIFAR results (Tables 4-5 of arXiv:1709.01507), or a CPU-sized version.

A protocol is data (``senet.experiments.protocols``): the networks (each trained without and with SE), the
recipe, the epochs and the number of seeds. ``paper`` is the paper's protocol for ResNet-110, ResNet-164
and WRN-16-8: days of GPU time, so on a CPU it first says how long it would take and starts only when
confirmed. ``quick`` trains ResNet-20 and SE-ResNet-20 on the full CIFAR-10 for as many epochs as fit in
about an hour on 2 CPU cores, three seeds each, and says whether SE's gain exceeds the seed-to-seed spread.

The runs are trained by ``senet.experiments.grid`` (resumable run by run); the table gives the test error
mean ± sd over seeds of each network without and with SE, the gain, and the paper's numbers beside them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from typing import Any

from ..bench.environment import code_version
from ..data import fetch_cifar_archive
from ..data.provenance import data_line, data_record
from ..io import atomic_write_text
from ..train import distributed as dist
from ..train.config import TrainConfig
from ..train.device import resolve_device
from ..train.interrupt import resume_command
from ..train.recipes import CIFAR_DATASETS
from ..train.results import finished_run_record
from ..utils.timing import format_duration
from .estimate import StepTime, estimate_runs
from .grid import (
    Results,
    discard_if_nothing_ran,
    experiment_dir,
    read_marker,
    resumed_base,
    run_grid,
    run_order,
    write_marker,
)
from .paper_results import PAPER_CIFAR, RESNET20_REPRODUCTIONS
from .protocols import Network, Protocol, get_protocol, protocol_settings, select_networks
from .report import (
    command_lines,
    describe_environment,
    environment,
    error_stats,
    format_error,
    format_params,
    plot_errors,
)

MARKER, REPORT = "reproduce-config.json", "reproduce.json"
CIFAR_IMAGES = {"train": 50_000, "test": 10_000}  # both CIFAR-10 and CIFAR-100


class ConfirmationNeeded(ValueError):
    """A long protocol on a CPU was not confirmed (its message gives the estimate and the way to start)."""


def reproduce(
    base: TrainConfig, protocol: Protocol | str = "paper", *, seeds: int | None = None,
    models: Sequence[str] | None = None, yes: bool = False, command: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Runs a reproduction protocol on ``base.dataset`` (cifar10 or cifar100).

    Args:
        base: Where and how to run (``device``, ``out``, ``resume``, ``force``, ``data_dir``, ``progress``, ...;
            ``epochs``, ``subset`` or ``test_subset`` given in ``base.given`` override the protocol, and the
            report says so). Its model and recipe are the protocol's.
        protocol: A protocol or its name.
        seeds: Runs per network and variant (default: the protocol's). A resumed reproduction may be given more.
        models: Train only these of the protocol's networks.
        yes: Start a GPU-sized protocol on a CPU.
        command: The command line, recorded in the report.

    Returns:
        The report (also written to ``reproduce.json``, ``reproduce.md`` and ``reproduce.png``).

    Raises:
        ConfirmationNeeded: For a GPU-sized protocol on a CPU without ``yes`` (after measuring the estimate).
        ValueError: On an unknown data set, protocol or network, or invalid options.
        FileExistsError, FileNotFoundError: As ``senet ablate`` (an existing reproduction without resume or
            force; a resume with nothing to resume).
    """
    code = code_version()  # the code this process imported; the checkout may change while the runs train
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    if str(base.dataset).lower() not in CIFAR_DATASETS:
        raise ValueError(
            f"reproduce runs on {' or '.join(CIFAR_DATASETS)} (the paper's Tables 4-5), got {base.dataset!r}"
        )
    seeds = protocol.seeds if seeds is None else seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be a positive number of runs per network, got {seeds!r}")
    networks = select_networks(protocol, models)
    base = dataclasses.replace(base, model=networks[0].plain, recipe=protocol.recipe, eval_every=protocol.eval_every)
    base.resolve()
    device = resolve_device(base.device)
    out = experiment_dir(base.out, stem=f"reproduce-{base.dataset}-{protocol.name}", marker=MARKER, report=REPORT,
                         what="reproduction", resume=base.resume, force=base.force)  # fmt: skip
    keys = [n.key for n in networks]
    if base.resume:
        recorded = read_marker(out / MARKER)
        was = (recorded.get("protocol"), recorded.get("dataset"), recorded.get("models"))
        if was != (protocol.name, base.dataset, keys):
            raise ValueError(f"--resume: {out} is the {was[0]} protocol on {was[1]} for {', '.join(was[2] or [])}; "
                             "give the same data set, --protocol and --models, or start anew")  # fmt: skip
        base, overridden = resumed_base(recorded["config"], base, out), recorded.get("overridden", [])
        wall_before = recorded.get("wall_seconds", 0.0)
        known = {m: StepTime(*t) for m, t in recorded.get("step_times", {}).items()}  # not measured again
        commands = [*recorded.get("commands", []), command]  # the command that started it, then each resume
        codes = [*recorded.get("codes", []), code]
    else:
        base, overridden, wall_before = dataclasses.replace(base, out=str(out)), sorted(base.given), 0.0
        known = {}
        commands, codes = [command], [code]
    _check_data(base)  # (experiment_dir and a resume's checks write nothing)
    settings = protocol_settings(networks, overridden)
    todo = [
        dataclasses.replace(s.apply(base), seed=seed).resolve()
        for s, seed in run_order(settings, seeds, base.seed)
        if not (base.resume and finished_run_record(s.run_dir(out, seed)) is not None)
    ]
    num_classes = 100 if base.dataset.lower() == "cifar100" else 10
    distinct = len({cfg.model for cfg in todo} - set(known))
    if distinct:
        print(f"measuring a training step of {distinct} model(s) to estimate the duration...", flush=True)
    estimate, steps = estimate_runs(
        todo, num_classes=num_classes, device=device, known=known,
        train_images=base.subset or CIFAR_IMAGES["train"], test_images=base.test_subset or CIFAR_IMAGES["test"],
    )  # fmt: skip
    measured = ", ".join(f"{m} {1e3 * s.train:.2f} ms (batch {s.batch})" for m, s in steps.items())
    where = "this CPU" if device.type == "cpu" else str(device)
    print(f"{len(todo)} run(s) to train; estimated {format_duration(estimate)} on {where} "
          f"(measured training time per image: {measured})", flush=True)  # fmt: skip
    if protocol.needs_gpu and device.type == "cpu" and not yes and todo:
        raise ConfirmationNeeded(
            f"the {protocol.name} protocol would take an estimated {estimate / 3600:,.0f} hours on this CPU "
            f"({len(todo)} runs); add --yes "
            "to start (it is meant for a GPU), or try --protocol quick"
        )
    if base.force:
        for name in (REPORT, "reproduce.md", "reproduce.png"):
            (out / name).unlink(missing_ok=True)
    record = {"protocol": protocol.name, "dataset": base.dataset, "models": keys, "seeds": seeds,
              "overridden": overridden, "config": base.to_dict(), "commands": commands, "codes": codes,
              "estimate_seconds": estimate,
              "step_times": {**{m: list(dataclasses.astuple(t)) for m, t in known.items()},
                             **{m: list(dataclasses.astuple(t)) for m, t in steps.items()}}}
    write_marker(out / MARKER, {**record, "wall_seconds": wall_before})
    started = time.time()
    hint = resume_command(["reproduce", base.dataset, "--protocol", protocol.name, "--models", ",".join(keys),
                           "--seeds", str(seeds), "--out", str(out), "--resume"])  # fmt: skip

    def write(results: Results) -> dict[str, Any]:  # after every run: the table so far
        wall = wall_before + time.time() - started
        write_marker(out / MARKER, {**record, "wall_seconds": wall})
        report = build_report(base, protocol, networks, results, seeds=seeds, overridden=overridden, commands=commands,
                              wall_seconds=wall, codes=codes)  # fmt: skip
        if dist.is_main_process():  # (a multi-process run's rank 0)
            atomic_write_text(out / REPORT, json.dumps(report, indent=1))
            atomic_write_text(out / "reproduce.md", render_markdown(report))
        return report

    with discard_if_nothing_ran(out, MARKER, fresh=not base.resume):
        results = run_grid(base, settings, seeds=seeds, out=out, on_update=write, resume_hint=hint)
    report = write(results)
    if dist.is_main_process():
        rows = [(s.label, error_stats(results[s.name])["errors"]) for s in settings]
        plot_errors(rows, out / "reproduce.png", title=f"{base.dataset}, {protocol.name} protocol", xlabel="network")
    return report


def _check_data(base: TrainConfig) -> None:
    """The data is there before a step is measured or a folder made (the subsets were checked against it by
    ``TrainConfig.resolve``): CIFAR-100's archive is found, downloaded, or said to be missing."""
    if base.dataset.lower() != "cifar10":  # CIFAR-10 is embedded; CIFAR-100 is the official archive
        fetch_cifar_archive(base.dataset.lower(), base.data_dir, progress=base.progress)


def build_report(
    base: TrainConfig, protocol: Protocol, networks: Sequence[Network], results: Results, *, seeds: int,
    overridden: Sequence[str] = (), commands: Sequence[str | None] = (), wall_seconds: float | None = None,
    codes: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:  # fmt: skip
    """The reproduction's table as data (what ``reproduce.json`` holds)."""
    rows = []
    for net in networks:
        variants = {}
        for variant in ("plain", "se"):
            records = results.get(f"{net.key}-{variant}", [])
            first = records[0]["summary"] if records else {}
            variants[variant] = {
                "model": getattr(net, variant), **error_stats(records), "params": first.get("params"),
                "macs": first.get("macs"), "epochs": first.get("epochs"),
                "train_seconds": (sum(r["summary"]["train_seconds"] for r in records) / len(records)) if records
                else None,
                "runs": [r["summary"]["config"]["out"] for r in records],
            }  # fmt: skip
        plain, se = variants["plain"], variants["se"]
        both = plain["mean"] is not None and se["mean"] is not None
        gain = plain["mean"] - se["mean"] if both else None
        spread = max(plain["std"], se["std"])
        paper = PAPER_CIFAR.get(net.key, {}).get(base.dataset)
        rows.append({
            "network": net.key, "label": net.label, "plain": plain, "se": se, "gain": gain,
            # The criterion: the gain in mean error exceeds the larger of the two seed-to-seed standard deviations.
            "gain_exceeds_spread": (gain > spread) if both and min(plain["n"], se["n"]) > 1 else None,
            "gain_standard_error": math.sqrt(plain["sem"] ** 2 + se["sem"] ** 2) if both else None,
            "paper": None if paper is None else {"plain": paper.plain, "se": paper.se, "gain": paper.gain},
        })  # fmt: skip
    done = sum(len(r) for r in results.values())
    total = 2 * len(networks) * seeds
    first_summary = next((r[0]["summary"] for r in results.values() if r), {})
    resolved = base.resolve()
    return {
        "kind": "reproduction",
        "protocol": protocol.name,
        "description": protocol.description,
        "dataset": base.dataset,
        "data": data_record(first_summary.get("data_source")),
        "subset": base.subset,
        "test_subset": base.test_subset,
        "recipe": protocol.recipe,
        "overridden": [o for o in overridden if o not in ("out", "resume", "force", "progress", "device", "data_dir")],
        "batch_size": resolved.batch_size,
        "seeds": seeds,
        "first_seed": base.seed,
        "rows": rows,
        "complete": done == total,
        "runs_done": done,
        "runs_total": total,
        "train_seconds_total": sum(r["summary"]["train_seconds"] for rs in results.values() for r in rs),
        "wall_seconds": wall_seconds,
        "out": base.out,
        "command": commands[0] if commands else None,
        "resumed_with": [c for c in commands[1:] if c],
        **environment(first_summary.get("device", "cpu"), codes),
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The reproduction as a markdown table, the paper's numbers beside it."""
    seeds = report["seeds"]
    data = report["dataset"] + (f", {report['subset']:,}-image training subset" if report["subset"] else "")
    if report["test_subset"]:
        data += f", tested on {report['test_subset']:,} images"
    epochs = sorted({v["epochs"] for r in report["rows"] for v in (r["plain"], r["se"]) if v["epochs"]})
    lines = [
        f"# Reproduction on {report['dataset']}: the {report['protocol']} protocol",
        "",
        report["description"],
        "",
        f"{data}; recipe `{report['recipe']}`, {'/'.join(map(str, epochs)) or '?'} epochs, {seeds} seed(s) from "
        f"{report['first_seed']}" + (f"; changed from the protocol: {', '.join(report['overridden'])}"
                                       if report["overridden"] else "") + ".",  # fmt: skip
        "",
        data_line(report.get("data")),
    ]
    if not report["complete"]:
        lines += ["", f"**In progress: {report['runs_done']} of {report['runs_total']} runs done.**"]
    spread = " (mean ± sd)" if seeds > 1 else ""
    lines += [
        "",
        f"| network | error % without SE{spread} | error % with SE{spread} | SE gain (points) | gain > spread? "
        "| params without / with SE | paper: error % without -> with SE (gain) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        plain, se = r["plain"], r["se"]
        gain = "—" if r["gain"] is None else f"{r['gain']:+.2f}"
        exceeds = {True: "yes", False: "no", None: "—"}[r["gain_exceeds_spread"]]
        paper = r["paper"]
        paper_text = "—" if paper is None else f"{paper['plain']:.2f} -> {paper['se']:.2f} ({paper['gain']:+.2f})"
        lines.append(
            f"| {r['label']} | {format_error(plain, seeds=seeds)} | {format_error(se, seeds=seeds)} | {gain} | "
            f"{exceeds} | {format_params(plain['params'])} / {format_params(se['params'])} | {paper_text} |"
        )
    lines += [
        "",
        "Error: 100 - top-1 accuracy on the test set after the last epoch. Spread: the standard deviation over "
        "seeds; 'gain > spread' when the gain in mean error exceeds the larger of the two standard deviations "
        "(with one seed there is no spread to compare).",
    ]
    if report["protocol"] == "quick":
        lines += ["", f"For comparison, public CIFAR-10 ResNet-20 reproductions (top-1 accuracy, trained to "
                  f"convergence): {RESNET20_REPRODUCTIONS}."]
    total = format_duration(report["train_seconds_total"])
    lines += [
        "",
        f"Time: {format_duration(report['wall_seconds'] or 0)} from start to end (all sessions), of which {total} "
        "in training passes.",
        f"Machine: {describe_environment(report)}. Runs in `{report['out']}`.",
    ]
    lines += command_lines(report)
    return "\n".join(lines) + "\n"
