"""Loading the packaged models (GGUF inside pip packages) into ``transformers``.

Example:
    >>> from squeezeprompt import models
    >>> "smollm2-135m-instruct" in models.MODELS
    True
"""

from squeezeprompt.models.cache import cache_dir
from squeezeprompt.models.loader import cached_path, gguf_file, load, load_cached
from squeezeprompt.models.registry import MODELS, ModelSpec, get_spec, register_model

__all__ = [
    "MODELS",
    "ModelSpec",
    "cache_dir",
    "cached_path",
    "get_spec",
    "gguf_file",
    "load",
    "load_cached",
    "register_model",
]
