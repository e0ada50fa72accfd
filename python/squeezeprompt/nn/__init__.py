"""Drop-in layers and the functions that swap them into a model.

Example:
    >>> import torch
    >>> from squeezeprompt import nn as spnn
    >>> m = torch.nn.Sequential(torch.nn.Linear(128, 16))
    >>> _ = spnn.quantize_(m, spnn.Int4WeightOnly(group_size=64))
    >>> m[0].extra_repr().split(", ")[3:5]
    ['bits=4', 'group_size=64']
"""

from squeezeprompt.nn.base import (
    LAYERS,
    WRAPPERS,
    QuantizedLinearBase,
    register_layer,
    register_wrapper,
)
from squeezeprompt.nn.config import (
    CONFIGS,
    FakeQuant,
    Int4Dynamic,
    Int4WeightOnly,
    Int8Dynamic,
    Int8WeightOnly,
    SemiStructured24,
    SparseValues,
    TransformConfig,
    TransformKind,
    Unstructured,
    config_from_dict,
    config_to_dict,
)
from squeezeprompt.nn.dynamic import Int4DynamicLinear, Int8DynamicLinear
from squeezeprompt.nn.filter import LinearFilter, select_linears
from squeezeprompt.nn.masks import is_24_mask, magnitude_mask, magnitude_mask_24
from squeezeprompt.nn.qat import FakeQuantLinear
from squeezeprompt.nn.sparse import MaskedLinear, Sparse24Int4Linear, Sparse24Linear
from squeezeprompt.nn.transform import (
    CONVERTERS,
    TRANSFORMS,
    convert,
    prepare_qat,
    quantize_,
    register_converter,
    register_transform,
    sparsify_,
)
from squeezeprompt.nn.weight_only import Int4WeightOnlyLinear, Int8WeightOnlyLinear

__all__ = [
    "CONFIGS",
    "CONVERTERS",
    "LAYERS",
    "TRANSFORMS",
    "WRAPPERS",
    "FakeQuant",
    "FakeQuantLinear",
    "Int4Dynamic",
    "Int4DynamicLinear",
    "Int4WeightOnly",
    "Int4WeightOnlyLinear",
    "Int8Dynamic",
    "Int8DynamicLinear",
    "Int8WeightOnly",
    "Int8WeightOnlyLinear",
    "LinearFilter",
    "MaskedLinear",
    "QuantizedLinearBase",
    "SemiStructured24",
    "Sparse24Int4Linear",
    "Sparse24Linear",
    "SparseValues",
    "TransformConfig",
    "TransformKind",
    "Unstructured",
    "config_from_dict",
    "config_to_dict",
    "convert",
    "is_24_mask",
    "magnitude_mask",
    "magnitude_mask_24",
    "prepare_qat",
    "quantize_",
    "register_converter",
    "register_layer",
    "register_transform",
    "register_wrapper",
    "select_linears",
    "sparsify_",
]
