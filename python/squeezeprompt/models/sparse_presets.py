"""Calibrated 2:4 for the presets: SparseGPT on the Linears a small model can halve.

One-shot 2:4 on every Linear breaks SmolLM2-135M-Instruct: held-out perplexity goes
from 35.05 to 176 with SparseGPT (259 Wanda, 2632 magnitude) and the model stops
answering ("What is the capital of France?" -> "The French is a powerful and powerful
nation."). The damage is lopsided. Pruning one Linear at a time and measuring the
final-logit KL to the dense model (:mod:`squeezeprompt.analysis.layer_kl`, calibration
text) ranks, per weight removed: ``q_proj``, ``k_proj`` and ``o_proj`` cheap in nearly
every block, ``v_proj`` dearer, and the MLP as cheap in the middle blocks (10-21) but up
to 20 times dearer in the first and last ones. So :data:`SPARSE24_LINEARS` makes 2:4
``q_proj`` and ``o_proj`` of every block and the whole MLP of blocks 11-20: 43.75% of
the Linear weights below the output head (:data:`SPARSE24_INT4_LINEARS`: blocks 12-19,
38.75%). Held-out perplexity (4,096 tokens, windows of 256) and the greedy answer:

=========  ======  ==========  ==============================================
preset     2:4     perplexity  "What is the capital of France?"
=========  ======  ==========  ==============================================
2:4        43.75%  53.7        The capital of France is Paris, capital of ...
2:4+int8   43.75%  54.2        The capital of France is Paris, capital of ...
2:4+int4   38.75%  66.4        The capital of France is Paris, but it's ...
=========  ======  ==========  ==============================================

More did not stay coherent: the MLP of every block (75%) reached perplexity 141 and
answered with the system prompt; 60% chosen by the KL ranking, 67 and broken answers.
The choices (blocks, damping, chat text) were made on this held-out perplexity and a
few chat prompts, so the figures flatter them slightly.

The weights are pruned block by block on the model as already pruned (SparseGPT's
sequential mode, :func:`~squeezeprompt.calibration.calibrate_blockwise`), calibrated on
chat-formatted text: each packaged calibration article as the assistant's reply to
"Tell me about <title>.", which is what an instruct model is used on (it did better
than plain Wikipedia windows). For int4 values SparseGPT rounds onto the int4 grid in
the same sweep, so the kept weights absorb the rounding error too.

Example:
    >>> SPARSE24_LINEARS("model.layers.15.mlp.up_proj", torch.nn.Linear(4, 4))
    True
    >>> SPARSE24_LINEARS("model.layers.1.mlp.up_proj", torch.nn.Linear(4, 4))
    False
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, TypeVar

import torch  # noqa: F401  (the doctests use it)
from torch import Tensor, nn

from squeezeprompt.calibration import Calibrated, CalibrationConfig, calibrate_blockwise
from squeezeprompt.data import load_wikipedia
from squeezeprompt.formats import Int4Weight
from squeezeprompt.nn import LinearFilter, SemiStructured24, SparseValues, sparsify_
from squeezeprompt.nn.base import QuantizedLinearBase
from squeezeprompt.nn.filter import DEFAULT_EXCLUDE, select_linears
from squeezeprompt.nn.sparse import Sparse24Int4Linear, Sparse24Linear
from squeezeprompt.prune import SparseGPTConfig, Sparsity, sparsegpt_prune
from squeezeprompt.quantize.grid import Bits, WeightGrid
from squeezeprompt.quantize.stats import InputStats

M = TypeVar("M", bound=nn.Module)


def attention_and_mlp_of(blocks: range) -> LinearFilter:
    """``q_proj`` and ``o_proj`` of every block, plus the whole MLP of ``blocks``.

    Example:
        >>> f = attention_and_mlp_of(range(11, 21))
        >>> f("model.layers.3.self_attn.q_proj", torch.nn.Linear(4, 4))
        True
        >>> f("model.layers.3.mlp.up_proj", torch.nn.Linear(4, 4))
        False
    """
    mlp = tuple(f"*.layers.{i}.mlp.*" for i in blocks)
    return LinearFilter(include=("*.self_attn.q_proj", "*.self_attn.o_proj", *mlp))


# SmolLM2-135M has 30 blocks; the MLPs of their first and last ten stay dense. int4 adds
# its own rounding error to every other Linear, so it prunes one MLP fewer at each end.
SPARSE24_LINEARS = attention_and_mlp_of(range(11, 21))  # 43.75% of the Linear weights
SPARSE24_INT4_LINEARS = attention_and_mlp_of(range(12, 20))  # 38.75%
CHAT_REQUEST = "Tell me about {title}."
# Ten times SparseGPT's usual Hessian damping: 2,048 calibration tokens estimate the
# [1536, 1536] Hessians of down_proj poorly, and the stronger pull towards the original
# weights lowered SmolLM2's held-out perplexity in each preset tried (float 2:4 59.0 ->
# 53.7, int4 with the MLP of blocks 12-19 74.6 -> 66.4).
DAMP = 0.1
# Tokenizing whole articles took 6 s; a window's tokens come from far fewer characters
# than this many per token (English prose averages about 4), so cutting there first
# leaves every window's tokens unchanged.
MAX_CHARS_PER_TOKEN = 8


@dataclass(frozen=True)
class ChatCalibration:
    """How much calibration text: ``samples`` windows of ``seq_len`` tokens.

    Eight windows of 256 tokens keep a preset near 45 s of one CPU thread on SmolLM2;
    sixteen lowered the perplexity somewhat (float 2:4 at damping 0.01: 52.8 vs 59.0)
    but took 72 s.

    Example:
        >>> ChatCalibration().samples * ChatCalibration().seq_len
        2048
    """

    samples: int = 8
    seq_len: int = 256

    def __post_init__(self) -> None:
        for field in ("samples", "seq_len"):
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"ChatCalibration: {field} must be a positive int, got {v!r}")


def chat_calibration_windows(tokenizer: Any, calibration: ChatCalibration) -> list[Tensor]:
    """``[1, seq_len]`` token windows: packaged calibration articles as chat replies.

    Each article (in the fixed order of ``load_wikipedia().calibration``, never the
    held-out ones) becomes the assistant's answer to :data:`CHAT_REQUEST` in the
    tokenizer's chat template, cut to ``seq_len`` tokens; articles too short for a
    full window are skipped, so the result depends on nothing but the tokenizer.

    Example:
        >>> _, tok = models.load("smollm2-135m-instruct")  # doctest: +SKIP
        >>> windows = chat_calibration_windows(tok, ChatCalibration(2, 64))  # doctest: +SKIP
        >>> [w.shape for w in windows]  # doctest: +SKIP
        [torch.Size([1, 64]), torch.Size([1, 64])]
    """
    wiki = load_wikipedia()
    windows: list[Tensor] = []
    for title, text in zip(wiki.calibration_titles, wiki.calibration, strict=True):
        messages = [
            {"role": "user", "content": CHAT_REQUEST.format(title=title)},
            {"role": "assistant", "content": text[: MAX_CHARS_PER_TOKEN * calibration.seq_len]},
        ]
        ids = tokenizer.apply_chat_template(messages, return_tensors="pt", return_dict=True)
        ids = ids["input_ids"]
        if ids.shape[1] >= calibration.seq_len:
            windows.append(ids[:, : calibration.seq_len])
        if len(windows) == calibration.samples:
            return windows
    raise ValueError(
        f"chat_calibration_windows: only {len(windows)} calibration articles fill "
        f"{calibration.seq_len} tokens, {calibration.samples} were asked for"
    )


def _tokenizer_of(model: nn.Module) -> Any:
    # A model loaded from a local directory (the packaged models' fp32 cache) keeps its
    # path; the tokenizer saved beside it is read from there, never downloaded.
    from transformers import AutoTokenizer

    path = getattr(model, "name_or_path", "")
    if not path:
        raise ValueError(
            f"sparsegpt_24_: {type(model).__name__} has no name_or_path to find its "
            "tokenizer; pass tokenizer="
        )
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def sparsegpt_24_(
    model: M,
    config: SemiStructured24 | None = None,
    filter: LinearFilter = SPARSE24_LINEARS,
    calibration: ChatCalibration | None = None,
    tokenizer: Any = None,
    damp: float = DAMP,
) -> M:
    """Prunes the Linears ``filter`` picks to 2:4 with SparseGPT and packs them per ``config``.

    Calibrates on :func:`chat_calibration_windows` (``tokenizer`` defaults to the one
    saved beside the model). The other Linears keep their weights; every chosen one
    must lie inside the decoder blocks, which calibration walks.

    Example:
        >>> model, tok = models.load("smollm2-135m-instruct")  # doctest: +SKIP
        >>> sparsegpt_24_(model, SemiStructured24(values=SparseValues.INT8))  # doctest: +SKIP
        >>> sparse24_share(model)  # doctest: +SKIP
        0.4375
    """
    config = config or SemiStructured24()
    calibration = calibration or ChatCalibration()
    tokenizer = tokenizer if tokenizer is not None else _tokenizer_of(model)
    chosen = set(select_linears(model, filter))
    if not chosen:
        raise ValueError("sparsegpt_24_: the filter picks no Linear of the model")
    int4 = config.values is SparseValues.INT4
    grid = WeightGrid(Bits.INT4, config.group_size, config.symmetric) if int4 else None
    sparsegpt = SparseGPTConfig(damp=damp, grid=grid)
    masks: dict[str, Tensor] = {}
    quantized: dict[str, Int4Weight] = {}

    def on_block(
        _prefix: str, _block: nn.Module, found: dict[str, tuple[Calibrated, InputStats]]
    ) -> None:
        for name, (module, stats) in found.items():
            if name not in chosen:
                continue
            w = module.weight.detach()
            r = sparsegpt_prune(w, stats.hessian(), Sparsity.semi_24(), sparsegpt)
            # Later blocks are calibrated on this block as pruned (and rounded).
            module.weight.copy_(r.weight.to(w.dtype))
            masks[name] = r.mask
            if isinstance(r.quantized, Int4Weight):
                quantized[name] = r.quantized

    windows = chat_calibration_windows(tokenizer, calibration)
    calibrate_blockwise(model, windows, on_block, CalibrationConfig(hessian=True))
    missed = sorted(chosen - set(masks))
    if missed:
        raise ValueError(f"sparsegpt_24_: calibration never reached {missed[:3]} (outside blocks)")
    if not int4:
        return sparsify_(model, config, LinearFilter(include=tuple(masks), exclude=()), masks)
    for name, q in quantized.items():
        linear = model.get_submodule(name)
        layer = Sparse24Int4Linear.from_int4(q, linear.bias, config.symmetric, masks[name])
        layer.config = config  # what sparsify_ records, for checkpoints
        model.set_submodule(name, layer)
    return model


def sparse24_share(model: nn.Module) -> float:
    """Fraction of the weights of the model's Linear layers (output head aside) held 2:4.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 8))
        >>> sparse24_share(sparsify_(m, SemiStructured24(), LinearFilter(include=("0",))))
        0.5
    """
    sparse = total = 0
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear | QuantizedLinearBase):
            continue
        if any(fnmatchcase(name, p) for p in DEFAULT_EXCLUDE):
            continue
        n = module.in_features * module.out_features
        total += n
        sparse += n if isinstance(module, Sparse24Linear | Sparse24Int4Linear) else 0
    return sparse / total if total else 0.0
