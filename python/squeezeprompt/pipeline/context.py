"""What the stages share while a recipe runs: the model, data, the prompt and the log.

Data sets and calibration batches load lazily and once; the dense teacher is rebuilt
from the model source on first use (it never lives in a checkpoint).

Example:
    >>> ctx = RunContext.__new__(RunContext)  # normally built by the runner
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch

from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.sources import ModelFactory

POOL_FACTOR = 4  # calibration windows are drawn from this many times as many candidates


@dataclass
class RunContext:
    """Mutable run state handed to every stage adapter.

    ``state`` is JSON data that travels with each checkpoint (e.g. the chosen prompt);
    a stage records what later stages or the evaluation need there.
    """

    recipe: Recipe
    model: Any
    tokenizer: Any
    source: ModelFactory
    log: logging.Logger
    progress: bool = True
    state: dict[str, Any] = field(default_factory=dict)
    _windows: dict[tuple[int, int], list[torch.Tensor]] = field(default_factory=dict, repr=False)

    @cached_property
    def task(self) -> Any:
        from squeezeprompt.data import load_task

        assert self.recipe.evaluate.task is not None  # stages that need it are checked first
        return load_task(self.recipe.evaluate.task, seed=self.recipe.seed)

    @cached_property
    def wikipedia(self) -> Any:
        from squeezeprompt.data import load_wikipedia

        return load_wikipedia()

    @cached_property
    def teacher(self) -> Any:
        """The uncompressed model, frozen (distillation target)."""
        model, _ = self.source()
        model.eval().requires_grad_(False)
        return model

    def calibration_batches(self, samples: int, seq_len: int) -> list[torch.Tensor]:
        """``samples`` windows ``[1, seq_len]`` drawn with the recipe's seed from the
        calibration articles (never from the perplexity hold-out).

        Windows come from the first ``POOL_FACTOR * samples`` windows of the article
        stream, so only that much text is tokenized.
        """
        from squeezeprompt.evaluate import token_windows

        key = (samples, seq_len)
        if key not in self._windows:
            budget = POOL_FACTOR * samples * seq_len
            windows = token_windows(self.tokenizer, self.wikipedia.calibration, seq_len, budget)
            rng = random.Random(self.recipe.seed)
            picks = [rng.randrange(windows.shape[0]) for _ in range(samples)]
            self._windows[key] = [windows[i : i + 1] for i in picks]
        return list(self._windows[key])
