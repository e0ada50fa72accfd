"""Evaluation: perplexity on held-out text, task accuracy by label log-likelihood.

Example:
    >>> from squeezeprompt.evaluate import Prompt, wilson_interval
    >>> Prompt("Is this movie review positive or negative? Answer with one word.").format.value
    'chat'
"""

from squeezeprompt.evaluate.accuracy import AccuracyResult, accuracy
from squeezeprompt.evaluate.encode import EncodedPrompt, encode_prompt
from squeezeprompt.evaluate.perplexity import (
    DEFAULT_MAX_TOKENS,
    PerplexityResult,
    perplexity,
    token_windows,
    window_nll,
)
from squeezeprompt.evaluate.prefix import PrefixState, compute_prefix
from squeezeprompt.evaluate.prompt import (
    Prompt,
    PromptFormat,
    PromptParts,
    PromptTemplate,
    default_prompt,
    render_full,
    split_prompt,
)
from squeezeprompt.evaluate.scoring import ScoreResult, label_log_probs, score_examples
from squeezeprompt.evaluate.stats import wilson_interval

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "AccuracyResult",
    "EncodedPrompt",
    "PerplexityResult",
    "PrefixState",
    "Prompt",
    "PromptFormat",
    "PromptParts",
    "PromptTemplate",
    "ScoreResult",
    "accuracy",
    "compute_prefix",
    "default_prompt",
    "encode_prompt",
    "label_log_probs",
    "perplexity",
    "render_full",
    "score_examples",
    "split_prompt",
    "token_windows",
    "wilson_interval",
    "window_nll",
]
