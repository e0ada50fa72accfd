"""Packaged corpora and labelled tasks with deterministic splits.

Data files are read from installed distributions through ``importlib.metadata``;
nothing is downloaded.

Example:
    >>> from squeezeprompt.data import load_task, load_wikipedia
    >>> load_task("rotten_tomatoes").label_words
    ('negative', 'positive')
"""

from squeezeprompt.data import rotten_tomatoes  # noqa: F401  (registers the task)
from squeezeprompt.data.tasks import (
    Example,
    LabelledTask,
    available_tasks,
    load_task,
    register_task,
)
from squeezeprompt.data.text import WikipediaSplits, load_wikipedia

__all__ = [
    "Example",
    "LabelledTask",
    "WikipediaSplits",
    "available_tasks",
    "load_task",
    "load_wikipedia",
    "register_task",
]
