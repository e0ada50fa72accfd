"""The prompt stage: search instructions and demonstrations on the dev split.

The chosen prompt is stored in the run state and used by every later evaluation; the
search itself lives in :mod:`squeezeprompt.prompt`, scoring in :mod:`squeezeprompt.evaluate`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from torch import nn

from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.stage_configs import PromptConfig, StageConfig
from squeezeprompt.pipeline.stages.registry import register_stage
from squeezeprompt.prompt import PromptCandidate, SearchConfig, search


def candidate_prompt(candidate: PromptCandidate, task: Any) -> Any:
    """The evaluation ``Prompt`` of a search candidate (demonstrations from ``task.train``).

    Example:
        >>> from squeezeprompt.data import load_task
        >>> candidate_prompt(PromptCandidate("Sentiment?", (0,)), load_task()).instruction
        'Sentiment?'
    """
    from squeezeprompt.evaluate import Prompt

    return Prompt(candidate.instruction, tuple(task.train[i] for i in candidate.demos))


@register_stage(PromptConfig)
class PromptStage:
    changes_model = True

    def check(self, config: PromptConfig, model: nn.Module, earlier: Sequence[StageConfig]) -> None:
        if config.soft_tokens:
            raise RecipeError(
                "soft_tokens",
                f"soft prompt tuning has no pipeline adapter yet; use 0, got {config.soft_tokens}",
            )

    def run(self, ctx: RunContext, config: PromptConfig) -> dict[str, Any]:
        from squeezeprompt.evaluate import score_examples

        task = ctx.task

        def scorer(candidate: PromptCandidate, examples: Sequence[Any]) -> list[float]:
            result = score_examples(
                ctx.model,
                ctx.tokenizer,
                candidate_prompt(candidate, task),
                examples,
                task.label_words,
            )
            return [float(c) for c in result.correct(examples)]

        search_config = SearchConfig(
            strategy=config.search,
            max_demos=config.demos,
            demo_pool=max(config.demos, 8),
            dev_size=config.dev_size,
            instructions=config.candidates,
        )
        result = search(
            task, scorer, config.budget, random.Random(ctx.recipe.seed), config=search_config
        )
        ctx.state["prompt"] = {
            "instruction": result.best.instruction,
            "demos": list(result.best.demos),
        }
        summary = result.to_dict()
        summary.pop("history")
        return summary
