"""The numbers recorded after every stage: size, perplexity, task accuracy, decode speed.

Each measurement is a small function registered in :data:`MEASURES`; the evaluate
settings decide which run. The metrics themselves come from :mod:`squeezeprompt.evaluate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.targets import model_size

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
    r = perplexity(
        ctx.model,
        ctx.tokenizer,
        ctx.wikipedia.heldout,
        seq_len=cfg.seq_len,
        max_tokens=cfg.perplexity_tokens,
        progress=ctx.progress,
    )
    return {"perplexity": r.perplexity, "nll": r.nll, "tokens": r.n_predicted}


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
    from squeezeprompt.evaluate import accuracy

    cfg = ctx.recipe.evaluate
    if cfg.task is None:
        return None
    task = ctx.task
    examples = task.test[: cfg.test_examples]
    prompt = current_prompt(ctx)
    r = accuracy(
        ctx.model, ctx.tokenizer, prompt, examples, task.label_words, progress=ctx.progress
    )
    return {
        "accuracy": r.accuracy,
        "correct": r.correct,
        "n": r.n,
        "ci_low": r.ci_low,
        "ci_high": r.ci_high,
        "instruction": prompt.instruction,
        "demonstrations": len(prompt.demonstrations),
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
