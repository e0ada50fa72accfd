"""The on-disk form shared by learned prompts: ``<name>.safetensors`` + ``<name>.json``.

The JSON header carries a format version and whatever the prompt kind records (shape,
placement, how it was made); each kind checks its own tensors against it.

Example:
    >>> import tempfile, torch
    >>> d = write_prompt_files(tempfile.mkdtemp(), "p", {"t": torch.ones(2)}, {"n": 2}, 1)
    >>> tensors, header = read_prompt_files(d, "p", 1, "Example.load")
    >>> tensors["t"].tolist(), header["n"]
    ([1.0, 1.0], 2)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor


def write_prompt_files(
    directory: str | Path,
    name: str,
    tensors: dict[str, Tensor],
    header: dict[str, Any],
    format_version: int,
) -> Path:
    """Write ``tensors`` (detached, on the CPU) and ``header`` (with ``format_version``
    first) as ``<name>.safetensors`` and ``<name>.json`` in ``directory``; returns it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cpu = {k: t.detach().cpu().contiguous() for k, t in tensors.items()}
    save_file(cpu, str(directory / f"{name}.safetensors"))
    full = {"format_version": format_version, **header}
    (directory / f"{name}.json").write_text(json.dumps(full, indent=2) + "\n")
    return directory


def read_prompt_files(
    directory: str | Path, name: str, format_version: int, who: str
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors and header written by :func:`write_prompt_files`; raises (naming
    ``who``) unless the header has ``format_version``."""
    directory = Path(directory)
    json_path = directory / f"{name}.json"
    header = json.loads(json_path.read_text())
    if header.get("format_version") != format_version:
        raise ValueError(
            f"{who}: {json_path} has format_version {header.get('format_version')!r}, "
            f"expected {format_version}"
        )
    return load_file(str(directory / f"{name}.safetensors")), header
