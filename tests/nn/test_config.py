"""Config validation and JSON round trips."""

from __future__ import annotations

import json

import pytest

from squeezeprompt.nn import (
    CONFIGS,
    FakeQuant,
    Int4WeightOnly,
    Int8Dynamic,
    Int8WeightOnly,
    SemiStructured24,
    SparseValues,
    Unstructured,
    config_from_dict,
    config_to_dict,
)

ALL = [
    Int8WeightOnly(),
    Int4WeightOnly(group_size=64, symmetric=True),
    Int8Dynamic(),
    FakeQuant(bits=4, group_size=None),
    FakeQuant(bits=8, group_size=None, symmetric=True),
    SemiStructured24(values=SparseValues.INT4, group_size=32),
    Unstructured(sparsity=0.3),
]


@pytest.mark.parametrize("config", ALL, ids=repr)
def test_json_round_trip(config) -> None:
    assert config_from_dict(json.loads(json.dumps(config_to_dict(config)))) == config


def test_every_config_is_registered_and_frozen() -> None:
    assert {type(c).__name__ for c in ALL} <= set(CONFIGS)
    with pytest.raises(AttributeError):
        Int4WeightOnly().group_size = 32  # type: ignore[misc]


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Int4WeightOnly(group_size=0), ValueError, "positive int"),
        (lambda: Int4WeightOnly(group_size=33), ValueError, "even"),
        (lambda: Int4WeightOnly(group_size=True), ValueError, "positive int"),
        (lambda: Int4WeightOnly(symmetric="yes"), TypeError, "bool"),
        (lambda: FakeQuant(bits=3), ValueError, "bits must be 4 or 8"),
        (lambda: FakeQuant(bits=8), ValueError, "symmetric=True"),
        (lambda: FakeQuant(bits=8, symmetric=True, group_size=128), ValueError, "per channel"),
        (lambda: SemiStructured24(values="int8"), TypeError, "SparseValues"),
        (lambda: Unstructured(sparsity=1.0), ValueError, r"\[0, 1\)"),
        (lambda: Unstructured(sparsity="0.5"), TypeError, "float"),
        (lambda: config_from_dict({"type": "Int3"}), ValueError, "unknown config type"),
        (lambda: config_from_dict({"type": "Int8WeightOnly", "bits": 8}), ValueError, "unknown"),
    ],
)
def test_invalid_configs_raise(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make()
