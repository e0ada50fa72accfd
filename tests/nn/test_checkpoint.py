"""save/load round trips and every way a checkpoint can be bad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_llama import random_llama
from torch import nn

from squeezeprompt import checkpoint
from squeezeprompt.checkpoint import MANIFEST_NAME, CheckpointError
from squeezeprompt.checkpoint import serialize as serialize_mod
from squeezeprompt.nn import (
    Int4WeightOnly,
    Int8WeightOnly,
    LinearFilter,
    SemiStructured24,
    SparseValues,
    Unstructured,
    quantize_,
    sparsify_,
)


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 32, dim: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.up = nn.Linear(dim, 2 * dim)
        self.down = nn.Linear(2 * dim, dim)
        self.gate = nn.Linear(dim, dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        h = h + self.down(torch.relu(self.up(h))) + self.gate(h)
        return self.lm_head(h)


def _compressed() -> TinyLM:
    model = TinyLM()
    quantize_(model, Int4WeightOnly(group_size=32), LinearFilter(include=("up",)))
    sparsify_(model, SemiStructured24(values=SparseValues.INT8), LinearFilter(include=("down",)))
    sparsify_(model, Unstructured(sparsity=0.5), LinearFilter(include=("gate",)))
    return model


def _saved(tmp_path: Path) -> Path:
    return checkpoint.save(_compressed(), tmp_path / "ckpt")


def test_round_trip_rebuilds_the_same_modules(tmp_path: Path) -> None:
    model = _compressed()
    d = checkpoint.save(model, tmp_path / "ckpt")
    back = checkpoint.load(d, model=TinyLM)
    for name in ("up", "down", "gate", "lm_head", "embed"):
        a, b = model.get_submodule(name), back.get_submodule(name)
        assert type(a) is type(b) and getattr(a, "config", None) == getattr(b, "config", None)
    assert back.lm_head.weight is back.embed.weight  # the tie survives
    ids = torch.randint(0, 32, (2, 7))
    assert torch.equal(back(ids), model(ids))
    manifest = json.loads((d / MANIFEST_NAME).read_text())
    assert manifest["aliases"] == {"lm_head.weight": "embed.weight"}
    assert manifest["layers"]["up"]["config"] == {
        "type": "Int4WeightOnly",
        "group_size": 32,
        "symmetric": False,
    }


def test_round_trip_of_a_transformers_model_needs_no_factory(tmp_path: Path) -> None:
    model = random_llama(vocab_size=64, tie_word_embeddings=True)
    quantize_(model, Int8WeightOnly())
    back = checkpoint.load(checkpoint.save(model, tmp_path / "llama"))
    assert type(back) is type(model)
    assert back.lm_head.weight is back.model.embed_tokens.weight
    ids = torch.randint(0, 64, (1, 9))
    with torch.no_grad():
        assert torch.equal(back(ids).logits, model(ids).logits)
    # bf16: every saved tensor comes back bit-exact in its dtype. (Not the logits:
    # model.to(bf16) also rounds the rotary inv_freq buffer, which is rebuilt in fp32.)
    model.to(torch.bfloat16)
    back = checkpoint.load(checkpoint.save(model, tmp_path / "llama_bf16"))
    assert back.dtype == torch.bfloat16
    want, got = model.state_dict(), back.state_dict()
    assert want.keys() == got.keys()
    assert all(got[k].dtype == v.dtype and torch.equal(got[k], v) for k, v in want.items())


def test_overwrite_keeps_one_weights_file(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    checkpoint.save(TinyLM(), d)
    assert len(list(d.glob("*.safetensors"))) == 1
    assert checkpoint.read_manifest(d).layers == {}


def test_a_crash_before_the_manifest_leaves_the_old_checkpoint(tmp_path, monkeypatch) -> None:
    model = _compressed()
    d = checkpoint.save(model, tmp_path / "ckpt")
    real = serialize_mod.write_atomic

    def crash_on_manifest(target: Path, data: bytes) -> str:
        if Path(target).name == MANIFEST_NAME:
            raise KeyboardInterrupt("simulated crash")
        return real(target, data)

    monkeypatch.setattr(serialize_mod, "write_atomic", crash_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(TinyLM(), d)
    monkeypatch.undo()
    back = checkpoint.load(d, model=TinyLM)
    ids = torch.randint(0, 32, (1, 4))
    assert torch.equal(back(ids), model(ids))


def _weights(d: Path) -> Path:
    return d / checkpoint.read_manifest(d).weights


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    w = _weights(d)
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        checkpoint.load(d, model=TinyLM)


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    w = _weights(d)
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="modified: sha256"):
        checkpoint.load(d, model=TinyLM)


@pytest.mark.parametrize("offset", [0, 9, 4000, -7])  # header length, header, data, tail
def test_a_single_flipped_bit_anywhere_is_refused(tmp_path: Path, offset: int) -> None:
    d = _saved(tmp_path)
    w = _weights(d)
    data = bytearray(w.read_bytes())
    data[offset] ^= 0x04
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="modified: sha256"):
        checkpoint.load(d, model=TinyLM)


def test_renamed_or_swapped_weights_files_are_refused(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    w = _weights(d)
    w.rename(w.with_name("weights.safetensors"))  # renamed: the manifest's file is gone
    with pytest.raises(FileNotFoundError, match="missing"):
        checkpoint.load(d, model=TinyLM)
    # Another checkpoint's weights renamed into place: same name, other content.
    torch.manual_seed(1)
    other = checkpoint.save(_compressed(), tmp_path / "other")
    _weights(other).rename(w)
    with pytest.raises(CheckpointError, match="modified: sha256"):
        checkpoint.load(d, model=TinyLM)


def test_missing_files_are_refused(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    _weights(d).unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        checkpoint.load(d, model=TinyLM)
    (d / MANIFEST_NAME).unlink()
    with pytest.raises(FileNotFoundError, match="manifest"):
        checkpoint.load(d, model=TinyLM)


def _edit_manifest(d: Path, edit) -> None:
    data = json.loads((d / MANIFEST_NAME).read_text())
    edit(data)
    (d / MANIFEST_NAME).write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(format_version=2), "unknown format_version 2"),
        (lambda m: m.pop("format_version"), "unknown format_version None"),
        (lambda m: m.update(format="other"), "format must be"),
        (lambda m: m.update(weights="model.bin", files={"model.bin": {}}), "pickle"),
        (
            lambda m: m.update(weights="../x.safetensors", files={"../x.safetensors": {}}),
            "plain",
        ),
        (lambda m: m["layers"]["up"].update({"class": "Evil"}), "unknown layer class"),
        (lambda m: m.update(extra=1), "unexpected fields"),
    ],
)
def test_bad_manifests_are_refused(tmp_path: Path, edit, match: str) -> None:
    d = _saved(tmp_path)
    _edit_manifest(d, edit)
    with pytest.raises(CheckpointError, match=match):
        checkpoint.load(d, model=TinyLM)


def test_invalid_json_and_missing_factory_are_refused(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    with pytest.raises(CheckpointError, match="factory"):
        checkpoint.load(d)
    with pytest.raises(CheckpointError, match="no such module"):
        checkpoint.load(d, model=lambda: nn.Sequential(nn.Linear(64, 64)))
    with pytest.raises(CheckpointError, match="does not match"):
        checkpoint.load(d, model=lambda: TinyLM(vocab=16))
    (d / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        checkpoint.load(d, model=TinyLM)
