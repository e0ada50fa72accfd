"""Typed configuration of a discrete prompt search.

Example:
    >>> SearchConfig(strategy=Strategy.EVOLUTION, population=6).strategy.value
    'evolution'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Strategy(enum.Enum):
    """How the search walks the candidate space."""

    EXHAUSTIVE = "exhaustive"  # every instruction x every demo subset of a small pool
    BEAM = "beam"  # keep the best few, expand each by mutation, repeat
    EVOLUTION = "evolution"  # population, tournament selection, crossover, mutation
    HALVING = "halving"  # rounds of candidates raced by successive halving on growing dev


class StopReason(enum.Enum):
    """Why a search ended."""

    BUDGET = "budget"  # the next candidate would have overrun the scoring budget
    PATIENCE = "patience"  # no better candidate for `patience` rounds
    TARGET = "target"  # the best candidate reached `target`
    EXHAUSTED = "exhausted"  # nothing new left to score, or `max_rounds` reached


@dataclass(frozen=True)
class SearchConfig:
    """Search knobs; the budget and the randomness are arguments of ``search`` instead.

    Example:
        >>> SearchConfig(max_demos=2, demo_pool=6).max_demos
        2
    """

    strategy: Strategy = Strategy.HALVING
    max_demos: int = 4  # demonstrations per candidate, at most
    demo_pool: int = 16  # label-balanced train examples the demonstrations come from
    dev_size: int | None = None  # score on a fixed random subset of dev (None: all of it)
    instructions: int = 24  # library instructions in the starting pool (plus the default)
    beam_width: int = 4
    expansions: int = 4  # neighbours per beam member per round
    population: int = 8
    crossover_rate: float = 0.5
    paraphrases: int = 2  # rewrites asked from the proposer per parent and round
    patience: int = 3  # rounds without improvement before stopping
    max_rounds: int = 100
    target: float | None = 1.0  # stop once the best mean score reaches this
    screen_size: int = 16  # halving: dev examples of the first screen (doubled per rung)

    def __post_init__(self) -> None:
        if not isinstance(self.strategy, Strategy):
            raise TypeError(
                f"SearchConfig.strategy must be a Strategy, got {self.strategy!r} "
                f"(expected one of {[s.value for s in Strategy]})"
            )
        for name in ("max_demos", "demo_pool", "instructions", "paraphrases"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(
                    f"SearchConfig.{name} must be an int >= 0, got {getattr(self, name)!r}"
                )
        for name in (
            "beam_width",
            "expansions",
            "population",
            "patience",
            "max_rounds",
            "screen_size",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(
                    f"SearchConfig.{name} must be an int >= 1, got {getattr(self, name)!r}"
                )
        if self.max_demos > self.demo_pool:
            raise ValueError(
                f"SearchConfig: max_demos ({self.max_demos}) cannot exceed demo_pool "
                f"({self.demo_pool})"
            )
        if self.dev_size is not None and self.dev_size < 1:
            raise ValueError(f"SearchConfig.dev_size must be None or >= 1, got {self.dev_size}")
        if not 0.0 <= self.crossover_rate <= 1.0:
            raise ValueError(
                f"SearchConfig.crossover_rate must be in [0, 1], got {self.crossover_rate}"
            )
