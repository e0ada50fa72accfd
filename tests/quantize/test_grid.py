import pytest
import torch

from squeezeprompt.formats import Int4Weight, Int8Weight
from squeezeprompt.quantize.grid import Bits, WeightGrid
from squeezeprompt.quantize.rtn import quantize_int4, quantize_int8

GRIDS_AND_RTN = [
    (WeightGrid(Bits.INT4, 32), lambda w: quantize_int4(w, 32)),
    (WeightGrid(Bits.INT4, 32, symmetric=True), lambda w: quantize_int4(w, 32, symmetric=True)),
    (WeightGrid(Bits.INT4, None), lambda w: quantize_int4(w, w.shape[1])),
    (WeightGrid(Bits.INT8, None, symmetric=True), quantize_int8),
]


@pytest.mark.parametrize(("grid", "rtn"), GRIDS_AND_RTN)
def test_round_weight_and_pack_match_rtn(grid, rtn):
    w = torch.randn(16, 64)
    w[3] = 0.0  # an all-zero row must stay finite
    expected = rtn(w)
    packed = grid.pack(grid.codes_all(w), *grid.fit_all(w))
    assert type(packed) is type(expected)
    assert torch.equal(packed.dequantize(), expected.dequantize())
    assert torch.equal(grid.round_weight(w), expected.dequantize())


def test_pack_types():
    w = torch.randn(4, 16)
    g4, g8 = WeightGrid(Bits.INT4, 8), WeightGrid(Bits.INT8, None, symmetric=True)
    assert isinstance(g4.pack(g4.codes_all(w), *g4.fit_all(w)), Int4Weight)
    assert isinstance(g8.pack(g8.codes_all(w), *g8.fit_all(w)), Int8Weight)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bits": 4}, "Bits member"),
        ({"group_size": 0}, "positive int"),
        ({"bits": Bits.INT8, "group_size": 32, "symmetric": True}, "per output channel"),
        ({"bits": Bits.INT8, "group_size": None, "symmetric": False}, "per output channel"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        WeightGrid(**kwargs)


def test_group_must_divide():
    with pytest.raises(ValueError, match="in_features=48, group_size=32"):
        WeightGrid(Bits.INT4, 32).fit_all(torch.randn(2, 48))
