"""Saving and loading compressed models: safetensors + a verified JSON manifest.

Example:
    >>> import tempfile, torch
    >>> from squeezeprompt import checkpoint
    >>> d = checkpoint.save(torch.nn.Linear(4, 2), tempfile.mkdtemp())
    >>> checkpoint.read_manifest(d).format_version
    1
"""

from squeezeprompt.checkpoint.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    CheckpointError,
    Manifest,
)
from squeezeprompt.checkpoint.serialize import load, read_manifest, save

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "CheckpointError",
    "Manifest",
    "load",
    "read_manifest",
    "save",
]
