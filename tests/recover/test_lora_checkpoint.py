"""LoRA adapters in checkpoints: saved beside the packed layers they wrap, rebuilt on load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_llama import random_llama

from squeezeprompt import checkpoint
from squeezeprompt.checkpoint import CheckpointError, Manifest
from squeezeprompt.nn import Int4WeightOnly, Int4WeightOnlyLinear, QuantizedLinearBase, quantize_
from squeezeprompt.recover import LoRAConfig, LoRALinear, apply_lora_


def _compressed(_name: str, module: torch.nn.Module) -> bool:
    return isinstance(module, QuantizedLinearBase)


def _lora_llama() -> torch.nn.Module:
    model = quantize_(random_llama(vocab_size=96, seed=0), Int4WeightOnly(group_size=32))
    apply_lora_(model, LoRAConfig(rank=4, alpha=8.0), include=_compressed)
    with torch.no_grad():  # as if trained: B is no longer zero
        for name, p in model.named_parameters():
            if name.endswith("lora_b"):
                p.normal_(std=0.05)
    return model


def test_round_trip_keeps_adapters_separate_and_outputs_equal(tmp_path: Path) -> None:
    model = _lora_llama()
    checkpoint.save(model, tmp_path)
    manifest = checkpoint.read_manifest(tmp_path)
    assert len(manifest.wrappers) == 14
    name = "model.layers.0.mlp.up_proj"
    assert manifest.wrappers[name] == {
        "class": "LoRALinear",
        "init": {"rank": 4, "alpha": 8.0, "dropout": 0.0},
    }
    assert manifest.layers[f"{name}.base"]["class"] == "Int4WeightOnlyLinear"
    back = checkpoint.load(tmp_path, model=lambda: random_llama(vocab_size=96, seed=1))
    layer = back.get_submodule(name)
    assert isinstance(layer, LoRALinear) and type(layer.base) is Int4WeightOnlyLinear
    ids = torch.randint(0, 96, (2, 12))
    with torch.no_grad():
        assert torch.equal(back(input_ids=ids).logits, model(input_ids=ids).logits)


def test_manifest_without_wrappers_still_loads(tmp_path: Path) -> None:
    """Checkpoints written before wrappers existed have no "wrappers" key."""
    model = quantize_(random_llama(vocab_size=96, seed=0), Int4WeightOnly(group_size=32))
    checkpoint.save(model, tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data.pop("wrappers") == {}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    back = checkpoint.load(tmp_path, model=lambda: random_llama(vocab_size=96, seed=1))
    assert type(back.model.layers[0].mlp.up_proj) is Int4WeightOnlyLinear


def _edit_manifest(path: Path, edit) -> None:  # noqa: ANN001
    data = json.loads((path / "manifest.json").read_text())
    edit(data)
    (path / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["wrappers"]["model.layers.0.mlp.up_proj"].update({"class": "Nope"}),
            "unknown wrapper class 'Nope'",
        ),
        (
            lambda d: d["wrappers"].update({"model.nope": d["wrappers"].popitem()[1]}),
            "wrapper model.nope: the base model has no such module",
        ),
        (
            lambda d: d["wrappers"]["model.layers.0.mlp.up_proj"]["init"].update({"rank": 0}),
            "wrapper model.layers.0.mlp.up_proj: cannot rebuild LoRALinear",
        ),
        (
            lambda d: d["wrappers"].update({"x": {"class": "LoRALinear"}}),
            "needs 'class' and 'init'",
        ),
    ],
)
def test_bad_wrapper_entries_are_refused(edit, message: str, tmp_path: Path) -> None:  # noqa: ANN001
    checkpoint.save(_lora_llama(), tmp_path)
    _edit_manifest(tmp_path, edit)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(tmp_path, model=lambda: random_llama(vocab_size=96, seed=1))


def test_manifest_rejects_wrappers_that_are_not_an_object() -> None:
    with pytest.raises(CheckpointError, match="wrappers must be an object"):
        Manifest(base={"kind": "module", "class": "M"}, wrappers=[])  # type: ignore[arg-type]
