"""Swapping layers into a model: a registry from config type to layer builder.

``quantize_``, ``sparsify_`` and ``prepare_qat`` differ only in which configs they
accept; all replace the chosen ``nn.Linear`` modules in place, and each new layer
remembers its config (``layer.config``) for checkpoints. ``convert`` finishes QAT.

Example:
    >>> model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU())
    >>> _ = quantize_(model, Int8WeightOnly())
    >>> type(model[0]).__name__
    'Int8WeightOnlyLinear'
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TypeVar

import torch
from torch import Tensor, nn

from squeezeprompt.nn.config import (
    FakeQuant,
    Int4Dynamic,
    Int4WeightOnly,
    Int8Dynamic,
    Int8WeightOnly,
    SemiStructured24,
    SparseValues,
    TransformConfig,
    TransformKind,
    Unstructured,
)
from squeezeprompt.nn.dynamic import Int4DynamicLinear, Int8DynamicLinear
from squeezeprompt.nn.filter import LinearFilter, select_linears
from squeezeprompt.nn.masks import magnitude_mask
from squeezeprompt.nn.qat import FakeQuantLinear
from squeezeprompt.nn.sparse import MaskedLinear, Sparse24Int4Linear, Sparse24Linear
from squeezeprompt.nn.weight_only import Int4WeightOnlyLinear, Int8WeightOnlyLinear

log = logging.getLogger(__name__)

# A builder gets the Linear, its config and an optional precomputed mask (sparsity only).
Builder = Callable[[nn.Linear, TransformConfig, "Tensor | None"], nn.Module]
TRANSFORMS: dict[type[TransformConfig], Builder] = {}
CONVERTERS: dict[type[nn.Module], Callable[[nn.Module], nn.Module]] = {}

C = TypeVar("C", bound=TransformConfig)
M = TypeVar("M", bound=nn.Module)


def register_transform(config_type: type[C]) -> Callable[[Builder], Builder]:
    """Decorator: ``builder(linear, config, mask) -> module`` handles ``config_type``.

    Example:
        >>> Int4WeightOnly in TRANSFORMS
        True
    """

    def deco(fn: Builder) -> Builder:
        if config_type in TRANSFORMS:
            raise ValueError(f"register_transform: {config_type.__name__} already has a builder")
        TRANSFORMS[config_type] = fn
        return fn

    return deco


def register_converter(layer_type: type[nn.Module]) -> Callable:
    """Decorator: ``fn(layer) -> module`` is what :func:`convert` does to ``layer_type``."""

    def deco(fn: Callable[[nn.Module], nn.Module]) -> Callable[[nn.Module], nn.Module]:
        CONVERTERS[layer_type] = fn
        return fn

    return deco


@register_transform(Int8WeightOnly)
def _int8(linear, config, mask):
    return Int8WeightOnlyLinear.from_linear(linear)


@register_transform(Int4WeightOnly)
def _int4(linear, config, mask):
    return Int4WeightOnlyLinear.from_linear(linear, config.group_size, config.symmetric)


@register_transform(Int8Dynamic)
def _w8a8(linear, config, mask):
    return Int8DynamicLinear.from_linear(linear)


@register_transform(Int4Dynamic)
def _w4a8(linear, config, mask):
    return Int4DynamicLinear.from_linear(linear, config.group_size, config.symmetric)


@register_transform(FakeQuant)
def _fake_quant(linear, config, mask):
    return FakeQuantLinear.from_linear(linear, config.bits, config.group_size, config.symmetric)


@register_transform(SemiStructured24)
def _sparse24(linear, config, mask):
    if config.values is SparseValues.INT4:
        return Sparse24Int4Linear.from_linear(linear, config.group_size, config.symmetric, mask)
    return Sparse24Linear.from_linear(linear, mask, int8_values=config.values is SparseValues.INT8)


@register_transform(Unstructured)
def _unstructured(linear, config, mask):
    if mask is None:
        mask = magnitude_mask(linear.weight, config.sparsity)
    return MaskedLinear.from_linear(linear, mask)


@register_converter(FakeQuantLinear)
def _convert_fake_quant(layer):
    return layer.to_quantized()


def _shared_weight_owners(model: nn.Module, weight: Tensor, skip: str) -> list[str]:
    return [
        f"{mname}.{pname}" if mname else pname
        for mname, mod in model.named_modules(remove_duplicate=False)
        for pname, p in mod.named_parameters(recurse=False)
        if p is weight and mname != skip
    ]


def _apply(
    model: M,
    config: TransformConfig,
    kind: TransformKind,
    filter: LinearFilter | None,
    masks: Mapping[str, Tensor] | None = None,
) -> M:
    if not isinstance(config, TransformConfig):
        raise TypeError(f"{kind.value}: config must be a TransformConfig, got {config!r}")
    if config.kind is not kind:
        raise TypeError(
            f"{kind.value} does not take {type(config).__name__}; use {config.kind.value}"
        )
    builder = TRANSFORMS.get(type(config))
    if builder is None:
        raise TypeError(f"{kind.value}: no transform registered for {type(config).__name__}")
    names = select_linears(model, filter)
    masks = dict(masks or {})
    unknown = set(masks) - set(names)
    if unknown:
        raise KeyError(f"{kind.value}: masks given for modules not selected: {sorted(unknown)}")
    # Build every new layer before swapping any, so a layer the config cannot handle
    # (e.g. a group size that does not divide its in_features) leaves the model untouched.
    built: dict[str, nn.Module] = {}
    for name in names:
        linear = model.get_submodule(name)
        assert isinstance(linear, nn.Linear)
        shared = _shared_weight_owners(model, linear.weight, skip=name)
        if shared:
            # The new layer gets its own copy; the other owners (a tied embedding) keep
            # the float weight unchanged, so the tie simply ends here.
            log.info("%s: weight tied to %s; untying (the other owners stay float)", name, shared)
        try:
            with torch.no_grad():
                built[name] = builder(linear, config, masks.get(name))
        except (ValueError, TypeError) as e:
            raise type(e)(
                f"{kind.value}({type(config).__name__}) cannot transform {name} "
                f"(in_features={linear.in_features}, out_features={linear.out_features}): {e}; "
                f"nothing was changed (exclude it with a LinearFilter)"
            ) from e
    for name, layer in built.items():
        layer.config = config
        model.set_submodule(name, layer)
    return model


def quantize_(model: M, config: TransformConfig, filter: LinearFilter | None = None) -> M:
    """Replaces the chosen Linears with quantized layers (``Int8WeightOnly``,
    ``Int4WeightOnly``, ``Int8Dynamic``, ``Int4Dynamic``); returns ``model``, changed in place.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(256, 8))
        >>> quantize_(m, Int4WeightOnly(group_size=128))[0].group_size
        128
    """
    return _apply(model, config, TransformKind.QUANTIZE, filter)


def sparsify_(
    model: M,
    config: TransformConfig,
    filter: LinearFilter | None = None,
    masks: Mapping[str, Tensor] | None = None,
) -> M:
    """Replaces the chosen Linears with sparse layers (``SemiStructured24``, ``Unstructured``).

    ``masks`` maps a module name to a precomputed bool mask (True = keep), e.g. from
    Wanda or SparseGPT; modules without one are pruned by magnitude (2:4: unless the
    weight is already 2:4).

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(16, 8))
        >>> sparsify_(m, Unstructured(sparsity=0.25))[0].sparsity
        0.25
    """
    return _apply(model, config, TransformKind.SPARSIFY, filter, masks)


def prepare_qat(model: M, config: FakeQuant, filter: LinearFilter | None = None) -> M:
    """Replaces the chosen Linears with :class:`FakeQuantLinear` for quantization-aware
    training; call :func:`convert` afterwards.

    Example:
        >>> m = prepare_qat(torch.nn.Sequential(torch.nn.Linear(64, 8)), FakeQuant(group_size=32))
        >>> type(m[0]).__name__
        'FakeQuantLinear'
    """
    return _apply(model, config, TransformKind.QAT, filter)


def convert(model: M) -> M:
    """Turns every training-time layer that has a converter (``FakeQuantLinear``) into
    its inference layer, in place. ``MaskedLinear`` stays as it is.

    Example:
        >>> m = prepare_qat(torch.nn.Sequential(torch.nn.Linear(64, 8)), FakeQuant(group_size=32))
        >>> type(convert(m)[0]).__name__
        'Int4WeightOnlyLinear'
    """
    for name, mod in list(model.named_modules()):
        fn = CONVERTERS.get(type(mod))
        if fn is None or not name:
            continue
        new = fn(mod)
        if isinstance(getattr(mod, "config", None), FakeQuant):
            new.config = _converted_config(new)
        model.set_submodule(name, new)
    return model


def _converted_config(layer: nn.Module) -> TransformConfig:
    """The config that would have built ``layer`` directly (recorded in checkpoints)."""
    if isinstance(layer, Sparse24Int4Linear):
        return SemiStructured24(SparseValues.INT4, layer.group_size, layer.symmetric)
    if isinstance(layer, Int4WeightOnlyLinear):
        return Int4WeightOnly(layer.group_size, layer.symmetric)
    return Int8WeightOnly()
