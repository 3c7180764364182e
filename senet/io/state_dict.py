"""Reading a checkpoint's tensors from any file or folder a user is likely to hold, without running code.

* ``.safetensors``: the tensors, as stored (safetensors holds nothing but tensors).
* ``.pth`` / ``.pt`` / ``.tar`` / ``.bin`` / ``.ckpt`` (``torch.save`` files, zip or legacy format):
  :func:`~senet.io.pickled.safe_torch_load`, then the state dict inside the common wrappers
  (``{"state_dict": ...}``, ``{"model": ...}``, ... see ``WRAPPER_KEYS``).
* A senet run folder (or a checkpoint folder inside one): its final weights, else its newest
  checkpoint's; any other folder holding a ``model.safetensors`` (a ``senet retrofit`` output): that file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import UnsafeCheckpointError
from .layout import CONFIG_FILE, MODEL_FILE, find_weights
from .pickled import safe_torch_load, unwrap_state_dict
from .safetensors_files import looks_like_safetensors, read_safetensors

_TRUST_ADVICE = "If you trust the file, load it yourself and save its state dict as safetensors"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file or senet run folder, on the CPU, never executing pickled code.

    Args:
        path: A ``.safetensors`` file, a ``torch.save`` file (``.pth``, ``.pt``, ``.tar``, ``.bin``,
            ``.ckpt``, wrapped or not), a senet run / checkpoint folder, or a ``senet retrofit`` output.

    Returns:
        ``{key: tensor}`` as stored (keys unconverted).

    Raises:
        FileNotFoundError: If ``path`` does not exist (or a folder holds no senet weights).
        UnsafeCheckpointError: If the pickle asks for anything but tensors and containers.
        ValueError: If the file is empty, truncated, of another format, or holds no state dict.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        if (path / MODEL_FILE).is_file() and not (path / CONFIG_FILE).is_file():
            return read_safetensors(path / MODEL_FILE)  # e.g. a `senet retrofit` output
        return read_safetensors(find_weights(path)[0])
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty")
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or looks_like_safetensors(head):
        return read_safetensors(path)
    try:
        loaded = safe_torch_load(path)
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(f"{e}. {_TRUST_ADVICE}", wanted=e.wanted) from None
    return unwrap_state_dict(loaded, str(path))
