"""Per-method recovery defaults: a recipe that leaves ``steps`` / ``lr`` / ``schedule``
out gets its method's, explicit values win, and the stage records what it ran with."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import tiny

from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.stage_configs import LrSchedule, RecoverConfig, RecoverMethod
from squeezeprompt.pipeline.stages import recover as stage
from squeezeprompt.pipeline.stages.registry import adapter_for
from squeezeprompt.pipeline.validate import load_and_validate

EVALUATE = "evaluate: {task: null, perplexity_tokens: 128, seq_len: 64, decode_tokens: 0}"
QUANT = "  - quantize: {method: rtn, bits: 4, group_size: 32}\n"


def _context(fields: str) -> RunContext:
    recover = f"  - recover: {{{fields}, batch_size: 2, seq_len: 32}}\n"
    recipe = Recipe.from_yaml(f"model: {tiny.TINY}\nseed: 3\nstages:\n{QUANT}{recover}{EVALUATE}\n")
    model, tokenizer, source = load_and_validate(recipe)
    return RunContext(recipe, model, tokenizer, source, logging.getLogger("test"), progress=False)


@pytest.mark.parametrize("method", list(stage.METHODS))
def test_left_out_values_resolve_to_the_methods_defaults(method: RecoverMethod) -> None:
    config = RecoverConfig(method=method)
    assert config.steps is None and config.lr is None and config.schedule is None
    run = stage.resolved(config)
    assert run.steps == stage.METHODS[method].default_steps
    assert run.lr == stage.METHODS[method].default_lr
    assert run.schedule is stage.METHODS[method].default_schedule
    assert replace(run, steps=None, lr=None, schedule=None) == config  # nothing else changed


def test_defaults_differ_between_methods() -> None:
    """One shared lr was the problem: LoRA's adapters start at zero and need larger steps
    than weights that already sit near their optimum."""
    lrs = {m: stage.resolved(RecoverConfig(method=m)).lr for m in stage.METHODS}
    assert lrs[RecoverMethod.LORA] > lrs[RecoverMethod.QAT]


@pytest.mark.parametrize("method", list(stage.METHODS))
def test_explicit_values_win(method: RecoverMethod) -> None:
    run = stage.resolved(
        RecoverConfig(method=method, steps=7, lr=0.123, schedule=LrSchedule.CONSTANT)
    )
    assert (run.steps, run.lr, run.schedule) == (7, 0.123, LrSchedule.CONSTANT)
    only_steps = stage.resolved(RecoverConfig(method=method, steps=7))
    assert (only_steps.steps, only_steps.lr) == (7, stage.METHODS[method].default_lr)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{steps: 0}", "stages[0].recover.steps: must be > 0"),
        ("{lr: -0.001}", "stages[0].recover.lr: must be > 0"),
        ("{lr: 0}", "stages[0].recover.lr: must be > 0"),
        ("{schedule: linear}", "stages[0].recover.schedule: expected one of 'constant', 'cosine'"),
    ],
)
def test_given_values_must_still_be_positive(text: str, expected: str) -> None:
    with pytest.raises(RecipeError) as info:
        Recipe.from_yaml(f"model: m\nstages: [{{recover: {text}}}]")
    assert str(info.value).startswith(expected), str(info.value)


def test_left_out_values_round_trip_as_null() -> None:
    recipe = Recipe.from_yaml("model: m\nstages: [{recover: {method: lora}}]")
    data = recipe.to_dict()["stages"][0]["recover"]
    assert data["steps"] is None and data["lr"] is None and data["schedule"] is None
    assert Recipe.from_dict(recipe.to_dict()) == recipe


@pytest.mark.parametrize(
    ("fields", "steps", "lr", "schedule"),
    [
        ("method: qat", 3, 2e-4, LrSchedule.COSINE),
        ("method: qat, steps: 2, lr: 0.0005, schedule: constant", 2, 5e-4, LrSchedule.CONSTANT),
    ],
    ids=["defaults", "explicit"],
)
def test_the_stage_trains_and_records_the_resolved_values(
    fields: str, steps: int, lr: float, schedule: LrSchedule, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small defaults keep the test fast; what matters is that the stage uses them.
    method = stage.METHODS[RecoverMethod.QAT]
    small = replace(method, default_steps=3, default_lr=2e-4, default_schedule=LrSchedule.COSINE)
    monkeypatch.setitem(stage.METHODS, RecoverMethod.QAT, small)
    seen: dict[str, float] = {}
    real_train = stage.train

    def spy(model, loss_fn, batches, config, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(
            steps=config.steps, lr=config.lr, schedule=config.schedule, batches=len(batches)
        )
        return real_train(model, loss_fn, batches, config, **kwargs)

    monkeypatch.setattr(stage, "train", spy)
    ctx = _context(fields)
    quantize, config = ctx.recipe.stages
    adapter_for(quantize).run(ctx, quantize)
    summary = adapter_for(config).run(ctx, config)
    assert seen == {"steps": steps, "lr": lr, "schedule": schedule, "batches": steps}
    assert (summary["steps"], summary["lr"], summary["schedule"]) == (steps, lr, schedule.value)
