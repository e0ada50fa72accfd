"""Compression pipeline: a typed recipe, stages run in order with checkpoints, a report.

Example:
    >>> from squeezeprompt.pipeline import Recipe, default_recipe
    >>> [s.kind.value for s in default_recipe().stages]
    ['calibrate', 'prune', 'quantize', 'recover', 'prompt']
"""

from squeezeprompt.pipeline.defaults import default_recipe
from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.recipe import EvaluateConfig, OutputConfig, Recipe
from squeezeprompt.pipeline.report import write_report
from squeezeprompt.pipeline.runner import run
from squeezeprompt.pipeline.sources import register_source
from squeezeprompt.pipeline.stage_configs import (
    CalibrateConfig,
    PromptConfig,
    PruneConfig,
    QuantizeConfig,
    RecoverConfig,
)
from squeezeprompt.pipeline.stages import register_stage

__all__ = [
    "CalibrateConfig",
    "EvaluateConfig",
    "OutputConfig",
    "PromptConfig",
    "PruneConfig",
    "QuantizeConfig",
    "Recipe",
    "RecipeError",
    "RecoverConfig",
    "default_recipe",
    "register_source",
    "register_stage",
    "run",
    "write_report",
]
