"""Where a recipe's ``model`` name comes from: a registry of ``name -> (model, tokenizer)``.

Packaged models (``squeezeprompt.models.MODELS``) are found without registering them;
tests and users add others (a tiny random Llama, a local checkpoint) with
:func:`register_source`.

Example:
    >>> "smollm2-135m-instruct" in known_sources()
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ModelFactory = Callable[[], tuple[Any, Any]]  # () -> (model in eval mode, tokenizer)

_SOURCES: dict[str, ModelFactory] = {}


def register_source(name: str, factory: ModelFactory) -> None:
    """Makes ``name`` usable as a recipe's ``model``; re-registering replaces it.

    Example:
        >>> register_source("doc-null", lambda: (None, None))
        >>> "doc-null" in known_sources()
        True
    """
    _SOURCES[name] = factory


def known_sources() -> tuple[str, ...]:
    """Registered names plus the packaged models, sorted.

    Example: see the module docstring.
    """
    from squeezeprompt.models import MODELS

    return tuple(sorted({*_SOURCES, *MODELS}))


def get_source(name: str) -> ModelFactory:
    """The factory for ``name``; a ``KeyError`` lists the known names.

    Example:
        >>> callable(get_source("smollm2-135m-instruct"))
        True
    """
    if name in _SOURCES:
        return _SOURCES[name]
    from squeezeprompt import models

    if name in models.MODELS:
        return lambda: models.load(name)
    raise KeyError(f"unknown model {name!r}; expected one of {known_sources()}")
