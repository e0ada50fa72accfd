"""squeezeprompt: compress language models, then win back accuracy.

Importing the package loads the compiled kernels, which register every op in
``torch.ops.squeezeprompt``.

Example:
    >>> import squeezeprompt as sp
    >>> sorted(sp.ops.OP_NAMES)[:2]
    ['fake_quantize', 'fake_quantize_backward']
"""

import torch

from squeezeprompt import (
    _C,  # noqa: F401  (registers the C++ kernels)
    formats,
    ops,
    quantize,
)

# Resolve every op once so torch.ops.squeezeprompt lists them all (dir() shows only
# the ops that have been looked up).
for _name in ops.OP_NAMES:
    getattr(torch.ops.squeezeprompt, _name)

__version__ = "0.1.0"
__all__ = ["formats", "ops", "quantize", "__version__"]
