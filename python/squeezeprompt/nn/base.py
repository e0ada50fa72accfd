"""What every drop-in layer shares: the nn.Linear interface, a layer registry, byte counts.

A drop-in layer is built empty from JSON-serialisable constructor arguments
(:meth:`QuantizedLinearBase.init_kwargs`) and filled from a ``state_dict``; that is
how :mod:`squeezeprompt.checkpoint` rebuilds a saved model without pickle.

Example:
    >>> from squeezeprompt.nn import Int8WeightOnlyLinear
    >>> layer = Int8WeightOnlyLinear.from_linear(torch.nn.Linear(64, 32))
    >>> LAYERS["Int8WeightOnlyLinear"] is Int8WeightOnlyLinear, layer.nbytes()
    (True, 2304)
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
from torch import Tensor, nn

LAYERS: dict[str, type[QuantizedLinearBase]] = {}

L = TypeVar("L", bound="type[QuantizedLinearBase]")


def register_layer(cls: L) -> L:
    """Class decorator: makes a layer rebuildable by name from a checkpoint manifest.

    Example:
        >>> "Int4WeightOnlyLinear" in LAYERS
        True
    """
    if cls.__name__ in LAYERS or cls.__name__ in WRAPPERS:
        raise ValueError(f"register_layer: {cls.__name__} is already registered")
    LAYERS[cls.__name__] = cls
    return cls


WRAPPERS: dict[str, type[nn.Module]] = {}

W = TypeVar("W", bound="type[nn.Module]")


def register_wrapper(cls: W) -> W:
    """Class decorator for a module that wraps one layer, held as its ``base`` submodule.

    Checkpoints record the wrapper's ``init_kwargs()`` and rebuild it with
    ``cls.from_init(base, init)`` around the base layer before loading the weights (e.g.
    a LoRA adapter beside a packed int4 layer, kept separate from it).

    Example:
        >>> import squeezeprompt.recover  # registers LoRALinear
        >>> "LoRALinear" in WRAPPERS
        True
    """
    for attr in ("init_kwargs", "from_init"):
        if not callable(getattr(cls, attr, None)):
            raise TypeError(f"register_wrapper: {cls.__name__} needs a {attr}() method")
    if cls.__name__ in WRAPPERS or cls.__name__ in LAYERS:
        raise ValueError(f"register_wrapper: {cls.__name__} is already registered")
    WRAPPERS[cls.__name__] = cls
    return cls


def tensor_bytes(tensors: Any) -> int:
    """Total storage bytes of an iterable of tensors (``None`` entries ignored).

    Example:
        >>> tensor_bytes([torch.zeros(4, dtype=torch.int8), None, torch.zeros(2)])
        12
    """
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


class QuantizedLinearBase(nn.Module):
    """Base of the drop-in layers: ``in_features``, ``out_features`` and a float ``bias``.

    The bias stays a float ``nn.Parameter`` (so it can still be trained and follows
    ``model.to(dtype)``); the compressed weight lives in buffers so ``state_dict``
    carries it and optimizers leave it alone.

    Example:
        >>> from squeezeprompt.nn import Int8WeightOnlyLinear
        >>> Int8WeightOnlyLinear(8, 4, bias=False).bias is None
        True
    """

    in_features: int
    out_features: int

    def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {v!r}")
        self.in_features = in_features
        self.out_features = out_features
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features))
        else:
            self.register_parameter("bias", None)

    def _copy_bias(self, linear: nn.Linear) -> None:
        if linear.bias is not None:
            assert self.bias is not None  # constructed with bias=True just before
            self.bias.data = linear.bias.detach().float().clone()

    def init_kwargs(self) -> dict[str, Any]:
        """Constructor arguments (JSON types only) that rebuild this layer empty.

        Example:
            >>> from squeezeprompt.nn import Int8WeightOnlyLinear
            >>> Int8WeightOnlyLinear(8, 4).init_kwargs()
            {'in_features': 8, 'out_features': 4, 'bias': True}
        """
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
        }

    def nbytes(self) -> int:
        """Bytes of this layer's parameters and buffers (what a checkpoint stores).

        Example:
            >>> from squeezeprompt.nn import Int8WeightOnlyLinear
            >>> Int8WeightOnlyLinear(8, 4, bias=False).nbytes()  # 32 int8 + 4 fp32 scales
            48
        """
        return tensor_bytes(self.parameters(recurse=False)) + tensor_bytes(
            self.buffers(recurse=False)
        )

    def dequantize(self) -> Tensor:
        """The float32 ``[out_features, in_features]`` weight this layer computes with."""
        raise NotImplementedError

    def _repr_common(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )

    def _repr_bytes(self) -> str:
        bits = 8.0 * tensor_bytes(b for n, b in self.named_buffers(recurse=False))
        bits /= self.in_features * self.out_features
        return f"bits_per_weight={bits:.2f}, bytes={self.nbytes()}"
