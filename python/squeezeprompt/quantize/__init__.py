"""Weight quantization algorithms (pure tensor math; orchestration lives in the pipeline)."""

from squeezeprompt.quantize.rtn import quantize_int4, quantize_int8

__all__ = ["quantize_int4", "quantize_int8"]
