"""Token ids of a prompt's shared prefix, of each example, and of each label word."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from squeezeprompt.evaluate.prompt import Prompt, PromptFormat, PromptParts, split_prompt


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added (the templates carry their own).

    Example:
        >>> class Chars:  # any tokenizer called like Hugging Face's
        ...     def __call__(self, s, add_special_tokens):
        ...         return {"input_ids": [ord(c) for c in s]}
        >>> encode_text(Chars(), "hi")
        [104, 105]
    """
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class EncodedPrompt:
    """A prompt as token ids.

    The model sees ``head_ids + [soft prompt vectors] + body_ids`` once (the shared
    prefix), then per example ``example_ids(text)`` followed by one label's ids.
    The soft prompt hook sits right after the chat template's opening (system turn and
    the start of the user turn), before the instruction, so a learned prefix is read
    as part of the user's request and the template's special tokens stay intact.
    """

    parts: PromptParts
    head_ids: tuple[int, ...]
    body_ids: tuple[int, ...]
    label_ids: tuple[tuple[int, ...], ...]  # index = label

    def example_ids(self, tokenizer: Any, text: str) -> list[int]:
        """Ids of one example's part: whitespace lead, text, rest of the turn."""
        return encode_text(tokenizer, self.parts.lead + text + self.parts.tail)

    @property
    def prefix_len(self) -> int:
        """Prefix length in tokens, without any soft prompt."""
        return len(self.head_ids) + len(self.body_ids)


def encode_prompt(prompt: Prompt, tokenizer: Any, label_words: Sequence[str]) -> EncodedPrompt:
    """Tokenize a prompt's shared parts and the label words once.

    A RAW prompt starts with whatever special tokens the tokenizer adds by itself (a
    BOS for Llama-style tokenizers); a CHAT prompt's template already writes them.

    Example:
        >>> class Chars:
        ...     def __call__(self, s, add_special_tokens):
        ...         return {"input_ids": [ord(c) for c in s]}
        >>> from squeezeprompt.evaluate.prompt import Prompt, PromptFormat
        >>> enc = encode_prompt(Prompt("Q", format=PromptFormat.RAW), Chars(), ("n", "y"))
        >>> enc.label_ids
        ((32, 110), (32, 121))
    """
    if len(label_words) < 2:
        raise ValueError(f"expected at least two label words, got {tuple(label_words)!r}")
    parts = split_prompt(prompt, tokenizer, label_words)
    head_ids = encode_text(tokenizer, parts.head)
    if prompt.format is PromptFormat.RAW:
        head_ids = list(tokenizer("", add_special_tokens=True)["input_ids"]) + head_ids
    label_ids = tuple(tuple(encode_text(tokenizer, parts.answer_prefix + w)) for w in label_words)
    for word, ids in zip(label_words, label_ids, strict=True):
        if not ids:
            raise ValueError(f"label word {word!r} encodes to no tokens")
    if len(set(label_ids)) != len(label_ids):
        raise ValueError(f"label words {tuple(label_words)!r} encode to identical tokens")
    return EncodedPrompt(
        parts=parts,
        head_ids=tuple(head_ids),
        body_ids=tuple(encode_text(tokenizer, parts.body)),
        label_ids=label_ids,
    )
