"""The candidate space a strategy walks, and the moves between candidates.

``SearchSpace`` holds everything a strategy may draw from: the instruction pool (the
task's default first, then the library), the label-balanced demonstration pool from
the train split, the proposer and the seeded ``rng``. The moves (``mutate``,
``crossover``) are pure functions of a candidate, the space and ``rng``.

Example:
    >>> import random
    >>> space = SearchSpace(("A?", "B?"), demo_pool=(0, 1, 2), max_demos=2,
    ...                     proposer=None, rng=random.Random(0))
    >>> mutate(PromptCandidate("A?"), space).instruction in ("A?", "B?")
    True
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from squeezeprompt.prompt.candidate import PromptCandidate
from squeezeprompt.prompt.proposer import Proposer


@dataclass
class SearchSpace:
    """Instruction and demonstration pools plus the proposer and the randomness."""

    instructions: tuple[str, ...]
    demo_pool: tuple[int, ...]
    max_demos: int
    proposer: Proposer | None
    rng: random.Random
    # Label of each demonstration-pool index (train labels), for label-balanced moves.
    demo_labels: dict[int, int] = field(default_factory=dict)

    def paraphrase(self, instruction: str, n: int) -> list[str]:
        """Up to ``n`` proposer rewrites of ``instruction`` (none without a proposer)."""
        if self.proposer is None or n == 0:
            return []
        return self.proposer.propose(instruction, n, self.rng)


Move = Callable[[PromptCandidate, SearchSpace], "PromptCandidate | None"]


def _swap_instruction(c: PromptCandidate, space: SearchSpace) -> PromptCandidate | None:
    others = [s for s in space.instructions if s != c.instruction]
    return replace(c, instruction=space.rng.choice(others)) if others else None


def _paraphrase(c: PromptCandidate, space: SearchSpace) -> PromptCandidate | None:
    rewrites = space.paraphrase(c.instruction, 1)
    return replace(c, instruction=rewrites[0]) if rewrites else None


def _add_demo(c: PromptCandidate, space: SearchSpace) -> PromptCandidate | None:
    unused = [i for i in space.demo_pool if i not in c.demos]
    if len(c.demos) >= space.max_demos or not unused:
        return None
    at = space.rng.randint(0, len(c.demos))
    demos = c.demos[:at] + (space.rng.choice(unused),) + c.demos[at:]
    return replace(c, demos=demos)


def _drop_demo(c: PromptCandidate, space: SearchSpace) -> PromptCandidate | None:
    if not c.demos:
        return None
    at = space.rng.randrange(len(c.demos))
    return replace(c, demos=c.demos[:at] + c.demos[at + 1 :])


def _replace_demo(c: PromptCandidate, space: SearchSpace) -> PromptCandidate | None:
    unused = [i for i in space.demo_pool if i not in c.demos]
    if not c.demos or not unused:
        return None
    at = space.rng.randrange(len(c.demos))
    return replace(c, demos=c.demos[:at] + (space.rng.choice(unused),) + c.demos[at + 1 :])


MOVES: tuple[Move, ...] = (_swap_instruction, _paraphrase, _add_demo, _drop_demo, _replace_demo)


def mutate(candidate: PromptCandidate, space: SearchSpace, tries: int = 8) -> PromptCandidate:
    """One random applicable move; the candidate itself if ``tries`` draws all failed.

    Example:
        >>> space = SearchSpace(("A?",), (5,), 1, None, random.Random(0))
        >>> mutate(PromptCandidate("A?"), space)
        PromptCandidate(instruction='A?', demos=(5,))
    """
    for _ in range(tries):
        moved = space.rng.choice(MOVES)(candidate, space)
        if moved is not None and moved != candidate:
            return moved
    return candidate


def crossover(a: PromptCandidate, b: PromptCandidate, space: SearchSpace) -> PromptCandidate:
    """``a``'s instruction with demonstrations drawn from both parents (order kept).

    Example:
        >>> space = SearchSpace(("A?",), (1, 2), 2, None, random.Random(0))
        >>> crossover(PromptCandidate("A?", (1,)), PromptCandidate("B?", (2,)), space).instruction
        'A?'
    """
    genes = list(dict.fromkeys(a.demos + b.demos))
    k = space.rng.randint(min(len(a.demos), len(b.demos)), min(len(genes), space.max_demos))
    keep = sorted(space.rng.sample(range(len(genes)), k))
    return PromptCandidate(a.instruction, tuple(genes[i] for i in keep))
