"""Which ``nn.Linear`` modules a transform touches.

Patterns are shell-style globs (:func:`fnmatch.fnmatchcase`) matched against the
**whole** qualified module name as ``model.named_modules()`` gives it, e.g.
``"model.layers.*.mlp.*"``. A module is chosen when it is an ``nn.Linear``, matches
some ``include`` pattern, matches no ``exclude`` pattern, and ``predicate(name,
module)`` (if given) returns True. Non-Linear modules (embeddings, norms) are never
chosen. The default ``exclude`` skips the output head (``lm_head``); passing your own
``exclude`` replaces it, so add ``"lm_head"`` to it if the head should stay float.

Example:
    >>> f = LinearFilter(exclude=("lm_head", "*.down_proj"))
    >>> f("model.layers.0.mlp.down_proj", torch.nn.Linear(2, 2))
    False
    >>> f("model.layers.0.mlp.up_proj", torch.nn.Linear(2, 2))
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase

import torch  # noqa: F401  (the doctest uses it)
from torch import nn

DEFAULT_EXCLUDE = ("lm_head", "*.lm_head")


def _check_patterns(field: str, patterns: object) -> None:
    # A bare string would be iterated character by character: refuse it.
    if not isinstance(patterns, tuple) or not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"LinearFilter.{field} must be a tuple of glob strings, got {patterns!r}")


@dataclass(frozen=True)
class LinearFilter:
    """Selects Linears by glob ``include``/``exclude`` on the qualified name and a predicate.

    Example:
        >>> LinearFilter(include=("*.q_proj",))("layers.0.q_proj", torch.nn.Linear(2, 2))
        True
    """

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    predicate: Callable[[str, nn.Module], bool] | None = None

    def __post_init__(self) -> None:
        _check_patterns("include", self.include)
        _check_patterns("exclude", self.exclude)
        if self.predicate is not None and not callable(self.predicate):
            raise TypeError(f"LinearFilter.predicate must be callable, got {self.predicate!r}")

    def __call__(self, name: str, module: nn.Module) -> bool:
        if not isinstance(module, nn.Linear):
            return False
        if not any(fnmatchcase(name, p) for p in self.include):
            return False
        if any(fnmatchcase(name, p) for p in self.exclude):
            return False
        return self.predicate is None or bool(self.predicate(name, module))


def select_linears(model: nn.Module, filter: LinearFilter | None = None) -> list[str]:
    """Qualified names of the Linears in ``model`` that ``filter`` (default: all but lm_head)
    chooses, in ``named_modules`` order.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
        >>> select_linears(m)
        ['0']
    """
    f = LinearFilter() if filter is None else filter
    if not isinstance(f, LinearFilter):
        raise TypeError(f"filter must be a LinearFilter, got {type(f).__name__}")
    return [name for name, mod in model.named_modules() if name and f(name, mod)]
