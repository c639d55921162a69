"""Shared pytest fixtures."""

import pytest


@pytest.fixture
def one_torch_thread():
    """On a shared 2-core machine two intra-op threads spin against other jobs (10-50x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
