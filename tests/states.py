"""Bit-for-bit equality of nested training states (dicts, lists, tensors, numpy arrays, plain values)."""

import numpy as np
import torch


def assert_same_state(a, b, where: str = "") -> None:
    """Fails, naming the path of the first difference, unless ``a`` and ``b`` are equal bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}/{i}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    else:
        assert a == b, where
