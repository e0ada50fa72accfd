"""Checks against the model: fail before any work, name the field and the layer, write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny

from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.runner import run


def _fails(body: str, tmp_path: Path, model: str = tiny.TINY) -> str:
    out = tmp_path / "out"
    with pytest.raises(RecipeError) as info:
        run(Recipe.from_yaml(f"model: {model}\n{body}"), out, progress=False)
    assert not out.exists(), "nothing may be written before validation passes"
    return str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "stages: [{quantize: {group_size: 100}}]",
            "stages[0].quantize.group_size: must divide in_features 64 of "
            "model.layers.0.self_attn.q_proj, got 100",
        ),
        (
            "stages: [{quantize: {group_size: 64}}]",  # down_proj has in_features 128: fine
            None,
        ),
        (
            "stages: [{calibrate: {}}, {quantize: {method: awq, group_size: 32}}]",
            None,
        ),
        (
            "stages: [{recover: {method: lora}}]",
            "stages[0].recover.method: lora needs a prune or quantize stage before it",
        ),
        (
            "stages: [{prompt: {soft_tokens: 8}}]",  # soft prompt tuning has an adapter
            None,
        ),
        (
            "stages: [{prune: {sparsity: '2:4'}}, {quantize: {bits: 8, group_size: null, "
            "dynamic_activations: true}}]",
            "stages[1].quantize.dynamic_activations: no 2:4 layer with dynamic activations",
        ),
        (
            "stages: [{prune: {sparsity: '2:4'}}, {quantize: {group_size: 32, "
            "dynamic_activations: true}}]",
            "stages[1].quantize.dynamic_activations: no 2:4 layer with dynamic activations",
        ),
        (
            "stages: [{prune: {exclude: ['*']}}]",
            "stages[0].prune.exclude: leaves no Linear layer to prune",
        ),
        (
            "stages: [{prompt: {}}]\nevaluate: {task: null}",
            "stages[0].prompt: needs evaluate.task",
        ),
    ],
)
def test_model_aware_errors(body: str, expected: str | None, tmp_path: Path) -> None:
    if expected is None:  # a valid recipe: validation alone must pass
        from squeezeprompt.pipeline.validate import check_against_model

        check_against_model(Recipe.from_yaml(f"model: {tiny.TINY}\n{body}"), tiny.tiny_llama())
        return
    assert _fails(body, tmp_path).startswith(expected)


def test_semi_24_needs_in_features_divisible_by_4(tmp_path: Path) -> None:
    message = _fails("stages: [{prune: {sparsity: '2:4'}}]", tmp_path, model=tiny.TINY_ODD)
    assert message == (
        "stages[0].prune.sparsity: 2:4 needs in_features divisible by 4; "
        "model.layers.0.mlp.down_proj has 130"
    )


def test_unknown_model(tmp_path: Path) -> None:
    assert _fails("seed: 0", tmp_path, model="no-such-model").startswith(
        "model: unknown model 'no-such-model'"
    )


def test_foreign_output_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        run(Recipe.from_yaml(f"model: {tiny.TINY}"), tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
