"""Whether a checkpoint file says it was written by this library, and with which model config.

The keys of our ResNets are the modern public naming's (timm, torchvision), but every public file of that
naming is the "v1.5" network (stride on the 3x3), while ours default to the paper's layout. The keys
cannot tell the two apart, so a file is taken as ours only when it says so. Everything senet writes does:

* ``senet train``: ``RUN/model.safetensors`` with ``{"model": name}`` in its metadata and
  ``RUN/config.json`` beside it; the epoch checkpoints ``RUN/checkpoints/epoch_N/model.safetensors``
  under the run's ``config.json``; a run directory itself.
* ``senet convert``: ``{"senet_model": name, "naming": ..., "model_options": {...}}`` in the metadata.
* ``senet retrofit``: its record (``senet_retrofit``: model, options, ...) in the metadata.
* ``SENET_CONFIG`` (``{"model", "naming", "model_options"}``): the record for any other writer.

A bare file (a ``.pth``, a safetensors file without these) is a publisher's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..convert import OURS

SENET_CONFIG = "senet_config"
_RETROFIT = "senet_retrofit"


@dataclass(frozen=True)
class SenetRecord:
    """What a file written by this library says about itself.

    Attributes:
        naming: The naming of its keys (``'ours'`` unless ``senet convert`` wrote a public naming).
        model: The registered model, where the file says.
        model_options: The ``create_model`` options its network was built with (``None``: not recorded,
            the model's defaults or those of the run that wrote it).
    """

    naming: str = OURS
    model: str | None = None
    model_options: dict[str, Any] | None = field(default=None)


def senet_record(path: str | os.PathLike) -> SenetRecord | None:
    """The record of a file or folder this library wrote; ``None`` for anything else (a bare file).

    Args:
        path: A checkpoint file or a senet run / checkpoint / retrofit directory.
    """
    path = Path(path)
    if path.is_dir():  # read_state_dict reads only senet's own folders (a run, a retrofit output)
        file = path / "model.safetensors"
        record = _from_metadata(_metadata(file)) if file.is_file() else None
        return record or SenetRecord(model=_run_model(path))
    if not path.is_file():
        return None
    record = _from_metadata(_metadata(path))
    if record is not None:
        return record
    if path.name == "model.safetensors":
        for run in (path.parent, path.parent.parent.parent):  # RUN/ or RUN/checkpoints/epoch_N/
            model = _run_model(run)
            if model is not None:
                return SenetRecord(model=model)
    return None


def _metadata(path: Path) -> dict[str, str]:
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size <= 100_000_000:
                return {}
            header = json.loads(f.read(size))
    except (OSError, ValueError):  # not a safetensors file: it says nothing
        return {}
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _from_metadata(metadata: dict[str, str]) -> SenetRecord | None:
    try:
        if SENET_CONFIG in metadata:
            record = json.loads(metadata[SENET_CONFIG])
            return SenetRecord(record.get("naming", OURS), record.get("model"), record.get("model_options"))
        if "senet_model" in metadata:  # senet convert
            options = json.loads(metadata["model_options"]) if "model_options" in metadata else None
            return SenetRecord(metadata.get("naming", OURS), metadata["senet_model"], options)
        if _RETROFIT in metadata:
            record = json.loads(metadata[_RETROFIT])
            return SenetRecord(OURS, record.get("model"), record.get("model_options"))
    except (ValueError, AttributeError):  # a record that is not JSON: not one of ours
        return None
    if "model" in metadata:  # senet train's final weights
        return SenetRecord(OURS, metadata["model"])
    return None


def _run_model(run: Path) -> str | None:
    try:
        config = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return None
    model = config.get("model") if isinstance(config, dict) else None
    return model if isinstance(model, str) else None
