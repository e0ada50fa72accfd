"""``save(model, dir)`` and ``load(dir)``: safetensors weights plus a JSON manifest.

Every tensor of the model is saved (compressed layers' buffers and all float
weights, embeddings included); tied tensors are stored once and re-tied on load.
The weights file is named after its content hash and the manifest is renamed into
place last, so a crash at any moment leaves either the old or the new checkpoint,
never a manifest pointing at a half-written file.

Example:
    >>> import tempfile
    >>> from squeezeprompt.nn import Int8WeightOnly, quantize_
    >>> model = quantize_(torch.nn.Sequential(torch.nn.Linear(32, 8)), Int8WeightOnly())
    >>> d = save(model, tempfile.mkdtemp())
    >>> back = load(d, model=lambda: torch.nn.Sequential(torch.nn.Linear(32, 8)))
    >>> torch.equal(back[0].qweight, model[0].qweight)
    True
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from squeezeprompt.checkpoint.files import write_atomic
from squeezeprompt.checkpoint.manifest import (
    MANIFEST_NAME,
    CheckpointError,
    Manifest,
    check_file_name,
)
from squeezeprompt.nn.base import LAYERS, WRAPPERS, QuantizedLinearBase
from squeezeprompt.nn.config import TransformConfig, config_from_dict, config_to_dict

ModelFactory = Callable[[], nn.Module]


def _base_info(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict") and hasattr(model, "_from_config"):
        return {
            "kind": "transformers",
            "class": type(model).__name__,
            "config": config.to_dict(),
        }
    cls = type(model)
    return {"kind": "module", "class": f"{cls.__module__}.{cls.__qualname__}"}


def _layer_info(layer: QuantizedLinearBase) -> dict[str, Any]:
    config = getattr(layer, "config", None)
    return {
        "class": type(layer).__name__,
        "init": layer.init_kwargs(),
        "config": config_to_dict(config) if isinstance(config, TransformConfig) else None,
    }


def _split_aliases(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Keeps one copy of tensors that share memory (tied weights); the rest become aliases."""
    unique: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in state.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.shape, t.stride(), t.dtype)
        if t.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        unique[name] = t.detach().contiguous().cpu()
    return unique, aliases


