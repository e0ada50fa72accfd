"""The prompt stage with a soft prompt, on the tiny Llama: train, record, resume, evaluate."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import deterministic

from squeezeprompt.evaluate import accuracy, perplexity
from squeezeprompt.pipeline import measure
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.runner import run
from squeezeprompt.pipeline.stages import soft_prompt as soft_module
from squeezeprompt.pipeline.stages.prompt import PromptStage
from squeezeprompt.pipeline.stages.soft_prompt import export_soft_prompt, soft_prompt_for
from squeezeprompt.pipeline.validate import resolve_source
from squeezeprompt.prompt import SoftPrompt

RECIPE = """
model: tiny-llama-test
seed: 0  # the seed `squeezeprompt eval` assumes (it picks the task split)
stages:
  - quantize: {{method: rtn, bits: 4, group_size: 32}}
  - prompt:   {{search: beam, candidates: 2, demos: 1, budget: 12, dev_size: 4,
               soft_tokens: 3, soft_objective: {objective}, soft_steps: {steps}, soft_lr: 0.01}}
evaluate: {{perplexity: enwiki, perplexity_tokens: 128, seq_len: 64, task: rotten_tomatoes,
           test_examples: 8, decode_tokens: 0}}
"""


def _recipe(objective: str, steps: int = 4) -> Recipe:
    return Recipe.from_yaml(RECIPE.format(objective=objective, steps=steps))


@pytest.fixture(scope="module")
def labels_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("soft") / "labels"
    return out, run(_recipe("labels"), out, progress=False)


def _state(out: Path) -> dict[str, Any]:
    return json.loads((out / "stages" / "02-prompt" / "state.json").read_text())


def _context(recipe: Recipe, model: Any = None, state: dict | None = None) -> RunContext:
    source = resolve_source(recipe)
    fresh, tokenizer = source()
    log = logging.getLogger("test")
    return RunContext(recipe, model or fresh, tokenizer, source, log, False, state or {})


def test_labels_soft_prompt_is_trained_recorded_and_measured(labels_run) -> None:
    out, metrics = labels_run
    prompt_stage = metrics[-1]
    info = prompt_stage["summary"]["soft_prompt"]
    assert info["steps"] == 4 and info["tokens"] == 3 and info["objective"] == "labels"
    top = prompt_stage["summary"]["top"]  # the best few candidates, best first
    assert 1 <= len(top) <= 8 and top[0]["score"] == prompt_stage["summary"]["score"]
    assert [e["score"] for e in top] == sorted((e["score"] for e in top), reverse=True)
    soft = soft_prompt_for(_state(out), "labels")
    assert soft is not None and soft.shape == (3, 64)
    acc = prompt_stage["metrics"]["accuracy"]
    assert acc["soft_tokens"] == 3
    assert acc["default_prompt"]["soft_tokens"] == 0
    assert acc["searched_prompt"]["instruction"] == acc["instruction"]
    # A label-trained soft prompt is a task prompt: perplexity is measured without it.
    assert "without_soft_prompt" not in prompt_stage["metrics"]["perplexity"]


def test_accuracy_is_measured_with_the_soft_prompt(labels_run) -> None:
    out, metrics = labels_run
    state = _state(out)
    from squeezeprompt import checkpoint

    recipe = _recipe("labels")
    ctx = _context(recipe, state=state)
    ctx.model = checkpoint.load(out / "stages" / "02-prompt" / "model", model=ctx.model).eval()
    task = ctx.task
    prompt = measure.current_prompt(ctx)
    soft = soft_prompt_for(state, "labels")
    examples = task.test[:8]
    with_soft = accuracy(
        ctx.model,
        ctx.tokenizer,
        prompt,
        examples,
        task.label_words,
        soft_prompt=soft,
        progress=False,
    )
    recorded = metrics[-1]["metrics"]["accuracy"]
    assert recorded["correct"] == with_soft.correct
    # The soft prompt changes the scores: its vectors are not a no-op.
    from squeezeprompt.evaluate import score_examples

    plain = score_examples(ctx.model, ctx.tokenizer, prompt, examples, task.label_words)
    soft_scores = score_examples(
        ctx.model, ctx.tokenizer, prompt, examples, task.label_words, soft_prompt=soft
    )
    assert not torch.allclose(
        torch.as_tensor(plain.log_probs), torch.as_tensor(soft_scores.log_probs)
    )


def test_finished_run_reloads_the_soft_prompt_without_training(labels_run, monkeypatch) -> None:
    out, metrics = labels_run

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the soft prompt should have been reloaded, not retrained")

    monkeypatch.setattr(soft_module, "train_soft_prompt", refuse)
    again = run(_recipe("labels"), out, progress=False)
    assert deterministic(again) == deterministic(metrics)


def test_eval_command_uses_the_recorded_soft_prompt(labels_run, capsys) -> None:
    from squeezeprompt.cli import main

    out, metrics = labels_run
    stage_dir = out / "stages" / "02-prompt"
    args = ["eval", str(stage_dir), "--examples", "8", "--perplexity-tokens", "128"]
    assert main([*args, "--seq-len", "64", "--decode-tokens", "0", "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    recorded = metrics[-1]["metrics"]["accuracy"]
    assert printed["accuracy"]["soft_tokens"] == 3
    assert printed["accuracy"]["correct"] == recorded["correct"]
    assert printed["accuracy"]["default_prompt"] == recorded["default_prompt"]


def test_rerunning_the_prompt_stage_gives_the_same_result(labels_run, tmp_path) -> None:
    """Same seed, same result: the stage redone from the quantize checkpoint matches."""
    out, metrics = labels_run
    copy_dir = tmp_path / "copy"
    shutil.copytree(out, copy_dir)
    shutil.rmtree(copy_dir / "stages" / "02-prompt")
    again = run(_recipe("labels"), copy_dir, progress=False)
    assert deterministic(again) == deterministic(metrics)
    assert _state(copy_dir) == _state(out)


def test_export_writes_a_loadable_soft_prompt(labels_run, tmp_path) -> None:
    out, _ = labels_run
    state = _state(out)
    loaded = SoftPrompt.load(export_soft_prompt(state, tmp_path))
    assert torch.equal(loaded.embeddings, soft_prompt_for(state, "labels"))
    assert loaded.meta["objective"] == "labels"


def test_the_run_saves_the_soft_prompt_beside_the_stage_checkpoint(labels_run) -> None:
    out, _ = labels_run
    saved = SoftPrompt.load(out / "stages" / "02-prompt")
    assert torch.equal(saved.embeddings, soft_prompt_for(_state(out), "labels"))


class _Untouchable(tuple):
    """A split that fails the test if anything reads it."""

    def _refuse(self, *args: Any) -> Any:
        raise AssertionError("the prompt stage read the test split")

    __iter__ = __getitem__ = __len__ = __contains__ = _refuse  # type: ignore[assignment]


def test_prompt_stage_never_touches_test_and_trains_on_train_only(monkeypatch) -> None:
    recipe = _recipe("labels", steps=2)
    ctx = _context(recipe)
    task = copy.copy(ctx.task)
    train, dev = set(task.train), set(task.dev)
    object.__setattr__(task, "test", _Untouchable())
    ctx.__dict__["task"] = task
    seen: list[Any] = []
    real = soft_module.label_batches

    def spy(tokenizer: Any, prompt: Any, examples: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((prompt, list(examples)))
        return real(tokenizer, prompt, examples, *args, **kwargs)

    monkeypatch.setattr(soft_module, "label_batches", spy)
    PromptStage().run(ctx, recipe.stages[-1])
    training, held = seen  # training batches, then the dev batches that watch the loss
    assert training[1] and all(ex in train for ex in training[1])
    assert all(ex in dev for ex in held[1])
    assert all(ex in train for ex in training[0].demonstrations)


def test_teacher_soft_prompt_lowers_heldout_kl_and_is_used_for_perplexity(tmp_path) -> None:
    recipe = _recipe("teacher", steps=12)
    metrics = run(recipe, tmp_path / "teacher", progress=False)
    stage = metrics[-1]
    info = stage["summary"]["soft_prompt"]
    # On this barely-compressed toy, KL without any prefix is already ~0: what training
    # must do is beat the prefix it started from.
    assert info["heldout_loss_with"] < info["heldout_loss_at_init"]
    ppl = stage["metrics"]["perplexity"]
    assert ppl["soft_tokens"] == 3
    # Without the soft prompt the figure is the quantized model's own.
    assert ppl["without_soft_prompt"]["perplexity"] == pytest.approx(
        metrics[1]["metrics"]["perplexity"]["perplexity"], rel=1e-9
    )
    state = json.loads((tmp_path / "teacher" / "stages" / "02-prompt" / "state.json").read_text())
    ctx = _context(recipe)
    from squeezeprompt import checkpoint

    model_dir = tmp_path / "teacher" / "stages" / "02-prompt" / "model"
    model = checkpoint.load(model_dir, model=ctx.model).eval()
    direct = perplexity(
        model,
        ctx.tokenizer,
        ctx.wikipedia.heldout,
        seq_len=64,
        max_tokens=128,
        soft_prompt=soft_prompt_for(state, "teacher"),
        progress=False,
    )
    assert ppl["perplexity"] == pytest.approx(direct.perplexity, rel=1e-9)
    # A teacher-trained soft prompt sits before raw text: accuracy is measured without it.
    assert stage["metrics"]["accuracy"]["soft_tokens"] == 0
