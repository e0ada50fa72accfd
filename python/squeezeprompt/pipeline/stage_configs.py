"""Typed settings of each pipeline stage, one frozen dataclass per stage kind.

A recipe lists stages as one-key mappings (``- quantize: {method: gptq, bits: 4}``);
the key picks the class through :data:`STAGE_CONFIGS`, and :class:`StageKind` fixes the
order stages may appear in (calibrate -> prune -> quantize -> recover -> prompt).

Example:
    >>> QuantizeConfig(method=QuantMethod.GPTQ, bits=Bits.INT4, group_size=64).kind
    <StageKind.QUANTIZE: 'quantize'>
    >>> PruneConfig(sparsity=Sparsity.semi_24()).sparsity.pattern.value
    '2:4'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.schema import check_fields, register_codec
from squeezeprompt.prompt.search.config import Strategy
from squeezeprompt.prune.config import Pattern, Sparsity
from squeezeprompt.quantize.grid import Bits
from squeezeprompt.recover.train import LrSchedule

__all__ = [
    "STAGE_CONFIGS",
    "Bits",
    "CalibrateConfig",
    "LrSchedule",
    "Corpus",
    "PromptConfig",
    "PruneConfig",
    "PruneMethod",
    "QuantMethod",
    "QuantizeConfig",
    "RecoverConfig",
    "RecoverMethod",
    "SoftKind",
    "SoftObjective",
    "Sparsity",
    "StageConfig",
    "StageKind",
    "Strategy",
]


class StageKind(enum.Enum):
    """Stage kinds in the only order they may run (a later kind never precedes an earlier)."""

    CALIBRATE = "calibrate"
    PRUNE = "prune"
    QUANTIZE = "quantize"
    RECOVER = "recover"
    PROMPT = "prompt"

    @property
    def rank(self) -> int:
        return list(StageKind).index(self)


class Corpus(enum.Enum):
    """Packaged text used for calibration and perplexity."""

    ENWIKI = "enwiki"  # gensim's 211 shortened Wikipedia articles


class PruneMethod(enum.Enum):
    MAGNITUDE = "magnitude"  # |w|; needs no calibration
    WANDA = "wanda"  # |w| * ||x||; needs calibration
    SPARSEGPT = "sparsegpt"  # OBS-style pruning with weight updates; needs calibration


class QuantMethod(enum.Enum):
    RTN = "rtn"  # round to nearest
    GPTQ = "gptq"  # Hessian-compensated rounding; needs calibration
    AWQ = "awq"  # activation-aware scaling; needs calibration


class SoftObjective(enum.Enum):
    LABELS = "labels"  # cross-entropy of the gold label word on train reviews
    TEACHER = "teacher"  # KL to the dense model's next-token distribution on text


class SoftKind(enum.Enum):
    EMBED = "embed"  # virtual input embeddings after the chat head (prompt.SoftPrompt)
    PREFIX = "prefix"  # keys/values in every layer before the prompt (prompt.PrefixPrompt)


class RecoverMethod(enum.Enum):
    DISTILL = "distill"  # match the dense model's next-token distribution
    LORA = "lora"
    QAT = "qat"


def _decode_sparsity(raw: Any, path: str) -> Sparsity:
    if raw == Pattern.SEMI_24.value:
        return Sparsity.semi_24()
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise RecipeError(path, f"expected a ratio in [0, 1) or '2:4', got {raw!r}")
    try:
        return Sparsity(float(raw), Pattern.UNSTRUCTURED)
    except ValueError as e:
        raise RecipeError(path, f"expected a ratio in [0, 1) or '2:4', got {raw!r} ({e})") from None


def _encode_sparsity(s: Sparsity) -> Any:
    return s.pattern.value if s.pattern is Pattern.SEMI_24 else s.ratio


register_codec(Sparsity, _decode_sparsity, _encode_sparsity)


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise RecipeError(name, f"must be > 0, got {getattr(obj, name)!r}")


class StageConfig:
    """Marker base: every stage config names its :class:`StageKind`."""

    kind: ClassVar[StageKind]

    @property
    def needs_calibration(self) -> bool:
        return False


# Modules skipped unless a stage says otherwise: the output head is tied to the
# embedding in small Llamas and is the most sensitive layer.
DEFAULT_EXCLUDE = ("lm_head",)


@dataclass(frozen=True)
class CalibrateConfig(StageConfig):
    """Calibration text that later prune/quantize stages collect layer statistics on."""

    kind: ClassVar[StageKind] = StageKind.CALIBRATE
    corpus: Corpus = Corpus.ENWIKI
    samples: int = 32  # sequences
    seq_len: int = 256  # tokens per sequence

    def __post_init__(self) -> None:
        check_fields(self)
        _positive(self, "samples", "seq_len")


@dataclass(frozen=True)
class PruneConfig(StageConfig):
    """Zero a fraction of every targeted Linear's weights (``exclude``: fnmatch globs)."""

    kind: ClassVar[StageKind] = StageKind.PRUNE
    method: PruneMethod = PruneMethod.MAGNITUDE
    sparsity: Sparsity = Sparsity(0.5)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE

    def __post_init__(self) -> None:
        check_fields(self)
        if self.sparsity.ratio == 0.0:
            raise RecipeError("sparsity", "must be > 0 (a prune stage that prunes nothing)")

    @property
    def needs_calibration(self) -> bool:
        return self.method is not PruneMethod.MAGNITUDE


