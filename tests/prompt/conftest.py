"""Prompt tests run tiny models: one intra-op thread is as fast, and on a loaded machine
two spinning OpenMP threads per process slow these tests down by 10-100x."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
