"""Every check that must pass before a run writes anything: the recipe against the model.

The recipe classes check themselves on construction; this adds what needs the model
(layer shapes, which stages have adapters) and names the field path in every error.

Example:
    >>> from squeezeprompt.pipeline.recipe import Recipe
    >>> resolve_source(Recipe(model="no-such-model"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    squeezeprompt.pipeline.errors.RecipeError: model: unknown model 'no-such-model'; ...
"""

from __future__ import annotations

from typing import Any

from torch import nn

from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.sources import ModelFactory, get_source
from squeezeprompt.pipeline.stage_configs import PromptConfig
from squeezeprompt.pipeline.stages.registry import adapter_for


def resolve_source(recipe: Recipe) -> ModelFactory:
    """The model factory of ``recipe.model``, or a ``RecipeError`` at ``model``.

    Example: see the module docstring.
    """
    try:
        return get_source(recipe.model)
    except KeyError as e:
        raise RecipeError("model", str(e.args[0])) from None


def check_static(recipe: Recipe) -> None:
    """Cross-field checks that need no model.

    Example:
        >>> text = "model: m\\nstages: [{prompt: {}}]\\nevaluate: {task: null}"
        >>> check_static(Recipe.from_yaml(text))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        squeezeprompt.pipeline.errors.RecipeError: stages[0].prompt: needs evaluate.task ...
    """
    for i, stage in enumerate(recipe.stages):
        if isinstance(stage, PromptConfig) and recipe.evaluate.task is None:
            raise RecipeError(f"stages[{i}].prompt", "needs evaluate.task (a task to search on)")


def check_against_model(recipe: Recipe, model: nn.Module) -> None:
    """Each stage adapter checks its config against the dense model and the stages before.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(6, 4))
        >>> text = "model: m\\nstages: [{prune: {sparsity: '2:4'}}]"
        >>> check_against_model(Recipe.from_yaml(text), model)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        squeezeprompt.pipeline.errors.RecipeError: stages[0].prune.sparsity: 2:4 needs ...; 0 has 6
    """
    for i, stage in enumerate(recipe.stages):
        try:
            adapter_for(stage).check(stage, model, recipe.stages[:i])
        except RecipeError as e:
            path = f"stages[{i}].{stage.kind.value}"
            raise RecipeError(f"{path}.{e.path}" if e.path else path, e.detail) from None


def load_and_validate(recipe: Recipe) -> tuple[Any, Any, ModelFactory]:
    """Everything :func:`run` checks before its first write; returns model, tokenizer, source.

    Example:
        >>> load_and_validate(Recipe(model="smollm2-135m-instruct"))  # doctest: +SKIP
    """
    check_static(recipe)
    source = resolve_source(recipe)
    model, tokenizer = source()
    check_against_model(recipe, model)
    return model, tokenizer, source