@dataclass(frozen=True)
class QuantizeConfig(StageConfig):
    """Weight quantization of every targeted Linear, optionally with activations rounded
    per token to int8 at run time (``dynamic_activations``: W8A8 for int8, W4A8 for int4)."""

    kind: ClassVar[StageKind] = StageKind.QUANTIZE
    method: QuantMethod = QuantMethod.RTN
    bits: Bits = Bits.INT4
    group_size: int | None = 128  # int4 only; None = one group per row
    symmetric: bool = False  # int4 only: int8 layers are symmetric by construction
    dynamic_activations: bool = False  # per-token int8 activations: W8A8 or W4A8
    # W8A8 only: SmoothQuant migration strength (0.5 in the paper); None = no smoothing,
    # so a plain W8A8 recipe needs no calibration and means what it always meant.
    smoothquant_alpha: float | None = None
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE

    def __post_init__(self) -> None:
        check_fields(self)
        if self.group_size is not None and self.group_size <= 0:
            raise RecipeError("group_size", f"must be > 0 or null, got {self.group_size}")
        if self.bits is Bits.INT8 and self.group_size is not None:
            raise RecipeError(
                "group_size",
                f"int8 weights are per output channel: use null, got {self.group_size}",
            )
        # W4A8 takes any int4 method (the weights are the same grid); W8A8 layers are
        # built by rounding to nearest only.
        w8a8 = self.dynamic_activations and self.bits is Bits.INT8
        if w8a8 and self.method is not QuantMethod.RTN:
            raise RecipeError(
                "dynamic_activations", f"W8A8 needs method: rtn, got {self.method.value}"
            )
        alpha = self.smoothquant_alpha
        if alpha is not None and self.bits is not Bits.INT8:
            raise RecipeError("smoothquant_alpha", "smooths W8A8 inputs: needs bits: 8")
        if alpha is not None and not self.dynamic_activations:
            raise RecipeError(
                "smoothquant_alpha", "needs dynamic_activations: true (it smooths W8A8 inputs)"
            )
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise RecipeError("smoothquant_alpha", f"must lie in [0, 1], got {alpha}")

    @property
    def needs_calibration(self) -> bool:
        return self.method is not QuantMethod.RTN or self.smoothquant_alpha is not None


