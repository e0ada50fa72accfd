"""Built-in instruction pool for binary sentiment tasks (the *select* step starts here).

Written for this project. They vary along the axes that move a small instruct model:
how the question is framed (question, command, role), which label words are named
and in which order, and whether the answer format is spelt out.
``{labels}`` is replaced by the task's label words ("negative or positive").

Example:
    >>> len(SENTIMENT_INSTRUCTIONS)
    24
    >>> sentiment_instructions(("negative", "positive"))[0]
    'Is this movie review positive or negative? Answer with one word.'
"""

from __future__ import annotations

from collections.abc import Sequence

SENTIMENT_INSTRUCTIONS: tuple[str, ...] = (
    "Is this movie review positive or negative? Answer with one word.",
    "Classify the sentiment of this movie review as {labels}.",
    "Does the reviewer like the movie? Reply {labels}.",
    "Read the review and say whether it is {labels}. Answer with a single word.",
    "What is the sentiment of the following review? Choose one: {labels}.",
    "You are a film critic's assistant. Label this review {labels}.",
    "Decide if this review recommends the film ({labels}). One word only.",
    "Sentiment analysis: is the opinion in this text {labels}?",
    "Tell me whether this review is {labels}.",
    "Is the author of this review happy or unhappy with the movie? Answer {labels}.",
    "Rate the review's tone as {labels}. Respond with just the label.",
    "Here is a short review of a movie. Is it {labels}?",
    "Would this reviewer recommend the film? Answer {labels}.",
    "Determine the overall sentiment ({labels}) of this movie review.",
    "Answer with one word, {labels}: how does this review feel about the movie?",
    "Label the emotional tone of this film review: {labels}.",
    "Is this a good review or a bad review? Say {labels}.",
    "Given the movie review below, output its polarity: {labels}.",
    "You classify movie reviews. Reply with exactly one word: {labels}.",
    "Does this text praise or criticise the movie? Answer {labels}.",
    "Is the critic's verdict {labels}? Give one word.",
    "Summarise the reviewer's opinion in one word: {labels}.",
    "Positive or negative? Judge this movie review.",
    "Please classify this review. Possible answers: {labels}.",
)


def sentiment_instructions(label_words: Sequence[str]) -> tuple[str, ...]:
    """The library with ``{labels}`` filled in as "positive or negative" style text.

    Label words are listed last-first ("positive or negative" for ``("negative",
    "positive")``): people write it that way round, and so does the default prompt.

    Example:
        >>> sentiment_instructions(("no", "yes"))[1]
        'Classify the sentiment of this movie review as yes or no.'
    """
    if len(label_words) < 2:
        raise ValueError(f"sentiment_instructions: need >= 2 label words, got {label_words!r}")
    words = list(reversed(label_words))
    labels = ", ".join(words[:-1]) + " or " + words[-1]
    return tuple(s.replace("{labels}", labels) for s in SENTIMENT_INSTRUCTIONS)
