"""squeezeprompt: compress language models, then win back accuracy.

Importing the package loads the compiled kernels, which register every op in
``torch.ops.squeezeprompt``.

Example:
    >>> import torch, squeezeprompt as sp
    >>> model = torch.nn.Sequential(torch.nn.Linear(256, 64))
    >>> model = sp.quantize_(model, sp.Int4WeightOnly(group_size=64))
    >>> type(model[0]).__name__
    'Int4WeightOnlyLinear'
"""

import torch

from squeezeprompt import (
    _C,  # noqa: F401  (registers the C++ kernels)
    checkpoint,
    formats,
    models,
    nn,
    ops,
    prune,
    quantize,
    recover,
)
from squeezeprompt.checkpoint import CheckpointError, load, save
from squeezeprompt.nn import (
    FakeQuant,
    Int4Dynamic,
    Int4WeightOnly,
    Int8Dynamic,
    Int8WeightOnly,
    LinearFilter,
    SemiStructured24,
    SparseValues,
    Unstructured,
    convert,
    prepare_qat,
    quantize_,
    sparsify_,
)

# Resolve every op once so torch.ops.squeezeprompt lists them all (dir() shows only
# the ops that have been looked up).
for _name in ops.OP_NAMES:
    getattr(torch.ops.squeezeprompt, _name)

__version__ = "0.1.0"
__all__ = [
    "CheckpointError",
    "FakeQuant",
    "Int4Dynamic",
    "Int4WeightOnly",
    "Int8Dynamic",
    "Int8WeightOnly",
    "LinearFilter",
    "SemiStructured24",
    "SparseValues",
    "Unstructured",
    "__version__",
    "checkpoint",
    "convert",
    "formats",
    "load",
    "models",
    "nn",
    "ops",
    "prepare_qat",
    "prune",
    "quantize",
    "quantize_",
    "recover",
    "save",
    "sparsify_",
]
