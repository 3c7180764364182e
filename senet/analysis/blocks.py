"""Which blocks to draw: the paper's choice by default, the user's validated against the model's labels."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .._validation import did_you_mean

_LABEL = re.compile(r"SE_(\d+)_(\d+)")


def default_blocks(labels: Sequence[str], *, last_stage_blocks: int = 3) -> list[str]:
    """A spread across the network, as in the paper's Fig. 6.

    The last block of every stage but the last, then the first and the last ``last_stage_blocks - 1``
    blocks of the last stage. For SE-ResNet-50 this is the paper's SE_2_3, SE_3_4, SE_4_6, SE_5_1, SE_5_2,
    SE_5_3; for SE-CIFAR-ResNet-20, SE_2_3, SE_3_3, SE_4_1, SE_4_2, SE_4_3. Labels that are not
    ``SE_<stage>_<block>`` give the first, middle and last block.

    Args:
        labels: The model's attention labels in forward order.
        last_stage_blocks: How many blocks of the last stage to show (the first and the last ones).

    Returns:
        The chosen labels, in forward order.
    """
    parsed = [_LABEL.fullmatch(label) for label in labels]
    if not labels:
        return []
    if not all(parsed):
        picks = {0, len(labels) // 2, len(labels) - 1}
        return [labels[i] for i in sorted(picks)]
    stages: dict[int, list[str]] = {}
    for label, match in zip(labels, parsed, strict=True):
        stages.setdefault(int(match.group(1)), []).append(label)
    *earlier, last = stages.values()
    tail = last[-(last_stage_blocks - 1) :] if last_stage_blocks > 1 else []
    chosen = {stage[-1] for stage in earlier} | {last[0], *tail}
    return [label for label in labels if label in chosen]


def check_blocks(blocks: Sequence[str] | str, labels: Sequence[str]) -> list[str]:
    """Validates block names against the model's labels.

    Args:
        blocks: Labels, or one comma-separated string ('SE_2_3,SE_5_2'); case-insensitive.
        labels: The model's attention labels in forward order.

    Returns:
        The chosen labels without repeats, in forward order.

    Raises:
        ValueError: (one line) On an empty choice or an unknown label, with close matches.
    """
    names = [b.strip() for b in (blocks.split(",") if isinstance(blocks, str) else blocks)]
    names = [b for b in names if b]
    if not names:
        raise ValueError("no block chosen: name attention blocks such as " + ", ".join(labels[:3]))
    by_key = {label.lower(): label for label in labels}
    chosen = set()
    for name in names:
        if name.lower() not in by_key:
            shown = f"{', '.join(labels[:4])} ... {labels[-1]}" if len(labels) > 5 else ", ".join(labels)
            raise ValueError(
                f"unknown block {name!r}{did_you_mean(name.upper(), labels, n=4)} (the model's attention blocks: "
                f"{shown})"
            )
        chosen.add(by_key[name.lower()])
    return [label for label in labels if label in chosen]
