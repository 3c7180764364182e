"""Writing an analysis: ``excitations.json``, the figures and ``summary.md``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_text, check_output_folder
from .blocks import default_blocks
from .figures import class_means_figure, distributions_figure, save_png
from .measures import BlockMeasures, measure_block
from .stats import Excitations

# Per-class means go into excitations.json up to this many values (K x total channels); beyond (ImageNet's
# 1000 classes), into class_means.npz beside it, which excitations.json names.
JSON_CLASS_MEANS_LIMIT = 2_000_000
FILES = ("excitations.json", "class_means.npz", "fig6_class_means.png", "fig7_distributions.png", "summary.md")


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def summary_markdown(stats: Excitations, measures: Sequence[BlockMeasures], about: dict[str, Any]) -> str:
    """``summary.md``: what was analysed, the class specificity per block in forward order, and its definition."""
    lines = ["# Excitation analysis", ""]
    lines += [f"- {key.replace('_', ' ')}: {', '.join(map(str, value)) if isinstance(value, (list, tuple)) else value}"
              for key, value in about.items()]  # fmt: skip
    lines += [f"- images: {stats.images:,} of {len(stats.classes)} classes", ""]
    lines += [
        "| block | channels | mean gate | class spread | channel spread | within-class spread | class specificity "
        "| saturated high | saturated low |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measures:
        lines.append(
            f"| {m.label} | {m.channels} | {_number(m.mean_gate)} | {_number(m.class_spread, 4)} | "
            f"{_number(m.channel_spread, 4)} | {_number(m.within_class_spread, 4)} | {_number(m.class_specificity)} | "
            f"{_share(m.saturated_high)} | {_share(m.saturated_low)} |"
        )
    first = next(iter(stats.blocks.values()))
    lines += [
        "",
        "## How to read it",
        "",
        "With m_kc the mean gate of channel c over the images of class k, and m_c its mean over classes:",
        "",
        "- **class spread** sqrt(B): B = mean over channels of the variance of m_kc over classes, less the part "
        "that sampling noise explains (the within-class variance over the images per class);",
        "- **channel spread** sqrt(S): S = variance over channels of m_c (how far the all-class curve is from flat);",
        "- **class specificity** B / (B + S), in [0, 1]: 0 when all classes share one gate profile "
        "(class-agnostic), towards 1 when the classes differ more than the channels do;",
        "- **within-class spread**: how much the gates of images of the same class differ (root mean variance);",
        f"- **saturated**: share of all gate values within {100 * first.saturation:g}% of either end of the gate's "
        f"range ({first.value_range[0]:g} to {first.value_range[1]:g} for {first.label}).",
        "",
        "Hu et al. (arXiv:1709.01507, Fig. 6) find early blocks class-agnostic, later blocks class-specific, and "
        "the last blocks saturated near 1 (close to the identity).",
        "",
    ]
    return "\n".join(lines)


def excitations_json(stats: Excitations, about: dict[str, Any], *, class_means_file: str | None) -> dict[str, Any]:
    """The content of ``excitations.json`` (per-class means inline unless ``class_means_file`` holds them)."""
    blocks = {
        label: b.to_dict(measures=measure_block(b).to_dict(), class_means=class_means_file is None)
        for label, b in stats.blocks.items()
    }
    if class_means_file is not None:
        for entry in blocks.values():
            entry["class_means"] = class_means_file
    return {"about": about, "classes": list(stats.classes), "blocks": blocks}


def check_out(out: str | os.PathLike, *, force: bool) -> Path:
    """Refuses an existing non-empty ``out`` unless ``force``; nothing is written here.

    Raises:
        FileExistsError: If ``out`` is a file, or a non-empty folder without ``force``.
    """
    replaced = "to write into it (files of the same name are replaced)"
    return check_output_folder(out, force, label="--out ", force_does=replaced)


def write_analysis(
    stats: Excitations,
    out: str | os.PathLike,
    *,
    blocks: Sequence[str] | None = None,
    draw: int | Sequence[int | str] = 4,
    about: dict[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Path]:
    """Writes ``excitations.json``, ``fig6_class_means.png``, ``fig7_distributions.png`` and ``summary.md``.

    Args:
        stats: The recording.
        out: The folder (made if needed).
        blocks: The blocks of the Fig. 6 panels (default: ``default_blocks``).
        draw: The classes drawn in Fig. 6 (a number, or indices / names).
        about: What was analysed (model, weights, data), for the JSON and the summary.
        force: Write into a non-empty ``out``.

    Returns:
        ``{file name: path}`` of what was written.

    Raises:
        FileExistsError: If ``out`` is not empty and ``force`` is not set.
    """
    out = check_out(out, force=force)
    about = dict(about or {})
    chosen = list(blocks) if blocks is not None else default_blocks(list(stats.blocks))
    measures = [measure_block(b) for b in stats.blocks.values()]
    fig6 = class_means_figure(stats, chosen, draw=draw)
    fig7 = distributions_figure(stats)
    size = len(stats.classes) * sum(b.channels for b in stats.blocks.values())
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    apart = "class_means.npz" if size > JSON_CLASS_MEANS_LIMIT else None
    if apart is not None:
        written[apart] = out / apart
        np.savez_compressed(written[apart], **{k: b.class_means for k, b in stats.blocks.items()})
    about["figure_blocks"] = chosen
    content = excitations_json(stats, about, class_means_file=apart)
    written["excitations.json"] = out / "excitations.json"
    atomic_write_text(written["excitations.json"], json.dumps(content, allow_nan=False))
    for name, fig in (("fig6_class_means.png", fig6), ("fig7_distributions.png", fig7)):
        written[name] = out / name
        save_png(fig, written[name])
    written["summary.md"] = out / "summary.md"
    atomic_write_text(written["summary.md"], summary_markdown(stats, measures, about))
    return written
