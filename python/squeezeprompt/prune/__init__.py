"""Pruning algorithms (pure tensor math): magnitude, Wanda, SparseGPT; unstructured and 2:4.

Each returns a boolean keep-mask usable by ``masked_linear``; a 2:4 mask applied to
the weight (``torch.where(mask, w, 0)``) is accepted by ``sparse24_pack``.
"""

from squeezeprompt.prune.config import Pattern, Sparsity
from squeezeprompt.prune.magnitude import magnitude_mask
from squeezeprompt.prune.mask import is_semi_24, keep_mask
from squeezeprompt.prune.sparsegpt import SparseGPTConfig, SparseGPTResult, sparsegpt_prune
from squeezeprompt.prune.wanda import wanda_mask

__all__ = [
    "Pattern",
    "SparseGPTConfig",
    "SparseGPTResult",
    "Sparsity",
    "is_semi_24",
    "keep_mask",
    "magnitude_mask",
    "sparsegpt_prune",
    "wanda_mask",
]
