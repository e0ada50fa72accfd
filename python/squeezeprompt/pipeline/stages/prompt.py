"""The prompt stage: search instructions and demonstrations on dev, then a soft prompt.

The chosen prompt (and the soft prompt, when ``soft_tokens`` > 0) is stored in the run
state and used by every later evaluation (:mod:`squeezeprompt.pipeline.measure`); the
search itself lives in :mod:`squeezeprompt.prompt`, scoring in
:mod:`squeezeprompt.evaluate`, the soft-prompt orchestration in
:mod:`squeezeprompt.pipeline.stages.soft_prompt`.
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
from squeezeprompt.pipeline.stages.soft_prompt import STATE_KEY, train_stage_soft_prompt
from squeezeprompt.prompt import PromptCandidate, SearchConfig, TaskScorer, search

TOP = 8  # best candidates kept in the stage summary


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
        if config.soft_tokens and not hasattr(model, "get_input_embeddings"):
            raise RecipeError(
                "soft_tokens",
                f"a soft prompt needs a model with input embeddings, got {type(model).__name__}",
            )

    def run(self, ctx: RunContext, config: PromptConfig) -> dict[str, Any]:
        task = ctx.task
        search_config = SearchConfig(
            strategy=config.search,
            max_demos=config.demos,
            # 16 short train reviews, 8 per label: enough for label-balanced swaps.
            demo_pool=max(config.demos, 16),
            dev_size=config.dev_size,
            instructions=config.candidates,
        )
        scorer = TaskScorer(ctx.model, ctx.tokenizer, task)
        result = search(
            task, scorer, config.budget, random.Random(ctx.recipe.seed), config=search_config
        )
        ctx.state["prompt"] = {
            "instruction": result.best.instruction,
            "demos": list(result.best.demos),
        }
        ctx.state.pop(STATE_KEY, None)  # a soft prompt from an earlier prompt stage is stale
        summary = result.to_dict()
        # The whole trail is long; the best few show what the search weighed up.
        summary["top"] = sorted(summary.pop("history"), key=lambda e: -e["score"])[:TOP]
        if config.soft_tokens:
            prompt = candidate_prompt(result.best, task)
            summary["soft_prompt"] = train_stage_soft_prompt(ctx, config, prompt)
        return summary
