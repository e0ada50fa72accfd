"""Weight quantization algorithms (pure tensor math; orchestration lives in the pipeline)."""

from squeezeprompt.quantize.awq import AWQConfig, AWQResult, awq_quantize
from squeezeprompt.quantize.fold import (
    fold_into_linear_outputs,
    fold_into_norm,
    scale_weight_inputs,
)
from squeezeprompt.quantize.gptq import GPTQConfig, gptq_quantize
from squeezeprompt.quantize.grid import Bits, WeightGrid
from squeezeprompt.quantize.rtn import quantize_int4, quantize_int8
from squeezeprompt.quantize.smoothquant import SmoothQuantConfig, smoothquant_scales
from squeezeprompt.quantize.stats import InputStats

__all__ = [
    "AWQConfig",
    "AWQResult",
    "Bits",
    "GPTQConfig",
    "InputStats",
    "SmoothQuantConfig",
    "WeightGrid",
    "awq_quantize",
    "fold_into_linear_outputs",
    "fold_into_norm",
    "gptq_quantize",
    "quantize_int4",
    "quantize_int8",
    "scale_weight_inputs",
    "smoothquant_scales",
]
