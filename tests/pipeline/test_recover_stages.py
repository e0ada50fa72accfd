"""The recover stage's methods on the tiny Llama: each lowers the held-out distillation loss,
pruned weights stay zero, bad combinations fail validation, and LoRA adapters survive a resume."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import tiny
import torch
from conftest import deterministic

from squeezeprompt.evaluate import token_windows
from squeezeprompt.nn import Int4WeightOnlyLinear, MaskedLinear, Sparse24Int4Linear
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.runner import run
from squeezeprompt.pipeline.stage_configs import RecoverConfig, RecoverMethod
from squeezeprompt.pipeline.stages.registry import ADAPTERS, adapter_for, load_builtin_adapters
from squeezeprompt.pipeline.validate import load_and_validate
from squeezeprompt.recover import LoRALinear, distill_loss_fn

EVALUATE = "evaluate: {task: null, perplexity_tokens: 128, seq_len: 64, decode_tokens: 0}"
PRUNE = "  - prune: {method: magnitude, sparsity: 0.5}\n"
PRUNE_24 = "  - prune: {method: magnitude, sparsity: '2:4'}\n"
QUANT = "  - quantize: {method: rtn, bits: 4, group_size: 32}\n"


def _recipe(stages: str) -> Recipe:
    return Recipe.from_yaml(
        f"model: {tiny.TINY}\nseed: 3\nstages:\n{stages}{EVALUATE}\noutput: {{plots: false}}\n"
    )


def _recover(method: str, steps: int = 12, lr: float = 1e-3) -> str:
    return (
        f"  - recover: {{method: {method}, steps: {steps}, batch_size: 2, seq_len: 32, lr: {lr}}}\n"
    )


def _context(recipe: Recipe) -> RunContext:
    model, tokenizer, source = load_and_validate(recipe)
    return RunContext(recipe, model, tokenizer, source, logging.getLogger("test"), progress=False)


def _run_stages(ctx: RunContext, stages: list) -> list:
    return [adapter_for(config).run(ctx, config) for config in stages]


def _heldout_loss(ctx: RunContext) -> float:
    """Distillation loss on perplexity hold-out text (never what recovery trained on)."""
    windows = token_windows(ctx.tokenizer, ctx.wikipedia.heldout, 64, 256)
    with torch.no_grad():
        return distill_loss_fn(ctx.teacher)(ctx.model, {"input_ids": windows}).item()


@pytest.mark.parametrize(
    ("start", "method", "lr"),
    # QAT steps the latent weights themselves and distillation the int4 scales (each moves
    # a whole group): 1e-3 would flip many codes at once on this tiny model's small grids.
    [
        (PRUNE, "distill", 1e-3),
        (QUANT, "distill", 1e-4),
        (QUANT, "qat", 1e-4),
        (QUANT, "lora", 1e-3),
        (PRUNE, "lora", 1e-3),
    ],
    ids=["distill-pruned", "distill-int4", "qat-int4", "lora-int4", "lora-pruned"],
)
def test_each_method_lowers_the_heldout_distillation_loss(
    start: str, method: str, lr: float
) -> None:
    ctx = _context(_recipe(start + _recover(method, lr=lr)))
    *earlier, recover = ctx.recipe.stages
    _run_stages(ctx, earlier)
    before = _heldout_loss(ctx)
    summary = adapter_for(recover).run(ctx, recover)
    after = _heldout_loss(ctx)
    assert summary["method"] == method and summary["trainable_parameters"] > 0
    assert after < before, (before, after, summary)
    assert not any(p.requires_grad for p in ctx.model.parameters())


@pytest.mark.parametrize("method", ["qat", "distill"])
@pytest.mark.parametrize(
    ("prune", "layer_type"),
    [(PRUNE, Int4WeightOnlyLinear), (PRUNE_24, Sparse24Int4Linear)],
    ids=["unstructured", "2:4"],
)
def test_grid_training_keeps_pruned_weights_exactly_zero(
    prune: str, layer_type: type, method: str
) -> None:
    ctx = _context(_recipe(prune + QUANT + _recover(method, steps=4)))
    *earlier, recover = ctx.recipe.stages
    _run_stages(ctx, earlier)
    before = {n: m.dequantize() for n, m in ctx.model.named_modules() if type(m) is layer_type}
    assert len(before) == 14
    summary = adapter_for(recover).run(ctx, recover)
    assert summary["fake_quant_layers"] == 14
    changed = 0
    for name, weight in before.items():
        layer = ctx.model.get_submodule(name)
        assert type(layer) is layer_type, name  # converted back to the quantize stage's layer
        after = layer.dequantize()
        assert after[weight == 0].abs().max() == 0, name
        changed += int(not torch.equal(after, weight))
    assert changed > 0


def test_distill_moves_only_the_int4_scales() -> None:
    ctx = _context(_recipe(QUANT + _recover("distill", steps=4)))
    *earlier, recover = ctx.recipe.stages
    _run_stages(ctx, earlier)
    layers = {n: m for n, m in ctx.model.named_modules() if type(m) is Int4WeightOnlyLinear}
    before = {n: (m.scales.clone(), m.zeros.clone()) for n, m in layers.items()}
    summary = adapter_for(recover).run(ctx, recover)
    assert summary["fake_quant_layers"] == len(before) == 14
    moved = 0
    for name, (scales, zeros) in before.items():
        layer = ctx.model.get_submodule(name)
        assert type(layer) is Int4WeightOnlyLinear, name  # packed back after training
        assert torch.equal(layer.zeros, zeros), name  # zero points stay frozen
        moved += int(not torch.equal(layer.scales, scales))
    assert moved > 0


def test_lora_leaves_the_pruned_base_untouched() -> None:
    ctx = _context(_recipe(PRUNE + _recover("lora", steps=3)))
    *earlier, recover = ctx.recipe.stages
    _run_stages(ctx, earlier)
    weights = {n: m.weight.clone() for n, m in ctx.model.named_modules() if type(m) is MaskedLinear}
    adapter_for(recover).run(ctx, recover)
    for name, weight in weights.items():
        wrapper = ctx.model.get_submodule(name)
        assert isinstance(wrapper, LoRALinear) and isinstance(wrapper.base, MaskedLinear)
        assert torch.equal(wrapper.base.weight, weight)
        assert wrapper.lora_b.abs().max() > 0  # the adapter trained


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        (_recover("qat"), "stages[0].recover.method: qat needs a quantize stage before it"),
        (
            "  - quantize: {bits: 8, group_size: null, dynamic_activations: true}\n"
            + _recover("qat"),
            "stages[1].recover.method: qat trains weight-only grids",
        ),
        (
            PRUNE_24 + "  - quantize: {bits: 8, group_size: null}\n" + _recover("qat"),
            "stages[2].recover.method: qat has no 2:4 int8 layer",
        ),
        (_recover("lora"), "stages[0].recover.method: lora needs a prune or quantize stage"),
    ],
)
def test_impossible_combinations_fail_before_any_work(
    stages: str, expected: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(RecipeError) as info:
        run(_recipe(stages), out, progress=False)
    assert str(info.value).startswith(expected), str(info.value)
    assert not out.exists()


class _Crash(RuntimeError):
    pass


def test_lora_adapters_survive_a_resume(tmp_path: Path) -> None:
    """Crash in a stage after LoRA; the resumed run reloads the adapters from the checkpoint
    and ends with the uninterrupted run's numbers."""
    recipe = _recipe(QUANT + _recover("lora", steps=3) + _recover("distill", steps=2))
    reference = run(recipe, tmp_path / "reference", progress=False)
    assert reference[2]["metrics"] != reference[1]["metrics"]  # the adapters changed the model
    load_builtin_adapters()
    real = ADAPTERS[RecoverConfig]

    class CrashOnDistill:
        changes_model = True

        def check(self, *args):  # noqa: ANN002, ANN201
            return real.check(*args)

        def run(self, ctx, config):  # noqa: ANN001, ANN201
            if config.method is RecoverMethod.DISTILL:
                raise _Crash("injected after the lora stage")
            return real.run(ctx, config)

    out = tmp_path / "resumed"
    ADAPTERS[RecoverConfig] = CrashOnDistill()  # type: ignore[assignment]
    try:
        with pytest.raises(_Crash):
            run(recipe, out, progress=False)
    finally:
        ADAPTERS[RecoverConfig] = real
    manifest = (out / "stages" / "02-recover" / "model" / "manifest.json").read_text()
    assert '"LoRALinear"' in manifest
    metrics = run(recipe, out, progress=False)
    assert "resuming after 02-recover" in (out / "run.log").read_text()
    assert deterministic(metrics) == deterministic(reference)
