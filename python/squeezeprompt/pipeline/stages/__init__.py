"""Stage adapters; importing this package registers every one of them.

Example:
    >>> from squeezeprompt.pipeline.stage_configs import STAGE_CONFIGS
    >>> all(cls in ADAPTERS for cls in STAGE_CONFIGS.values())
    True
"""

from squeezeprompt.pipeline.stages import calibrate, prompt, prune, quantize, recover  # noqa: F401
from squeezeprompt.pipeline.stages.registry import ADAPTERS, adapter_for, register_stage

__all__ = ["ADAPTERS", "adapter_for", "register_stage"]
