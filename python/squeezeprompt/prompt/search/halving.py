"""Successive halving: race each round's candidates on a growing slice of dev.

Scoring every candidate on the whole dev split spends a small budget on the first
screen (24 instructions x 64 examples is already 1,536 model calls), so demonstrations
are never reached. Here every round is a *race*: all of its candidates are scored on
the first ``screen_size`` dev examples, the better half goes on to twice as many, and
so on until the survivors are scored on all of dev (a candidate pays only for the
examples it has not seen yet). Only fully scored candidates can win.

Rounds follow the select / combine / adjust steps:

0. *select*: the instruction pool, no demonstrations;
1. *combine*: the ``beam_width`` best so far, each with ``expansions`` label-balanced
   demonstration sets (sizes 2, 4, ... up to ``max_demos``);
2. onwards, *adjust*: proposer paraphrases and ``expansions`` label-balanced moves of
   each of the ``beam_width`` best (replace a demonstration by one of the same label,
   reorder, add or drop a pair, swap the instruction),

until patience, target, ``max_rounds`` or the budget ends the search.

Example:
    >>> rungs(64, 16)
    [16, 32, 64]
    >>> rungs(10, 16)
    [10]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from squeezeprompt.prompt.candidate import PromptCandidate
from squeezeprompt.prompt.scoring import BudgetExhausted, ScoreBook
from squeezeprompt.prompt.search.base import Progress, register_strategy
from squeezeprompt.prompt.search.config import SearchConfig, StopReason, Strategy
from squeezeprompt.prompt.search.space import SearchSpace, mutate


def rungs(size: int, screen: int) -> list[int]:
    """Dev examples per rung: ``screen``, doubled until the last rung is all ``size``."""
    out, n = [], screen
    while n < size:
        out.append(n)
        n *= 2
    return [*out, size]


def race_cost(entrants: int, ladder: Sequence[int]) -> int:
    """Scored examples a race of ``entrants`` new candidates costs over ``ladder``.

    Example:
        >>> race_cost(8, [16, 32, 64])  # 8 x 16, then 4 x 16 more, then 2 x 32 more
        256
    """
    cost, done = 0, 0
    for n in ladder:
        cost += entrants * (n - done)
        done, entrants = n, math.ceil(entrants / 2)
    return cost


def race(
    candidates: Sequence[PromptCandidate], book: ScoreBook, config: SearchConfig
) -> list[PromptCandidate]:
    """Successive halving over the not-yet-fully-scored ``candidates``; returns the finalists.

    When the remaining budget cannot pay for the whole race, the race is run with the
    first candidates it can pay for in full (``BudgetExhausted`` if not even one), so
    no budget is spent on screens whose finalists could never be scored on all of dev.
    Ties at a rung keep the earlier candidate (stable sort), so a race is deterministic.

    Example:
        >>> book = ScoreBook(lambda c, xs: [len(c.instruction)] * len(xs), list(range(8)), 99)
        >>> cands = [PromptCandidate(s) for s in ("a", "abc", "ab", "abcd")]
        >>> race(cands, book, SearchConfig(screen_size=2)), book.calls_used
        ([PromptCandidate(instruction='abcd', demos=())], 16)
    """
    alive = [c for c in dict.fromkeys(candidates) if not book.seen(c)]
    ladder = rungs(book.size, config.screen_size)
    while alive and race_cost(len(alive), ladder) > book.remaining:
        alive.pop()
    if not alive and candidates and not all(book.seen(c) for c in candidates):
        raise BudgetExhausted(f"a race needs {race_cost(1, ladder)} calls, {book.remaining} left")
    for n in ladder:
        if not alive:
            break
        for candidate in alive:
            book.score(candidate, n)
        if n == book.size:
            break
        alive.sort(key=lambda c: -book.partial_score(c, n))
        alive = alive[: math.ceil(len(alive) / 2)]
    return alive


def balanced_demos(space: SearchSpace, k: int) -> tuple[int, ...]:
    """``k`` pool demonstrations, the same number of each label, labels alternating.

    Example:
        >>> import random
        >>> space = SearchSpace(("A",), (0, 1, 2, 3), 4, None, random.Random(0),
        ...                     demo_labels={0: 0, 1: 1, 2: 0, 3: 1})
        >>> sorted(space.demo_labels[i] for i in balanced_demos(space, 4))
        [0, 0, 1, 1]
    """
    by_label: dict[int, list[int]] = {}
    for i in space.demo_pool:
        by_label.setdefault(space.demo_labels[i], []).append(i)
    labels = sorted(by_label)
    per = min([k // len(labels), *(len(v) for v in by_label.values())])
    picks = {label: space.rng.sample(by_label[label], per) for label in labels}
    space.rng.shuffle(labels)  # which label comes last varies (small models echo it)
    return tuple(picks[label][j] for j in range(per) for label in labels)


def _replace_same_label(c: PromptCandidate, space: SearchSpace) -> PromptCandidate | None:
    if not c.demos:
        return None
    at = space.rng.randrange(len(c.demos))
    label = space.demo_labels[c.demos[at]]
    unused = [i for i in space.demo_pool if i not in c.demos and space.demo_labels[i] == label]
    if not unused:
        return None
    return replace(c, demos=c.demos[:at] + (space.rng.choice(unused),) + c.demos[at + 1 :])


def _reorder(c: PromptCandidate, space: SearchSpace) -> PromptCandidate | None:
    if len(c.demos) < 2:
        return None
    demos = list(c.demos)
    space.rng.shuffle(demos)
    return replace(c, demos=tuple(demos))


def _resize(c: PromptCandidate, space: SearchSpace) -> PromptCandidate | None:
    """A fresh balanced set two larger or two smaller (bounded by 0 and ``max_demos``)."""
    sizes = [k for k in (len(c.demos) - 2, len(c.demos) + 2) if 0 <= k <= space.max_demos]
    if not sizes:
        return None
    return replace(c, demos=balanced_demos(space, space.rng.choice(sizes)))


def _swap_instruction(c: PromptCandidate, space: SearchSpace) -> PromptCandidate | None:
    others = [s for s in space.instructions if s != c.instruction]
    return replace(c, instruction=space.rng.choice(others)) if others else None


BALANCED_MOVES = (_replace_same_label, _replace_same_label, _reorder, _resize, _swap_instruction)


def balanced_mutate(c: PromptCandidate, space: SearchSpace, tries: int = 8) -> PromptCandidate:
    """A move that keeps the demonstrations label-balanced (``mutate`` without labels).

    Example:
        >>> import random
        >>> space = SearchSpace(("A",), (0, 1, 2, 3), 2, None, random.Random(0),
        ...                     demo_labels={0: 0, 1: 1, 2: 0, 3: 1})
        >>> moved = balanced_mutate(PromptCandidate("A", (0, 1)), space)
        >>> sorted(space.demo_labels[i] for i in moved.demos) in ([], [0, 1])
        True
    """
    if not space.demo_labels:
        return mutate(c, space, tries)
    for _ in range(tries):
        moved = space.rng.choice(BALANCED_MOVES)(c, space)
        if moved is not None and moved != c:
            return moved
    return c


def _demo_sizes(max_demos: int) -> list[int]:
    return [k for k in range(2, max_demos + 1, 2)] or ([max_demos] if max_demos else [])


@register_strategy(Strategy.HALVING)
def halving(
    space: SearchSpace, book: ScoreBook, config: SearchConfig, progress: Progress
) -> StopReason:
    """Select, combine, then adjust; every round raced by successive halving."""
    race([PromptCandidate(s) for s in space.instructions], book, config)
    if progress.reached_target():
        return StopReason.TARGET
    progress.start()
    sizes = _demo_sizes(space.max_demos)
    while True:
        members = [e.candidate for e in book.ranked()[: config.beam_width]]
        new: list[PromptCandidate] = []
        # Round-robin over the members: a race cut short by the budget keeps its breadth.
        if progress.rounds == 0 and sizes and space.demo_labels:
            for j in range(config.expansions):
                k = sizes[j % len(sizes)]
                new += [replace(m, demos=balanced_demos(space, k)) for m in members]
        else:
            for member in members:
                for rewrite in space.paraphrase(member.instruction, config.paraphrases):
                    new.append(replace(member, instruction=rewrite))
            for _ in range(config.expansions):
                new += [balanced_mutate(m, space) for m in members]
        if all(book.seen(c) for c in new):
            return StopReason.EXHAUSTED
        race(new, book, config)
        if progress.reached_target():
            return StopReason.TARGET
        stop = progress.end_round()
        if stop is not None:
            return stop
