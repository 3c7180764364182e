"""Figures in the style of the paper: mean gate per channel by class (Fig. 6), gate distributions per block.

Figures are built on ``matplotlib.figure.Figure`` directly (the Agg canvas, no ``pyplot``): no global
state, no display needed, safe in threads and in tests. Each function returns the ``Figure``;
``save_png`` writes it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .._validation import did_you_mean
from .measures import measure_block
from .stats import Excitations

_ALL = "all"


def class_indices(classes: Sequence[str], chosen: Sequence[int | str]) -> list[int]:
    """The label indices of classes named or numbered in ``chosen``, without repeats.

    Raises:
        ValueError: (one line) On an unknown name or an index out of range, with close matches.
    """
    indices = []
    for item in chosen:
        if isinstance(item, str) and item in classes:
            item = classes.index(item)
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item < len(classes):
            hint = did_you_mean(str(item), classes, n=3) if isinstance(item, str) else ""
            raise ValueError(f"unknown class {item!r}{hint} (classes: names, or indices 0..{len(classes) - 1})")
        indices.append(item)
    return list(dict.fromkeys(indices))


def pick_classes(stats: Excitations, draw: int | Sequence[int | str] = 4) -> list[int]:
    """The classes to draw: ``draw`` of them spread evenly over the label order, or the ones named.

    Args:
        stats: The recording.
        draw: A number of classes, or class indices / names.

    Returns:
        Class indices with at least one image recorded.

    Raises:
        ValueError: On an unknown class name or index.
    """
    first = next(iter(stats.blocks.values()), None)
    seen = [k for k in range(len(stats.classes)) if first is not None and first.class_count[k] > 0]
    if not isinstance(draw, int):
        return [k for k in class_indices(stats.classes, draw) if k in seen]
    if draw <= 0 or not seen:
        return []
    if draw == 1 or draw >= len(seen):
        return seen[:draw]
    return [seen[round(i * (len(seen) - 1) / (draw - 1))] for i in range(draw)]


def _grid(panels: int, columns: int) -> tuple[int, int]:
    columns = max(1, min(columns, panels))
    return math.ceil(panels / columns), columns


def class_means_figure(
    stats: Excitations, blocks: Sequence[str], *, draw: int | Sequence[int | str] = 4, columns: int = 3
) -> Figure:
    """Fig. 6 of the paper: per chosen block, the mean gate of every channel for a few classes and for all.

    Args:
        stats: The recording.
        blocks: The blocks to draw, one panel each.
        draw: The classes to draw (see ``pick_classes``); the "all" curve (every image) is always drawn.
        columns: Panels per row.

    Returns:
        The figure: one axes per block, in the order given.

    Raises:
        ValueError: If no block is given or one was not recorded.
    """
    missing = [b for b in blocks if b not in stats.blocks]
    if not blocks or missing:
        raise ValueError(f"blocks not recorded: {', '.join(missing)}" if missing else "no block to draw")
    classes = pick_classes(stats, draw)
    rows, cols = _grid(len(blocks), columns)
    fig = Figure(figsize=(4.2 * cols, 2.9 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    colours = [f"C{i % 10}" for i in range(len(classes))]
    for ax, label in zip(axes, blocks, strict=False):
        block = stats.blocks[label]
        x = np.arange(block.channels)
        means = block.class_means
        for k, colour in zip(classes, colours, strict=True):
            ax.plot(x, means[k], color=colour, linewidth=0.8, label=stats.classes[k])
        ax.plot(x, block.mean, color="black", linewidth=1.2, label=_ALL)
        specificity = measure_block(block).class_specificity
        title = label if specificity is None else f"{label}  (class specificity {specificity:.2f})"
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, max(block.channels - 1, 1))
        ax.set_ylim(*block.value_range)
        ax.set_xlabel("channel index", fontsize=8)
        ax.set_ylabel("mean activation", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(blocks) :]:
        fig.delaxes(ax)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 6), fontsize=8, frameon=False)
    images = next(iter(stats.blocks.values())).images
    fig.suptitle(f"Mean excitation per channel ({images:,} images, {len(stats.classes)} classes)", fontsize=11)
    return fig


def distributions_figure(stats: Excitations, blocks: Sequence[str] | None = None, *, columns: int = 6) -> Figure:
    """Per block, the distribution of all its gate values (images x channels), in forward order.

    Args:
        stats: The recording.
        blocks: The blocks to draw; ``None``: every recorded block.
        columns: Panels per row.

    Returns:
        The figure: one axes per block.
    """
    labels = list(stats.blocks) if blocks is None else list(blocks)
    if not labels:
        raise ValueError("no block to draw")
    rows, cols = _grid(len(labels), columns)
    fig = Figure(figsize=(2.4 * cols, 1.9 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    for ax, label in zip(axes, labels, strict=False):
        block = stats.blocks[label]
        edges = block.bin_edges
        share = block.histogram / max(block.values, 1)
        ax.stairs(share, edges, fill=True, color="C0", alpha=0.8)
        measures = measure_block(block)
        ax.set_title(label, fontsize=9)
        if measures.mean_gate is not None:
            ax.axvline(measures.mean_gate, color="black", linewidth=0.8)
            ax.text(0.02, 0.95, f"mean {measures.mean_gate:.2f}\nsat. {measures.saturated_high:.0%} high",
                    transform=ax.transAxes, fontsize=6, va="top")  # fmt: skip
        ax.set_xlim(*block.value_range)
        ax.tick_params(labelsize=6)
    for ax in axes[len(labels) :]:
        fig.delaxes(ax)
    fig.supxlabel("gate value", fontsize=9)
    fig.supylabel("share of values", fontsize=9)
    fig.suptitle("Distribution of the excitation per block", fontsize=11)
    return fig


def save_png(fig: Figure, path: str | os.PathLike, *, dpi: int = 120) -> None:
    """Writes ``fig`` as a PNG file."""
    fig.savefig(path, format="png", dpi=dpi)
