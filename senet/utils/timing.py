"""Timing helpers shared by training, experiments and benchmarks: waiting for a device's queued work,
and writing a duration for people."""

from __future__ import annotations

import torch


def sync(device: torch.device) -> None:
    """Waits for ``device``'s queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def format_duration(seconds: float) -> str:
    """'45 s', '12.5 min' or '3.2 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 3600:,.0f} h ({seconds / 86400:,.0f} days)"
