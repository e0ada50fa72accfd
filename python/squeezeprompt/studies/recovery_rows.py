"""What the recovery study runs: each recovery method from the start point it must fix.

A cell is a start point (a row of the compression study: its prune/quantize stages)
and a recover method at the pipeline's per-method defaults. The study's settings are
the compression study's, with perplexity only (4096 held-out tokens, windows of 256):
recovery's acceptance is about perplexity, and the task evaluation would double the
cost of every run.

Example:
    >>> [c.key for c in CELLS]
    ['50-wanda-distill', 'int4-rtn-distill', 'int4-rtn-qat', 'int4-rtn-lora']
    >>> [s.kind.value for s in recovery_recipe(row_by_key("50-wanda"), RecoverConfig()).stages]
    ['calibrate', 'prune', 'recover']
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from squeezeprompt.pipeline.recipe import EvaluateConfig, Recipe
from squeezeprompt.pipeline.stage_configs import CalibrateConfig, RecoverConfig, RecoverMethod
from squeezeprompt.studies.compression_rows import Row, StudySettings, recipe_for, row_by_key

SETTINGS = StudySettings(
    evaluate=EvaluateConfig(perplexity_tokens=4096, seq_len=256, task=None, decode_tokens=0)
)

# A smoke configuration (numbers mean nothing): seconds on a tiny model.
QUICK = replace(
    SETTINGS,
    evaluate=EvaluateConfig(perplexity_tokens=128, seq_len=64, task=None, decode_tokens=0),
    calibrate=CalibrateConfig(samples=4, seq_len=64),
)


@dataclass(frozen=True)
class Cell:
    """One run of the study: ``method`` from the compression row ``start``.

    Example:
        >>> Cell("int4-rtn", RecoverMethod.QAT).key
        'int4-rtn-qat'
    """

    start: str  # a compression study row key
    method: RecoverMethod

    @property
    def key(self) -> str:
        return f"{self.start}-{self.method.value}"


# Pruned weights are what distillation was first for; int4 is what QAT and LoRA are for.
# From int4, distillation trains the group scales, norms and biases (weights stay frozen).
CELLS = (
    Cell("50-wanda", RecoverMethod.DISTILL),
    Cell("int4-rtn", RecoverMethod.DISTILL),
    Cell("int4-rtn", RecoverMethod.QAT),
    Cell("int4-rtn", RecoverMethod.LORA),
)


def start_row(cell: Cell, settings: StudySettings = SETTINGS) -> Row:
    """The compression row a cell starts from.

    Example:
        >>> start_row(CELLS[0]).label
        '50% Wanda'
    """
    return row_by_key(cell.start, settings.group_size)


def recovery_recipe(
    row: Row, recover: RecoverConfig | None, settings: StudySettings = SETTINGS
) -> Recipe:
    """``row``'s compression followed by ``recover`` (None: compression only).

    Example: see the module docstring.
    """
    if recover is None:
        return recipe_for(row, settings, recover=False)
    return recipe_for(row, replace(settings, recover=recover))
