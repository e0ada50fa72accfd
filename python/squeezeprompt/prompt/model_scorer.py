"""The model-backed scorer: a candidate's accuracy per dev example, via the evaluator.

Example (needs a model):
    >>> scorer = TaskScorer(model, tok, task)          # doctest: +SKIP
    >>> scorer(PromptCandidate(task.default_instruction), task.dev[:4])  # doctest: +SKIP
    [1.0, 0.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from squeezeprompt.data.tasks import Example
from squeezeprompt.evaluate.scoring import score_examples
from squeezeprompt.prompt.candidate import PromptCandidate, to_prompt


class TaskScorer:
    """1.0 where the label word with the highest log-likelihood is the true one, else 0.0.

    Demonstrations are looked up in ``task.train``; the examples to score are given
    by the search (the dev split). ``soft_prompt`` (``[k, hidden]``) is passed on to the
    evaluator, so a discrete search can run on top of a trained soft prompt.
    """

    def __init__(
        self, model: Any, tokenizer: Any, task: Any, batch_size: int = 16, soft_prompt: Any = None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.train = task.train
        self.label_words = task.label_words
        self.batch_size = batch_size
        self.soft_prompt = soft_prompt

    def __call__(self, candidate: PromptCandidate, examples: Sequence[Example]) -> list[float]:
        result = score_examples(
            self.model,
            self.tokenizer,
            to_prompt(candidate, self.train),
            examples,
            self.label_words,
            batch_size=self.batch_size,
            soft_prompt=self.soft_prompt,
        )
        return [1.0 if ok else 0.0 for ok in result.correct(examples)]
