"""Per-layer loss of int4 round-to-nearest on the packaged SmolLM2-135M-Instruct (slow)."""

from __future__ import annotations

import copy
import math

import pytest

import squeezeprompt as sp
from squeezeprompt.analysis import layer_losses, worst

pytestmark = pytest.mark.slow(bounded=True)


def test_int4_loses_most_in_the_value_projections(smollm2) -> None:
    from squeezeprompt.data import load_wikipedia
    from squeezeprompt.evaluate import token_windows

    dense, tok = smollm2
    compressed = sp.quantize_(copy.deepcopy(dense), sp.Int4WeightOnly(group_size=64))
    windows = token_windows(tok, load_wikipedia().calibration, 128, 256)
    rows = layer_losses(compressed, dense, [windows[i : i + 1] for i in range(2)])
    assert len(rows) == 30 * 7 + 1
    head = rows[-1]
    assert head.name == "lm_head" and math.isinf(head.output_sqnr_db)  # left dense
    # ~20 dB is what 4 bits with a per-64 scale and zero give a bell-shaped weight.
    assert all(17 < r.weight_sqnr_db < 24 for r in rows[:-1])
    # Equal weight SQNR everywhere, but v_proj's outputs lose most (measured on 4x256
    # tokens too: the 10 worst layers are all v_proj, 12.7-15.4 dB against a 21.4 dB median).
    assert [r.kind for r in worst(rows, 5)] == ["v_proj"] * 5
