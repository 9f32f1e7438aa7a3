"""Shared fixtures: deterministic torch settings for the engine tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    # Tiny tensors: one thread is fastest and keeps timings from other tests out of the way.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
