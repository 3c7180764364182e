"""Checkpoints: weights as safetensors, the rest (optimiser, scheduler, RNG, epoch) beside them.

The layout of a run directory, and finding its checkpoints, is ``senet.io.layout``'s. A checkpoint
is written into a hidden staging directory (``.epoch_0003.XXXX``, ``senet.io.replace_folder``), each file
flushed to disk, then renamed into place; only then is LATEST replaced (``senet.io.atomic_write_text``:
write-then-``os.replace``), and only then are old checkpoints pruned (the newest K are kept, never the
one just written). So a crash at any moment leaves every visible checkpoint directory complete and LATEST
naming one of them; a temporary directory left by a crash is ignored, and removed by the next save.

Nothing read back can run code: the weights are safetensors, and ``state.pt`` holds tensors and plain
Python values only, read with ``torch.load(weights_only=True)``; a crafted ``state.pt`` is refused
before its payload runs (:func:`read_state`).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from ..io import (
    CHECKPOINTS_DIR,
    LATEST_FILE,
    META_FILE,
    MODEL_FILE,
    STATE_FILE,
    UnsafeCheckpointError,
    atomic_save_tensors,
    atomic_write_text,
    checkpoint_name,
    latest_checkpoint,
    list_checkpoints,
    one_line,
    read_safetensors,
    replace_folder,
    safe_torch_load,
)
from .interrupt import injected_hold_in_save, injected_pause_in_save


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
    """Saves the model's weights as safetensors, atomically (``senet.io.atomic_save_tensors``)."""
    atomic_save_tensors(unwrap(model).state_dict(), path, metadata)


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


def describe_position(epoch: int, step: int = 0) -> str:
    """Where a checkpoint is, in words: 'the end of epoch 3' or 'epoch 4 step 120'."""
    return f"the end of epoch {epoch}" if step == 0 else f"epoch {epoch + 1} step {step}"


