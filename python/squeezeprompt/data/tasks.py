"""Labelled classification tasks: the data types and the registry that loads them.

A task is three disjoint splits of ``Example`` (text, integer label) plus the words a
model is asked to answer with (``label_words[label]``) and a plain default instruction.
Prompt search scores on ``dev``; every reported figure comes from ``test``.

Example:
    >>> from squeezeprompt.data import load_task
    >>> task = load_task("rotten_tomatoes", seed=0)
    >>> task.label_words
    ('negative', 'positive')
    >>> len(task.train) + len(task.dev) + len(task.test)
    12751
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Example",
    "LabelledTask",
    "available_tasks",
    "load_task",
    "register_task",
]


@dataclass(frozen=True)
class Example:
    """One labelled text; ``label`` indexes the task's ``label_words``."""

    text: str
    label: int

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise ValueError(f"Example.text must be a non-empty str, got {self.text!r}")
        if not isinstance(self.label, int) or self.label < 0:
            raise ValueError(f"Example.label must be an int >= 0, got {self.label!r}")


@dataclass(frozen=True)
class LabelledTask:
    """A classification task with fixed, disjoint train/dev/test splits.

    Example:
        >>> t = LabelledTask("toy", ("no", "yes"), "Yes or no?",
        ...                  (Example("a", 1),), (Example("b", 0),), (Example("c", 1),))
        >>> t.num_labels
        2
    """

    name: str
    label_words: tuple[str, ...]  # index = label, e.g. ("negative", "positive")
    default_instruction: str  # e.g. "Is this movie review positive or negative? ..."
    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    test: tuple[Example, ...]

    def __post_init__(self) -> None:
        if len(self.label_words) < 2 or len(set(self.label_words)) != len(self.label_words):
            raise ValueError(
                f"task {self.name!r}: label_words must be >= 2 distinct words, "
                f"got {self.label_words!r}"
            )
        for split_name in ("train", "dev", "test"):
            for ex in getattr(self, split_name):
                if ex.label >= len(self.label_words):
                    raise ValueError(
                        f"task {self.name!r}: {split_name} example has label {ex.label}, "
                        f"expected < {len(self.label_words)} (label_words={self.label_words})"
                    )

    @property
    def num_labels(self) -> int:
        """How many classes the task has."""
        return len(self.label_words)


TaskLoader = Callable[[int], LabelledTask]
_TASKS: dict[str, TaskLoader] = {}


def register_task(name: str) -> Callable[[TaskLoader], TaskLoader]:
    """Register ``loader(seed) -> LabelledTask`` under ``name`` (decorator).

    Example:
        >>> @register_task("doc_toy")
        ... def _toy(seed: int) -> LabelledTask:
        ...     ex = (Example("x", 0),)
        ...     return LabelledTask("doc_toy", ("a", "b"), "A or b?", ex, ex, ex)
        >>> load_task("doc_toy").name
        'doc_toy'
    """

    def decorator(loader: TaskLoader) -> TaskLoader:
        if name in _TASKS and _TASKS[name] is not loader:
            raise ValueError(f"task {name!r} is already registered")
        _TASKS[name] = loader
        return loader

    return decorator


def available_tasks() -> tuple[str, ...]:
    """Names that ``load_task`` accepts, sorted.

    Example:
        >>> "rotten_tomatoes" in available_tasks()
        True
    """
    return tuple(sorted(_TASKS))


def load_task(name: str = "rotten_tomatoes", seed: int = 0) -> LabelledTask:
    """Load a registered task with splits drawn by ``seed`` (same seed, same splits).

    Example:
        >>> task = load_task("rotten_tomatoes")
        >>> task.test[0].label in (0, 1)
        True
    """
    if name not in _TASKS:
        raise KeyError(f"unknown task {name!r}; expected one of {available_tasks()}")
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return _TASKS[name](seed)
