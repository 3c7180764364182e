"""A finished run's results, read back from its folder (what ``fit`` returned when it finished)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..io import METRICS_FILE, MODEL_FILE, SUMMARY_FILE


def finished_run_record(out: str | Path) -> dict[str, Any] | None:
    """The summary and metric history of the finished run in ``out``, or ``None`` when it has not finished.

    A run has finished once it has written its final weights and then its summary (in that order, by
    ``fit``); a run stopped before either is unfinished.

    Returns:
        ``{'summary': ..., 'history': [...]}``, as ``fit``'s result holds them, or ``None``.
    """
    run = Path(out)
    if not (run / MODEL_FILE).is_file():
        return None
    try:
        summary = json.loads((run / SUMMARY_FILE).read_text())
        history = [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    return {"summary": summary, "history": history}


