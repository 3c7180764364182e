"""Shared test settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The tests run small tensors, where intra-op threads cost more in hand-offs than they save (and on
    # a busy 2-core machine OpenMP threads spin waiting for each other). One thread, restored after.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
