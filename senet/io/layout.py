"""The layout of a senet run folder, and finding the weights and checkpoints in one.

::

    run/
      config.json                          the full run configuration (CONFIG_FILE)
      metrics.jsonl                        one line per epoch (METRICS_FILE)
      checkpoints/epoch_0003/              the end of epoch 3: model.safetensors, state.pt, meta.json
      checkpoints/epoch_0003_step_000120/  120 steps into epoch 4 (``--save-every``): the same three files
      checkpoints/LATEST                   the name of the newest complete checkpoint
      model.safetensors                    the final weights (MODEL_FILE)
      summary.json                         written last: the run has finished (SUMMARY_FILE)

Checkpoint names sort in training order (``epoch_0003`` < ``epoch_0003_step_000120`` < ``epoch_0004``);
a name starting with a dot is a checkpoint being written or deleted, never listed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "LATEST"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
CHECKPOINT_FILES = (MODEL_FILE, STATE_FILE, META_FILE)  # what a complete checkpoint folder holds
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, MODEL_FILE, CHECKPOINTS_DIR, "tensorboard")  # a run's own


def holds_run(out: Path) -> bool:
    """Whether ``out`` holds (part of) a training run."""
    return any((out / name).exists() for name in RUN_FILES)

_NAME = re.compile(r"epoch_(\d{4,})(?:_step_(\d{6,}))?")


def checkpoint_name(epoch: int, step: int = 0) -> str:
    """The folder name of the checkpoint after ``epoch`` completed epochs and ``step`` more steps:
    ``epoch_0003`` (an epoch's end) or ``epoch_0003_step_000120`` (120 steps into epoch 4); names sort in
    training order."""
    return f"epoch_{epoch:04d}" if step == 0 else f"epoch_{epoch:04d}_step_{step:06d}"


def checkpoint_position(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(completed epochs, steps into the next epoch)`` of a checkpoint folder's name, or ``None``
    when the name is not a checkpoint's (a temporary folder, LATEST, anything else)."""
    found = _NAME.fullmatch(Path(path).name)
    return (int(found.group(1)), int(found.group(2) or 0)) if found else None


def is_complete(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a visible checkpoint folder holding all of its files."""
    path = Path(path)
    return checkpoint_position(path) is not None and all((path / f).is_file() for f in CHECKPOINT_FILES)


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The complete checkpoints of ``run_dir``, oldest first (temporary folders are not listed)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and is_complete(p)]
    return sorted(found, key=checkpoint_position)  # type: ignore[arg-type,return-value]


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint of ``run_dir`` (the one LATEST names; if LATEST is missing or names
    no complete checkpoint, the last complete one in training order), or ``None`` when there is none."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    try:
        name = (root / LATEST_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if name and is_complete(root / name):
        return root / name
    complete = list_checkpoints(run_dir)
    return complete[-1] if complete else None


def find_weights(path: str | os.PathLike) -> tuple[Path, Path]:
    """Finds the weights and the run folder of ``path``: a run folder, one of its checkpoints, or the
    weights file of either.

    Returns:
        ``(weights file, run folder)``: a run's final weights, else its newest complete checkpoint's.

    Raises:
        FileNotFoundError: If ``path`` holds neither final weights nor a checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_file():  # RUN/model.safetensors or RUN/checkpoints/epoch_NNNN/model.safetensors
        for run_dir in (path.parent, path.parent.parent.parent):
            if (run_dir / CONFIG_FILE).is_file():
                return path, run_dir
        raise FileNotFoundError(
            f"{path} is not inside a senet run (no {CONFIG_FILE} beside it or above its checkpoint)"
        )
    if (path / MODEL_FILE).is_file() and (path / CONFIG_FILE).is_file():
        return path / MODEL_FILE, path
    if (path / MODEL_FILE).is_file() and (path.parent.parent / CONFIG_FILE).is_file():
        return path / MODEL_FILE, path.parent.parent  # run/checkpoints/epoch_NNNN
    ckpt = latest_checkpoint(path)
    if ckpt is not None:
        return ckpt / MODEL_FILE, path
    raise FileNotFoundError(
        f"{path} holds no senet weights ({MODEL_FILE} + {CONFIG_FILE}, or {CHECKPOINTS_DIR}/)"
    )
