"""AWQ's fast rounding (groups as contiguous rows) gives round-to-nearest's exact numbers."""

import pytest
import torch

from squeezeprompt.quantize.awq import _round_rows
from squeezeprompt.quantize.grid import Bits, WeightGrid

GRIDS = [
    WeightGrid(Bits.INT4, 64),
    WeightGrid(Bits.INT4, 64, symmetric=True),
    WeightGrid(Bits.INT4, 3),  # odd width: rounded the ordinary way
    WeightGrid(Bits.INT4, None),
    WeightGrid(Bits.INT8, None, symmetric=True),
]


@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_round_rows_equals_round_weight(grid: WeightGrid) -> None:
    w = torch.randn(24, 192) * torch.exp(torch.randn(192))
    assert torch.equal(_round_rows(grid, w), grid.round_weight(w))
