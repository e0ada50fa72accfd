"""Triton kernels for GPUs (optional: importing squeezeprompt works without triton).

Ops registered here, each with the schema and meaning of the op it shadows:
``int4_weight_linear_triton``, ``int8_weight_linear_triton``, ``fake_quantize_triton``
and ``fake_quantize_backward_triton`` in ``torch.ops.squeezeprompt``. With
``TRITON_INTERPRET=1`` they run on CPU tensors in Triton's interpreter (how the tests
check them without a GPU). ``SQUEEZEPROMPT_GPU_BACKEND=triton`` makes them serve
the main ops for CUDA tensors (see :mod:`squeezeprompt.ops.triton.backend`).

Example:
    >>> from squeezeprompt.ops import triton as sp_triton
    >>> isinstance(sp_triton.AVAILABLE, bool)
    True
"""

from __future__ import annotations

import os

try:
    import triton  # noqa: F401  (only probes that the optional dependency is there)

    AVAILABLE = True
except ImportError:
    AVAILABLE = False

if AVAILABLE:
    from squeezeprompt.ops.triton.backend import GpuBackend as GpuBackend
    from squeezeprompt.ops.triton.backend import register_cuda_backend as register_cuda_backend

    BACKEND = register_cuda_backend()
elif os.environ.get("SQUEEZEPROMPT_GPU_BACKEND") == "triton":
    # Asked for explicitly: failing here beats CUDA ops that have no kernel at all.
    raise ImportError("SQUEEZEPROMPT_GPU_BACKEND=triton but the triton package is not installed")
else:
    BACKEND = None

__all__ = ["AVAILABLE", "BACKEND"]
