"""The soft-prompt half of the prompt stage: train, record in the run state, read back.

The soft prompt is trained with the (compressed) model frozen, on top of the prompt the
discrete search chose:

* ``labels``: cross-entropy of the gold label word on **train** reviews, the virtual
  tokens sitting after the chat head, before the searched instruction (the evaluator's
  layout), so accuracy is then measured with searched prompt + soft prompt;
* ``teacher``: KL to the dense model's next-token distribution on calibration
  articles (never the perplexity hold-out), the virtual tokens prepended to the text,
  so perplexity is then measured with the soft prompt prepended.

``soft_kind: prefix`` trains a deep prompt instead (``prompt.PrefixPrompt``: keys and
values for ``soft_tokens`` virtual positions in every layer, before the chat head),
with the same objectives and loop.

The trained ``[k, hidden]`` tensor (or the deep prompt's keys and values) is kept in the
run state (``state["soft_prompt"]``), which the runner writes beside every later
checkpoint and reloads on resume, and which ``squeezeprompt eval STAGE_DIR`` reads: a
float32 written as a JSON number (a double) reads back bit for bit.
``export_soft_prompt`` writes it as safetensors + JSON.

Example:
    >>> import torch
    >>> state = {}
    >>> record_soft_prompt(state, torch.ones(2, 3), "labels", {"steps": 1})
    >>> soft_prompt_for(state, "labels").shape, soft_prompt_for(state, "teacher")
    (torch.Size([2, 3]), None)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from squeezeprompt.pipeline.stage_configs import PromptConfig, SoftKind, SoftObjective
from squeezeprompt.prompt import (
    Objective,
    SoftPrompt,
    SoftTrainConfig,
    evaluate_loss,
    init_token_ids,
    label_batches,
    text_batches,
    train_soft_prompt,
)
from squeezeprompt.prompt.prefix import PrefixPrompt

STATE_KEY = "soft_prompt"
LABEL_BATCH = 8  # reviews per step (the prefix is shared, so a step costs ~8 short rows)
TEXT_BATCH = 2  # windows per step on the teacher side
TEXT_SEQ_LEN = 128
VALIDATION_EXAMPLES = 64  # held-out loss (dev reviews / later calibration windows)

_OBJECTIVES = {SoftObjective.LABELS: Objective.LABELS, SoftObjective.TEACHER: Objective.TEACHER_KL}
_INITS = {
    SoftKind.EMBED: lambda model, ids, n: SoftPrompt.from_token_ids(
        model.get_input_embeddings(), ids, n
    ),
    SoftKind.PREFIX: PrefixPrompt.from_token_ids,
}


def record_soft_prompt(
    state: dict[str, Any], embeddings: torch.Tensor, objective: str, info: dict[str, Any]
) -> None:
    """Store ``embeddings`` ``[k, hidden]`` (exactly) and how they were made in ``state``.

    Example: see the module docstring.
    """
    state[STATE_KEY] = {
        "objective": objective,
        "num_tokens": embeddings.shape[0],
        "hidden_size": embeddings.shape[1],
        "info": info,
        "embeddings": embeddings.detach().float().cpu().tolist(),
    }


def soft_prompt_for(state: dict[str, Any], objective: str) -> torch.Tensor | None:
    """The recorded soft prompt if it was trained with ``objective`` ("labels"/"teacher").

    Example: see the module docstring.
    """
    entry = state.get(STATE_KEY)
    if entry is None or entry["objective"] != objective:
        return None
    if entry.get("kind", SoftKind.EMBED.value) != SoftKind.EMBED.value:
        # Scoring without it would report the compressed model's figure as the prompt's.
        raise ValueError(
            f"run state: the {objective} prompt is a {entry['kind']} prompt, not input "
            "embeddings; read it with deep_prompt_for"
        )
    tensor = torch.tensor(entry["embeddings"], dtype=torch.float32)
    if list(tensor.shape) != [entry["num_tokens"], entry["hidden_size"]]:
        raise ValueError(
            f"run state: soft prompt holds {list(tensor.shape)}, "
            f"expected [{entry['num_tokens']}, {entry['hidden_size']}]"
        )
    return tensor


def record_deep_prompt(
    state: dict[str, Any], deep: PrefixPrompt, objective: str, info: dict[str, Any]
) -> None:
    """Store a deep prompt's keys and values (exactly) and how they were made in ``state``.

    Example:
        >>> state = {}; z = torch.zeros(1, 1, 2, 3)
        >>> record_deep_prompt(state, PrefixPrompt(z, z), "labels", {})
        >>> deep_prompt_for(state, "labels").num_tokens, deep_prompt_for(state, "teacher")
        (2, None)
    """
    state[STATE_KEY] = {
        "objective": objective,
        "kind": SoftKind.PREFIX.value,
        "shape": list(deep.keys.shape),
        "info": info,
        "keys": deep.keys.detach().float().cpu().tolist(),
        "values": deep.values.detach().float().cpu().tolist(),
    }


def deep_prompt_for(state: dict[str, Any], objective: str) -> PrefixPrompt | None:
    """The recorded deep prompt if one was trained with ``objective``, else None.

    Example: see ``record_deep_prompt``.
    """
    entry = state.get(STATE_KEY)
    if entry is None or entry["objective"] != objective:
        return None
    if entry.get("kind") != SoftKind.PREFIX.value:
        return None
    keys = torch.tensor(entry["keys"], dtype=torch.float32)
    values = torch.tensor(entry["values"], dtype=torch.float32)
    if list(keys.shape) != entry["shape"] or list(values.shape) != entry["shape"]:
        raise ValueError(
            f"run state: deep prompt holds keys {list(keys.shape)} and values "
            f"{list(values.shape)}, expected {entry['shape']}"
        )
    return PrefixPrompt(keys, values, meta={"objective": objective, **entry["info"]})


def export_soft_prompt(state: dict[str, Any], directory: str | Path) -> Path | None:
    """Write the recorded soft prompt as ``soft_prompt.safetensors`` + ``.json``, or a deep
    prompt as ``deep_prompt.*`` (None if neither was trained).

    Example:
        >>> import tempfile
        >>> state = {}; record_soft_prompt(state, torch.zeros(1, 2), "labels", {})
        >>> SoftPrompt.load(export_soft_prompt(state, tempfile.mkdtemp())).num_tokens
        1
    """
    entry = state.get(STATE_KEY)
    if entry is None:
        return None
    deep = deep_prompt_for(state, entry["objective"])
    if deep is not None:
        return deep.save(directory)
    tensor = soft_prompt_for(state, entry["objective"])
    assert tensor is not None
    meta = {"objective": entry["objective"], **entry["info"]}
    return SoftPrompt(tensor, meta=meta).save(directory)


def train_stage_soft_prompt(ctx: Any, config: PromptConfig, prompt: Any) -> dict[str, Any]:
    """Train ``config.soft_tokens`` virtual tokens (``config.soft_kind``) on ``ctx.model``
    and record them.

    Starts from the default instruction's tokens (their embeddings, or for a deep
    prompt the keys/values the model computes for them: inside the region the model
    was trained on). Seeded by the recipe's seed. Returns the JSON
    summary: settings, first and last training losses, and the held-out loss
    without a soft prompt, with it at its start and with it trained.

    Example (needs a run context):
        >>> train_stage_soft_prompt(ctx, PromptConfig(soft_tokens=8), prompt)  # doctest: +SKIP
    """
    task = ctx.task
    rng = random.Random(ctx.recipe.seed)
    objective = _OBJECTIVES[config.soft_objective]
    init_ids = init_token_ids(ctx.tokenizer, task.default_instruction)
    soft = _INITS[config.soft_kind](ctx.model, init_ids, config.soft_tokens)
    if objective is Objective.LABELS:
        # Train split only: the dev split is for selection, the test split for reporting.
        wanted = min(len(task.train), config.soft_steps * LABEL_BATCH)
        examples = rng.sample(list(task.train), wanted)
        batches = label_batches(ctx.tokenizer, prompt, examples, task.label_words, LABEL_BATCH, rng)
        held = label_batches(
            ctx.tokenizer, prompt, task.dev[:VALIDATION_EXAMPLES], task.label_words, 16
        )
        teacher = None
    else:
        need = (config.soft_steps * TEXT_BATCH + VALIDATION_EXAMPLES // 16) * TEXT_SEQ_LEN
        windows = text_batches(
            ctx.tokenizer, ctx.wikipedia.calibration, TEXT_SEQ_LEN, TEXT_BATCH, need
        )
        # The last few windows are held out from training to watch the loss.
        n_held = max(1, min(len(windows) // 5, VALIDATION_EXAMPLES // 16))
        batches, held = windows[:-n_held], windows[-n_held:]
        rng.shuffle(batches)
        teacher = ctx.teacher
    before = evaluate_loss(ctx.model, None, held, objective, teacher)
    at_init = evaluate_loss(ctx.model, soft, held, objective, teacher)
    train_config = SoftTrainConfig(
        objective=objective,
        steps=config.soft_steps,
        lr=config.soft_lr,
        schedule=config.soft_schedule,
    )
    result = train_soft_prompt(ctx.model, soft, batches, train_config, teacher=teacher)
    after = evaluate_loss(ctx.model, soft, held, objective, teacher)
    info = {
        "objective": config.soft_objective.value,
        "kind": config.soft_kind.value,
        "tokens": config.soft_tokens,
        "parameters": sum(p.numel() for p in soft.parameters()),
        "steps": config.soft_steps,
        "lr": config.soft_lr,
        "schedule": config.soft_schedule.value,
        "batch_size": LABEL_BATCH if objective is Objective.LABELS else TEXT_BATCH,
        "init": "default instruction tokens",
        "first_loss": result.losses[0],
        "last_loss": result.losses[-1],
        "heldout_loss_without": before,
        "heldout_loss_at_init": at_init,
        "heldout_loss_with": after,
    }
    if isinstance(soft, PrefixPrompt):
        record_deep_prompt(ctx.state, soft, config.soft_objective.value, info)
    else:
        record_soft_prompt(ctx.state, soft.embeddings, config.soft_objective.value, info)
    return info
