"""LoRA: a trainable low-rank correction beside a frozen (possibly quantized) layer.

Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models" (2021). The output is
``base(x) + (alpha / r) * dropout(x) A^T B^T`` with ``B`` starting at zero, so the
wrapped layer starts as exactly the base layer. The base layer is only called, never
merged into, so it may be a packed int4/int8/2:4 layer from ``squeezeprompt.nn``:
anything with ``forward(x)``, ``in_features`` and ``out_features``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from squeezeprompt.nn.base import register_wrapper


@dataclass(frozen=True)
class LoRAConfig:
    """Adapter rank, scaling numerator ``alpha`` (scale = alpha / rank) and input dropout.

    Example:
        >>> LoRAConfig(rank=4, alpha=8.0).scaling
        2.0
    """

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or self.rank <= 0:
            raise ValueError(f"LoRAConfig: rank must be a positive int, got {self.rank!r}")
        if not self.alpha > 0:
            raise ValueError(f"LoRAConfig: alpha must be > 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRAConfig: dropout must lie in [0, 1), got {self.dropout}")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


@register_wrapper
class LoRALinear(nn.Module):
    """Wraps a frozen linear-like ``base`` with a low-rank adapter (float32 parameters).

    The adapter is never merged into ``base``: checkpoints store both, each in its own
    format (``squeezeprompt.checkpoint`` rebuilds the wrapper from :meth:`init_kwargs`).

    Example:
        >>> layer = LoRALinear(nn.Linear(8, 4), LoRAConfig(rank=2))
        >>> x = torch.randn(3, 8)
        >>> torch.equal(layer(x), layer.base(x))
        True
    """

    def __init__(self, base: nn.Module, config: LoRAConfig | None = None) -> None:
        super().__init__()
        config = config or LoRAConfig()
        for attr in ("in_features", "out_features"):
            if not isinstance(getattr(base, attr, None), int):
                raise TypeError(
                    f"LoRALinear: base must expose an int {attr} (a linear-like layer), "
                    f"got {type(base).__name__}"
                )
        self.base = base
        self.base.requires_grad_(False)
        self.config = config
        self.in_features: int = base.in_features
        self.out_features: int = base.out_features
        device = next((t.device for t in base.state_dict().values()), None)
        self.lora_a = nn.Parameter(torch.empty(config.rank, self.in_features, device=device))
        self.lora_b = nn.Parameter(torch.zeros(self.out_features, config.rank, device=device))
        # Kaiming-uniform A (as nn.Linear initialises its weight) and zero B: the
        # product starts at zero but B's gradient does not.
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.dropout = nn.Dropout(config.dropout)

    @classmethod
    def from_init(cls, base: nn.Module, init: dict[str, Any]) -> LoRALinear:
        """Rebuilds a wrapper around ``base`` from :meth:`init_kwargs` (checkpoint loading).

        Example:
            >>> w = LoRALinear(nn.Linear(8, 4), LoRAConfig(rank=2))
            >>> LoRALinear.from_init(nn.Linear(8, 4), w.init_kwargs()).config.rank
            2
        """
        return cls(base, LoRAConfig(**init))

    def init_kwargs(self) -> dict[str, Any]:
        """The adapter's settings as JSON types."""
        c = self.config
        return {"rank": c.rank, "alpha": c.alpha, "dropout": c.dropout}

    def forward(self, x: Tensor) -> Tensor:
        y = self.base(x)
        h = self.dropout(x).to(self.lora_a.dtype) @ self.lora_a.T
        return y + (h @ self.lora_b.T * self.config.scaling).to(y.dtype)

    def extra_repr(self) -> str:
        c = self.config
        return f"rank={c.rank}, alpha={c.alpha}, dropout={c.dropout}"


def _is_linear(_name: str, module: nn.Module) -> bool:
    return isinstance(module, nn.Linear)


def apply_lora_(
    model: nn.Module,
    config: LoRAConfig | None = None,
    include: Callable[[str, nn.Module], bool] = _is_linear,
) -> list[str]:
    """Freezes ``model`` and wraps every module ``include(name, module)`` accepts; returns names.

    Example:
        >>> m = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> apply_lora_(m, LoRAConfig(rank=2))
        ['0', '2']
        >>> sum(p.numel() for p in m.parameters() if p.requires_grad)
        28
    """
    config = config or LoRAConfig()
    model.requires_grad_(False)
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if name and not isinstance(module, LoRALinear) and include(name, module)
    ]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(module, config))
    return [name for name, _ in targets]
