"""CPU allocator settings for training and benchmarking.

glibc's malloc returns large freed blocks (above its mmap threshold, or at the top of the heap beyond
its trim threshold) to the operating system; the next tensor of that size then takes a page fault for
every 4 KiB page it touches. A training step allocates and frees many tensors of tens of MB, and on
virtual machines such faults are expensive: on our 2-core benchmark machine a fresh 25 MB tensor cost
tens of milliseconds, more than the arithmetic. Raising both thresholds keeps freed memory in the heap
for reuse, the same effect as preloading jemalloc or tcmalloc (which Intel recommends for PyTorch on CPU).

``tune_cpu_allocator`` does that for the current process; it changes how freed memory is kept, not how
much the program uses at its peak. ``SENET_NO_ALLOCATOR_TUNING=1`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 1 * 2**30
TOP_PAD = 64 * 2**20


@functools.cache
def tune_cpu_allocator() -> bool:
    """Keeps freed large blocks in glibc's heap for reuse (once per process).

    Returns:
        Whether the settings were applied (False off Linux/glibc, or when turned off by
        ``SENET_NO_ALLOCATOR_TUNING``).
    """
    if os.environ.get("SENET_NO_ALLOCATOR_TUNING") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(
        mallopt(option, value) == 1
        for option, value in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (_M_TOP_PAD, TOP_PAD),
        )
    )
