"""Beam search: score the instruction pool, then repeatedly expand the best few.

Each round takes the ``beam_width`` best candidates scored so far, asks the proposer
to paraphrase their instructions (*adjust*), adds ``expansions`` random moves of each
(swap instruction, add / drop / replace a demonstration), and scores what is new.

Example:
    >>> Strategy.BEAM.value
    'beam'
"""

from __future__ import annotations

from dataclasses import replace

from squeezeprompt.prompt.candidate import PromptCandidate
from squeezeprompt.prompt.scoring import ScoreBook
from squeezeprompt.prompt.search.base import Progress, register_strategy
from squeezeprompt.prompt.search.config import SearchConfig, StopReason, Strategy
from squeezeprompt.prompt.search.space import SearchSpace, mutate


@register_strategy(Strategy.BEAM)
def beam(
    space: SearchSpace, book: ScoreBook, config: SearchConfig, progress: Progress
) -> StopReason:
    """Select from the pool, then expand the beam until patience, target or budget."""
    for instruction in space.instructions:
        book.score(PromptCandidate(instruction))
        if progress.reached_target():
            return StopReason.TARGET
    progress.start()
    while True:
        members = [e.candidate for e in book.ranked()[: config.beam_width]]
        neighbours: list[PromptCandidate] = []
        for member in members:
            for rewrite in space.paraphrase(member.instruction, config.paraphrases):
                neighbours.append(replace(member, instruction=rewrite))
            neighbours += [mutate(member, space) for _ in range(config.expansions)]
        new = [c for c in dict.fromkeys(neighbours) if not book.seen(c)]
        if not new:
            return StopReason.EXHAUSTED
        for candidate in new:
            book.score(candidate)
            if progress.reached_target():
                return StopReason.TARGET
        stop = progress.end_round()
        if stop is not None:
            return stop