def save_checkpoint(
    run_dir: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    epoch: int,
    step: int = 0,
    extra: dict[str, Any] | None = None,
    keep: int = 2,
    scaler: Any = None,
    progress: dict[str, Any] | None = None,
) -> Path:
    """Writes the checkpoint after ``epoch`` completed epochs and ``step`` more steps, and points LATEST at it.

    Args:
        run_dir: The run directory.
        model: The model (wrappers are removed).
        optimizer: Its optimiser.
        scheduler: Its learning-rate scheduler (anything with ``state_dict``), or ``None``.
        epoch: The number of completed epochs.
        step: Steps done in the next epoch (0: the checkpoint of an epoch's end).
        extra: JSON-serialisable metadata (e.g. the model name and the history of metrics).
        keep: How many checkpoints to keep (older ones are deleted after LATEST moved on; the one just
            written always stays).
        scaler: The fp16 ``GradScaler`` (its state is saved), or ``None``.
        progress: The state of the epoch under way (a mid-epoch checkpoint): tensors and plain values,
            e.g. ``EpochProgress.state_dict()``.

    Returns:
        The checkpoint's directory.

    Raises:
        OSError: If it cannot be written (full disk, read-only folder); nothing of it is left, and the
            previous checkpoints and LATEST are untouched.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob(".epoch_*"):  # temporary directories of a run killed while saving
        shutil.rmtree(leftover, ignore_errors=True)
    name = checkpoint_name(epoch, step)
    state: dict[str, Any] = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "epoch": epoch,
    }
    if step:
        state.update(step=step, progress=progress)
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    # A checkpoint of that name that LATEST does not name (written just before a crash) is replaced.
    with replace_folder(root / name) as tmp:
        save_file(model_state(model), str(tmp / MODEL_FILE))
        injected_hold_in_save()
        injected_pause_in_save()
        torch.save(state, tmp / STATE_FILE)
        injected_pause_in_save()
        (tmp / META_FILE).write_text(json.dumps({"epoch": epoch, "step": step, **(extra or {})}, indent=1))
    atomic_write_text(root / LATEST_FILE, name)
    final = root / name
    prune_checkpoints(run_dir, keep=keep, protect=final)
    return final


def prune_checkpoints(run_dir: Path, *, keep: int, protect: Path | None = None) -> list[Path]:
    """Deletes all but the newest ``keep`` complete checkpoints; never ``protect`` (the one just written)
    nor the one LATEST names.

    Returns:
        The deleted directories.
    """
    keep = max(1, keep)
    complete = list_checkpoints(run_dir)
    spared = {latest_checkpoint(run_dir), Path(protect) if protect is not None else None}
    others = [p for p in complete if p not in spared]
    room = max(0, keep - sum(1 for p in complete if p in spared))  # how many of the others stay
    doomed = others[: max(0, len(others) - room)]
    for old in doomed:
        remove_checkpoint(old)
    return doomed


def remove_checkpoint(path: Path) -> None:
    """Deletes a checkpoint directory: first renamed to a hidden name (atomic), so that a kill while its
    files are deleted leaves no visible, incomplete checkpoint (the next save removes the rest)."""
    path = Path(path)
    hidden = path.with_name(f".{path.name}.deleted")
    shutil.rmtree(hidden, ignore_errors=True)
    try:
        os.rename(path, hidden)
    except OSError:  # e.g. a read-only folder: the checkpoint stays, whole
        return
    shutil.rmtree(hidden, ignore_errors=True)


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
    ``torch.load(weights_only=True)`` (``senet.io.safe_torch_load``): a pickle that asks for a function or
    a class (how a crafted file runs code) is refused before any of it runs.

    Raises:
        UnsafeCheckpointError: If the file asks for anything but tensors and plain containers.
        ValueError: If it cannot be read (truncated, another format) or is not a checkpoint's state.
    """
    path = Path(path)
    try:
        state = safe_torch_load(path, allowed_globals=_numpy_rng_globals())
    except UnsafeCheckpointError as e:
        older = not hasattr(torch.serialization, "safe_globals")  # torch < 2.5 cannot allow numpy's arrays
        if older and e.wanted is not None and e.wanted.startswith("numpy."):
            raise ValueError(
                f"{path} was written by an older senet (numpy arrays), which this torch cannot read safely; "
                "resume with torch >= 2.5, or start over with --force"
            ) from None
        raise UnsafeCheckpointError(
            f"{e}. A run's checkpoints are written by senet alone: start over with --force", wanted=e.wanted
        ) from None
    if not isinstance(state, dict) or not {"optimizer", "rng", "epoch"} <= set(state):
        raise ValueError(f"{path} is not the state of a senet checkpoint (no optimizer, rng and epoch)")
    return state


def load_checkpoint(
    path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
    scaler: Any = None,
) -> dict[str, Any]:
    """Restores a checkpoint written by ``save_checkpoint`` (weights, optimiser, scheduler, RNG, and the
    fp16 loss scaler when both the checkpoint and the caller have one).

    Nothing in it can run code: the weights are safetensors, the rest is read with ``weights_only``
    (:func:`read_state`).

    Returns:
        Its metadata (``meta.json``), with 'epoch', 'step' (0 for an epoch's end) and 'progress' (the
        state of the epoch under way, or ``None``).

    Raises:
        UnsafeCheckpointError: If ``state.pt`` holds pickled code (a ``ValueError``; nothing of it ran).
        ValueError: If the weights belong to another model, or a file is unreadable.
    """
    path = Path(path)
    load_weights(model, path / MODEL_FILE)
    advice = f"point {path.parent / LATEST_FILE} at an older checkpoint, or start over with --force"
    try:
        state = read_state(path / STATE_FILE)
    except ValueError as e:
        if "--force" in str(e):
            raise
        raise type(e)(f"{e}; {advice}") from None
    try:
        meta = json.loads((path / META_FILE).read_text())
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
    except Exception as e:  # a truncated or foreign file fails in many ways; all mean the same to the user
        raise ValueError(f"the checkpoint {path} cannot be read ({one_line(e)}); {advice}") from None
    return {**meta, "step": int(state.get("step", 0)), "progress": state.get("progress")}
