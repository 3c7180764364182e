"""Reading a checkpoint's tensors from any file a user is likely to hold, without running its code.

* ``.safetensors``: the tensors, as stored (safetensors holds nothing but tensors).
* ``.pth`` / ``.pt`` / ``.tar`` / ``.bin`` / ``.ckpt`` (``torch.save`` files, zip or legacy format):
  read with ``torch.load(weights_only=True)``, whose unpickler builds only tensors, containers and
  numbers. A pickle that asks for anything else (a class, a function: how a crafted file runs its
  payload) is refused before the payload can run. The state dict is found inside the common
  wrappers: ``{"state_dict": ...}``, ``{"model": ...}``, ``{"model_state_dict": ...}``,
  ``{"state_dict_ema": ...}``, ``{"module": ...}``.
* A senet run directory (or a checkpoint directory inside one): its final weights, else its newest
  checkpoint's; any other folder holding a ``model.safetensors`` (a ``senet retrofit`` output): that file.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

# Where the common training scripts keep the model's weights inside a checkpoint dict, in the order
# they are looked for.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "model_state", "state_dict_ema", "module", "net")


class UnsafeCheckpointError(ValueError):
    """A checkpoint holds pickled objects other than tensors and plain containers; it was not loaded."""


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )


def unwrap_state_dict(obj: Any, where: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """The ``{name: tensor}`` state dict inside a loaded checkpoint object.

    Args:
        obj: What ``torch.load`` returned: a state dict or a dict wrapping one (see ``WRAPPER_KEYS``).
        where: The file's name, for the error message.

    Raises:
        ValueError: If no state dict is found (one line naming the top-level keys that were there).
    """
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if key in obj and _is_state_dict(obj[key]):
                return dict(obj[key])
        # A state dict whose non-tensor entries are metadata (e.g. a version number): keep the tensors.
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors and len(tensors) >= len(obj) - 2:
            return tensors
        shown = ", ".join(map(repr, list(obj)[:6]))
        raise ValueError(
            f"{where} holds no state dict (a mapping of names to tensors); its top-level keys: {shown or 'none'}"
        )
    raise ValueError(f"{where} holds a {type(obj).__name__}, not a state dict (a mapping of names to tensors)")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file or senet run directory, on the CPU, never executing pickled code.

    Args:
        path: A ``.safetensors`` file, a ``torch.save`` file (``.pth``, ``.pt``, ``.tar``, ``.bin``,
            ``.ckpt``, wrapped or not), or a senet run / checkpoint directory.

    Returns:
        ``{key: tensor}`` as stored (keys unconverted).

    Raises:
        FileNotFoundError: If ``path`` does not exist (or a directory holds no senet weights).
        UnsafeCheckpointError: If the pickle asks for anything but tensors and containers.
        ValueError: If the file is empty, truncated, of another format, or holds no state dict.
    """
    from ..train.checkpoint import read_safetensors
    from ..train.run import find_weights

    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        if (path / "model.safetensors").is_file() and not (path / "config.json").is_file():
            return read_safetensors(path / "model.safetensors")  # e.g. a `senet retrofit` output
        return read_safetensors(find_weights(path)[0])
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty")
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or _looks_like_safetensors(head):
        return read_safetensors(path)
    return unwrap_state_dict(_torch_load(path), str(path))


def _looks_like_safetensors(head: bytes) -> bool:
    # A safetensors file starts with the 8-byte little-endian length of its JSON header, then '{'.
    return len(head) > 8 and head[8:9] == b"{"


def _torch_load(path: Path) -> Any:
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says more
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e)
        if "Weights only load failed" in reason:
            lines = [line.strip() for line in reason.splitlines()]
            unsafe = next((line for line in lines if "GLOBAL" in line), None)
            if unsafe:  # the pickle asks for a function or class: how a crafted file runs its payload
                raise UnsafeCheckpointError(
                    f"{path} holds pickled objects other than tensors ({unsafe}); refused without running them. "
                    "If you trust the file, load it yourself and save its state dict as safetensors"
                ) from None
            opcode = next((line for line in lines if line.startswith("Unsupported")), "an unknown layout")
            raise ValueError(
                f"{path} is not a readable PyTorch checkpoint (not written by torch.save, or damaged: {opcode}); "
                "refused without running any of it"
            ) from None
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({_first_line(reason)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint ({_first_line(str(e)) or type(e).__name__}); "
            "is it truncated or of another format?"
        ) from None
    except Exception:  # the unpickler's own errors on bytes that are not a pickle at all
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (not a torch.save or safetensors file); is it truncated "
            "or of another format?"
        ) from None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""