@dataclass(frozen=True)
class RecoverConfig(StageConfig):
    """Training after compression, against the dense model as teacher.

    ``steps``, ``lr`` and ``schedule`` left out (None) take the method's own defaults,
    which the stage resolves and records in its metrics (see
    ``pipeline.stages.recover.resolved``).
    """

    kind: ClassVar[StageKind] = StageKind.RECOVER
    method: RecoverMethod = RecoverMethod.DISTILL
    steps: int | None = None  # optimiser steps; None: the method's default
    lr: float | None = None  # None: the method's default
    schedule: LrSchedule | None = None  # constant or cosine decay; None: the method's default
    batch_size: int = 4
    seq_len: int = 128
    temperature: float = 1.0
    lora_rank: int = 8  # lora only: rank of each adapter
    lora_alpha: float = 16.0  # lora only: the adapter's output is scaled by alpha / rank

    def __post_init__(self) -> None:
        check_fields(self)
        _positive(self, "batch_size", "seq_len", "temperature", "lora_rank", "lora_alpha")
        _positive(self, *(n for n in ("steps", "lr") if getattr(self, n) is not None))


@dataclass(frozen=True)
class PromptConfig(StageConfig):
    """Discrete prompt search on the dev split (``soft_tokens`` > 0 adds a soft prompt)."""

    kind: ClassVar[StageKind] = StageKind.PROMPT
    # Successive halving screens many candidates on a few dev examples, so a budget of a
    # few thousand scored examples reaches demonstrations (beam scored all of dev each).
    search: Strategy = Strategy.HALVING
    candidates: int = 24  # library instructions in the starting pool
    demos: int = 4  # demonstrations per candidate, at most
    soft_tokens: int = 0  # learned virtual tokens; 0 = no soft prompt
    soft_objective: SoftObjective = SoftObjective.LABELS
    # PREFIX (a deep prompt) trains soft_tokens key/value pairs per layer: on SmolLM2-135M
    # 20x the numbers of EMBED at the same soft_tokens.
    soft_kind: SoftKind = SoftKind.EMBED
    soft_steps: int = 150  # optimizer steps of soft prompt training
    # SmolLM2's token embeddings have norm ~3 (entries ~0.1): Adam at 2e-2 moved each
    # virtual token by more than its own norm in 60 steps and dev loss did not improve;
    # 3e-3 lowered dev label loss more than 1e-3 in the same 40 steps (and 150 steps
    # took it from 0.662 to 0.637 on the study's compressed model).
    soft_lr: float = 3e-3
    soft_schedule: LrSchedule = LrSchedule.CONSTANT  # COSINE: decay soft_lr to 0
    budget: int = 3000  # scored dev examples, in all
    dev_size: int | None = 128  # dev examples a finalist is scored on (64 is too noisy)

    def __post_init__(self) -> None:
        check_fields(self)
        _positive(self, "budget", "soft_steps", "soft_lr")
        for name in ("candidates", "demos", "soft_tokens"):
            if getattr(self, name) < 0:
                raise RecipeError(name, f"must be >= 0, got {getattr(self, name)}")
        if self.dev_size is not None and self.dev_size <= 0:
            raise RecipeError("dev_size", f"must be > 0 or null, got {self.dev_size}")
        if self.soft_kind is SoftKind.PREFIX and self.soft_objective is SoftObjective.TEACHER:
            # evaluate.perplexity reads input-embedding soft prompts only.
            raise RecipeError(
                "soft_kind", "prefix trains against labels only (soft_objective: labels)"
            )
        if self.dev_size is not None and self.budget < self.dev_size:
            raise RecipeError(
                "budget",
                f"must afford one candidate ({self.dev_size} dev examples), got {self.budget}",
            )


STAGE_CONFIGS: dict[str, type[StageConfig]] = {
    cls.kind.value: cls
    for cls in (CalibrateConfig, PruneConfig, QuantizeConfig, RecoverConfig, PromptConfig)
}
