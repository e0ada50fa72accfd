"""Turning plain data (parsed YAML/JSON) into recipe dataclasses and back, field by field.

The recipe classes are the source of truth; this module only reads their type hints.
Supported field types: ``bool``, ``int``, ``float``, ``str``, an ``Enum`` (by value),
``X | None``, ``tuple[T, ...]``, a nested dataclass, and any type registered with
:func:`register_codec` (e.g. ``Sparsity``, written ``"2:4"`` or ``0.5``).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Knobs:
    ...     steps: int = 10
    ...     names: tuple[str, ...] = ()
    >>> from_data(Knobs, {"steps": 3, "names": ["a"]}, "knobs")
    Knobs(steps=3, names=('a',))
    >>> from_data(Knobs, {"stepz": 3}, "knobs")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    squeezeprompt.pipeline.errors.RecipeError: knobs.stepz: unknown key; expected one of: ...
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any

from squeezeprompt.pipeline.errors import RecipeError

# type -> (decode raw data at path, encode value to plain data)
_CODECS: dict[type, tuple[Callable[[Any, str], Any], Callable[[Any], Any]]] = {}


def register_codec(
    tp: type, decode: Callable[[Any, str], Any], encode: Callable[[Any], Any]
) -> None:
    """Teaches the parser a field type that is not a plain scalar, Enum or dataclass.

    Example:
        >>> register_codec(complex, lambda raw, path: complex(raw), str)
        >>> from_data(complex, "1+2j", "z")
        (1+2j)
    """
    _CODECS[tp] = (decode, encode)


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    return getattr(tp, "__name__", str(tp))


def _describe(raw: Any) -> str:
    return f"{raw!r} ({type(raw).__name__})"


def from_data(tp: Any, raw: Any, path: str) -> Any:
    """Builds a value of type ``tp`` from parsed YAML/JSON ``raw``; errors name ``path``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if raw is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return from_data(inner, raw, path)
    if origin is tuple:
        (inner, _dots) = typing.get_args(tp)
        if not isinstance(raw, (list, tuple)):
            raise RecipeError(path, f"expected a list, got {_describe(raw)}")
        return tuple(from_data(inner, x, f"{path}[{i}]") for i, x in enumerate(raw))
    if tp in _CODECS:
        return _CODECS[tp][0](raw, path)
    if dataclasses.is_dataclass(tp):
        return _dataclass_from_data(tp, raw, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if member.value == raw and type(member.value) is type(raw):
                return member
        raise RecipeError(path, f"expected {_type_name(tp)}, got {raw!r}")
    if tp is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if tp in (bool, int, float, str):
        if type(raw) is not tp:
            raise RecipeError(path, f"expected {tp.__name__}, got {_describe(raw)}")
        return raw
    raise TypeError(f"schema: no rule for field type {tp!r} at {path}")


def _dataclass_from_data(cls: Any, raw: Any, path: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(path, f"expected a mapping, got {_describe(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in raw:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            raise RecipeError(where, f"unknown key; expected one of: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in raw.items():
        kwargs[key] = from_data(hints[key], value, f"{path}.{key}" if path else key)
    try:
        return cls(**kwargs)
    except RecipeError as e:
        # __post_init__ names the field relative to its own class; prefix where it sits.
        where = f"{path}.{e.path}" if path and e.path else path or e.path
        raise RecipeError(where, e.detail) from None


def to_data(value: Any) -> Any:
    """The plain-data (JSON/YAML) form of a recipe value; ``from_data`` inverts it.

    Example:
        >>> import enum
        >>> class Color(enum.Enum):
        ...     RED = "red"
        >>> to_data((Color.RED, 1.5, None))
        ['red', 1.5, None]
    """
    if type(value) in _CODECS:
        return _CODECS[type(value)][1](value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_data(x) for x in value]
    return value


def check_fields(obj: Any) -> None:
    """Type-checks every field of a dataclass instance against its annotation.

    Called from each recipe class's ``__post_init__`` so a config built in Python is held
    to the same rules as one read from YAML (``int`` for a ``float`` field is accepted).

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass(frozen=True)
        ... class Knobs:
        ...     steps: int = 10
        ...     def __post_init__(self):
        ...         check_fields(self)
        >>> Knobs(steps="3")
        Traceback (most recent call last):
        ...
        squeezeprompt.pipeline.errors.RecipeError: steps: expected int, got '3' (str)
    """
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        _check(hints[f.name], getattr(obj, f.name), f.name)


def _check(tp: Any, value: Any, path: str) -> None:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return
        (inner,) = [o for o in options if o is not type(None)]
        _check(inner, value, path)
    elif origin is tuple:
        if not isinstance(value, tuple):
            raise RecipeError(path, f"expected a tuple, got {_describe(value)}")
        for i, x in enumerate(value):
            _check(typing.get_args(tp)[0], x, f"{path}[{i}]")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(path, f"expected float, got {_describe(value)}")
    elif tp in (bool, int, str):
        if type(value) is not tp:
            raise RecipeError(path, f"expected {tp.__name__}, got {_describe(value)}")
    elif isinstance(tp, type) and not isinstance(value, tp):
        raise RecipeError(path, f"expected {_type_name(tp)}, got {_describe(value)}")
