"""W4A8 through the quantize stage: ``bits: 4`` + ``dynamic_activations`` builds
``Int4DynamicLinear`` layers on the same int4 grid as the weight-only ones, for every
int4 method, and the model then differs from the weight-only one only by the
per-token rounding of the activations."""

from __future__ import annotations

import copy

import pytest
import torch
from outliers import heldout_ids, logit_error, logits, outlier_llama, quantize

from squeezeprompt.nn.dynamic import Int4DynamicLinear
from squeezeprompt.nn.weight_only import Int4WeightOnlyLinear
from squeezeprompt.pipeline.stage_configs import QuantMethod
from squeezeprompt.pipeline.targets import linear_targets


@pytest.mark.parametrize("method", [QuantMethod.RTN, QuantMethod.GPTQ, QuantMethod.AWQ])
def test_w4a8_layers_share_the_weight_only_grid(method: QuantMethod) -> None:
    dense = outlier_llama()
    ids = heldout_ids()
    reference = logits(dense, ids)
    weight_only, w4a8 = copy.deepcopy(dense), copy.deepcopy(dense)
    quantize(weight_only, method=method, group_size=32)
    summary = quantize(w4a8, method=method, group_size=32, dynamic_activations=True)
    assert summary["layers"] == 14
    wo = linear_targets(weight_only, ())
    dyn = linear_targets(w4a8, ())
    assert all(type(m) is Int4DynamicLinear for n, m in dyn.items() if n != "lm_head")
    assert all(type(m) is Int4WeightOnlyLinear for n, m in wo.items() if n != "lm_head")
    # Same seeds, same grid: identical codes, scales and zeros wherever the layer saw the
    # same inputs: everywhere for RTN; in the first block for the calibrated methods,
    # whose later blocks calibrate on the outputs of the already quantized ones (and
    # W4A8 blocks output something slightly different).
    same = [n for n in dyn if n != "lm_head"]
    if method is not QuantMethod.RTN:
        same = [n for n in same if n.startswith("model.layers.0.")]
    assert len(same) >= 7
    for name in same:
        assert torch.equal(dyn[name].qweight, wo[name].qweight), name
        assert torch.equal(dyn[name].scales, wo[name].scales), name
        assert torch.equal(dyn[name].zeros, wo[name].zeros), name
    # The activation rounding adds error, but of a smaller order than the weights' own.
    extra = logit_error(w4a8, logits(weight_only, ids), ids)
    assert 0 < extra < 0.5 * logit_error(weight_only, reference, ids)
