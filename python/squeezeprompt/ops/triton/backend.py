"""Which kernels serve CUDA tensors: the CUDA C++ ones or the Triton ones.

``SQUEEZEPROMPT_GPU_BACKEND=cuda`` (the default) keeps the kernels that
``csrc/cuda/register.cpp`` registers. ``SQUEEZEPROMPT_GPU_BACKEND=triton`` makes
register.cpp leave the ops below unregistered when the library loads, and
:func:`register_cuda_backend` registers the Triton kernels for the CUDA key instead.
Set the variable before importing squeezeprompt: both sides read it once.
"""

from __future__ import annotations

import enum
import os

import torch

from squeezeprompt.ops.triton.fake_quant import (
    fake_quantize_backward_triton,
    fake_quantize_triton,
)
from squeezeprompt.ops.triton.weight_only import (
    int4_weight_linear_triton,
    int8_weight_linear_triton,
)

ENV_VAR = "SQUEEZEPROMPT_GPU_BACKEND"


class GpuBackend(enum.Enum):
    """Kernel family for CUDA tensors."""

    CUDA = "cuda"
    TRITON = "triton"


# The ops with a Triton kernel; every other op always uses its CUDA kernel.
TRITON_KERNELS = {
    "int8_weight_linear": int8_weight_linear_triton,
    "int4_weight_linear": int4_weight_linear_triton,
    "fake_quantize": fake_quantize_triton,
    "fake_quantize_backward": fake_quantize_backward_triton,
}

_LIBRARY: torch.library.Library | None = None


def selected_backend() -> GpuBackend:
    """The backend named by ``SQUEEZEPROMPT_GPU_BACKEND`` (``cuda`` when unset).

    Example:
        >>> selected_backend() in (GpuBackend.CUDA, GpuBackend.TRITON)
        True
    """
    value = os.environ.get(ENV_VAR, "") or GpuBackend.CUDA.value
    try:
        return GpuBackend(value)
    except ValueError:
        choices = ", ".join(b.value for b in GpuBackend)
        raise ValueError(f"{ENV_VAR} must be one of {choices}, got {value!r}") from None


def register_cuda_backend() -> GpuBackend:
    """Registers the Triton kernels for CUDA tensors when the Triton backend is selected.

    Idempotent. Returns the backend in use.

    Example:
        >>> register_cuda_backend() in (GpuBackend.CUDA, GpuBackend.TRITON)
        True
    """
    global _LIBRARY
    backend = selected_backend()
    if backend is GpuBackend.TRITON and _LIBRARY is None:
        _LIBRARY = torch.library.Library("squeezeprompt", "IMPL")
        for name, kernel in TRITON_KERNELS.items():
            _LIBRARY.impl(name, kernel, "CUDA")
    return backend
