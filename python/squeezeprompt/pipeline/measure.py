"""The numbers recorded after every stage: size, perplexity, task accuracy, decode speed.

After a prompt stage, accuracy uses the searched prompt (plus the soft prompt when one
was trained against labels) and also records the default prompt's and the searched
prompt's figures on the same test examples; perplexity uses a soft prompt trained
against the teacher and also records the figure without it.

Each measurement is a small function registered in :data:`MEASURES`; the evaluate
settings decide which run. The metrics themselves come from :mod:`squeezeprompt.evaluate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.stage_configs import SoftObjective
from squeezeprompt.pipeline.stages.soft_prompt import deep_prompt_for, soft_prompt_for
from squeezeprompt.pipeline.targets import model_size
from squeezeprompt.prompt.prefix import PrefixPrompt

Measure = Callable[[RunContext], dict[str, Any] | None]
MEASURES: dict[str, Measure] = {}


def register_measure(name: str) -> Callable[[Measure], Measure]:
    """Decorator: ``fn(ctx) -> dict | None`` is recorded under ``name`` (None: skipped).

    Example:
        >>> sorted(MEASURES)
        ['accuracy', 'decode', 'perplexity', 'size']
    """

    def decorator(fn: Measure) -> Measure:
        MEASURES[name] = fn
        return fn

    return decorator


@register_measure("size")
def _size(ctx: RunContext) -> dict[str, Any]:
    return model_size(ctx.model)


@register_measure("perplexity")
def _perplexity(ctx: RunContext) -> dict[str, Any] | None:
    from squeezeprompt.evaluate import perplexity

    cfg = ctx.recipe.evaluate
    if cfg.perplexity is None:
        return None

    def measure(soft: torch.Tensor | None) -> dict[str, Any]:
        r = perplexity(
            ctx.model,
            ctx.tokenizer,
            ctx.wikipedia.heldout,
            seq_len=cfg.seq_len,
            max_tokens=cfg.perplexity_tokens,
            soft_prompt=soft,
            progress=ctx.progress,
        )
        return {"perplexity": r.perplexity, "nll": r.nll, "tokens": r.n_predicted}

    # A soft prompt trained against the dense model's next-token distribution is part
    # of the model from then on; the figure without it shows what it won back.
    soft = soft_prompt_for(ctx.state, SoftObjective.TEACHER.value)
    out = measure(soft)
    if soft is not None:
        out["soft_tokens"] = soft.shape[0]
        out["without_soft_prompt"] = measure(None)
    return out


def current_prompt(ctx: RunContext) -> Any:
    """The prompt chosen by a prompt stage so far, else the task's default prompt.

    Example:
        >>> current_prompt(ctx).instruction  # doctest: +SKIP
        'Is this movie review positive or negative? Answer with one word.'
    """
    from squeezeprompt.evaluate import default_prompt
    from squeezeprompt.pipeline.stages.prompt import candidate_prompt
    from squeezeprompt.prompt import PromptCandidate

    chosen = ctx.state.get("prompt")
    if chosen is None:
        return default_prompt(ctx.task)
    candidate = PromptCandidate(chosen["instruction"], tuple(chosen["demos"]))
    return candidate_prompt(candidate, ctx.task)


@register_measure("accuracy")
def _accuracy(ctx: RunContext) -> dict[str, Any] | None:
    from squeezeprompt.evaluate import default_prompt

    cfg = ctx.recipe.evaluate
    if cfg.task is None:
        return None
    prompt = current_prompt(ctx)
    # A labels prompt is either input embeddings (soft) or per-layer keys/values (deep).
    deep = deep_prompt_for(ctx.state, SoftObjective.LABELS.value)
    soft = None if deep is not None else soft_prompt_for(ctx.state, SoftObjective.LABELS.value)
    out = task_accuracy(ctx, prompt, soft, deep)
    if "prompt" in ctx.state:
        # What each recovery step won on its own, each on the same test examples: the
        # default prompt, the searched prompt, and (when trained) searched + soft/deep.
        out["default_prompt"] = task_accuracy(ctx, default_prompt(ctx.task), None)
        if soft is not None or deep is not None:
            out["searched_prompt"] = task_accuracy(ctx, prompt, None)
    return out


def task_accuracy(
    ctx: RunContext, prompt: Any, soft: torch.Tensor | None, deep: PrefixPrompt | None = None
) -> dict[str, Any]:
    """Test accuracy of ``prompt`` (+ ``soft``, ``[k, hidden]``, or a ``deep`` prompt of
    per-layer keys/values) on the evaluate settings' examples.

    Example:
        >>> task_accuracy(ctx, current_prompt(ctx), None)["accuracy"]  # doctest: +SKIP
        0.552
    """
    from squeezeprompt.evaluate import accuracy

    task = ctx.task
    examples = task.test[: ctx.recipe.evaluate.test_examples]
    r = accuracy(
        ctx.model,
        ctx.tokenizer,
        prompt,
        examples,
        task.label_words,
        soft_prompt=soft,
        deep_prompt=None if deep is None else deep.state(ctx.model),
        progress=ctx.progress,
    )
    return {
        "accuracy": r.accuracy,
        "correct": r.correct,
        "n": r.n,
        "ci_low": r.ci_low,
        "ci_high": r.ci_high,
        "instruction": prompt.instruction,
        "demonstrations": len(prompt.demonstrations),
        "soft_tokens": 0 if soft is None else soft.shape[0],
        "deep_tokens": 0 if deep is None else deep.num_tokens,
    }


@register_measure("decode")
def _decode(ctx: RunContext) -> dict[str, Any] | None:
    n = ctx.recipe.evaluate.decode_tokens
    if n == 0:
        return None
    ids = torch.arange(1, 9).unsqueeze(0) % ctx.model.config.vocab_size
    kwargs = {"max_new_tokens": n, "min_new_tokens": n, "do_sample": False}
    with torch.no_grad():
        ctx.model.generate(ids, max_new_tokens=2, min_new_tokens=2, do_sample=False)  # warm-up
        start = time.perf_counter()
        ctx.model.generate(ids, **kwargs)
        seconds = time.perf_counter() - start
    return {"tokens": n, "seconds": seconds, "tokens_per_s": n / seconds}


def measure_all(ctx: RunContext) -> dict[str, Any]:
    """Every registered measurement (skipped ones left out), model in eval mode.

    Example:
        >>> sorted(measure_all(ctx))  # doctest: +SKIP
        ['accuracy', 'decode', 'perplexity', 'size']
    """
    ctx.model.eval()
    out = {}
    for name, fn in MEASURES.items():
        result = fn(ctx)
        if result is not None:
            out[name] = result
    return out
