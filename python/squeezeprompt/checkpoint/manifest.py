"""The checkpoint manifest: what was saved, how to rebuild it, and how to verify it.

``manifest.json`` (written last, atomically) holds::

    {"format": "squeezeprompt.checkpoint", "format_version": 1,
     "base": {"kind": "transformers", "class": "LlamaForCausalLM", "config": {...}}
             or {"kind": "module", "class": "pkg.Module"},   # rebuilt by a factory
     "layers": {"model.layers.0.mlp.up_proj":
                {"class": "Int4WeightOnlyLinear", "init": {...}, "config": {...}}},
     "wrappers": {"model.layers.0.mlp.up_proj":          # e.g. a LoRA adapter around
                  {"class": "LoRALinear", "init": {"rank": 8, ...}}},   # ...up_proj.base
     "aliases": {"lm_head.weight": "model.embed_tokens.weight"},   # tied tensors
     "weights": "weights-<sha256 prefix>.safetensors",
     "files": {"weights-....safetensors": {"sha256": "...", "bytes": 123}}}

Only safetensors and JSON are ever read, so loading never runs pickle.

Example:
    >>> m = Manifest.from_json(Manifest(base={"kind": "module", "class": "M"}).to_json())
    >>> m.format_version
    1
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = "squeezeprompt.checkpoint"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# A weights file is a plain name in the checkpoint directory: no paths, no pickle formats.
_WEIGHTS_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.safetensors$")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted or understood (the message says why).

    Example:
        >>> issubclass(CheckpointError, ValueError)
        True
    """


def check_file_name(name: object) -> str:
    """Accepts only plain ``*.safetensors`` names; pickle formats get their own message.

    Example:
        >>> check_file_name("weights-ab.safetensors")
        'weights-ab.safetensors'
    """
    if not isinstance(name, str):
        raise CheckpointError(f"manifest: file names must be strings, got {name!r}")
    if name.lower().endswith(PICKLE_SUFFIXES):
        raise CheckpointError(
            f"manifest names {name!r}, a pickle-based format; squeezeprompt only loads "
            f"safetensors, which cannot run code"
        )
    if not _WEIGHTS_NAME.match(name) or name.startswith("."):
        raise CheckpointError(
            f"manifest: expected a plain '*.safetensors' file name in the checkpoint "
            f"directory, got {name!r}"
        )
    return name


@dataclass(frozen=True)
class Manifest:
    """Parsed, validated ``manifest.json``.

    Example:
        >>> Manifest(base={"kind": "module", "class": "M"}).format
        'squeezeprompt.checkpoint'
    """

    base: dict[str, Any]
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Absent from checkpoints written before wrappers existed: the default keeps them readable.
    wrappers: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    weights: str = ""
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.format != FORMAT:
            raise CheckpointError(f"manifest: format must be {FORMAT!r}, got {self.format!r}")
        if self.format_version != FORMAT_VERSION:
            raise CheckpointError(
                f"manifest: unknown format_version {self.format_version!r}; this squeezeprompt "
                f"reads version {FORMAT_VERSION}"
            )
        if not isinstance(self.base, dict) or self.base.get("kind") not in (
            "transformers",
            "module",
        ):
            raise CheckpointError(
                f"manifest: base.kind must be 'transformers' or 'module', got {self.base!r:.200}"
            )
        for name, info in self.files.items():
            check_file_name(name)
            ok = (
                isinstance(info, dict)
                and isinstance(info.get("sha256"), str)
                and isinstance(info.get("bytes"), int)
            )
            if not ok:
                raise CheckpointError(
                    f"manifest: files[{name!r}] needs 'sha256' (str) and 'bytes' (int), "
                    f"got {info!r}"
                )
        if self.weights and self.weights not in self.files:
            raise CheckpointError(f"manifest: weights file {self.weights!r} is not in 'files'")
        for what, entries in (("layers", self.layers), ("wrappers", self.wrappers)):
            if not isinstance(entries, dict):
                raise CheckpointError(f"manifest: {what} must be an object, got {entries!r:.200}")
            for name, info in entries.items():
                if not isinstance(info, dict) or not {"class", "init"} <= set(info):
                    raise CheckpointError(
                        f"manifest: {what}[{name!r}] needs 'class' and 'init', got {info!r}"
                    )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"manifest.json is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"manifest.json must hold an object, got {type(data).__name__}")
        # Check the version before anything else, so a newer layout gets the right message.
        if data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"manifest: unknown format_version {data.get('format_version')!r}; this "
                f"squeezeprompt reads version {FORMAT_VERSION}"
            )
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown or "base" not in data:
            raise CheckpointError(
                f"manifest: unexpected fields {sorted(unknown)} or missing 'base'; "
                f"expected {sorted(known)}"
            )
        return cls(**data)
