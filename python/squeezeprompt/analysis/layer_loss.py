"""Where accuracy was lost: per-Linear error of a compressed model against its dense original.

For every ``nn.Linear`` of the dense model, the layer of the same name in the compressed
model (an ``nn.Linear``, a drop-in layer from :mod:`squeezeprompt.nn`, or a LoRA wrapper
of either) is compared three ways:

* **weight SQNR** ``10 log10(||W||² / ||W - W_c||²)`` (dB) of its effective weight;
* **output SQNR**, the same ratio for the layer's outputs ``Y_d`` and ``Y_c`` when both
  layers get the *dense* model's inputs to that layer, so each layer is judged on its own
  (errors of earlier layers do not leak in). Activation quantization (W8A8) shows here,
  not in the weight SQNR;
* **error share**, its contribution to the model's error: the relative output error
  ``e = ||Y_c - Y_d||² / ||Y_d||²`` of the layer divided by the sum of ``e`` over all
  layers (the shares sum to 1 when anything changed). Cheap (one dense forward per
  batch) where the alternative, the final-logit KL with only that layer compressed,
  needs one forward per layer.

Inputs are captured with forward hooks on the dense model, one batch at a time: only one
layer's activations are alive at once, never the whole calibration set's.

Example:
    >>> import copy
    >>> from squeezeprompt.nn import Int8WeightOnlyLinear
    >>> dense = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Linear(32, 8))
    >>> compressed = copy.deepcopy(dense)
    >>> compressed[0] = Int8WeightOnlyLinear.from_linear(dense[0])
    >>> rows = layer_losses(compressed, dense, [torch.randn(4, 64)])
    >>> [(r.name, math.isinf(r.weight_sqnr_db), r.weight_sqnr_db > 40, r.share) for r in rows]
    [('0', False, True, 1.0), ('1', True, True, 0.0)]
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from squeezeprompt.nn.base import QuantizedLinearBase
from squeezeprompt.recover.lora import LoRALinear

Batch = Tensor | Mapping[str, Any]  # input_ids, or keyword arguments of model.forward


class ArchitectureMismatch(ValueError):
    """The compressed model lacks one of the dense model's Linears, or has another shape."""


