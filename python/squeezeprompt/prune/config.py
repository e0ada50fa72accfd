"""What sparsity to reach: a fraction of weights, unstructured or in the 2:4 pattern."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Pattern(Enum):
    """Where the zeros may fall."""

    UNSTRUCTURED = "unstructured"  # anywhere; the same count in every output row
    SEMI_24 = "2:4"  # at most 2 nonzeros in every group of 4 consecutive input columns


@dataclass(frozen=True)
class Sparsity:
    """Fraction of weights set to zero and the pattern they follow.

    Unstructured sparsity removes ``round(ratio * in_features)`` weights from every
    output row (Wanda's per-row comparison group; equal rows also keep the per-row
    kernels balanced). 2:4 is exactly half.

    Example:
        >>> Sparsity(0.5, Pattern.SEMI_24).pruned_per_row(8)
        4
        >>> Sparsity.semi_24().pattern.value
        '2:4'
    """

    ratio: float = 0.5
    pattern: Pattern = Pattern.UNSTRUCTURED

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, Pattern):
            raise TypeError(f"Sparsity: pattern must be a Pattern member, got {self.pattern!r}")
        if not 0.0 <= self.ratio < 1.0:
            raise ValueError(f"Sparsity: ratio must lie in [0, 1), got {self.ratio}")
        if self.pattern is Pattern.SEMI_24 and self.ratio != 0.5:
            raise ValueError(f"Sparsity: the 2:4 pattern means ratio 0.5, got {self.ratio}")

    @classmethod
    def semi_24(cls) -> Sparsity:
        return cls(0.5, Pattern.SEMI_24)

    def pruned_per_row(self, in_features: int) -> int:
        """How many weights each output row loses."""
        if self.pattern is Pattern.SEMI_24 and in_features % 4:
            raise ValueError(f"Sparsity: 2:4 needs in_features divisible by 4, got {in_features}")
        return round(self.ratio * in_features)
