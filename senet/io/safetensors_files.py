"""Reading safetensors files: their tensors and their header's metadata (nothing in them can run code)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from .errors import one_line


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on the CPU.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If it is not a complete safetensors file (truncated, empty, another format).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error type (and OSError/ValueError) for bad files
        raise ValueError(f"{path} is not a readable safetensors file ({one_line(e)}); is it truncated?") from None


def safetensors_metadata(path: str | os.PathLike) -> dict[str, str] | None:
    """The string metadata in a safetensors file's header (``{}`` when it has none), or ``None`` when
    ``path`` is not a readable safetensors file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception:  # missing, not safetensors, damaged: safetensors raises its own types
        return None


def looks_like_safetensors(head: bytes) -> bool:
    """Whether a file's first bytes are a safetensors header's: the 8-byte little-endian length of its
    JSON header, then '{'."""
    return len(head) > 8 and head[8:9] == b"{"