def save(model: nn.Module, directory: str | os.PathLike[str]) -> Path:
    """Writes ``model`` to ``directory`` (created if needed) and returns its path.

    Example:
        >>> import tempfile
        >>> p = save(torch.nn.Linear(4, 2), tempfile.mkdtemp())
        >>> sorted(f.suffix for f in p.iterdir())
        ['.json', '.safetensors']
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state, aliases = _split_aliases(model.state_dict())
    data = safetensors_save(state, metadata={"format": "squeezeprompt.checkpoint"})
    digest = hashlib.sha256(data).hexdigest()
    weights = f"weights-{digest[:16]}.safetensors"
    write_atomic(out / weights, data)
    layers = {
        name: _layer_info(mod)
        for name, mod in model.named_modules()
        if name and isinstance(mod, QuantizedLinearBase)
    }
    wrappers = {
        name: {"class": type(mod).__name__, "init": mod.init_kwargs()}
        for name, mod in model.named_modules()
        if name and WRAPPERS.get(type(mod).__name__) is type(mod)
    }
    manifest = Manifest(
        base=_base_info(model),
        layers=layers,
        wrappers=wrappers,
        aliases=aliases,
        weights=weights,
        files={weights: {"sha256": digest, "bytes": len(data)}},
    )
    write_atomic(out / MANIFEST_NAME, manifest.to_json().encode())
    # Only now is the old weights file unreferenced; a crash before this line leaves a
    # stale file, never a broken checkpoint.
    for old in out.glob("weights-*.safetensors"):
        if old.name != weights:
            old.unlink(missing_ok=True)
    return out


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """Parses and validates ``directory/manifest.json`` (no weights are read).

    Example:
        >>> import tempfile
        >>> read_manifest(save(torch.nn.Linear(4, 2), tempfile.mkdtemp())).base["kind"]
        'module'
    """
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint manifest at {path}")
    return Manifest.from_json(path.read_text())


def _verified_bytes(directory: Path, manifest: Manifest) -> bytes:
    name = check_file_name(manifest.weights)
    path = directory / name
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {name} named by the manifest is missing")
    want = manifest.files[name]
    size = path.stat().st_size
    if size != want["bytes"]:
        what = "truncated" if size < want["bytes"] else "longer than recorded"
        raise CheckpointError(
            f"checkpoint file {name} is {what}: {size} bytes, manifest says {want['bytes']}"
        )
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != want["sha256"]:
        raise CheckpointError(
            f"checkpoint file {name} was modified: sha256 {got[:16]}..., "
            f"manifest says {want['sha256'][:16]}..."
        )
    return data


def _build_base(manifest: Manifest, model: nn.Module | ModelFactory | None) -> nn.Module:
    if isinstance(model, nn.Module):
        return model
    if model is not None:
        if not callable(model):
            raise TypeError(f"load: model must be an nn.Module or a factory, got {model!r}")
        built = model()
        if not isinstance(built, nn.Module):
            raise TypeError(f"load: the model factory returned {type(built).__name__}")
        return built
    base = manifest.base
    if base["kind"] != "transformers":
        raise CheckpointError(
            f"checkpoint of a plain module ({base.get('class')}); pass load(dir, model=...) "
            f"with a factory that builds the uncompressed model"
        )
    import transformers

    cls = getattr(transformers, str(base.get("class")), None)
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise CheckpointError(f"unknown transformers model class {base.get('class')!r}")
    cfg = dict(base["config"])
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    return cls(config)


def _recorded_class(kind: str, name: str, class_name: str, registry: dict[str, Any]) -> Any:
    """The registered class a manifest entry names (``kind``: "layer" or "wrapper")."""
    cls = registry.get(class_name)
    if cls is None:
        raise CheckpointError(
            f"{kind} {name}: unknown {kind} class {class_name!r}; "
            f"known: {', '.join(sorted(registry))}"
        )
    return cls


def _existing_submodule(net: nn.Module, kind: str, name: str) -> nn.Module:
    try:
        return net.get_submodule(name)
    except AttributeError:
        raise CheckpointError(f"{kind} {name}: the base model has no such module") from None


def _wrap(net: nn.Module, wrappers: dict[str, dict[str, Any]]) -> None:
    """Puts each recorded wrapper around the module at its name, outermost first, so the
    layers recorded below it (``name.base``) can then be swapped in."""
    for name in sorted(wrappers, key=lambda n: n.count(".")):
        info = wrappers[name]
        cls = _recorded_class("wrapper", name, info["class"], WRAPPERS)
        inner = _existing_submodule(net, "wrapper", name)
        try:
            net.set_submodule(name, cls.from_init(inner, info["init"]))  # type: ignore[attr-defined]
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"wrapper {name}: cannot rebuild {info['class']}: {e}") from None


def _retie(model: nn.Module, aliases: dict[str, str]) -> None:
    for alias, source in aliases.items():
        mod_name, _, attr = alias.rpartition(".")
        src_mod, _, src_attr = source.rpartition(".")
        src = getattr(model.get_submodule(src_mod), src_attr)
        setattr(model.get_submodule(mod_name), attr, src)


def load(
    directory: str | os.PathLike[str],
    model: nn.Module | ModelFactory | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Rebuilds a model saved by :func:`save`, verifying every file first.

    ``model`` is the uncompressed model (or a factory making it) for checkpoints of plain
    modules; transformers models are rebuilt from the recorded config when it is None.
    Raises :class:`CheckpointError` for a truncated or modified file or an unknown
    format version, ``FileNotFoundError`` for a missing file.

    Example:
        >>> import tempfile
        >>> d = save(torch.nn.Linear(4, 2), tempfile.mkdtemp())
        >>> load(d, model=lambda: torch.nn.Linear(4, 2)).weight.shape
        torch.Size([2, 4])
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    data = _verified_bytes(directory, manifest)
    state = safetensors_load(data)
    net = _build_base(manifest, model)
    _wrap(net, manifest.wrappers)
    for name, info in manifest.layers.items():
        cls = _recorded_class("layer", name, info["class"], LAYERS)
        _existing_submodule(net, "layer", name)
        layer = cls(**info["init"])
        if info.get("config") is not None:
            layer.config = config_from_dict(info["config"])
        net.set_submodule(name, layer)
    for alias in manifest.aliases:
        state.pop(alias, None)
    expected = set(net.state_dict()) - set(manifest.aliases)
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise CheckpointError(
            f"checkpoint does not match the rebuilt model: missing {missing[:5]}, "
            f"unexpected {extra[:5]}"
        )
    try:
        net.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as e:  # shape mismatches between the checkpoint and the base model
        raise CheckpointError(f"checkpoint does not match the rebuilt model: {e}") from None
    _retie(net, manifest.aliases)
    return net.to(device).eval()
