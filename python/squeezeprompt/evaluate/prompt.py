"""Classification prompts and how they become text around one example.

A ``Prompt`` is an instruction, optional demonstrations and a ``PromptTemplate`` that
lays them out in the user message. For an instruct model (``PromptFormat.CHAT``) the
user message is wrapped in the tokenizer's chat template with the generation prompt
added, and the answer (a label word) is scored right where the assistant turn starts:

    <chat head: system turn, "<|im_start|>user\\n">  [soft prompt]
    Is this movie review positive or negative? Answer with one word.   <- instruction
    <demonstrations>
    Review: <text><|im_end|>\\n<|im_start|>assistant\\n<label word>

Everything before the example text is the same for every example: ``split_prompt``
returns it as ``PromptParts`` so the evaluator can encode and run it once.

Example:
    >>> p = Prompt("Positive or negative?", format=PromptFormat.RAW)
    >>> parts = split_prompt(p, tokenizer=None, label_words=("negative", "positive"))
    >>> parts.head + parts.body + parts.lead + "{text}" + parts.tail
    'Positive or negative?\\n\\nReview: {text}\\nAnswer:'
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from squeezeprompt.data.tasks import Example, LabelledTask

_TEXT_SENTINEL = "\x00SQUEEZEPROMPT_TEXT\x00"
_USER_SENTINEL = "\x00SQUEEZEPROMPT_USER\x00"


class PromptFormat(enum.Enum):
    """How the user message reaches the model."""

    CHAT = "chat"  # the tokenizer's chat template, generation prompt added (instruct models)
    RAW = "raw"  # plain text followed by ``raw_answer_prefix`` (base models)


@dataclass(frozen=True)
class PromptTemplate:
    """Where instruction, demonstrations and the example go inside the user message.

    ``user`` must contain ``{instruction}``, ``{demonstrations}`` and ``{text}`` once each,
    with ``{text}`` after the other two (what precedes it is the shared, cached prefix).
    ``demonstration`` is repeated per demo with ``{text}`` and ``{label}`` (a label word).

    Example:
        >>> PromptTemplate().render_user("Sentiment?", "", "Great fun.")
        'Sentiment?\\n\\nReview: Great fun.'
    """

    user: str = "{instruction}\n\n{demonstrations}Review: {text}"
    demonstration: str = "Review: {text}\nAnswer: {label}\n\n"
    raw_answer_prefix: str = "\nAnswer:"

    def __post_init__(self) -> None:
        for field in ("{instruction}", "{demonstrations}", "{text}"):
            if self.user.count(field) != 1:
                raise ValueError(
                    f"PromptTemplate.user must contain {field} exactly once, got {self.user!r}"
                )
        if self.user.index("{text}") < max(
            self.user.index("{instruction}"), self.user.index("{demonstrations}")
        ):
            raise ValueError(
                "PromptTemplate.user must put {text} after {instruction} and {demonstrations} "
                f"(the part before the text is shared and cached), got {self.user!r}"
            )
        for field in ("{text}", "{label}"):
            if self.demonstration.count(field) != 1:
                raise ValueError(
                    f"PromptTemplate.demonstration must contain {field} exactly once, "
                    f"got {self.demonstration!r}"
                )

    def render_demonstrations(
        self, demonstrations: Sequence[Example], label_words: Sequence[str]
    ) -> str:
        """The demonstrations block, each demo answered with its label word."""
        return "".join(
            self.demonstration.format(text=d.text, label=label_words[d.label])
            for d in demonstrations
        )

    def render_user(self, instruction: str, demonstrations: str, text: str) -> str:
        """The user message for one example (``demonstrations`` already rendered)."""
        return self.user.format(instruction=instruction, demonstrations=demonstrations, text=text)


@dataclass(frozen=True)
class Prompt:
    """What the model is asked: instruction, demonstrations, layout and format.

    ``system`` replaces the chat template's system message; ``None`` keeps the model's
    own default (SmolLM2 inserts one), which is what the default prompt uses.

    Example:
        >>> Prompt("Is this movie review positive or negative? Answer with one word.").format
        <PromptFormat.CHAT: 'chat'>
    """

    instruction: str
    demonstrations: tuple[Example, ...] = ()
    template: PromptTemplate = PromptTemplate()
    format: PromptFormat = PromptFormat.CHAT
    system: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str):
            raise TypeError(f"Prompt.instruction must be a str, got {type(self.instruction)}")
        if not isinstance(self.demonstrations, tuple) or not all(
            isinstance(d, Example) for d in self.demonstrations
        ):
            raise TypeError("Prompt.demonstrations must be a tuple of data.Example")
        if not isinstance(self.format, PromptFormat):
            raise TypeError(f"Prompt.format must be a PromptFormat, got {self.format!r}")


def default_prompt(task: LabelledTask) -> Prompt:
    """The sensible baseline every recovery figure is measured against: the task's plain
    instruction in the chat template, no demonstrations.

    Example:
        >>> from squeezeprompt.data import load_task
        >>> default_prompt(load_task()).instruction
        'Is this movie review positive or negative? Answer with one word.'
    """
    return Prompt(instruction=task.default_instruction)


@dataclass(frozen=True)
class PromptParts:
    """A rendered prompt cut around the example text.

    ``head + [soft prompt] + body`` is shared by every example; ``text + tail`` is per
    example, followed by the label word, which is ``answer_prefix + word``.
    ``body`` never ends in whitespace: that moves to the front of the example part,
    so the two halves tokenize the way the whole string does (BPE pre-tokenizers attach
    a space to the word after it).
    """

    head: str
    body: str
    lead: str  # whitespace that stood between body and text
    tail: str
    answer_prefix: str  # put before each label word ("" after a chat generation prompt)


def _apply_chat_template(tokenizer: Any, user: str, system: str | None) -> str:
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            "PromptFormat.CHAT needs a tokenizer with a chat template; this tokenizer has "
            "none (use PromptFormat.RAW for a base model)"
        )
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages.append({"role": "user", "content": user})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def split_prompt(prompt: Prompt, tokenizer: Any, label_words: Sequence[str]) -> PromptParts:
    """Render ``prompt`` with sentinels and cut it into its shared and per-example parts.

    Example:
        >>> parts = split_prompt(Prompt("Q?", format=PromptFormat.RAW), None, ("a", "b"))
        >>> (parts.body, parts.lead, parts.tail, parts.answer_prefix)
        ('Q?\\n\\nReview:', ' ', '\\nAnswer:', ' ')
    """
    demos = prompt.template.render_demonstrations(prompt.demonstrations, label_words)
    user = prompt.template.render_user(prompt.instruction, demos, _TEXT_SENTINEL)
    if prompt.format is PromptFormat.CHAT:
        wrapped = _apply_chat_template(tokenizer, _USER_SENTINEL, prompt.system)
        if wrapped.count(_USER_SENTINEL) != 1:
            raise ValueError("the chat template dropped or repeated the user message")
        head, after_user = wrapped.split(_USER_SENTINEL)
        answer_prefix = ""
    else:
        head, after_user = "", prompt.template.raw_answer_prefix
        answer_prefix = " "  # base models see " positive" after "Answer:"
    before_text, after_text = user.split(_TEXT_SENTINEL)
    body = before_text.rstrip()
    return PromptParts(
        head=head,
        body=body,
        lead=before_text[len(body) :],
        tail=after_text + after_user,
        answer_prefix=answer_prefix,
    )


def render_full(prompt: Prompt, tokenizer: Any, label_words: Sequence[str], text: str) -> str:
    """The whole prompt for one example as one string, up to where the answer goes.

    Example:
        >>> render_full(Prompt("Q?", format=PromptFormat.RAW), None, ("a", "b"), "Fun.")
        'Q?\\n\\nReview: Fun.\\nAnswer:'
    """
    parts = split_prompt(prompt, tokenizer, label_words)
    return parts.head + parts.body + parts.lead + text + parts.tail
