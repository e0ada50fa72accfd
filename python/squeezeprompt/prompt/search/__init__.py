"""Discrete prompt search: select, combine, adjust — one ``search`` for every strategy.

Example:
    >>> from squeezeprompt.prompt.search import Strategy
    >>> sorted(s.value for s in Strategy)
    ['beam', 'evolution', 'exhaustive', 'halving']
"""

# Importing the strategy modules registers them with `search`.
from squeezeprompt.prompt.search import beam, evolution, exhaustive, halving  # noqa: F401
from squeezeprompt.prompt.search.base import SearchResult, register_strategy, search
from squeezeprompt.prompt.search.config import SearchConfig, StopReason, Strategy
from squeezeprompt.prompt.search.space import SearchSpace, crossover, mutate

__all__ = [
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "StopReason",
    "Strategy",
    "crossover",
    "mutate",
    "register_strategy",
    "search",
]
