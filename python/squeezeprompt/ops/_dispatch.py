"""Calling our ops without their Python autograd registration when no gradient can flow.

An op registered with ``torch.library.register_autograd`` runs a Python function at the
autograd dispatch key on every call, even under ``torch.no_grad()`` (only
``torch.inference_mode()`` skips it). At decode sizes that is most of the call: a
576 x 576 int8 Linear at M = 1 took 33 us under ``no_grad`` and 21 us below autograd,
and Hugging Face ``generate`` runs under ``no_grad``. With grad mode off no graph is
recorded either way, so dispatching below the autograd key changes nothing but time.
"""

from __future__ import annotations

from typing import Any

import torch

# Private but long-standing; a torch without it simply takes the normal path.
_BELOW_AUTOGRAD = getattr(torch._C, "_AutoDispatchBelowAutograd", None)


def call_op(op: Any, *args: Any) -> Any:
    """``op(*args)``, below the autograd key when grad mode is off (eager only).

    Under ``torch.compile`` tracing the op is called as is, so the graph sees the op.

    Example:
        >>> import squeezeprompt.ops  # registers torch.ops.squeezeprompt
        >>> x, w = torch.randn(2, 4), torch.randint(-127, 128, (3, 4), dtype=torch.int8)
        >>> with torch.no_grad():
        ...     y = call_op(torch.ops.squeezeprompt.int8_weight_linear, x, w, torch.ones(3), None)
        >>> y.shape
        torch.Size([2, 3])
    """
    if _BELOW_AUTOGRAD is None or torch.is_grad_enabled() or torch.compiler.is_compiling():
        return op(*args)
    with _BELOW_AUTOGRAD():
        return op(*args)
