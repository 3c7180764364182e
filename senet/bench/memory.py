"""Peak memory of a piece of work, on any device: a storage tracker, and CUDA's own counters.

``StorageTracker`` is a ``TorchDispatchMode``: every tensor an operation returns is looked at, and each
storage seen for the first time is counted (its ``nbytes``) until it dies (``weakref.finalize`` on the
storage: PyTorch keeps a storage's Python object alive exactly as long as the storage). Views and
in-place results share a storage already counted and add nothing. So it sees every allocation made
through PyTorch operators during the ``with`` block, the autograd engine's included (gradients,
saved tensors), and it knows nothing of:

- storages alive before the block (parameters, optimizer state): the peak is *above that baseline*;
- scratch memory inside a kernel (oneDNN's, a GEMM's packing buffers) and code that allocates
  without the dispatcher, such as ``torch.compile``'s generated CPU kernels: measure compiled code
  on CUDA, where ``torch.cuda.max_memory_allocated`` sees everything.

Every allocation and release is kept as an event, so the peak can be recomputed afterwards without
some storages, e.g. without the parameters' gradients (:meth:`StorageTracker.peak_without`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class StorageTracker(TorchDispatchMode):
    """Counts the live bytes of the storages allocated inside the ``with`` block.

    Attributes:
        live: Bytes allocated in the block and still alive.
        peak: The largest ``live`` seen (bytes above the baseline of the block's start).
        allocated: Bytes allocated in the block in all (alive or not).
        events: ``(storage id, +nbytes)`` on allocation, ``(storage id, -nbytes)`` on release, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.allocated = 0
        self.events: list[tuple[int, int]] = []
        self._ids: dict[tuple[torch.device, int], int] = {}  # (device, data_ptr) -> storage id, while alive
        self._next_id = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self._see(value)
        return out

    def _see(self, tensor: torch.Tensor) -> None:
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # tensors without a storage (e.g. opaque/mkldnn)
            return
        nbytes = storage.nbytes()
        key = (storage.device, storage.data_ptr())
        if nbytes == 0 or key in self._ids:
            return
        sid = self._next_id
        self._next_id += 1
        self._ids[key] = sid
        self.live += nbytes
        self.allocated += nbytes
        self.peak = max(self.peak, self.live)
        self.events.append((sid, nbytes))
        weakref.finalize(storage, self._release, key, sid, nbytes)

    def _release(self, key: tuple[torch.device, int], sid: int, nbytes: int) -> None:
        if self._ids.get(key) == sid:
            del self._ids[key]
        self.live -= nbytes
        self.events.append((sid, -nbytes))

    def storage_id(self, tensor: torch.Tensor) -> int | None:
        """The tracker's id of ``tensor``'s storage, if it was allocated in the block and is alive."""
        storage = tensor.untyped_storage()
        return self._ids.get((storage.device, storage.data_ptr()))

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
