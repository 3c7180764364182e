"""Checkpoints: weights as safetensors, the rest (optimiser, scheduler, RNG, epoch) beside them.

Layout of a run directory::

    run/
      config.json                          the full run configuration
      checkpoints/epoch_0003/              the end of epoch 3: model.safetensors, state.pt, meta.json
      checkpoints/epoch_0003_step_000120/  120 steps into epoch 4 (``--save-every``): the same three files
      checkpoints/LATEST                   the name of the newest complete checkpoint
      model.safetensors                    the final weights

Names sort in training order (``epoch_0003`` < ``epoch_0003_step_000120`` < ``epoch_0004``). A checkpoint
is written into a hidden temporary directory (``.epoch_0003.XXXX``), each file flushed to disk, then
renamed into place; only then is LATEST replaced (write-then-``os.replace``), and only then are old
checkpoints pruned (the newest K are kept, never the one just written). So a crash at any moment leaves
every visible checkpoint directory complete and LATEST naming one of them; a temporary directory left
by a crash is ignored, and removed by the next save.

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

from .interrupt import injected_hold_in_save, injected_pause_in_save

LATEST = "LATEST"
CHECKPOINT_FILES = ("model.safetensors", "state.pt", "meta.json")
_NAME = re.compile(r"epoch_(\d{4,})(?:_step_(\d{6,}))?")


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
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Flushes a directory's entries (a rename is then on disk, not only in the page cache)."""
    with contextlib.suppress(OSError):  # some file systems cannot open or sync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def checkpoint_name(epoch: int, step: int = 0) -> str:
    """The directory name of the checkpoint after ``epoch`` completed epochs and ``step`` more steps:
    ``epoch_0003`` (an epoch's end) or ``epoch_0003_step_000120`` (120 steps into epoch 4); names sort in
    training order."""
    return f"epoch_{epoch:04d}" if step == 0 else f"epoch_{epoch:04d}_step_{step:06d}"


def checkpoint_position(path: Path) -> tuple[int, int] | None:
    """``(completed epochs, steps into the next epoch)`` of a checkpoint directory's name, or ``None``
    when the name is not a checkpoint's (a temporary directory, LATEST, anything else)."""
    found = _NAME.fullmatch(Path(path).name)
    return (int(found.group(1)), int(found.group(2) or 0)) if found else None


def describe_position(epoch: int, step: int = 0) -> str:
    """Where a checkpoint is, in words: 'the end of epoch 3' or 'epoch 4 step 120'."""
    return f"the end of epoch {epoch}" if step == 0 else f"epoch {epoch + 1} step {step}"


def is_complete(path: Path) -> bool:
    """Whether ``path`` is a visible checkpoint directory holding all of its files."""
    path = Path(path)
    return checkpoint_position(path) is not None and all((path / f).is_file() for f in CHECKPOINT_FILES)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The complete checkpoints of ``run_dir``, oldest first (temporary directories are not listed)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and is_complete(p)]
    return sorted(found, key=checkpoint_position)  # type: ignore[arg-type,return-value]


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
    root = Path(run_dir) / "checkpoints"
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
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    final, aside = root / name, None
    try:
        save_file(model_state(model), str(tmp / "model.safetensors"))
        injected_hold_in_save()
        injected_pause_in_save()
        torch.save(state, tmp / "state.pt")
        injected_pause_in_save()
        (tmp / "meta.json").write_text(json.dumps({"epoch": epoch, "step": step, **(extra or {})}, indent=1))
        for file in CHECKPOINT_FILES:
            _fsync_file(tmp / file)
        if final.exists():  # a checkpoint LATEST does not name (written just before a crash): set aside
            aside = root / f".{name}.replaced"
            shutil.rmtree(aside, ignore_errors=True)
            os.rename(final, aside)
        os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None and not final.exists():
            os.rename(aside, final)
        raise
    atomic_write_text(root / LATEST, name)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
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


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of ``run_dir`` (the one LATEST names; if LATEST is missing or names
    no complete checkpoint, the last complete one in training order), or ``None`` when there is none."""
    root = Path(run_dir) / "checkpoints"
    try:
        name = (root / LATEST).read_text().strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if name and is_complete(root / name):
        return root / name
    complete = list_checkpoints(run_dir)
    return complete[-1] if complete else None


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
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
    except Exception as e:  # a truncated or foreign file fails in many ways; all mean the same to the user
        raise ValueError(f"the checkpoint {path} cannot be read ({_reason(e)}); {advice}") from None
    return {**meta, "step": int(state.get("step", 0)), "progress": state.get("progress")}
