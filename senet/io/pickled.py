"""Reading ``torch.save`` files without running their code, and finding the state dict inside them.

``torch.load(weights_only=True)``'s unpickler builds only tensors, containers and numbers. A pickle that
asks for anything else (a class, a function: how a crafted file runs its payload) is refused before the
payload can run; :func:`safe_torch_load` turns that refusal, and every way a damaged file fails, into
one line.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .errors import UnsafeCheckpointError, one_line

# Where the common training scripts keep the model's weights inside a checkpoint dict, in the order
# they are looked for.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "model_state", "state_dict_ema", "module", "net")

_GLOBAL = re.compile(r"GLOBAL (\S+)")


def safe_torch_load(path: str | os.PathLike, *, allowed_globals: Sequence[Any] = ()) -> Any:
    """What a ``torch.save`` file holds, read on the CPU with ``torch.load(weights_only=True)``.

    Args:
        path: The file.
        allowed_globals: Further globals the unpickler may build, for this one load (entries as
            ``torch.serialization.safe_globals`` takes them; ignored by a torch older than 2.5, which then
            refuses them as unsafe).

    Returns:
        The loaded object (tensors, containers, numbers, strings).

    Raises:
        UnsafeCheckpointError: If the pickle asks for a function or a class (its ``wanted`` names it);
            nothing of it ran.
        ValueError: If the file is not a ``torch.save`` file or is damaged (one line).
    """
    path = Path(path)
    allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    scope = allow(list(allowed_globals)) if allow is not None and allowed_globals else contextlib.nullcontext()
    try:
        with scope, warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says more
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = _GLOBAL.search(str(e))
        if found:  # the pickle asks for a function or a class: how a crafted file runs its payload
            raise UnsafeCheckpointError(
                f"{path} holds pickled objects other than tensors and plain values (it asks for {found.group(1)}); "
                "refused without running them",
                wanted=found.group(1),
            ) from None
        if "Weights only load failed" in str(e):
            lines = [line.strip() for line in str(e).splitlines()]
            opcode = next((line for line in lines if line.startswith("Unsupported")), "an unknown layout")
            raise ValueError(
                f"{path} is not a readable PyTorch checkpoint (not written by torch.save, or damaged: {opcode}); "
                "refused without running any of it"
            ) from None
        raise ValueError(_unreadable(path, e)) from None
    except Exception as e:  # a truncated or foreign file fails in many ways; all mean the same to the user
        raise ValueError(_unreadable(path, e)) from None


def _unreadable(path: Path, error: BaseException) -> str:
    return f"{path} is not a readable PyTorch checkpoint ({one_line(error)}); is it truncated or of another format?"


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
