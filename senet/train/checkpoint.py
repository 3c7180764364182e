"""Checkpoints: weights as safetensors, the rest (optimiser, scheduler, RNG, epoch) beside them.

Layout of a run directory::

    run/
      config.json                 the full run configuration
      checkpoints/epoch_0003/     one complete checkpoint: model.safetensors, state.pt, meta.json
      checkpoints/LATEST          the name of the newest complete checkpoint
      model.safetensors           the final weights

A checkpoint is written into a temporary directory and renamed into place, and only then is LATEST
replaced (write-then-``os.replace``), so a crash at any moment leaves the previous checkpoint intact
and LATEST pointing at a complete one.

Nothing read back can run code: the weights are safetensors, and ``state.pt`` holds tensors and plain
Python values only, read with ``torch.load(weights_only=True)``; a crafted ``state.pt`` is refused
before its payload runs (:func:`read_state`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

LATEST = "LATEST"


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and ``os.replace`` (atomic on POSIX)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unwrap(model: nn.Module) -> nn.Module:
    """Returns the plain model inside DDP and ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's ``state_dict`` as contiguous CPU tensors (safetensors needs unshared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in unwrap(model).state_dict().items()}


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Saves the model's weights as safetensors, atomically."""
    atomic_save_tensors(unwrap(model).state_dict(), path, metadata)


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Saves ``{name: tensor}`` as a safetensors file through a temporary file and ``os.replace``: the file
    at ``path`` is the old one or the whole new one, never a part (shared storage is copied apart)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file.

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
        raise ValueError(f"{path} is not a readable safetensors file ({_reason(e)}); is it truncated?") from None


def _reason(error: BaseException) -> str:
    """The first line of an error's message (its first sentence if that line is long; its type's name when
    it has none), for a one-line error."""
    line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return line.split(". ")[0] if len(line) > 100 else line


def load_weights(model: nn.Module, path: Path) -> None:
    """Loads safetensors weights into ``model``.

    Raises:
        ValueError: If the file's tensors do not fit the model (another architecture), naming the
            first mismatches.
    """
    state = read_safetensors(path)
    target = unwrap(model)
    own = target.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of another shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise ValueError(f"the weights in {path} do not fit this model: {'; '.join(parts)}")
    target.load_state_dict(state)


def rng_state() -> dict[str, Any]:
    """The state of every random generator a run uses, as tensors and plain Python values only (so that
    ``torch.load(weights_only=True)`` reads it back: no pickled classes, no code)."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    numpy_state = (str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                   float(cached_gaussian))  # fmt: skip
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what ``rng_state`` returned (also the numpy arrays of checkpoints written before it
    stored plain values)."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    if isinstance(keys, torch.Tensor):
        keys = keys.numpy()
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    epoch: int,
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Writes the checkpoint of the end of ``epoch`` (1-based) and points LATEST at it.

    Args:
        run_dir: The run directory.
        model: The model (wrappers are removed).
        optimizer: Its optimiser.
        scheduler: Its learning-rate scheduler (anything with ``state_dict``), or ``None``.
        epoch: The number of completed epochs.
        extra: JSON-serialisable metadata (e.g. the model name and the history of metrics).
        keep: How many checkpoints to keep (older ones are deleted after LATEST moved on).

    Returns:
        The checkpoint's directory.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"epoch_{epoch:04d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    try:
        save_file(model_state(model), str(tmp / "model.safetensors"))
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng_state(),
                "epoch": epoch,
            },
            tmp / "state.pt",
        )
        (tmp / "meta.json").write_text(json.dumps({"epoch": epoch, **(extra or {})}, indent=1))
        final = root / name
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / LATEST, name)
    for old in sorted(p for p in root.glob("epoch_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of ``run_dir``, or ``None`` when there is none."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    return path if (path / "state.pt").is_file() and (path / "model.safetensors").is_file() else None


def _numpy_rng_globals() -> list[Any]:
    """What a ``state.pt`` written before the RNG state was stored as plain values needs besides tensors:
    the numpy array of numpy's Mersenne-Twister keys (uint32). Building an array runs no code, so these
    are allowed, for that one load, on top of ``weights_only``'s tensors and containers."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's _reconstruct, wherever this numpy keeps it
    return [
        (reconstruct, "numpy._core.multiarray._reconstruct"),  # numpy >= 2
        (reconstruct, "numpy.core.multiarray._reconstruct"),  # numpy 1.x
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),
    ]


def read_state(path: Path) -> dict[str, Any]:
    """The optimiser, scheduler, RNG and epoch of a checkpoint's ``state.pt``, read with
    ``torch.load(weights_only=True)``: a pickle that asks for a function or a class (how a crafted file
    runs code) is refused before any of it runs.

    Raises:
        UnsafeCheckpointError: If the file asks for anything but tensors and plain containers.
        ValueError: If it cannot be read (truncated, another format) or is not a checkpoint's state.
    """
    from ..pretrained.reading import UnsafeCheckpointError

    path = Path(path)
    allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    try:
        with allow(_numpy_rng_globals()) if allow else contextlib.nullcontext(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        if found and found.group(1).startswith("numpy.") and allow is None:
            raise ValueError(
                f"{path} was written by an older senet (numpy arrays), which this torch cannot read safely; "
                "resume with torch >= 2.5, or start over with --force"
            ) from None
        if found:  # the pickle asks for a function or a class: how a crafted file runs its payload
            raise UnsafeCheckpointError(
                f"{path} holds pickled objects other than tensors and plain values (it asks for {found.group(1)}); "
                "refused without running them. A run's checkpoints are written by senet alone: start over with --force"
            ) from None
        raise ValueError(
            f"{path} is not a checkpoint state written by torch.save, or is damaged ({_unsafe_reason(e)}); "
            "refused without running any of it"
        ) from None
    except Exception as e:  # a truncated or foreign file fails in many ways; all mean the same to the user
        raise ValueError(f"{path} cannot be read ({_reason(e)}); is it truncated?") from None
    if not isinstance(state, dict) or not {"optimizer", "rng", "epoch"} <= set(state):
        raise ValueError(f"{path} is not the state of a senet checkpoint (no optimizer, rng and epoch)")
    return state


def _unsafe_reason(error: BaseException) -> str:
    """The line of a ``weights_only`` refusal that says what was refused (its other lines are advice)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return next((line for line in lines if line.startswith("Unsupported")), "an unknown layout")


def load_checkpoint(
    path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None
) -> dict[str, Any]:
    """Restores a checkpoint written by ``save_checkpoint`` (weights, optimiser, scheduler, RNG).

    Nothing in it can run code: the weights are safetensors, the rest is read with ``weights_only``
    (:func:`read_state`).

    Returns:
        Its metadata (``meta.json``), with 'epoch'.

    Raises:
        UnsafeCheckpointError: If ``state.pt`` holds pickled code (a ``ValueError``; nothing of it ran).
        ValueError: If the weights belong to another model, or a file is unreadable.
    """
    path = Path(path)
    load_weights(model, path / "model.safetensors")
    advice = f"point {path.parent / LATEST} at an older checkpoint, or start over with --force"
    try:
        state = read_state(path / "state.pt")
    except ValueError as e:
        if "--force" in str(e):
            raise
        raise type(e)(f"{e}; {advice}") from None
    try:
        meta = json.loads((path / "meta.json").read_text())
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
    except Exception as e:  # a truncated or foreign file fails in many ways; all mean the same to the user
        raise ValueError(f"the checkpoint {path} cannot be read ({_reason(e)}); {advice}") from None
    return meta
