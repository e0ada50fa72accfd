"""The per-layer loss of a stage's model against the dense one, kept in the stage's metrics.

Run by the runner after every stage that changes the model (not through
:func:`~squeezeprompt.pipeline.measure.register_measure`: it compares with the dense
model and with the stage before, which a measurement of one model does not see). It
uses the first :data:`MAX_SAMPLES` calibration windows cut to :data:`MAX_SEQ_LEN`
tokens (about 6 s on SmolLM2-135M with 2 threads). A stage whose compared layers hold
exactly the previous stage's tensors (a prompt search) reuses that stage's rows; the
``digest`` of those tensors tells.

Example:
    >>> import torch
    >>> weights_digest(torch.nn.Sequential(torch.nn.Linear(2, 2)))[:8]  # doctest: +SKIP
    '3f1c9a0e'
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

from squeezeprompt.analysis import layer_losses
from squeezeprompt.nn.base import QuantizedLinearBase
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.recover.lora import LoRALinear

MAX_SAMPLES = 4
MAX_SEQ_LEN = 256
COMPARED = (nn.Linear, QuantizedLinearBase, LoRALinear)


def weights_digest(model: nn.Module) -> str:
    """A hash of the name, dtype, shape and bytes of every tensor of the compared layers.

    Example:
        >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        >>> weights_digest(a) == weights_digest(a), weights_digest(a) == weights_digest(b)
        (True, False)
    """
    h = hashlib.blake2b(digest_size=16)
    for name, module in model.named_modules():
        if not isinstance(module, COMPARED):
            continue
        # Own tensors only: a LoRA wrapper's base layer is visited as a module of its own.
        own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
        for key, t in own:
            t = t.detach().cpu().contiguous()
            h.update(f"{name}.{key}:{t.dtype}:{tuple(t.shape)};".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def layer_batches(ctx: RunContext) -> list[torch.Tensor]:
    """The first calibration windows of the run, capped at ``MAX_SAMPLES x MAX_SEQ_LEN``.

    Example:
        >>> [b.shape for b in layer_batches(ctx)]  # doctest: +SKIP
        [torch.Size([1, 256]), torch.Size([1, 256]), torch.Size([1, 256]), torch.Size([1, 256])]
    """
    calib = ctx.recipe.calibration
    windows = ctx.calibration_batches(calib.samples, calib.seq_len)
    return [w[:, :MAX_SEQ_LEN] for w in windows[:MAX_SAMPLES]]


def measure_layers(ctx: RunContext, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"digest", "samples", "tokens", "rows"}`` for ``ctx.model`` against the dense model.

    ``previous`` is the last stage's result: returned as it is when the digest matches.

    Example:
        >>> measure_layers(ctx)["rows"][0]["output_sqnr_db"]  # doctest: +SKIP
        21.4
    """
    digest = weights_digest(ctx.model)
    if previous is not None and previous.get("digest") == digest:
        return previous
    batches = layer_batches(ctx)
    rows = layer_losses(ctx.model, ctx.teacher, batches, progress=ctx.progress)
    return {
        "digest": digest,
        "samples": len(batches),
        "tokens": sum(b.numel() for b in batches),
        "rows": [r.to_dict() for r in rows],
    }
