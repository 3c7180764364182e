"""Suite ``compile``: the ``network`` suite under ``torch.compile`` (mode 'default').

For SE-ResNet-50 and ResNet-50 (channels_last): the time of the first compiled call (compilation
included) for inference and for the training step, the graphs and graph breaks Dynamo made
(``torch._dynamo.utils.counters``, read during those real compilations), then steady-state timings
of the compiled and the eager models, interleaved, and the SE/plain ratios. Peak memory of the
compiled step is measured on CUDA only (``max_memory_allocated``): compiled CPU kernels allocate
without the dispatcher, which the CPU tracker relies on.

Compile times depend on Inductor's on-disk caches; the cache hits and misses are recorded beside them,
and ``--cold-compile`` disables the caches.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import torch

from ..utils.timing import sync
from .harness import Comparison
from .memory import measure_step_memory
from .network import (
    MEMORY_COLUMNS,
    MODELS,
    build,
    inputs,
    memory_row,
    settings,
    sgd,
    time_inference,
    time_training,
    training_step,
)
from .report import fmt_ms, fmt_ratio
from .result import Check, SuiteResult, Table
from .runner import BenchOptions

_COUNTERS = {  # counters group -> keys worth keeping
    "stats": ("unique_graphs", "calls_captured"),
    "frames": ("total", "ok"),
    "inductor": ("fxgraph_cache_hit", "fxgraph_cache_miss", "fxgraph_cache_bypass"),
    "aot_autograd": ("autograd_cache_hit", "autograd_cache_miss", "autograd_cache_bypass"),
}


def _dynamo_counters() -> dict[str, Any]:
    from torch._dynamo.utils import counters

    out: dict[str, Any] = {f"{group}.{key}": counters[group][key] for group, keys in _COUNTERS.items()
                           for key in keys if counters[group][key]}  # fmt: skip
    breaks = Counter({str(reason): n for reason, n in counters["graph_break"].items()})
    out["graph_breaks"] = sum(breaks.values())
    out["graph_break_reasons"] = dict(breaks.most_common(10))
    return out


def _compile_model(name: str, model: torch.nn.Module, x1: torch.Tensor, x8: torch.Tensor, y8: torch.Tensor,
                   device: torch.device) -> dict[str, Any]:  # fmt: skip
    """Compiles ``model`` for inference and for training; returns the compiled module, its step and records."""
    from torch._dynamo.utils import counters

    counters.clear()
    compiled = torch.compile(model)
    model.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(x1)
    sync(device)
    inference_s = time.perf_counter() - start
    inference_counters = _dynamo_counters()
    counters.clear()
    model.train()
    optimizer = sgd(model)
    step = training_step(compiled, optimizer, x8, y8)
    start = time.perf_counter()
    step()
    sync(device)
    training_s = time.perf_counter() - start
    return {
        "compiled": compiled, "optimizer": optimizer, "step": step,
        "record": {"inference_first_call_seconds": inference_s, "training_first_step_seconds": training_s,
                   "inference_dynamo": inference_counters, "training_dynamo": _dynamo_counters()},
    }  # fmt: skip


def run(options: BenchOptions) -> SuiteResult:
    """Runs the suite as ``options`` say (device, quick, repeats, seed, cold_compile)."""
    import torch._dynamo
    import torch._inductor.config as inductor_config

    device = torch.device(options.device)
    cfg = settings(options)
    cfg["training_repeats"] = options.rounds(full=3, quick=2)  # a compiled CPU training step can take seconds
    cfg["inference_repeats"] = options.rounds(full=7, quick=2)
    suite = SuiteResult(
        "compile",
        "torch.compile (mode 'default') of SE-ResNet-50 and ResNet-50: compile time, graph breaks, steady-state "
        "SE/plain ratios, compiled/eager speed-ups.",
        config={**cfg, "models": list(MODELS), "compile_mode": "default", "cold_compile": options.cold_compile,
                "device": str(device), "threads": torch.get_num_threads()},  # fmt: skip
    )
    size = cfg["image_size"]
    x1, _ = inputs(cfg["inference_batch"], size, device, options.seed)
    x8, y8 = inputs(cfg["training_batch"], size, device, options.seed)
    caches_were_disabled = inductor_config.force_disable_caches
    inductor_config.force_disable_caches = options.cold_compile or caches_were_disabled
    torch._dynamo.reset()
    try:
        models = {name: build(name, device, options.seed) for name in MODELS}
        runs = {name: _compile_model(name, m, x1, x8, y8, device) for name, m in models.items()}
        contenders_infer = {f"{name} compiled": r["compiled"] for name, r in runs.items()}
        contenders_infer.update({f"{name} eager": models[name] for name in MODELS})
        inference = time_inference(contenders_infer, x1, repeats=cfg["inference_repeats"],
                                   min_time=cfg["inference_min_sample_seconds"])  # fmt: skip
        for m in models.values():
            m.train()
        steps = {f"{name} compiled": r["step"] for name, r in runs.items()}
        # The eager steps use their own optimizer over the same parameters (shared weights, separate momentum).
        steps.update({f"{name} eager": training_step(models[name], sgd(models[name]), x8, y8) for name in MODELS})
        training = time_training(steps, repeats=cfg["training_repeats"], device=device)
        peaks = None
        if device.type == "cuda":
            peaks = {name: measure_step_memory(training_step(r["compiled"], r["optimizer"], x8, y8, zero_grad=False),
                                               models[name], r["optimizer"], device=device, track=False)
                     for name, r in runs.items()}  # fmt: skip
    finally:
        inductor_config.force_disable_caches = caches_were_disabled
        torch._dynamo.reset()
    _report(suite, cfg, runs, inference, training, peaks)
    return suite


def _report(suite: SuiteResult, cfg: dict[str, Any], runs: dict[str, dict], inference: Comparison,
            training: Comparison, peaks: dict | None) -> None:  # fmt: skip
    se, plain = MODELS
    records = {name: r["record"] for name, r in runs.items()}
    compile_table = Table(
        "First compiled call (compilation included) and Dynamo's graphs",
        ["model", "inference (s)", "training step (s)", "graphs (inference / training)",
         "graph breaks (inference / training)", "Inductor cache hits / misses"],
    )  # fmt: skip
    for name, rec in records.items():
        inf, tr = rec["inference_dynamo"], rec["training_dynamo"]
        hits = sum(d.get("inductor.fxgraph_cache_hit", 0) for d in (inf, tr))
        misses = sum(d.get("inductor.fxgraph_cache_miss", 0) for d in (inf, tr))
        compile_table.rows.append([
            name, f"{rec['inference_first_call_seconds']:.1f}", f"{rec['training_first_step_seconds']:.1f}",
            f"{inf.get('stats.unique_graphs', 0)} / {tr.get('stats.unique_graphs', 0)}",
            f"{inf['graph_breaks']} / {tr['graph_breaks']}", f"{hits} / {misses}",
        ])  # fmt: skip
    rows = []
    for label, comp in ((f"inference, batch {cfg['inference_batch']}, {cfg['image_size']} px", inference),
                        (f"training step, batch {cfg['training_batch']}", training)):  # fmt: skip
        rows.append([
            label, fmt_ms(comp.stats(f"{se} compiled")), fmt_ms(comp.stats(f"{plain} compiled")),
            fmt_ratio(comp.ratio(f"{se} compiled", f"{plain} compiled")),
            fmt_ratio(comp.ratio(f"{se} eager", f"{se} compiled")),
            fmt_ratio(comp.ratio(f"{plain} eager", f"{plain} compiled")),
        ])  # fmt: skip
    steady = Table(
        "Compiled, steady state (ms, median)",
        ["measurement", "SE-ResNet-50", "ResNet-50", "SE/plain", "SE eager/compiled", "plain eager/compiled"], rows,
        note="eager/compiled > 1: compiling made it faster.",
    )
    suite.tables += [compile_table, steady]
    if peaks is not None:
        suite.tables.append(Table(f"Compiled, peak memory of one training step, batch {cfg['training_batch']}",
                                  MEMORY_COLUMNS, [memory_row("compiled", peaks)],
                                  note="Measured by torch.cuda.max_memory_allocated."))  # fmt: skip
    else:
        suite.notes.append("Peak memory of compiled code is measured on CUDA only (compiled CPU kernels allocate "
                           "outside the dispatcher).")  # fmt: skip
    infer_ratio = inference.ratio(f"{se} compiled", f"{plain} compiled")
    train_ratio = training.ratio(f"{se} compiled", f"{plain} compiled")
    suite.data = {
        "compile": records,
        "inference": inference.to_dict(),
        "training": training.to_dict(),
        "memory_bytes": None if peaks is None else {n: p.to_dict() for n, p in peaks.items()},
        "ratios": {"inference_se_over_plain": infer_ratio.to_dict(), "training_se_over_plain": train_ratio.to_dict()},
    }
    suite.checks += [
        Check("compiled inference SE-ResNet-50/ResNet-50", infer_ratio.value, "<=", 1.03),
        Check("compiled training step SE-ResNet-50/ResNet-50", train_ratio.value, "<=", 1.05),
    ]
    if peaks is not None:
        suite.checks.append(Check("compiled peak training memory SE-ResNet-50/ResNet-50 (total)",
                                  peaks[se].total / peaks[plain].total, "<=", 1.05))  # fmt: skip
    breaks = {name: rec["training_dynamo"]["graph_breaks"] + rec["inference_dynamo"]["graph_breaks"]
              for name, rec in records.items()}  # fmt: skip
    suite.checks.append(Check("graph breaks in SE-ResNet-50 (inference + training)", breaks[se], "<=", 0))
