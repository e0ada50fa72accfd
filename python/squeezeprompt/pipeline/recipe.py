"""A compression recipe: the model, its stages in order, evaluation and run settings.

YAML and JSON are only the serialised form: :meth:`Recipe.from_yaml` parses into frozen,
validated dataclasses, and every check that needs no model runs here. Checks that need
the model's layer shapes live in :mod:`squeezeprompt.pipeline.validate`.

Example:
    >>> r = Recipe.from_yaml('''
    ... model: smollm2-135m-instruct
    ... stages:
    ...   - prune:    {method: magnitude, sparsity: "2:4"}
    ...   - quantize: {method: rtn, bits: 4, group_size: 64}
    ... evaluate: {perplexity: enwiki, task: rotten_tomatoes}
    ... ''')
    >>> [s.kind.value for s in r.stages], r.evaluate.task
    (['prune', 'quantize'], 'rotten_tomatoes')
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.schema import check_fields, from_data, to_data
from squeezeprompt.pipeline.stage_configs import (
    STAGE_CONFIGS,
    CalibrateConfig,
    Corpus,
    StageConfig,
)


@dataclass(frozen=True)
class EvaluateConfig:
    """What is measured on the dense model and after every stage (bounded sizes)."""

    perplexity: Corpus | None = Corpus.ENWIKI
    perplexity_tokens: int = 8192  # held-out tokens scored
    seq_len: int = 256  # perplexity window
    task: str | None = "rotten_tomatoes"
    test_examples: int = 500  # held-out test examples scored for accuracy
    decode_tokens: int = 32  # greedy tokens timed for decode speed (0: skip)

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("perplexity_tokens", "seq_len", "test_examples"):
            if getattr(self, name) <= 0:
                raise RecipeError(name, f"must be > 0, got {getattr(self, name)}")
        if self.perplexity is not None and self.perplexity_tokens < self.seq_len:
            raise RecipeError(
                "perplexity_tokens",
                f"must be >= seq_len ({self.seq_len}) to fill one window, "
                f"got {self.perplexity_tokens}",
            )
        if self.decode_tokens < 0:
            raise RecipeError("decode_tokens", f"must be >= 0, got {self.decode_tokens}")
        if self.task is not None:
            from squeezeprompt.data import available_tasks

            if self.task not in available_tasks():
                raise RecipeError("task", f"expected one of {available_tasks()}, got {self.task!r}")


@dataclass(frozen=True)
class OutputConfig:
    """What the run writes besides the metrics."""

    checkpoints: bool = True  # a model checkpoint per stage (resume needs them)
    plots: bool = True


@dataclass(frozen=True)
class Recipe:
    """The whole run. ``stages`` run in :class:`StageKind` order, after a dense baseline.

    Example:
        >>> Recipe(model="smollm2-135m-instruct").stages
        ()
    """

    model: str
    stages: tuple[StageConfig, ...] = ()
    evaluate: EvaluateConfig = EvaluateConfig()
    output: OutputConfig = OutputConfig()
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.model:
            raise RecipeError("model", "must name a model, got ''")
        if self.seed < 0:
            raise RecipeError("seed", f"must be an int >= 0, got {self.seed}")
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, StageConfig):
                raise RecipeError(f"stages[{i}]", f"expected a stage config, got {stage!r}")
        self._check_order()

    def _check_order(self) -> None:
        for i, stage in enumerate(self.stages):
            if i and stage.kind.rank < self.stages[i - 1].kind.rank:
                prev = self.stages[i - 1].kind.value
                raise RecipeError(
                    f"stages[{i}].{stage.kind.value}",
                    f"must not come after {prev} (order: calibrate, prune, quantize, "
                    "recover, prompt)",
                )
        kinds = [s.kind for s in self.stages]
        for kind in set(kinds):
            if kind.value in ("calibrate", "prune", "quantize") and kinds.count(kind) > 1:
                raise RecipeError("stages", f"{kind.value} appears {kinds.count(kind)} times")

    # -- serialised forms ------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any) -> Recipe:
        """Builds a recipe from parsed YAML/JSON; errors name the offending field.

        Example:
            >>> Recipe.from_dict({"model": "m", "stages": [{"quantize": {"bits": 3}}]})
            ... # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            squeezeprompt.pipeline.errors.RecipeError: stages[0].quantize.bits: expected ...
        """
        if not isinstance(data, dict):
            raise RecipeError("", f"a recipe must be a mapping, got {type(data).__name__}")
        data = dict(data)
        raw_stages = data.pop("stages", None) or []
        if not isinstance(raw_stages, list):
            raise RecipeError("stages", f"expected a list, got {type(raw_stages).__name__}")
        stages = tuple(_stage_from_data(raw, f"stages[{i}]") for i, raw in enumerate(raw_stages))
        if "model" not in data:
            raise RecipeError("model", "missing; name the model to compress")
        # Parse the rest with the stages left out, then put the parsed stages in.
        head = from_data(_RecipeHead, data, "")
        return cls(head.model, stages, head.evaluate, head.output, head.seed)

    @classmethod
    def from_yaml(cls, text: str) -> Recipe:
        """Parses YAML text.

        Example:
            >>> Recipe.from_yaml("model: m\\nseed: 2").seed
            2
        """
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise RecipeError("", f"not valid YAML: {' '.join(str(e).split())}") from None
        return cls.from_dict(data)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        """Parses JSON text.

        Example:
            >>> Recipe.from_json('{"model": "m", "seed": 3}').seed
            3
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RecipeError("", f"not valid JSON: {e}") from None
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | Path) -> Recipe:
        """Reads ``.json`` as JSON and anything else as YAML; a missing file is an error.

        Example:
            >>> Recipe.from_file("no-such.yaml")
            Traceback (most recent call last):
            ...
            FileNotFoundError: recipe file not found: no-such.yaml
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"recipe file not found: {path}")
        text = path.read_text(encoding="utf-8")
        return cls.from_json(text) if path.suffix == ".json" else cls.from_yaml(text)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that ``from_dict`` turns back into an equal recipe.

        Example:
            >>> r = Recipe(model="m", seed=1)
            >>> Recipe.from_dict(r.to_dict()) == r
            True
        """
        return {
            "model": self.model,
            "stages": [{s.kind.value: to_data(s)} for s in self.stages],
            "evaluate": to_data(self.evaluate),
            "output": to_data(self.output),
            "seed": self.seed,
        }

    @property
    def calibration(self) -> CalibrateConfig:
        """The calibrate stage's settings, or the defaults when the recipe has none.

        Example:
            >>> Recipe(model="m").calibration.samples
            32
        """
        found = [s for s in self.stages if isinstance(s, CalibrateConfig)]
        return found[0] if found else CalibrateConfig()

    def fingerprint(self, upto: int | None = None) -> str:
        """Hash of the settings that decide stage ``upto``'s result (all stages if None).

        A finished stage is reused on resume only if its fingerprint still matches.

        Example:
            >>> a = Recipe.from_yaml("model: m\\nstages: [{quantize: {}}, {recover: {}}]")
            >>> b = Recipe.from_yaml("model: m\\nstages: [{quantize: {}}, {recover: {steps: 5}}]")
            >>> a.fingerprint(upto=0) == b.fingerprint(upto=0), a.fingerprint() == b.fingerprint()
            (True, False)
        """
        data = self.to_dict()
        if upto is not None:
            data["stages"] = data["stages"][: upto + 1]
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class _RecipeHead:
    """The recipe's fields other than ``stages`` (parsed generically)."""

    model: str
    evaluate: EvaluateConfig = EvaluateConfig()
    output: OutputConfig = OutputConfig()
    seed: int = 0


def _stage_from_data(raw: Any, path: str) -> StageConfig:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise RecipeError(
            path, f"expected a one-key mapping like {{quantize: {{...}}}}, got {raw!r}"
        )
    ((kind, body),) = raw.items()
    if kind not in STAGE_CONFIGS:
        raise RecipeError(
            f"{path}.{kind}", f"unknown stage; expected one of: {', '.join(STAGE_CONFIGS)}"
        )
    return from_data(STAGE_CONFIGS[kind], body, f"{path}.{kind}")
