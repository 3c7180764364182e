"""Multi-process training through ``torchrun`` (PyTorch DDP): gloo on the CPU, NCCL on CUDA.

``torchrun --nproc_per_node=K -m senet train ...`` starts K processes; each reads RANK, WORLD_SIZE and
LOCAL_RANK from the environment. Every rank sees a disjoint 1/K of each epoch's permutation with the
per-process batch size, so the global batch is K x --batch-size; scale --lr linearly with K to keep
the per-image step size of the single-process recipe (the linear scaling rule, Goyal et al. 2017).
Only rank 0 writes files. DDP averages gradients and broadcasts BatchNorm buffers from rank 0 at each
forward, so all ranks hold identical weights.

A process that dies (or hangs) must not leave the others waiting for ever: with gloo a dead peer's closed
connection fails the others' next collective at once, torchrun's agent then stops the remaining workers,
and any collective that gets no answer fails after ``SENET_DIST_TIMEOUT`` seconds (default 600).
"""

from __future__ import annotations

import datetime
import gc
import math
import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """Whether a process group is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process writes files and prints progress."""
    return rank() == 0


DEFAULT_TIMEOUT_S = 600.0


def collective_timeout() -> datetime.timedelta:
    """How long a collective waits for the other processes: ``SENET_DIST_TIMEOUT`` seconds (default 600).

    Raises:
        ValueError: If ``SENET_DIST_TIMEOUT`` is not a positive number of seconds.
    """
    text = os.environ.get("SENET_DIST_TIMEOUT", "").strip()
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"SENET_DIST_TIMEOUT must be a positive number of seconds, got {text!r}")
    return datetime.timedelta(seconds=seconds)


def init_from_env(device: torch.device) -> bool:
    """Initialises the process group when launched by ``torchrun`` (WORLD_SIZE > 1 in the environment).

    Args:
        device: The training device; selects NCCL for CUDA, gloo otherwise.

    Returns:
        Whether this call created the process group: its caller then owns it and must call
        ``cleanup()`` on every exit path (a gloo group left to the interpreter's exit can abort it).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    timeout = collective_timeout()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timeout)
    return True


def any_rank(flags: tuple[bool, ...], device: torch.device) -> tuple[bool, ...]:
    """For each flag, whether it is set on any process (the flags themselves when not distributed): how
    the processes agree on when to checkpoint and stop."""
    if not is_distributed():
        return flags
    t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def is_peer_failure(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because another process died or stopped answering."""
    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        s in text for s in ("Connection closed by peer", "Connection reset by peer", "Timed out", "timed out",
                            "Broken pipe", "NCCL communicator was aborted", "ProcessGroup")
    )  # fmt: skip


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sums ``t`` over all processes (returns it unchanged when not distributed)."""
    if is_distributed():
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Every process's 1-D ``t``, stacked in rank order: (world_size, n) (``t[None]`` when not distributed)."""
    if not is_distributed():
        return t[None]
    rows = [torch.empty_like(t) for _ in range(world_size())]
    dist.all_gather(rows, t.contiguous())
    return torch.stack(rows)


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` on every process (``obj`` itself when not distributed)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Waits for every process (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def cleanup(*, wait: bool = True) -> None:
    """Destroys the process group if one was initialised.

    Args:
        wait: First wait for every process (a barrier), so that no process closes its connections while
            another still reads from them (gloo then aborts the reader with SIGABRT). Pass ``False`` on an
            error path, where another process may never arrive.
    """
    if dist.is_available() and dist.is_initialized():
        if wait and dist.get_world_size() > 1:
            dist.barrier()
        # A DDP wrapper sits in reference cycles: left to the interpreter's exit, it is freed after its process
        # group, and about one exit in ten then aborted in C++ ("terminate called without an active exception",
        # SIGABRT; seen with gloo, torch 2.13: 3 of 26 two-process runs; none of 24 with this collection).
        gc.collect()
        dist.destroy_process_group()


def ranks_identical(module: torch.nn.Module) -> bool:
    """Whether every process holds bit-identical parameters and buffers (True when not distributed).

    Compares the element-wise minimum and maximum over ranks of all floating-point state.
    """
    if not is_distributed():
        return True
    flat = torch.cat([t.detach().double().flatten() for t in module.state_dict().values() if t.is_floating_point()])
    low, high = flat.clone(), flat.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return bool(torch.equal(low, high))


def sync_buffers(module: torch.nn.Module) -> None:
    """Copies rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward, so after the last training step each rank
    holds running statistics updated with its own batch; this makes them identical before evaluation
    and checkpointing.
    """
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)
