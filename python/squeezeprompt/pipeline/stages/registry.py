"""Stage adapters: one small object per stage config type, found through a registry.

An adapter has two halves: ``check(config, model, earlier)`` runs before any work,
against the loaded dense model and the stage configs that will have run before it, and
raises :class:`RecipeError` with a path relative to the stage (``group_size``);
``run(ctx, config)`` does the work by calling the library modules and
returns a JSON summary for the stage's metrics.

Example:
    >>> from squeezeprompt.pipeline.stage_configs import QuantizeConfig
    >>> type(adapter_for(QuantizeConfig())).__name__
    'QuantizeStage'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from torch import nn

from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.stage_configs import StageConfig


class StageAdapter(Protocol):
    # False for stages that leave the weights alone (calibrate): the runner then neither
    # re-measures nor saves a checkpoint for them.
    changes_model: bool

    def check(self, config: Any, model: nn.Module, earlier: Sequence[StageConfig]) -> None: ...

    def run(self, ctx: RunContext, config: Any) -> dict[str, Any]: ...


ADAPTERS: dict[type[StageConfig], StageAdapter] = {}

A = TypeVar("A")


def register_stage(config_type: type[StageConfig]):  # noqa: ANN201 (decorator)
    """Class decorator: instances of the class run stages of ``config_type``.

    Registering again replaces the adapter (tests wrap one to inject a crash).

    Example: every module in this package, e.g. ``stages/calibrate.py``.
    """

    def decorator(cls: type[A]) -> type[A]:
        ADAPTERS[config_type] = cls()  # type: ignore[assignment]
        return cls

    return decorator


def load_builtin_adapters() -> None:
    """Imports the built-in adapter modules, which register themselves (idempotent).

    Done here rather than only in the package ``__init__`` so a lookup never depends on
    which module happened to be imported first.

    Example:
        >>> load_builtin_adapters(); len(ADAPTERS) >= 5
        True
    """
    import importlib

    for name in BUILTIN:
        importlib.import_module(f"squeezeprompt.pipeline.stages.{name}")


BUILTIN = ("calibrate", "prune", "quantize", "recover", "prompt")


def adapter_for(config: StageConfig) -> StageAdapter:
    """The adapter registered for ``type(config)``.

    Example: see the module docstring.
    """
    load_builtin_adapters()
    try:
        return ADAPTERS[type(config)]
    except KeyError:
        raise KeyError(f"no pipeline adapter registered for {type(config).__name__}") from None