@dataclass(frozen=True)
class LayerLoss:
    """One Linear's error. ``math.inf`` dB means no error at all (identical layer).

    ``block`` is the first integer in the qualified name (the decoder block), ``kind`` its
    last component (``q_proj``, ``down_proj``...), ``layer_type`` the compressed layer's class.
    ``kl`` is filled only on request (:mod:`squeezeprompt.analysis.layer_kl`).

    Example:
        >>> r = LayerLoss("model.layers.3.mlp.up_proj", 3, "up_proj", "Int4WeightOnlyLinear",
        ...               20.0, 18.0, 0.0158, 0.5)
        >>> LayerLoss.from_dict(r.to_dict()) == r
        True
    """

    name: str
    block: int | None
    kind: str
    layer_type: str
    weight_sqnr_db: float
    output_sqnr_db: float
    relative_error: float
    share: float
    kl: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; infinite SQNR (identical layer) becomes ``None``.

        Example:
            >>> LayerLoss("fc", None, "fc", "Linear", math.inf, math.inf, 0.0, 0.0).to_dict()[
            ...     "weight_sqnr_db"] is None
            True
        """
        data = asdict(self)
        for key in ("weight_sqnr_db", "output_sqnr_db"):
            if math.isinf(data[key]):
                data[key] = None  # strict JSON has no Infinity
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerLoss:
        """Inverse of :meth:`to_dict` (see the class example)."""
        fields = dict(data)
        for key in ("weight_sqnr_db", "output_sqnr_db"):
            if fields[key] is None:
                fields[key] = math.inf
        return cls(**fields)


def sqnr_db(signal_energy: float, noise_energy: float) -> float:
    """``10 log10(signal / noise)`` in dB; ``inf`` for zero noise.

    Example:
        >>> sqnr_db(100.0, 1.0), sqnr_db(1.0, 0.0)
        (20.0, inf)
    """
    if noise_energy == 0.0:
        return math.inf
    if signal_energy == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal_energy / noise_energy)


def effective_weight(module: nn.Module) -> Tensor:
    """The float32 ``[out, in]`` weight ``module`` computes with (LoRA merged in).

    Example:
        >>> lin = torch.nn.Linear(4, 3)
        >>> torch.equal(effective_weight(lin), lin.weight)
        True
    """
    if isinstance(module, LoRALinear):
        lora = module.lora_b.detach().float() @ module.lora_a.detach().float()
        return effective_weight(module.base) + module.config.scaling * lora
    if isinstance(module, QuantizedLinearBase):
        return module.dequantize().detach().float()
    if isinstance(module, nn.Linear):
        return module.weight.detach().float()
    raise TypeError(
        f"effective_weight: expected nn.Linear, a squeezeprompt.nn layer or LoRALinear, "
        f"got {type(module).__name__}"
    )


def _same_linear(a: nn.Module, b: nn.Module) -> bool:
    """True when both are plain ``nn.Linear`` with equal weight and bias: same outputs."""
    if type(a) is not nn.Linear or type(b) is not nn.Linear:
        return False
    if a.weight.dtype != b.weight.dtype or not torch.equal(a.weight, b.weight):
        return False
    if (a.bias is None) != (b.bias is None):
        return False
    return a.bias is None or torch.equal(a.bias, b.bias)


class _Energy:
    """Running ``||Y_d||²`` and ``||Y_c - Y_d||²`` of one layer, in float64."""

    def __init__(self) -> None:
        self.signal = 0.0
        self.noise = 0.0

    def add(self, dense_out: Tensor, compressed_out: Tensor) -> None:
        d = dense_out.float()
        diff = compressed_out.float() - d
        self.signal += float(torch.sum(d * d, dtype=torch.float64))
        self.noise += float(torch.sum(diff * diff, dtype=torch.float64))

    def relative_error(self) -> float:
        if self.signal > 0:
            return self.noise / self.signal
        return math.inf if self.noise > 0 else 0.0  # a silent layer that now speaks


def _shares(rel: Mapping[str, float]) -> dict[str, float]:
    """Each value over their sum (all 0 when nothing changed; an infinite error takes all)."""
    infinite = [k for k, v in rel.items() if math.isinf(v)]
    if infinite:
        return {k: (1.0 / len(infinite) if k in infinite else 0.0) for k in rel}
    total = sum(rel.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in rel.items()}


def _block_and_kind(name: str) -> tuple[int | None, str]:
    block = next((int(p) for p in name.split(".") if re.fullmatch(r"\d+", p)), None)
    return block, name.rsplit(".", 1)[-1]


def _pairs(compressed: nn.Module, dense: nn.Module) -> list[tuple[str, nn.Module, nn.Module]]:
    pairs = []
    for name, d in dense.named_modules():
        if not isinstance(d, nn.Linear):
            continue
        try:
            c = compressed.get_submodule(name)
        except AttributeError:
            raise ArchitectureMismatch(
                f"layer_losses: the compressed model has no module {name!r}; "
                "it must have the dense model's architecture"
            ) from None
        if (c.in_features, c.out_features) != (d.in_features, d.out_features):
            raise ArchitectureMismatch(
                f"layer_losses: {name} is [{c.out_features}, {c.in_features}] in the compressed "
                f"model but [{d.out_features}, {d.in_features}] in the dense one"
            )
        pairs.append((name, c, d))
    return pairs


@contextlib.contextmanager
def _hooks(
    pairs: list[tuple[str, nn.Module, nn.Module]], energies: dict[str, _Energy]
) -> Iterator[None]:
    """Forward hooks on the dense layers that run the compressed twin on the same input."""
    handles = []

    def hook_for(name: str, compressed: nn.Module) -> Any:
        def hook(_module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> None:
            energies[name].add(output, compressed(inputs[0]))

        return hook

    try:
        for name, c, d in pairs:
            if not _same_linear(c, d):
                handles.append(d.register_forward_hook(hook_for(name, c)))
        yield
    finally:
        for h in handles:
            h.remove()


def _forward(model: nn.Module, batch: Batch) -> None:
    if isinstance(batch, Mapping):
        model(**batch)
    else:
        model(batch)


def layer_losses(
    compressed: nn.Module,
    dense: nn.Module,
    batches: Iterable[Batch],
    progress: bool = False,
) -> list[LayerLoss]:
    """One :class:`LayerLoss` per ``nn.Linear`` of ``dense``, in module order.

    ``batches`` are fed to ``dense`` only (``input_ids`` tensors, or keyword-argument
    dicts); each compressed layer sees its dense twin's input. Both models are run
    without gradients and in eval mode; their modes and hooks are restored afterwards.
    Layers identical to the dense ones (plain ``nn.Linear``, equal tensors) are not
    recomputed: their SQNRs are ``inf`` and their share 0.

    Example: see the module docstring.
    """
    pairs = _pairs(compressed, dense)
    energies = {name: _Energy() for name, _, _ in pairs}
    modes = [(m, m.training) for m in (compressed, dense)]
    try:
        compressed.eval()
        dense.eval()
        with torch.no_grad(), _hooks(pairs, energies):
            for batch in _progress(batches, progress):
                _forward(dense, batch)
    finally:
        for m, training in modes:
            m.train(training)
    rel = {name: e.relative_error() for name, e in energies.items()}
    shares = _shares(rel)
    rows = []
    for name, c, d in pairs:
        w_d = effective_weight(d).double()
        w_err = float(((effective_weight(c).double() - w_d) ** 2).sum())
        block, kind = _block_and_kind(name)
        e = energies[name]
        rows.append(
            LayerLoss(
                name=name,
                block=block,
                kind=kind,
                layer_type=type(c).__name__,
                weight_sqnr_db=sqnr_db(float((w_d**2).sum()), w_err),
                output_sqnr_db=sqnr_db(e.signal, e.noise),
                relative_error=rel[name],
                share=shares[name],
            )
        )
    return rows


def _progress(batches: Iterable[Batch], show: bool) -> Iterable[Batch]:
    if not show:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc="per-layer loss", unit="batch")
