"""Evolutionary search: a population improved by selection, crossover and mutation.

The first population is the default prompt plus library instructions with random
demonstration sets. Each generation breeds ``population`` children (binary tournament
selection, crossover with probability ``crossover_rate``, then one mutation), adds
proposer paraphrases of the best candidate, and keeps the best ``population`` of
parents and children together (elitism: the best is never lost).

Example:
    >>> Strategy.EVOLUTION.value
    'evolution'
"""

from __future__ import annotations

from dataclasses import replace

from squeezeprompt.prompt.candidate import PromptCandidate
from squeezeprompt.prompt.demos import sample_demos
from squeezeprompt.prompt.scoring import ScoreBook
from squeezeprompt.prompt.search.base import Progress, register_strategy
from squeezeprompt.prompt.search.config import SearchConfig, StopReason, Strategy
from squeezeprompt.prompt.search.space import SearchSpace, crossover, mutate


def _tournament(
    population: list[PromptCandidate], book: ScoreBook, space: SearchSpace
) -> PromptCandidate:
    a, b = space.rng.choice(population), space.rng.choice(population)
    return a if book.score(a) >= book.score(b) else b


def _survivors(
    candidates: list[PromptCandidate], book: ScoreBook, size: int
) -> list[PromptCandidate]:
    order = {e.candidate: (-e.score, e.order) for e in book.history()}
    return sorted(dict.fromkeys(candidates), key=order.__getitem__)[:size]


@register_strategy(Strategy.EVOLUTION)
def evolution(
    space: SearchSpace, book: ScoreBook, config: SearchConfig, progress: Progress
) -> StopReason:
    """Evolve until patience, target, ``max_rounds`` or the budget stops it."""
    rng = space.rng
    others = list(space.instructions[1:])
    founders = [PromptCandidate(space.instructions[0])]
    for instruction in rng.sample(others, min(len(others), config.population - 1)):
        k = rng.randint(0, space.max_demos)
        founders.append(PromptCandidate(instruction, sample_demos(space.demo_pool, k, rng)))
    for candidate in founders:
        book.score(candidate)
        if progress.reached_target():
            return StopReason.TARGET
    population = _survivors(founders, book, config.population)
    progress.start()
    while True:
        children: list[PromptCandidate] = []
        for _ in range(config.population):
            child = _tournament(population, book, space)
            if rng.random() < config.crossover_rate:
                child = crossover(child, _tournament(population, book, space), space)
            children.append(mutate(child, space))
        best = population[0]
        for rewrite in space.paraphrase(best.instruction, config.paraphrases):
            children.append(replace(best, instruction=rewrite))
        for child in children:
            book.score(child)
            if progress.reached_target():
                return StopReason.TARGET
        population = _survivors(population + children, book, config.population)
        stop = progress.end_round()
        if stop is not None:
            return stop
