"""The built-in recipe that ``squeezeprompt demo`` runs.

A bounded tour of SmolLM2-135M-Instruct: 50% Wanda pruning, int4 g64 round-to-nearest
(576, the hidden size, is not a multiple of 128), a short distillation and a small
prompt search, each stage evaluated on 300 held-out reviews and 2048 held-out Wikipedia
tokens. The six evaluations set most of the cost; report-grade figures (>= 500
reviews) need a recipe with ``evaluate: {test_examples: 500}`` and ``squeezeprompt run``.

Example:
    >>> default_recipe().stages[2].bits.value
    4
"""

from __future__ import annotations

from squeezeprompt.pipeline.recipe import EvaluateConfig, Recipe
from squeezeprompt.pipeline.stage_configs import (
    Bits,
    CalibrateConfig,
    PromptConfig,
    PruneConfig,
    PruneMethod,
    QuantizeConfig,
    QuantMethod,
    RecoverConfig,
    Sparsity,
    Strategy,
)

DEMO_MODEL = "smollm2-135m-instruct"


def default_recipe(model: str = DEMO_MODEL) -> Recipe:
    """The demo recipe (see the module docstring for what it costs)."""
    return Recipe(
        model=model,
        stages=(
            CalibrateConfig(samples=16, seq_len=256),
            PruneConfig(method=PruneMethod.WANDA, sparsity=Sparsity(0.5)),
            QuantizeConfig(method=QuantMethod.RTN, bits=Bits.INT4, group_size=64),
            RecoverConfig(steps=30, lr=1e-4, batch_size=2, seq_len=128),
            PromptConfig(search=Strategy.BEAM, candidates=8, demos=2, budget=320, dev_size=32),
        ),
        evaluate=EvaluateConfig(perplexity_tokens=2048, seq_len=256, test_examples=300),
    )
