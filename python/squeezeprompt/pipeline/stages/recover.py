"""The recover stage: train the compressed model towards the dense one's next-token distribution.

Every method trains with the same loss (T²·KL to the dense teacher, on calibration text,
never the perplexity hold-out) and the same loop; they differ in what trains:

- ``distill``: the float weights of pruned layers (``MaskedLinear``, whose mask keeps the
  pattern), every bias and every norm scale, and the grid of quantized layers: each int
  layer becomes a ``FakeQuantLinear`` whose latent weight stays frozen while its
  per-group scales train (so codes move only as the grid moves), packed back after.
- ``qat``: each int layer becomes a ``FakeQuantLinear`` on its own grid (same codes, so
  the model starts exactly where quantization left it); latent weights, scales and zero
  points train; ``convert`` packs them back into int layers.
- ``lora``: every compressed layer gets a low-rank adapter beside it; only the adapters
  train, and they stay separate from the packed weights (saved in the checkpoint as
  ``LoRALinear`` wrappers).

Each method has its own step budget, learning rate and schedule (:data:`METHODS`), used
where the recipe leaves ``steps`` / ``lr`` / ``schedule`` out; the stage's metrics
record the values it ran with.

The math and the loop live in :mod:`squeezeprompt.recover`; this module only orchestrates.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from squeezeprompt.nn import convert
from squeezeprompt.nn.base import QuantizedLinearBase
from squeezeprompt.nn.qat import FakeQuantLinear
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.stage_configs import (
    Bits,
    PruneConfig,
    QuantizeConfig,
    QuantMethod,
    RecoverConfig,
    RecoverMethod,
    StageConfig,
)
from squeezeprompt.pipeline.stages.registry import register_stage
from squeezeprompt.prune import Pattern
from squeezeprompt.recover.distill import distill_loss_fn
from squeezeprompt.recover.lora import LoRAConfig, LoRALinear, apply_lora_
from squeezeprompt.recover.qat import prepare_qat_from_quantized_
from squeezeprompt.recover.train import LrScale, LrSchedule, TrainConfig, train
from squeezeprompt.recover.trainable import mark_trainable, trainable_count

Check = Callable[[RecoverConfig, nn.Module, Sequence[StageConfig]], None]


@dataclass(frozen=True)
class Method:
    """One recovery method: ``prepare`` swaps layers and unfreezes what trains (returning a
    summary); ``finish`` turns training-time layers into inference ones. ``default_steps``,
    ``default_lr`` and ``default_schedule`` fill a recipe's left-out ``steps`` / ``lr`` /
    ``schedule``."""

    prepare: Callable[[RunContext, RecoverConfig], dict[str, Any]]
    default_steps: int
    default_lr: float
    default_schedule: LrSchedule = LrSchedule.CONSTANT
    finish: Callable[[RunContext], None] = lambda ctx: None
    check: Check = lambda config, model, earlier: None
    lr_scale: LrScale | None = None  # per-parameter multiplier of the recipe's lr
    after_step: Callable[[nn.Module], None] | None = None  # e.g. keep parameters valid


METHODS: dict[RecoverMethod, Method] = {}


def register_method(kind: RecoverMethod, method: Method) -> None:
    """Makes ``method: kind`` runnable (registering again replaces it).

    Example:
        >>> sorted(m.value for m in METHODS)
        ['distill', 'lora', 'qat']
    """
    METHODS[kind] = method


# -- distill ---------------------------------------------------------------------------


def _positive_scales(model: nn.Module) -> None:
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, FakeQuantLinear):
                module.scale.clamp_(min=MIN_SCALE)


MIN_SCALE = 1e-8  # fake_quantize and the int layers need scale > 0


def _prepare_distill(ctx: RunContext, config: RecoverConfig) -> dict[str, Any]:
    swapped = _to_fake_quant(ctx, config)
    mark_trainable(ctx.model)
    for module in ctx.model.modules():
        if isinstance(module, FakeQuantLinear):
            module.scale.requires_grad_(True)  # the latent weight and zero points stay
    return {"fake_quant_layers": swapped} if swapped else {}


def _finish_distill(ctx: RunContext) -> None:
    if any(isinstance(m, FakeQuantLinear) for m in ctx.model.modules()):
        convert(ctx.model)


# Budgets are steps of 4 × 128 tokens; distillation of SmolLM2-135M took about 5 s a step
# on an idle 2-core CPU, so 100 steps is about 8 minutes. Learning rates: the lowest
# distillation loss on held-back calibration windows after 10 steps, among 1e-4 / 3e-4 /
# 1e-3 (distill from 50% Wanda; 1e-3 made it worse), 1e-3 / 3e-3 (LoRA from int4 RTN) and
# 1e-4 / 3e-4 / 1e-3 (QAT from int4 RTN); docs/results/recovery_sweep.md has the numbers.
# Distillation retrains every pruned weight: from 50% Wanda (ppl 82.7, dense 35.1) 60
# steps closed 44% of the log gap (56.5), 100 steps 49% (54.5) and 200 steps 52% (53.2),
# the budget DESIGN.md's example recipe gives it (about 17 minutes on an idle machine).
DISTILL_STEPS, DISTILL_LR = 200, 3e-4
# Neither a cosine decay nor larger steps for the vectors (norm scales, biases) beat the
# constant rate on both start points (held-back loss after 100 steps, recovery_sweep.md):
# from int4 RTN, where only the norms train, cosine with vectors at 10x helped (0.270 ->
# 0.255); from 50% Wanda it hurt (0.549 -> 0.559), vectors at 10x alone hurt more, and
# cosine at twice the rate diverged. So distillation keeps the constant schedule.

# A quantized layer's scales are its only trainable part under distillation, and they
# take distillation's own rate: unlike QAT (whose latent weights move too, so its scales
# step at 1/100), nothing else can move the codes. From int4 RTN, held-back loss after
# 20 steps (0.378 at the start) with the scales' rate at 0.01 / 0.1 / 0.3 / 1 x lr:
# 0.321 / 0.310 / 0.289 / 0.255 (recovery_sweep.md).

register_method(
    RecoverMethod.DISTILL,
    Method(
        _prepare_distill,
        DISTILL_STEPS,
        DISTILL_LR,
        finish=_finish_distill,
        after_step=_positive_scales,
    ),
)


# -- qat -------------------------------------------------------------------------------


def _earlier_quantize(earlier: Sequence[StageConfig]) -> QuantizeConfig | None:
    found = [s for s in earlier if isinstance(s, QuantizeConfig)]
    return found[-1] if found else None


def _check_qat(config: RecoverConfig, model: nn.Module, earlier: Sequence[StageConfig]) -> None:
    quant = _earlier_quantize(earlier)
    if quant is None:
        raise RecipeError("method", "qat needs a quantize stage before it (nothing is quantized)")
    if quant.dynamic_activations:
        raise RecipeError(
            "method", "qat trains weight-only grids; W8A8 and W4A8 have no fake-quant layer"
        )
    semi = any(
        isinstance(s, PruneConfig) and s.sparsity.pattern is Pattern.SEMI_24 for s in earlier
    )
    if semi and quant.bits is Bits.INT8:
        raise RecipeError("method", "qat has no 2:4 int8 layer (2:4 + int4 works)")


def _to_fake_quant(ctx: RunContext, config: RecoverConfig) -> int:
    """Swaps the model's weight-only int layers for equal fake-quant ones (everything is
    frozen afterwards); returns how many were swapped (0 without a quantize stage)."""
    earlier = ctx.recipe.stages[: ctx.recipe.stages.index(config)]
    quant = _earlier_quantize(earlier)
    if quant is None or quant.dynamic_activations:
        return 0  # W8A8 and W4A8 layers have no fake-quant twin: they stay as they are
    pruned = any(isinstance(s, PruneConfig) for s in earlier)
    dense = None
    # RTN and GPTQ keep the columns' scale, so the teacher's weight says roughly where in
    # its rounding bin each weight sat; AWQ/SmoothQuant rescaled the columns, and pruning
    # (SparseGPT) moved the weights, so there it would not.
    if quant.method in (QuantMethod.RTN, QuantMethod.GPTQ) and not pruned:
        dense = {n: m.weight for n, m in ctx.teacher.named_modules() if isinstance(m, nn.Linear)}
    return len(prepare_qat_from_quantized_(ctx.model, dense, keep_zeros=pruned))


def _prepare_qat(ctx: RunContext, config: RecoverConfig) -> dict[str, Any]:
    swapped = _to_fake_quant(ctx, config)
    for module in ctx.model.modules():
        if isinstance(module, FakeQuantLinear) and isinstance(module.zero_point, nn.Parameter):
            # Zero points are integer codes rounded in the forward: at weight-sized steps
            # they never move by a whole code, so training them only costs time.
            module.zero_point.requires_grad_(False)
    return {"fake_quant_layers": swapped}


# Adam moves every parameter by about lr a step, whatever its size, and one scale moves
# every weight of its group at once: scales take much smaller steps. (On the tiny test
# Llama, 0.01 lowered the held-out loss more than 0.1 did; scales never crossed zero.)
QAT_SCALE_LR = 0.01


def _qat_lr_scale(name: str, _param: nn.Parameter) -> float:
    return QAT_SCALE_LR if name.endswith(".scale") else 1.0


def _finish_qat(ctx: RunContext) -> None:
    convert(ctx.model)


# Latent weights sit inside their rounding bins: 1e-3 flipped many codes at once.
QAT_STEPS, QAT_LR = 60, 1e-4

register_method(
    RecoverMethod.QAT,
    Method(
        _prepare_qat,
        QAT_STEPS,
        QAT_LR,
        finish=_finish_qat,
        check=_check_qat,
        lr_scale=_qat_lr_scale,
        after_step=_positive_scales,
    ),
)


# -- lora ------------------------------------------------------------------------------


def _compressed(_name: str, module: nn.Module) -> bool:
    return isinstance(module, QuantizedLinearBase)


def _check_lora(config: RecoverConfig, model: nn.Module, earlier: Sequence[StageConfig]) -> None:
    if not any(isinstance(s, (PruneConfig, QuantizeConfig)) for s in earlier):
        raise RecipeError("method", "lora needs a prune or quantize stage before it")


def _prepare_lora(ctx: RunContext, config: RecoverConfig) -> dict[str, Any]:
    lora = LoRAConfig(rank=config.lora_rank, alpha=config.lora_alpha)
    already = any(isinstance(m, LoRALinear) for m in ctx.model.modules())
    names = apply_lora_(ctx.model, lora, include=_compressed)
    if already or not names:
        raise ValueError("recover: lora found no compressed layer without an adapter")
    return {"adapters": len(names)}


# The adapters start at zero (B = 0), so they need larger steps than trained weights.
LORA_STEPS, LORA_LR = 60, 3e-3

register_method(RecoverMethod.LORA, Method(_prepare_lora, LORA_STEPS, LORA_LR, check=_check_lora))


# -- the stage -------------------------------------------------------------------------


def resolved(config: RecoverConfig) -> RecoverConfig:
    """``config`` with a left-out ``steps`` / ``lr`` / ``schedule`` set to its method's default.

    Example:
        >>> resolved(RecoverConfig(method=RecoverMethod.LORA, steps=5)).steps
        5
        >>> resolved(RecoverConfig(method=RecoverMethod.LORA)).lr == LORA_LR
        True
    """
    method = METHODS[config.method]
    return replace(
        config,
        steps=method.default_steps if config.steps is None else config.steps,
        lr=method.default_lr if config.lr is None else config.lr,
        schedule=method.default_schedule if config.schedule is None else config.schedule,
    )


def training_batches(ctx: RunContext, config: RecoverConfig) -> list[dict[str, torch.Tensor]]:
    """``steps`` batches of ``config.batch_size`` calibration windows (``steps``
    resolved as in :func:`resolved`).

    Example: ``RecoverStage.run`` below.
    """
    steps = resolved(config).steps
    assert steps is not None
    windows = ctx.calibration_batches(steps * config.batch_size, config.seq_len)
    # A different draw than calibration's: the same seed offset by the stage's role.
    random.Random(ctx.recipe.seed + 1).shuffle(windows)
    return [
        {"input_ids": torch.cat(windows[i : i + config.batch_size])}
        for i in range(0, len(windows), config.batch_size)
    ]


@register_stage(RecoverConfig)
class RecoverStage:
    changes_model = True

    def check(
        self, config: RecoverConfig, model: nn.Module, earlier: Sequence[StageConfig]
    ) -> None:
        method = METHODS.get(config.method)
        if method is None:
            raise RecipeError(
                "method",
                f"{config.method.value} has no pipeline adapter; expected one of "
                f"{sorted(m.value for m in METHODS)}",
            )
        method.check(config, model, earlier)

    def run(self, ctx: RunContext, config: RecoverConfig) -> dict[str, Any]:
        method = METHODS[config.method]
        run = resolved(config)
        assert run.steps is not None and run.lr is not None and run.schedule is not None
        batches = training_batches(ctx, config)
        summary = method.prepare(ctx, config)  # the recipe's own config: qat finds it there
        trainable = trainable_count(ctx.model)
        if trainable == 0:
            raise ValueError("recover: the compressed model has no trainable parameter left")
        losses = train(
            ctx.model,
            distill_loss_fn(ctx.teacher, config.temperature),
            batches,
            TrainConfig(steps=run.steps, lr=run.lr, schedule=run.schedule, progress=ctx.progress),
            lr_scale=method.lr_scale,
            after_step=None if method.after_step is None else lambda: method.after_step(ctx.model),
        )
        ctx.model.eval().requires_grad_(False)
        method.finish(ctx)
        return {
            "method": config.method.value,
            "steps": run.steps,  # as resolved: the recipe may leave them to the method
            "lr": run.lr,
            "schedule": run.schedule.value,
            **summary,
            "trainable_parameters": trainable,
            "loss_first": losses[0],
            "loss_last": losses[-1],
        }
