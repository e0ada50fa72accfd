"""A discrete prompt: an instruction plus demonstrations drawn from the train split.

A candidate stores demonstration *indices* into ``task.train`` rather than the texts,
so it is small, hashable (it keys the score cache) and cannot smuggle in a dev or
test example. ``to_prompt`` turns it into the evaluator's ``Prompt``, which lays the
demonstrations out in the chat template's user turn.

Example:
    >>> c = PromptCandidate("Positive or negative?", demos=(1,))
    >>> train = (Example("dull", 0), Example("a joy", 1))
    >>> to_prompt(c, train).demonstrations
    (Example(text='a joy', label=1),)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from squeezeprompt.data.tasks import Example
from squeezeprompt.evaluate.prompt import Prompt


@dataclass(frozen=True)
class PromptCandidate:
    """An instruction and the train-split indices of its demonstrations, in order.

    Example:
        >>> PromptCandidate("Is this review positive or negative?", demos=(3, 7)).demos
        (3, 7)
    """

    instruction: str
    demos: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise ValueError(
                f"PromptCandidate.instruction must be a non-empty string, got {self.instruction!r}"
            )
        if not isinstance(self.demos, tuple) or not all(
            isinstance(i, int) and i >= 0 for i in self.demos
        ):
            raise ValueError(
                f"PromptCandidate.demos must be a tuple of train indices >= 0, got {self.demos!r}"
            )
        if len(set(self.demos)) != len(self.demos):
            raise ValueError(f"PromptCandidate.demos repeats an index: {self.demos!r}")


def demonstrations(candidate: PromptCandidate, train: Sequence[Example]) -> tuple[Example, ...]:
    """The train examples ``candidate.demos`` points at, in order.

    Example:
        >>> demonstrations(PromptCandidate("Q?", (1,)), [Example("a", 0), Example("b", 1)])
        (Example(text='b', label=1),)
    """
    for i in candidate.demos:
        if i >= len(train):
            raise IndexError(
                f"demonstration index {i} is outside the train split (len={len(train)})"
            )
    return tuple(train[i] for i in candidate.demos)


def to_prompt(candidate: PromptCandidate, train: Sequence[Example], **kwargs: Any) -> Prompt:
    """The evaluator's ``Prompt`` for ``candidate`` (``kwargs`` go to ``Prompt``).

    Example:
        >>> to_prompt(PromptCandidate("Q?", (0,)), [Example("fun", 1)]).demonstrations
        (Example(text='fun', label=1),)
    """
    return Prompt(
        instruction=candidate.instruction, demonstrations=demonstrations(candidate, train), **kwargs
    )
