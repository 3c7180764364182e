"""Peak memory of a piece of work, on any device: a storage tracker, and CUDA's own counters.

``StorageTracker`` is a ``TorchDispatchMode``: every tensor an operation returns is looked at, and each
storage seen for the first time is counted (its ``nbytes``) until it dies (``weakref.finalize`` on the
storage: PyTorch keeps a storage's Python object alive exactly as long as the storage). Views and
in-place results share a storage already counted and add nothing; a view of, or an in-place result
on, a storage older than the block (a parameter's ``.t()``, the optimizer's ``add_``) is not
counted. So it sees every allocation made through PyTorch operators during the ``with`` block, the
autograd engine's included (gradients, saved tensors), and it knows nothing of:

- storages alive before the block (parameters, optimizer state): the peak is *above that baseline*;
- scratch memory inside a kernel (oneDNN's, a GEMM's packing buffers) and code that allocates
  without the dispatcher, such as ``torch.compile``'s generated CPU kernels: measure compiled code
  on CUDA, where ``torch.cuda.max_memory_allocated`` sees everything.

Every allocation and release is kept as an event, so the peak can be recomputed afterwards without
some storages, e.g. without the parameters' gradients (:meth:`StorageTracker.peak_without`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class StorageTracker(TorchDispatchMode):
    """Counts the live bytes of the storages allocated inside the ``with`` block.

    Attributes:
        live: Bytes allocated in the block and still alive.
        peak: The largest ``live`` seen (bytes above the baseline of the block's start).
        allocated: Bytes of all the storages allocated in the block (alive or not).
        events: ``(storage id, +nbytes)`` on allocation, ``(storage id, -nbytes)`` on release, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.allocated = 0
        self.events: list[tuple[int, int]] = []
        # id(storage object) -> [storage id, bytes counted], while the storage lives. PyTorch keeps one
        # Python object per storage for the storage's whole life, so its id() names the storage.
        self._counted: dict[int, list[int]] = {}
        self._next_id = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {id(s) for s in map(_storage, tree_flatten((args, kwargs))[0]) if s is not None}
        for value in tree_flatten(out)[0]:
            storage = _storage(value)
            if storage is not None:
                self._see(storage, inputs)
        return out

    def _see(self, storage: torch.UntypedStorage, inputs: set[int]) -> None:
        nbytes = storage.nbytes()
        entry = self._counted.get(id(storage))
        if entry is not None:  # a view or an in-place result; an `out=` resize may have grown it
            if nbytes > entry[1]:
                self._add(entry[0], nbytes - entry[1])
                entry[1] = nbytes
            return
        if nbytes == 0 or id(storage) in inputs:  # a view of, or in-place on, a storage older than the block
            return
        sid = self._next_id
        self._next_id += 1
        self._counted[id(storage)] = [sid, nbytes]
        self._add(sid, nbytes)
        self.allocated += nbytes
        weakref.finalize(storage, self._release, id(storage))

    def _add(self, sid: int, nbytes: int) -> None:
        self.live += nbytes
        self.peak = max(self.peak, self.live)
        self.events.append((sid, nbytes))

    def _release(self, key: int) -> None:
        sid, nbytes = self._counted.pop(key)
        self.live -= nbytes
        self.events.append((sid, -nbytes))

    def storage_id(self, tensor: torch.Tensor) -> int | None:
        """The tracker's id of ``tensor``'s storage, if it was allocated in the block and is alive."""
        entry = self._counted.get(id(tensor.untyped_storage()))
        return entry[0] if entry is not None else None

    def peak_without(self, tensors: Iterable[torch.Tensor | None]) -> int:
        """The peak recomputed from the events, leaving out the storages of ``tensors`` (still alive).

        E.g. ``peak_without(p.grad for p in model.parameters())`` is the activation peak of a
        training step: everything but the parameters' gradients.
        """
        skip = {self.storage_id(t) for t in tensors if t is not None} - {None}
        live = peak = 0
        for sid, delta in self.events:
            if sid not in skip:
                live += delta
                peak = max(peak, live)
        return peak


def _storage(value: object) -> torch.UntypedStorage | None:
    if not isinstance(value, torch.Tensor):
        return None
    try:
        return value.untyped_storage()
    except (RuntimeError, NotImplementedError):  # tensors without a storage (e.g. opaque/mkldnn)
        return None


def tensor_bytes(tensors: Iterable[torch.Tensor | None]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a storage shared by two tensors counts once)."""
    seen: dict[tuple[torch.device, int], int] = {}
    for t in tensors:
        if t is not None:
            storage = t.untyped_storage()
            seen[(storage.device, storage.data_ptr())] = storage.nbytes()
    return sum(seen.values())


def state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Bytes of a model's parameters, buffers and gradients and of the optimizer's state tensors."""
    tensors: list[torch.Tensor | None] = [*model.parameters(), *model.buffers()]
    tensors += [p.grad for p in model.parameters()]
    if optimizer is not None:
        for state in optimizer.state.values():
            tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return tensor_bytes(tensors)


@dataclass(frozen=True)
class MemoryPeak:
    """The peak memory of one piece of work (bytes).

    Attributes:
        step: Peak of what the work allocated, above what was alive before it.
        activations: ``step`` without the parameters' gradients (``None`` when not separable).
        state: Parameters, buffers, gradients and optimizer state alive before the work.
        total: ``state + step``: the peak including the model's state.
        method: 'dispatch' (``StorageTracker``) or 'cuda' (``torch.cuda.max_memory_allocated``).
    """

    step: int
    activations: int | None
    state: int
    total: int
    method: str

    def to_dict(self) -> dict[str, object]:
        return {"step": self.step, "activations": self.activations, "state": self.state, "total": self.total,
                "method": self.method}  # fmt: skip


def measure_step_memory(
    step: Callable[[], object],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    device: torch.device | str = "cpu",
    track: bool = True,
) -> MemoryPeak | None:
    """The peak memory of one call of ``step`` (e.g. forward, loss, backward, optimizer step).

    The gradients are set to ``None`` first (so the step allocates them, as a step after
    ``zero_grad(set_to_none=True)`` does); call ``step`` once before, so that the optimizer's state
    exists and counts as state, not as the step's.

    Args:
        step: The work; it must not itself free tensors that existed before it (e.g. by ``zero_grad``).
        model: Its parameters, buffers and gradients count as state.
        optimizer: Its state tensors count as state.
        device: On CUDA, ``torch.cuda.max_memory_allocated`` gives ``step`` and ``total``.
        track: Use the :class:`StorageTracker` (gives ``activations``; it cannot see the allocations
            of compiled CPU code). Without it on the CPU, nothing is measured and ``None`` returned.

    Returns:
        The :class:`MemoryPeak`, or ``None`` (CPU without ``track``).
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
    else:
        model.zero_grad(set_to_none=True)
    state = state_bytes(model, optimizer)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    if track:
        with StorageTracker() as tracker:
            step()
        activations = tracker.peak_without(p.grad for p in model.parameters())
    else:
        step()
        activations = None
    if cuda:
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        return MemoryPeak(step=peak, activations=activations, state=state, total=state + peak, method="cuda")
    if not track:
        return None
    return MemoryPeak(step=tracker.peak, activations=activations, state=state, total=state + tracker.peak,
                      method="dispatch")
