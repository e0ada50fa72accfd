"""The prompt stage with a deep prompt (``soft_kind: prefix``) on the tiny Llama."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch

from squeezeprompt.evaluate import score_examples
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.stage_configs import PromptConfig, SoftKind, SoftObjective
from squeezeprompt.pipeline.stages.prompt import PromptStage
from squeezeprompt.pipeline.stages.soft_prompt import (
    deep_prompt_for,
    export_soft_prompt,
    soft_prompt_for,
)
from squeezeprompt.pipeline.validate import resolve_source
from squeezeprompt.prompt import init_token_ids
from squeezeprompt.prompt.prefix import PrefixPrompt

RECIPE = """
model: tiny-llama-test
seed: 0
stages:
  - prompt: {search: beam, candidates: 2, demos: 1, budget: 12, dev_size: 4,
             soft_tokens: 3, soft_kind: prefix, soft_steps: 3, soft_lr: 0.01}
evaluate: {task: rotten_tomatoes, test_examples: 8, decode_tokens: 0}
"""


@pytest.fixture(scope="module")
def trained() -> tuple[RunContext, dict[str, Any]]:
    recipe = Recipe.from_yaml(RECIPE)
    source = resolve_source(recipe)
    model, tokenizer = source()
    ctx = RunContext(recipe, model.eval(), tokenizer, source, logging.getLogger("test"), False, {})
    summary = PromptStage().run(ctx, recipe.stages[-1])
    return ctx, summary


def test_recipe_reads_the_soft_kind() -> None:
    recipe = Recipe.from_yaml(RECIPE)
    assert recipe.stages[-1].soft_kind is SoftKind.PREFIX
    assert (
        Recipe.from_yaml(RECIPE.replace("soft_kind: prefix, ", "")).stages[-1].soft_kind
        is SoftKind.EMBED
    )
    with pytest.raises(Exception, match="soft_kind"):
        Recipe.from_yaml(RECIPE.replace("soft_kind: prefix", "soft_kind: deep"))
    # Perplexity reads input-embedding prompts only: a teacher deep prompt is refused.
    with pytest.raises(RecipeError, match="prefix trains against labels only"):
        PromptConfig(soft_kind=SoftKind.PREFIX, soft_objective=SoftObjective.TEACHER)


def test_stage_trains_and_records_a_deep_prompt(trained) -> None:
    ctx, summary = trained
    info = summary["soft_prompt"]
    config = ctx.model.config
    head_dim = config.hidden_size // config.num_attention_heads
    shape = [config.num_hidden_layers, config.num_key_value_heads, 3, head_dim]
    assert info["kind"] == "prefix" and info["steps"] == 3
    assert info["parameters"] == 2 * torch.Size(shape).numel()
    deep = deep_prompt_for(ctx.state, "labels")
    assert deep is not None and list(deep.keys.shape) == shape
    assert deep_prompt_for(ctx.state, "teacher") is None
    # Reading the entry as input embeddings would silently drop it from the figures.
    with pytest.raises(ValueError, match="read it with deep_prompt_for"):
        soft_prompt_for(ctx.state, "labels")
    # It moved from its start (the default instruction's keys/values) ...
    ids = init_token_ids(ctx.tokenizer, ctx.task.default_instruction)
    start = PrefixPrompt.from_token_ids(ctx.model, ids, 3)
    assert not torch.equal(start.values, deep.values)
    # ... and scoring reads it.
    task = ctx.task
    from squeezeprompt.pipeline.measure import current_prompt

    prompt, dev = current_prompt(ctx), task.dev[:4]
    plain = score_examples(ctx.model, ctx.tokenizer, prompt, dev, task.label_words)
    deep_scores = score_examples(
        ctx.model, ctx.tokenizer, prompt, dev, task.label_words, deep_prompt=deep.state(ctx.model)
    )
    assert not torch.allclose(plain.log_probs, deep_scores.log_probs)


def test_export_writes_a_loadable_deep_prompt(trained, tmp_path) -> None:
    ctx, _ = trained
    loaded = PrefixPrompt.load(export_soft_prompt(ctx.state, tmp_path))
    recorded = deep_prompt_for(ctx.state, "labels")
    assert torch.equal(loaded.keys, recorded.keys) and torch.equal(loaded.values, recorded.values)
    assert loaded.meta["objective"] == "labels" and loaded.meta["kind"] == "prefix"


def test_accuracy_measure_scores_with_the_deep_prompt(trained) -> None:
    from squeezeprompt.evaluate import accuracy
    from squeezeprompt.pipeline.measure import MEASURES, current_prompt

    ctx, _ = trained
    measured = MEASURES["accuracy"](ctx)
    assert measured["deep_tokens"] == 3 and measured["soft_tokens"] == 0
    task, prompt = ctx.task, current_prompt(ctx)
    examples = task.test[: ctx.recipe.evaluate.test_examples]
    deep = deep_prompt_for(ctx.state, "labels")
    with_deep = accuracy(
        ctx.model,
        ctx.tokenizer,
        prompt,
        examples,
        task.label_words,
        deep_prompt=deep.state(ctx.model),
    )
    assert measured["correct"] == with_deep.correct
    # Without the deep prompt, the same prompt is reported separately.
    assert measured["searched_prompt"]["deep_tokens"] == 0
