"""The benchmark cases: DESIGN.md's performance table plus the SmolLM2-135M Linear shapes.

Each case names one kernel family (:class:`Kind`) and a shape; :mod:`bench.kernels`
turns it into our kernel and the baselines it is compared with in the same run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    INT4_WEIGHT_ONLY = "int4_weight_only"
    INT4_DYNAMIC = "int4_dynamic"  # W4A8: int4 group-wise weights, int8 per-token activations
    INT8_WEIGHT_ONLY = "int8_weight_only"
    W8A8 = "w8a8"
    SPARSE24 = "sparse24"
    SPARSE24_INT4 = "sparse24_int4"
    FAKE_QUANT = "fake_quant"


# Kinds whose case names carry the group size.
_GROUPED = (Kind.INT4_WEIGHT_ONLY, Kind.INT4_DYNAMIC, Kind.SPARSE24_INT4, Kind.FAKE_QUANT)


@dataclass(frozen=True)
class Case:
    """One benchmark: ``m`` activation rows against an ``[n, k]`` weight.

    Example:
        >>> Case(Kind.INT4_WEIGHT_ONLY, 1, 576, 1536, group_size=32, model="SmolLM2-135M").name
        'int4_weight_only/m1_k576_n1536_g32/SmolLM2-135M'
    """

    kind: Kind
    m: int
    k: int
    n: int
    group_size: int = 128
    model: str = "synthetic"

    def __post_init__(self) -> None:
        if not isinstance(self.kind, Kind):
            raise TypeError(f"Case.kind must be a Kind, got {type(self.kind).__name__}")
        for field in ("m", "k", "n", "group_size"):
            if getattr(self, field) <= 0:
                raise ValueError(f"Case.{field} must be positive, got {getattr(self, field)}")
        if self.k % self.group_size != 0:
            raise ValueError(
                f"Case.group_size must divide k (k={self.k}, group_size={self.group_size})"
            )

    @property
    def name(self) -> str:
        shape = f"m{self.m}_k{self.k}_n{self.n}"
        if self.kind in (
            Kind.INT4_WEIGHT_ONLY,
            Kind.INT4_DYNAMIC,
            Kind.SPARSE24_INT4,
            Kind.FAKE_QUANT,
        ):
            shape += f"_g{self.group_size}"
        return f"{self.kind.value}/{shape}/{self.model}"


_SQUARE = 4096
# SmolLM2-135M: hidden 576, MLP 1536, vocabulary 49152; its GGUF was Q4_1 at group 32.
SMOLLM2_SHAPES = ((576, 576), (576, 1536), (1536, 576), (576, 49152))

DESIGN_CASES = (
    *(Case(Kind.INT4_WEIGHT_ONLY, m, _SQUARE, _SQUARE) for m in (1, 8, 128, 512)),
    *(Case(Kind.INT8_WEIGHT_ONLY, m, _SQUARE, _SQUARE) for m in (1, 8)),
    *(Case(Kind.W8A8, m, _SQUARE, _SQUARE) for m in (1, 8, 128, 512)),
    Case(Kind.SPARSE24, 1, _SQUARE, _SQUARE),
    Case(Kind.SPARSE24_INT4, 1, _SQUARE, _SQUARE),
    Case(Kind.FAKE_QUANT, _SQUARE, _SQUARE, 1, group_size=_SQUARE),
    Case(Kind.FAKE_QUANT, _SQUARE, _SQUARE, 1, group_size=128),
)

SMOLLM2_CASES = tuple(
    Case(kind, 1, k, n, group_size=32, model="SmolLM2-135M")
    for kind in (Kind.INT4_WEIGHT_ONLY, Kind.INT8_WEIGHT_ONLY, Kind.SPARSE24_INT4)
    for k, n in SMOLLM2_SHAPES
)

# W4A8 at decode (M = 1, 8) and prefill (M = 128), at the group sizes SmolLM2 takes
# (K = 576: 32 reproduces its Q4_1 weights, 64 is the int4 config of the model bench).
W4A8_CASES = tuple(
    Case(Kind.INT4_DYNAMIC, m, k, n, group_size=g, model="SmolLM2-135M")
    for g in (64, 32)
    for m in (1, 8, 128)
    for k, n in SMOLLM2_SHAPES
)

ALL_CASES = DESIGN_CASES + SMOLLM2_CASES + W4A8_CASES
