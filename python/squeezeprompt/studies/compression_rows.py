"""The rows of the compression study and the recipe each one runs.

A row is one compression (a prune stage, a quantize stage, or both) followed by the
recover stage at :class:`RecoverConfig`'s defaults; the dense row has no stage at all.
Every recipe shares the model, evaluation settings, output settings and seed, so every
run's dense baseline has the same fingerprint and is measured only once (see
:mod:`squeezeprompt.studies.compression`).

int4 rows use one group size throughout (64 by default): the quantize stage takes one
``group_size`` for every layer, and SmolLM2-135M's 576-wide inputs are not divisible by
128 (only ``down_proj``'s 1536 is).

Example:
    >>> [r.key for r in study_rows()][:3]
    ['dense', 'int8-rtn', 'int4-rtn']
    >>> recipe = recipe_for(row_by_key("int4-gptq"), StudySettings())
    >>> [s.kind.value for s in recipe.stages]
    ['calibrate', 'quantize', 'recover']
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from squeezeprompt.pipeline.recipe import EvaluateConfig, OutputConfig, Recipe
from squeezeprompt.pipeline.stage_configs import (
    Bits,
    CalibrateConfig,
    PruneConfig,
    PruneMethod,
    QuantizeConfig,
    QuantMethod,
    RecoverConfig,
    Sparsity,
    StageConfig,
)
from squeezeprompt.pipeline.stages.recover import resolved

SMOOTHQUANT_ALPHA = 0.5  # the SmoothQuant paper's default migration strength


@dataclass(frozen=True)
class Row:
    """One line of the table: what compresses the model before recovery.

    Example:
        >>> Row("dense", "dense fp32").is_dense
        True
    """

    key: str  # stable name: the run directory and ``--rows`` use it
    label: str  # what the table prints
    prune: PruneConfig | None = None
    quantize: QuantizeConfig | None = None

    @property
    def is_dense(self) -> bool:
        return self.prune is None and self.quantize is None

    @property
    def compression(self) -> tuple[StageConfig, ...]:
        return tuple(s for s in (self.prune, self.quantize) if s is not None)

    @property
    def needs_calibration(self) -> bool:
        return any(s.needs_calibration for s in self.compression)


@dataclass(frozen=True)
class StudySettings:
    """What every row shares. The defaults are the full study's bounded sizes.

    Example:
        >>> StudySettings().evaluate.test_examples, QUICK.evaluate.test_examples
        (300, 8)
    """

    model: str = "smollm2-135m-instruct"
    evaluate: EvaluateConfig = EvaluateConfig(
        perplexity_tokens=8192, seq_len=256, test_examples=300, decode_tokens=0
    )
    calibrate: CalibrateConfig = CalibrateConfig(samples=32, seq_len=256)
    recover: RecoverConfig = field(default_factory=RecoverConfig)  # the pipeline's defaults
    group_size: int = 64  # int4 group size for every layer
    seed: int = 0
    # Checkpoints are what lets a re-run resume (and redo only a retuned recover stage);
    # per-run plots are skipped because the study draws its own.
    output: OutputConfig = OutputConfig(checkpoints=True, plots=False)


# A smoke configuration: every row runs end to end in seconds on a tiny model and in a
# few minutes on SmolLM2; its numbers mean nothing.
QUICK = StudySettings(
    evaluate=EvaluateConfig(perplexity_tokens=128, seq_len=64, test_examples=8, decode_tokens=0),
    calibrate=CalibrateConfig(samples=4, seq_len=64),
    recover=RecoverConfig(steps=2, batch_size=2, seq_len=32),
)


def _int4(method: QuantMethod, group_size: int) -> QuantizeConfig:
    return QuantizeConfig(method=method, bits=Bits.INT4, group_size=group_size)


def _prune(method: PruneMethod, sparsity: Sparsity) -> PruneConfig:
    return PruneConfig(method=method, sparsity=sparsity)


def study_rows(group_size: int = 64) -> tuple[Row, ...]:
    """Every row in table order; int4 rows at ``group_size``.

    Example: see the module docstring.
    """
    g = group_size
    half, semi = Sparsity(0.5), Sparsity.semi_24()
    int8 = QuantizeConfig(method=QuantMethod.RTN, bits=Bits.INT8, group_size=None)
    w8a8 = replace(int8, dynamic_activations=True, smoothquant_alpha=SMOOTHQUANT_ALPHA)
    return (
        Row("dense", "dense fp32"),
        Row("int8-rtn", "int8 RTN (per channel)", quantize=int8),
        Row("int4-rtn", f"int4 g{g} RTN", quantize=_int4(QuantMethod.RTN, g)),
        Row("int4-gptq", f"int4 g{g} GPTQ", quantize=_int4(QuantMethod.GPTQ, g)),
        Row("int4-awq", f"int4 g{g} AWQ", quantize=_int4(QuantMethod.AWQ, g)),
        Row("w8a8-smoothquant", f"W8A8 SmoothQuant α={SMOOTHQUANT_ALPHA}", quantize=w8a8),
        Row("50-magnitude", "50% magnitude", prune=_prune(PruneMethod.MAGNITUDE, half)),
        Row("50-wanda", "50% Wanda", prune=_prune(PruneMethod.WANDA, half)),
        Row("50-sparsegpt", "50% SparseGPT", prune=_prune(PruneMethod.SPARSEGPT, half)),
        Row("24-magnitude", "2:4 magnitude", prune=_prune(PruneMethod.MAGNITUDE, semi)),
        Row("24-wanda", "2:4 Wanda", prune=_prune(PruneMethod.WANDA, semi)),
        Row("24-sparsegpt", "2:4 SparseGPT", prune=_prune(PruneMethod.SPARSEGPT, semi)),
        Row(
            "24-int4",
            f"2:4 SparseGPT + int4 g{g} GPTQ",
            prune=_prune(PruneMethod.SPARSEGPT, semi),
            quantize=_int4(QuantMethod.GPTQ, g),
        ),
    )


def row_by_key(key: str, group_size: int = 64) -> Row:
    """The row called ``key``; a ``KeyError`` lists the known keys.

    Example:
        >>> row_by_key("50-wanda").label
        '50% Wanda'
    """
    rows = {r.key: r for r in study_rows(group_size)}
    if key not in rows:
        raise KeyError(f"unknown row {key!r}; expected some of: {', '.join(rows)}")
    return rows[key]


def recipe_for(row: Row, settings: StudySettings, recover: bool = True) -> Recipe:
    """The pipeline recipe of ``row``: [calibrate], compression, recover (dense: none).

    ``recover=False`` stops before recovery: the same stages with the same fingerprints,
    so the full recipe later resumes from there and runs only the recover stage.

    Example:
        >>> row = row_by_key("int4-rtn")
        >>> short, full = recipe_for(row, StudySettings(), recover=False), recipe_for(row, QUICK)
        >>> len(short.stages), len(full.stages)
        (1, 2)
    """
    stages: list[StageConfig] = []
    if not row.is_dense:
        if row.needs_calibration:
            stages.append(settings.calibrate)
        stages += row.compression
        if recover:
            # Explicit values, so a changed pipeline default re-runs the recover stages.
            stages.append(resolved(settings.recover))
    return Recipe(
        model=settings.model,
        stages=tuple(stages),
        evaluate=settings.evaluate,
        output=settings.output,
        seed=settings.seed,
    )
