"""QAT on a model that is already quantized: swap its int layers for fake-quant ones.

The pipeline quantizes first (RTN, GPTQ, AWQ) and may recover afterwards; QAT then starts
from exactly the quantized model: each ``Int4WeightOnlyLinear`` / ``Int8WeightOnlyLinear``
becomes a :class:`~squeezeprompt.nn.FakeQuantLinear` on the same grid, with the same codes,
and :func:`squeezeprompt.nn.convert` turns it back into the int layer after training.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from squeezeprompt.nn.config import FakeQuant
from squeezeprompt.nn.qat import FakeQuantLinear
from squeezeprompt.nn.sparse import Sparse24Int4Linear
from squeezeprompt.nn.weight_only import Int4WeightOnlyLinear, Int8WeightOnlyLinear

# Exact types: W8A8 (Int8DynamicLinear) and 2:4 with int8 values have no fake-quant twin.
QUANTIZED: tuple[type[nn.Module], ...] = (
    Int4WeightOnlyLinear,
    Sparse24Int4Linear,
    Int8WeightOnlyLinear,
)


def _fake_quant_config(layer: nn.Module) -> FakeQuant:
    if isinstance(layer, Int4WeightOnlyLinear):
        return FakeQuant(bits=4, group_size=layer.group_size, symmetric=layer.symmetric)
    return FakeQuant(bits=8, group_size=None, symmetric=True)


def prepare_qat_from_quantized_(
    model: nn.Module,
    dense: Mapping[str, Tensor] | None = None,
    keep_zeros: bool = False,
) -> list[str]:
    """Swaps every weight-only int layer of ``model`` for an equal ``FakeQuantLinear``.

    ``dense`` maps a layer name to its weight before quantization (the latent weights then
    keep each weight's position inside its rounding bin; see
    :meth:`FakeQuantLinear.from_quantized`). ``keep_zeros`` pins every weight that is
    exactly zero now (pruned before quantization) at zero: the masks themselves are not
    kept after quantization, so a weight that merely rounded to zero is pinned too.
    Only the fake-quant layers' weights, scales and zero points are left trainable.
    Returns the swapped names.

    Example:
        >>> import torch
        >>> from squeezeprompt.nn import Int4WeightOnly, quantize_
        >>> m = quantize_(torch.nn.Sequential(torch.nn.Linear(64, 8)), Int4WeightOnly(32))
        >>> x = torch.randn(2, 64); before = m(x)
        >>> prepare_qat_from_quantized_(m)
        ['0']
        >>> torch.allclose(m(x), before, atol=1e-5)
        True
    """
    model.requires_grad_(False)
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if name and type(module) in QUANTIZED
    ]
    for name, layer in targets:
        w = layer.dequantize()
        fq = FakeQuantLinear.from_quantized(
            layer,
            dense=None if dense is None else dense.get(name),
            mask=(w != 0) if keep_zeros else None,
        )
        fq.config = _fake_quant_config(layer)
        model.set_submodule(name, fq)
    return [name for name, _ in targets]
