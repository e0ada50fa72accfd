"""Custom ops in ``torch.ops.squeezeprompt``: Python wrappers, references, fakes, autograd.

Each op's meaning is defined by its ``*_ref`` function; the C++ (and, when built,
CUDA and Triton) kernels are tested against it.
"""

import os

import torch

from squeezeprompt.ops.dynamic import int8_dynamic_linear, int8_dynamic_linear_ref
from squeezeprompt.ops.fake_quant import (
    fake_quantize,
    fake_quantize_backward_ref,
    fake_quantize_ref,
)
from squeezeprompt.ops.int4_dynamic import int4_dynamic_linear, int4_dynamic_linear_ref
from squeezeprompt.ops.sparse import (
    masked_linear,
    masked_linear_ref,
    sparse24_linear,
    sparse24_linear_ref,
    sparse24_pack,
    sparse24_pack_ref,
)
from squeezeprompt.ops.sparse24_int4 import sparse24_int4_linear, sparse24_int4_linear_ref
from squeezeprompt.ops.weight_only import (
    int4_weight_linear,
    int4_weight_linear_ref,
    int8_weight_linear,
    int8_weight_linear_ref,
)

# The Triton kernels serve CUDA tensors (and, under TRITON_INTERPRET=1, CPU tensors
# in tests); importing triton costs ~0.6 s, so CPU-only sessions skip it.
if (
    torch.cuda.is_available()
    or os.environ.get("SQUEEZEPROMPT_GPU_BACKEND")
    or (os.environ.get("TRITON_INTERPRET") == "1")
):
    from squeezeprompt.ops import triton as triton  # noqa: F401

OP_NAMES = (
    "int8_weight_linear",
    "int4_weight_linear",
    "int8_dynamic_linear",
    "int4_dynamic_linear",
    "fake_quantize",
    "fake_quantize_backward",
    "masked_linear",
    "sparse24_pack",
    "sparse24_linear",
    "sparse24_int4_linear",
)

__all__ = [
    "OP_NAMES",
    "fake_quantize",
    "fake_quantize_backward_ref",
    "fake_quantize_ref",
    "int4_dynamic_linear",
    "int4_dynamic_linear_ref",
    "int4_weight_linear",
    "int4_weight_linear_ref",
    "int8_dynamic_linear",
    "int8_dynamic_linear_ref",
    "int8_weight_linear",
    "int8_weight_linear_ref",
    "masked_linear",
    "masked_linear_ref",
    "sparse24_int4_linear",
    "sparse24_int4_linear_ref",
    "sparse24_linear",
    "sparse24_linear_ref",
    "sparse24_pack",
    "sparse24_pack_ref",
]
