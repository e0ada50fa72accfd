"""Prompt optimisation: discrete search (select, combine, adjust) and soft prompts (embed).

* ``search(task, scorer, budget, rng, config)``: successive-halving (the default),
  exhaustive, beam or evolutionary search over ``PromptCandidate`` (instruction + train
  demonstrations), scored on dev only.
* ``SoftPrompt`` + ``train_soft_prompt``: virtual tokens trained with the model frozen,
  against labels or a teacher's next-token distribution.
* ``PrefixPrompt`` (deep prompt, prefix tuning): learned keys and values for a few
  positions in every attention layer, trained by the same loop against labels.
* ``ShardedScorer``: candidate scoring split across ``torch.distributed`` ranks.

Example:
    >>> import random
    >>> from squeezeprompt.prompt import PromptCandidate, SearchConfig, Strategy, search
    >>> SearchConfig(strategy=Strategy.EXHAUSTIVE).strategy
    <Strategy.EXHAUSTIVE: 'exhaustive'>
"""

from squeezeprompt.prompt.candidate import PromptCandidate, demonstrations, to_prompt
from squeezeprompt.prompt.demos import demo_pool, sample_demos
from squeezeprompt.prompt.library import SENTIMENT_INSTRUCTIONS, sentiment_instructions
from squeezeprompt.prompt.model_scorer import TaskScorer
from squeezeprompt.prompt.parallel import ShardedScorer, init_from_env, shard_bounds
from squeezeprompt.prompt.prefix import PrefixPrompt
from squeezeprompt.prompt.proposer import ModelProposer, Proposer, ScriptedProposer
from squeezeprompt.prompt.scoring import (
    BudgetExhausted,
    CandidateScorer,
    ScoreBook,
    ScoredCandidate,
)
from squeezeprompt.prompt.search import (
    SearchConfig,
    SearchResult,
    StopReason,
    Strategy,
    register_strategy,
    search,
)
from squeezeprompt.prompt.soft import SoftPrompt
from squeezeprompt.prompt.soft_batches import LabelBatch, TextBatch
from squeezeprompt.prompt.soft_data import init_token_ids, label_batches, text_batches
from squeezeprompt.prompt.soft_train import (
    Objective,
    SoftTrainConfig,
    SoftTrainResult,
    evaluate_loss,
    train_soft_prompt,
)

__all__ = [
    "SENTIMENT_INSTRUCTIONS",
    "BudgetExhausted",
    "CandidateScorer",
    "LabelBatch",
    "ModelProposer",
    "Objective",
    "PrefixPrompt",
    "PromptCandidate",
    "Proposer",
    "ScoreBook",
    "ScoredCandidate",
    "ScriptedProposer",
    "SearchConfig",
    "SearchResult",
    "ShardedScorer",
    "SoftPrompt",
    "SoftTrainConfig",
    "SoftTrainResult",
    "StopReason",
    "Strategy",
    "TaskScorer",
    "TextBatch",
    "demo_pool",
    "demonstrations",
    "evaluate_loss",
    "init_from_env",
    "init_token_ids",
    "label_batches",
    "register_strategy",
    "sample_demos",
    "search",
    "sentiment_instructions",
    "shard_bounds",
    "text_batches",
    "to_prompt",
    "train_soft_prompt",
]
