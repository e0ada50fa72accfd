"""Small context managers shared by the evaluators."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run with ``model.eval()`` (no dropout) and restore the caller's mode afterwards.

    Example:
        >>> m = torch.nn.Dropout().train()
        >>> with eval_mode(m):
        ...     m.training
        False
        >>> m.training
        True
    """
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
