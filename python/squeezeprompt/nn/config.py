"""Typed configs for the model transforms: frozen dataclasses, validated on creation.

JSON only serialises them (:func:`config_to_dict` / :func:`config_from_dict`).

Example:
    >>> Int4WeightOnly(group_size=64)
    Int4WeightOnly(group_size=64, symmetric=False)
    >>> config_from_dict(config_to_dict(SemiStructured24(values=SparseValues.INT8)))
    SemiStructured24(values=<SparseValues.INT8: 'int8'>, group_size=128, symmetric=False)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar


class TransformKind(Enum):
    """Which entry point applies a config (``quantize_``, ``sparsify_`` or ``prepare_qat``)."""

    QUANTIZE = "quantize_"
    SPARSIFY = "sparsify_"
    QAT = "prepare_qat"


class SparseValues(Enum):
    """How the kept values of a 2:4 weight are stored."""

    FLOAT = "float"  # packed 2:4, float values
    INT8 = "int8"  # packed 2:4, int8 values with per-channel scales
    INT4 = "int4"  # packed 2:4 with group-wise int4 codes (Sparse24Int4Linear)


CONFIGS: dict[str, type[TransformConfig]] = {}


def _check_group_size(cls: str, group_size: int | None, allow_none: bool) -> None:
    if group_size is None and allow_none:
        return
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size <= 0:
        raise ValueError(f"{cls}: group_size must be a positive int, got {group_size!r}")
    if group_size % 2:
        raise ValueError(f"{cls}: group_size must be even (int4 pairs), got {group_size}")


def _check_bool(cls: str, name: str, v: object) -> None:
    if not isinstance(v, bool):
        raise TypeError(f"{cls}: {name} must be a bool, got {v!r}")


@dataclass(frozen=True)
class TransformConfig:
    """Base of every config; subclasses say which entry point takes them."""

    kind: ClassVar[TransformKind]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        CONFIGS[cls.__name__] = cls


@dataclass(frozen=True)
class Int8WeightOnly(TransformConfig):
    """Weight-only int8, symmetric per output channel."""

    kind: ClassVar[TransformKind] = TransformKind.QUANTIZE


@dataclass(frozen=True)
class Int4WeightOnly(TransformConfig):
    """Weight-only int4 per ``group_size`` input columns; symmetric fixes the zero at 8."""

    kind: ClassVar[TransformKind] = TransformKind.QUANTIZE
    group_size: int = 128
    symmetric: bool = False

    def __post_init__(self) -> None:
        _check_group_size("Int4WeightOnly", self.group_size, allow_none=False)
        _check_bool("Int4WeightOnly", "symmetric", self.symmetric)


@dataclass(frozen=True)
class Int8Dynamic(TransformConfig):
    """W8A8: int8 weights per channel, int8 activations per token at run time."""

    kind: ClassVar[TransformKind] = TransformKind.QUANTIZE


@dataclass(frozen=True)
class Int4Dynamic(TransformConfig):
    """W4A8: int4 weights per ``group_size`` input columns (as ``Int4WeightOnly``), int8
    activations per token at run time. Group sizes that are multiples of 32 take the
    SIMD kernels; other even sizes work on the portable one.

    Example:
        >>> Int4Dynamic(group_size=64)
        Int4Dynamic(group_size=64, symmetric=False)
    """

    kind: ClassVar[TransformKind] = TransformKind.QUANTIZE
    group_size: int = 128
    symmetric: bool = False

    def __post_init__(self) -> None:
        _check_group_size("Int4Dynamic", self.group_size, allow_none=False)
        _check_bool("Int4Dynamic", "symmetric", self.symmetric)


@dataclass(frozen=True)
class FakeQuant(TransformConfig):
    """QAT grid: ``bits`` 4 (per group, or per channel with ``group_size=None``) or 8
    (symmetric per channel only, like the int8 layers)."""

    kind: ClassVar[TransformKind] = TransformKind.QAT
    bits: int = 4
    group_size: int | None = 128
    symmetric: bool = False

    def __post_init__(self) -> None:
        if self.bits not in (4, 8) or isinstance(self.bits, bool):
            raise ValueError(f"FakeQuant: bits must be 4 or 8, got {self.bits!r}")
        _check_group_size("FakeQuant", self.group_size, allow_none=True)
        _check_bool("FakeQuant", "symmetric", self.symmetric)
        if self.bits == 8 and (not self.symmetric or self.group_size is not None):
            raise ValueError(
                "FakeQuant: bits=8 needs symmetric=True and group_size=None (per channel), "
                f"got symmetric={self.symmetric}, group_size={self.group_size}"
            )


@dataclass(frozen=True)
class SemiStructured24(TransformConfig):
    """2:4 sparsity for inference; ``group_size``/``symmetric`` apply to ``values=INT4``."""

    kind: ClassVar[TransformKind] = TransformKind.SPARSIFY
    values: SparseValues = SparseValues.FLOAT
    group_size: int = 128
    symmetric: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.values, SparseValues):
            raise TypeError(
                f"SemiStructured24: values must be a SparseValues "
                f"({', '.join(v.name for v in SparseValues)}), got {self.values!r}"
            )
        _check_group_size("SemiStructured24", self.group_size, allow_none=False)
        _check_bool("SemiStructured24", "symmetric", self.symmetric)


@dataclass(frozen=True)
class Unstructured(TransformConfig):
    """Training-time unstructured sparsity (a ``MaskedLinear``); magnitude per layer by default."""

    kind: ClassVar[TransformKind] = TransformKind.SPARSIFY
    sparsity: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float)):
            raise TypeError(f"Unstructured: sparsity must be a float, got {self.sparsity!r}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"Unstructured: sparsity must lie in [0, 1), got {self.sparsity}")


def config_to_dict(config: TransformConfig) -> dict[str, Any]:
    """JSON-ready form: ``{"type": class name, field: value}`` with enums as their values.

    Example:
        >>> config_to_dict(Int4WeightOnly())
        {'type': 'Int4WeightOnly', 'group_size': 128, 'symmetric': False}
    """
    out: dict[str, Any] = {"type": type(config).__name__}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        out[f.name] = v.value if isinstance(v, Enum) else v
    return out


def config_from_dict(data: dict[str, Any]) -> TransformConfig:
    """Inverse of :func:`config_to_dict`; unknown types or fields raise.

    Example:
        >>> config_from_dict({"type": "Unstructured", "sparsity": 0.25})
        Unstructured(sparsity=0.25)
    """
    data = dict(data)
    name = data.pop("type", None)
    if name not in CONFIGS:
        raise ValueError(f"unknown config type {name!r}; known: {', '.join(sorted(CONFIGS))}")
    cls = CONFIGS[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"{name}: unknown fields {sorted(unknown)}; expected {sorted(fields)}")
    if "values" in data and cls is SemiStructured24:
        data["values"] = SparseValues(data["values"])
    return cls(**data)
