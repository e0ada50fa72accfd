"""Recipe parsing: every class of error fails at parse time and names the field path."""

from __future__ import annotations

import json

import pytest

from squeezeprompt.pipeline.defaults import default_recipe
from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.stage_configs import (
    Bits,
    PromptConfig,
    PruneMethod,
    QuantizeConfig,
    QuantMethod,
    Sparsity,
)

DESIGN_EXAMPLE = """
model: smollm2-135m-instruct
stages:
  - prune:    {method: wanda, sparsity: "2:4"}
  - quantize: {method: gptq, bits: 4, group_size: 128}
  - recover:  {method: distill, steps: 200}
  - prompt:   {search: beam, candidates: 24, demos: 4, soft_tokens: 8}
evaluate: {perplexity: enwiki, task: rotten_tomatoes}
"""


def test_design_example_parses() -> None:
    r = Recipe.from_yaml(DESIGN_EXAMPLE)
    prune, quant, recover, prompt = r.stages
    assert prune.method is PruneMethod.WANDA and prune.sparsity == Sparsity.semi_24()
    assert quant == QuantizeConfig(method=QuantMethod.GPTQ, bits=Bits.INT4, group_size=128)
    assert recover.steps == 200
    assert isinstance(prompt, PromptConfig) and prompt.soft_tokens == 8
    assert r.evaluate.task == "rotten_tomatoes"


@pytest.mark.parametrize("recipe", [Recipe.from_yaml(DESIGN_EXAMPLE), default_recipe()])
def test_round_trips_through_dict_yaml_and_json(recipe: Recipe) -> None:
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert Recipe.from_json(json.dumps(recipe.to_dict())) == recipe
    assert recipe.fingerprint() == Recipe.from_dict(recipe.to_dict()).fingerprint()


def _error(text: str) -> str:
    with pytest.raises(RecipeError) as info:
        Recipe.from_yaml(text)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # unknown keys, at every level
        ("model: m\nstagez: []", "stagez: unknown key"),
        (
            "model: m\nstages: [{quantize: {grop_size: 64}}]",
            "stages[0].quantize.grop_size: unknown",
        ),
        ("model: m\nevaluate: {tsk: x}", "evaluate.tsk: unknown key"),
        ("model: m\nstages: [{squash: {}}]", "stages[0].squash: unknown stage"),
        # wrong types
        ("model: m\nseed: '3'", "seed: expected int, got '3' (str)"),
        ("model: m\nstages: [{recover: {steps: 2.5}}]", "stages[0].recover.steps: expected int"),
        ("model: m\nstages: [{prune: {sparsity: half}}]", "stages[0].prune.sparsity: expected a"),
        ("model: m\nstages: {prune: {}}", "stages: expected a list"),
        ("model: m\nstages: [{prune: {}, quantize: {}}]", "stages[0]: expected a one-key"),
        ("model: m\nevaluate: {perplexity: wikitext}", "evaluate.perplexity: expected one of"),
        # values out of range
        ("model: m\nseed: -1", "seed: must be an int >= 0"),
        ("model: m\nstages: [{recover: {steps: 0}}]", "stages[0].recover.steps: must be > 0"),
        ("model: m\nstages: [{prune: {sparsity: 1.5}}]", "stages[0].prune.sparsity: expected a"),
        ("model: m\nstages: [{quantize: {bits: 3}}]", "stages[0].quantize.bits: expected one of"),
        ("model: m\nstages: [{quantize: {group_size: 0}}]", "stages[0].quantize.group_size:"),
        ("model: m\nevaluate: {task: imdb}", "evaluate.task: expected one of"),
        (
            "model: m\nevaluate: {perplexity_tokens: 100, seq_len: 200}",
            "evaluate.perplexity_tokens: must be >= seq_len (200)",
        ),
        # impossible combinations
        (
            "model: m\nstages: [{quantize: {method: gptq, bits: 8, group_size: 128}}]",
            "stages[0].quantize.group_size: int8 weights are per output channel",
        ),
        (
            "model: m\nstages: [{quantize: {method: gptq, bits: 8, group_size: null, "
            "dynamic_activations: true}}]",
            "stages[0].quantize.dynamic_activations: W8A8 needs method: rtn, got gptq",
        ),
        (
            "model: m\nstages: [{quantize: {}}, {prune: {}}]",
            "stages[1].prune: must not come after quantize",
        ),
        ("model: m\nstages: [{prune: {}}, {prune: {}}]", "stages: prune appears 2 times"),
        (
            "model: m\nstages: [{prompt: {budget: 10, dev_size: 20}}]",
            "stages[0].prompt.budget: must afford one candidate",
        ),
        # not a recipe at all
        ("[1, 2]", "a recipe must be a mapping"),
        ("model: [unclosed", "not valid YAML"),
        ("seed: 1", "model: missing"),
    ],
)
def test_bad_recipes_name_the_field(body: str, expected: str) -> None:
    assert expected in _error(body)


def test_configs_built_in_python_are_checked_too() -> None:
    with pytest.raises(RecipeError, match="group_size: must be > 0"):
        QuantizeConfig(group_size=-4)
    with pytest.raises(RecipeError, match="bits: expected one of"):
        QuantizeConfig(bits=4)  # type: ignore[arg-type]  (an int, not a Bits member)


def test_missing_file_is_file_not_found(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="recipe file not found"):
        Recipe.from_file(tmp_path / "nope.yaml")
    (tmp_path / "r.json").write_text('{"model": "m", "seed": 5}')
    assert Recipe.from_file(tmp_path / "r.json").seed == 5
