"""Shared fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """Run torch on one CPU thread: the small nets of these tests are no faster on two, and on a
    busy 2-core machine two intra-op threads per process oversubscribe the cores (measured: a
    batch-256 MLP step took 6.6 ms on one thread and 84 ms on two under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
