"""Progress bars and metric logs (JSON lines, and TensorBoard when it is installed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..io import atomic_write_text


class ProgressBar:
    """A tqdm bar showing loss, accuracy and images per second; silent when disabled.

    Args:
        total: Number of steps.
        description: The bar's label.
        enabled: Draw it (only the main process does).
    """

    def __init__(self, total: int, description: str, *, enabled: bool = True) -> None:
        self._bar = None
        self._done = 0
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=description, unit="batch", leave=False, dynamic_ncols=True)

    def update(self, step: int, metrics: dict[str, float]) -> None:
        """Moves the bar to ``step`` and shows ``metrics``."""
        if self._bar is None:
            return
        self._bar.update(step - self._done)
        self._done = step
        self._bar.set_postfix(
            loss=f"{metrics['loss']:.3f}", acc=f"{metrics['acc']:.3f}", img_s=f"{metrics['img/s']:.0f}", refresh=False
        )

    def close(self) -> None:
        """Removes the bar."""
        if self._bar is not None:
            self._bar.close()


class MetricsLogger:
    """Appends one JSON object per epoch to ``path`` and mirrors scalars to TensorBoard if available.

    Args:
        path: The JSON-lines file.
        enabled: Write anything at all (only the main process does).
        tensorboard_dir: Where TensorBoard event files go (used only when tensorboard is installed).
    """

    def __init__(self, path: Path, *, enabled: bool = True, tensorboard_dir: Path | None = None) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(tensorboard_dir))
            except Exception:  # tensorboard is optional
                self._tb = None

    def log(self, record: dict[str, Any]) -> None:
        """Writes one epoch's record (with an 'epoch' key)."""
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self._tb.add_scalar(key, value, record["epoch"])

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replaces the file by ``records`` (on resume: drops epochs logged after the last checkpoint)."""
        if self.enabled:
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))

    def close(self) -> None:
        """Flushes TensorBoard."""
        if self._tb is not None:
            self._tb.close()
