"""``squeezeprompt`` exit codes: 0 success, 2 bad input (one line), 1 failure during work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from squeezeprompt.cli import main
from squeezeprompt.pipeline.sources import register_source

TINY_RECIPE = """
model: tiny-llama-cli
stages:
  - quantize: {method: rtn, bits: 8, group_size: null}
evaluate: {perplexity: null, task: rotten_tomatoes, test_examples: 4, decode_tokens: 0}
"""


@pytest.fixture(autouse=True)
def _sources() -> None:
    sys.path.insert(0, str(Path(__file__).parent / "pipeline"))
    import tiny

    register_source("tiny-llama-cli", lambda: (tiny.tiny_llama(), tiny.byte_tokenizer()))
    register_source(
        "tiny-llama-cli-wide", lambda: (tiny.tiny_llama(intermediate=192), tiny.byte_tokenizer())
    )

    def broken() -> tuple:
        raise RuntimeError("disk on fire")

    register_source("tiny-llama-broken", broken)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("squeezeprompt: ")
    return err[-1]


def test_missing_recipe_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "recipe file not found" in _one_line_error(capsys)


def test_bad_recipe_is_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY_RECIPE.replace("bits: 8", "bits: 3"))
    assert main(["run", str(recipe), "--out", str(tmp_path / "o")]) == 2
    line = _one_line_error(capsys)
    assert "stages[0].quantize.bits: expected one of 4, 8, got 3" in line
    assert not (tmp_path / "o").exists()


def test_model_aware_error_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY_RECIPE.replace("bits: 8, group_size: null", "bits: 4, group_size: 48"))
    assert main(["run", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert "group_size: must divide in_features 64" in _one_line_error(capsys)


def test_failure_during_work_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY_RECIPE.replace("tiny-llama-cli", "tiny-llama-broken"))
    assert main(["run", str(recipe), "--out", str(tmp_path / "o")]) == 1
    assert "RuntimeError: disk on fire" in _one_line_error(capsys)


def test_bad_arguments_are_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "demo" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["demo", "run", "eval", "layers", "bench"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "--" in capsys.readouterr().out  # options are listed and explained


def test_run_then_eval_succeed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY_RECIPE)
    out = tmp_path / "o"
    assert main(["run", str(recipe), "--out", str(out), "--no-progress"]) == 0
    assert "| quantize |" in capsys.readouterr().out
    assert (out / "report.md").is_file() and (out / "plots" / "stages.png").is_file()
    stage = out / "stages" / "01-quantize"
    args = ["eval", str(stage), "--examples", "4", "--decode-tokens", "0", "--no-progress"]
    assert main([*args, "--perplexity-tokens", "32", "--seq-len", "64"]) == 2  # < one window
    assert "perplexity_tokens: must be >= seq_len (64)" in _one_line_error(capsys)
    assert main([*args, "--perplexity-tokens", "128", "--seq-len", "64"]) == 0
    measured = json.loads(capsys.readouterr().out)
    recorded = json.loads((stage / "metrics.json").read_text())["metrics"]
    assert measured["accuracy"] == recorded["accuracy"]
    assert measured["size"] == recorded["size"]
    assert main(["eval", str(tmp_path / "missing")]) == 2


def test_module_entry_point_exit_code(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "squeezeprompt", "run", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("squeezeprompt: error: recipe file")


def test_layers_reports_every_linear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY_RECIPE)
    out = tmp_path / "o"
    assert main(["run", str(recipe), "--out", str(out), "--no-progress"]) == 0
    stage = out / "stages" / "01-quantize"
    small = ["--samples", "2", "--seq-len", "32", "--no-progress"]
    printed = capsys.readouterr().out  # the run's: stage table, not the per-layer tables
    assert "| quantize |" in printed and "per-layer loss of every stage" in printed
    assert "<details>" not in printed and "<details>" in (out / "report.md").read_text()
    assert main(["layers", str(stage), "--out", str(tmp_path / "l"), "--top", "3", *small]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("The 3 layers with the largest error share:")
    assert printed.count("| Int8WeightOnlyLinear |") == 3
    rows = json.loads((tmp_path / "l" / "layers.json").read_text())
    assert len(rows) == 15 and rows[-1]["name"] == "lm_head"
    assert rows[-1]["weight_sqnr_db"] is None  # the head is left dense: identical
    assert all(30 < r["weight_sqnr_db"] < 60 for r in rows[:-1])  # int8: ~6 dB per bit
    assert (tmp_path / "l" / "layer_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "l" / "layers.md").read_text().count("\n") == 15 + 2
    kl = ["--samples", "1", "--seq-len", "16", "--no-progress", "--kl", "--top", "2"]
    assert main(["layers", str(stage), *kl]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("The 2 layers with the largest single-layer KL:")
    assert "| KL, only this layer (nats/token) |" in printed
    # Against itself (a checkpoint directory as the dense reference): nothing lost.
    assert main(["layers", str(stage), "--dense", str(stage), *small]) == 0
    assert "| ∞ | ∞ | 0 | 0.0% |" in capsys.readouterr().out


def test_layers_bad_input_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(TINY_RECIPE)
    out = tmp_path / "o"
    assert main(["run", str(recipe), "--out", str(out), "--no-progress"]) == 0
    stage = str(out / "stages" / "01-quantize")
    assert main(["layers", str(tmp_path / "missing")]) == 2
    assert main(["layers", stage, "--samples", "0"]) == 2
    assert "--samples" in _one_line_error(capsys)
    assert main(["layers", stage, "--dense", "no-such-model"]) == 2
    assert "unknown model" in _one_line_error(capsys)
    assert main(["layers", stage, "--dense", "tiny-llama-cli-wide", "--no-progress"]) == 2
    assert "gate_proj is [128, 64] in the compressed model" in _one_line_error(capsys)
