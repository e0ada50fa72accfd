"""Scripted stand-ins shared by the prompt tests: a toy task, scorer and proposer.

The toy problem has one known optimum, reachable in every strategy's space:
instruction ``BEST`` with exactly the demonstrations ``GOOD`` (train indices), score
1.0. ``BEST`` is in the instruction list for the exhaustive search, and only two
paraphrase steps away (``I5`` -> ``I5b`` -> ``BEST``) for beam and evolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from squeezeprompt.data.tasks import Example
from squeezeprompt.prompt import PromptCandidate, ScriptedProposer

LABEL_WORDS = ("negative", "positive")
DEFAULT = "Is this movie review positive or negative? Answer with one word."
LIBRARY = tuple(f"I{k}" for k in range(6))
GOOD = frozenset({2, 5})
QUALITY = {DEFAULT: 0.1, **{f"I{k}": 0.1 * k for k in range(6)}, "I5b": 0.8, "BEST": 1.0}


class ForbiddenSplit(tuple):
    """A split that fails the test on any access: the search must never read it."""

    def _fail(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the search read the test split")

    __iter__ = __len__ = __getitem__ = __contains__ = __bool__ = _fail  # type: ignore[assignment]


@dataclass(frozen=True)
class ToyTask:
    """Duck-typed ``LabelledTask`` whose ``test`` split raises on access."""

    name: str = "toy"
    label_words: tuple[str, ...] = LABEL_WORDS
    default_instruction: str = DEFAULT
    train: tuple[Example, ...] = tuple(Example(f"train {i}", i % 2) for i in range(8))
    dev: tuple[Example, ...] = tuple(Example(f"dev {i}", i % 2) for i in range(10))

    @property
    def test(self) -> tuple[Example, ...]:
        raise AssertionError("the search read task.test")


@dataclass
class ToyScorer:
    """Scores a candidate by a hidden quality; records every example it was shown."""

    seen: list[str] = field(default_factory=list)

    @staticmethod
    def quality(c: PromptCandidate) -> float:
        demos = set(c.demos)
        return (
            0.5 * QUALITY.get(c.instruction, 0.0)
            + 0.25 * len(demos & GOOD)
            - 0.15 * len(demos - GOOD)
        )

    def __call__(self, c: PromptCandidate, examples: Sequence[Example]) -> list[float]:
        self.seen += [e.text for e in examples]
        return [self.quality(c)] * len(examples)


def toy_proposer() -> ScriptedProposer:
    return ScriptedProposer({"I5": ("I5b", "I4"), "I5b": ("BEST",), "I2": ("I1",)})
