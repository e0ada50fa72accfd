"""Loading the packaged models into ``transformers``, with an fp32 cache.

Example:
    >>> model, tokenizer = load("smollm2-135m-instruct")  # doctest: +SKIP
    >>> model.config.model_type  # doctest: +SKIP
    'llama'
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any

import torch

from squeezeprompt.models.cache import cache_dir, write_dir_atomically
from squeezeprompt.models.registry import ModelSpec, get_spec

# Bump when the cached conversion changes, so stale entries are not reused.
CACHE_FORMAT = 1


def gguf_file(name: str) -> Path:
    """Path of the GGUF file of packaged model ``name``, found without importing its package.

    Example:
        >>> gguf_file("smollm2-135m-instruct").suffix
        '.gguf'
    """
    spec = get_spec(name)
    try:
        dist = importlib.metadata.distribution(spec.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"model {name!r} needs the package {spec.distribution!r}, which is not installed; "
            f"install it with: {spec.install_command}"
        ) from None
    path = Path(str(dist.locate_file(spec.gguf_path)))
    if not path.is_file():
        raise FileNotFoundError(
            f"model {name!r}: {spec.distribution} {dist.version} is installed but has no "
            f"{spec.gguf_path}; reinstall it with: {spec.install_command}"
        )
    return path


def cached_path(name: str) -> Path:
    """Cache directory of the converted fp32 model ``name`` (it may not exist yet).

    Example:
        >>> cached_path("smollm2-135m-instruct").name
        'smollm2-135m-instruct-fp32-v1'
    """
    get_spec(name)
    return cache_dir() / "models" / f"{name}-fp32-v{CACHE_FORMAT}"


def _convert(spec: ModelSpec, gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # The GGUF file holds everything; never reach for the Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kwargs: dict[str, Any] = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    # Loading dequantized every GGUF block into plain fp32 nn.Linear/Embedding weights, but
    # the GGUF quantizer stays attached and makes save_pretrained refuse; drop it so the
    # cache is an ordinary fp32 checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def load(name: str, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """Loads packaged model ``name`` as ``(model, tokenizer)`` in eval mode.

    The first call converts the GGUF file (20-60 s) and caches the fp32 result
    (see :mod:`squeezeprompt.models.cache`); later calls read the cache.

    Example:
        >>> model, tok = load("smollm2-135m-instruct")  # doctest: +SKIP
        >>> tok("Hello")["input_ids"][:1]  # doctest: +SKIP
        [19556]
    """
    spec = get_spec(name)
    target = cached_path(name)
    if not (target / "config.json").is_file():
        gguf = gguf_file(name)
        write_dir_atomically(target, lambda out: _convert(spec, gguf, out))
    return load_cached(target, dtype=dtype)


def load_cached(path: Path, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """Loads a ``save_pretrained`` directory (model + tokenizer) without network access.

    Example:
        >>> model, tok = load_cached(cached_path("smollm2-135m-instruct"))  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.eval()
    return model, tokenizer
