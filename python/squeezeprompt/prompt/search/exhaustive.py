"""Exhaustive search: every instruction with every demonstration subset of the pool.

Meant for a small pool (``demo_pool`` and ``max_demos`` small): it scores
instructions alone first (*select*), then with one demonstration, two, ... (*combine*),
so a budget that runs out still leaves the cheapest, most informative part done.

Example:
    >>> from itertools import islice
    >>> list(islice(_candidates(("A?", "B?"), (7, 8), 1), 4))  # doctest: +NORMALIZE_WHITESPACE
    [PromptCandidate(instruction='A?', demos=()), PromptCandidate(instruction='B?', demos=()),
     PromptCandidate(instruction='A?', demos=(7,)), PromptCandidate(instruction='B?', demos=(7,))]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import combinations

from squeezeprompt.prompt.candidate import PromptCandidate
from squeezeprompt.prompt.scoring import ScoreBook
from squeezeprompt.prompt.search.base import Progress, register_strategy
from squeezeprompt.prompt.search.config import SearchConfig, StopReason, Strategy
from squeezeprompt.prompt.search.space import SearchSpace


def _candidates(
    instructions: Sequence[str], pool: Sequence[int], max_demos: int
) -> Iterator[PromptCandidate]:
    for k in range(max_demos + 1):
        for demos in combinations(pool, k):
            for instruction in instructions:
                yield PromptCandidate(instruction, demos)


@register_strategy(Strategy.EXHAUSTIVE)
def exhaustive(
    space: SearchSpace, book: ScoreBook, config: SearchConfig, progress: Progress
) -> StopReason:
    """Score the whole grid in order; stop early only at the target or the budget."""
    for candidate in _candidates(space.instructions, space.demo_pool, space.max_demos):
        book.score(candidate)
        if progress.reached_target():
            return StopReason.TARGET
    progress.rounds = 1
    return StopReason.EXHAUSTED
