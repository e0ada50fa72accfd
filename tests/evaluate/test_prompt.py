"""Prompt rendering: the split around the example text matches the whole string."""

from __future__ import annotations

import pytest

from squeezeprompt.data import Example, load_task
from squeezeprompt.evaluate import (
    Prompt,
    PromptFormat,
    PromptTemplate,
    default_prompt,
    encode_prompt,
    render_full,
    split_prompt,
)
from squeezeprompt.evaluate.encode import encode_text

WORDS = ("negative", "positive")
DEMOS = (Example("A dull, lifeless film.", 0), Example("Sheer joy from start to end.", 1))


def test_default_prompt_is_the_plain_instruction_in_the_chat_template(tokenizer) -> None:
    prompt = default_prompt(load_task())
    text = render_full(prompt, tokenizer, WORDS, "Great fun.")
    user = "Is this movie review positive or negative? Answer with one word.\n\nReview: Great fun."
    expected = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    assert text == expected
    assert text.endswith("<|im_start|>assistant\n")


def test_demonstrations_and_system_are_rendered(tokenizer) -> None:
    prompt = Prompt("Sentiment?", demonstrations=DEMOS, system="Be brief.")
    text = render_full(prompt, tokenizer, WORDS, "Meh.")
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert (
        "Sentiment?\n\nReview: A dull, lifeless film.\nAnswer: negative\n\n"
        "Review: Sheer joy from start to end.\nAnswer: positive\n\nReview: Meh.<|im_end|>"
    ) in text


@pytest.mark.parametrize("fmt", list(PromptFormat))
@pytest.mark.parametrize("demos", [(), DEMOS])
def test_split_encoding_equals_whole_encoding(tokenizer, fmt, demos) -> None:
    # Scoring encodes prefix and example separately; that must give the same tokens as
    # encoding the whole string, or cached and uncached scores would differ.
    prompt = Prompt("Is it good?", demonstrations=demos, format=fmt)
    enc = encode_prompt(prompt, tokenizer, WORDS)
    for ex in load_task().dev[:50]:
        whole = render_full(prompt, tokenizer, WORDS, ex.text)
        if fmt is PromptFormat.CHAT:
            expected = encode_text(tokenizer, whole)
        else:
            expected = tokenizer(whole, add_special_tokens=True)["input_ids"]
        got = list(enc.head_ids + enc.body_ids) + enc.example_ids(tokenizer, ex.text)
        assert got == expected


def test_raw_format_scores_words_after_a_space(tokenizer) -> None:
    parts = split_prompt(Prompt("Q?", format=PromptFormat.RAW), tokenizer, WORDS)
    assert parts.head == "" and parts.tail == "\nAnswer:" and parts.answer_prefix == " "


def test_template_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match=r"\{demonstrations\} exactly once"):
        PromptTemplate(user="{instruction} {text}")
    with pytest.raises(ValueError, match=r"after \{instruction\}"):
        PromptTemplate(user="{text} {instruction}{demonstrations}")
    with pytest.raises(ValueError, match=r"\{label\}"):
        PromptTemplate(demonstration="{text}")
    with pytest.raises(TypeError, match="PromptFormat"):
        Prompt("x", format="chat")  # type: ignore[arg-type]


def test_chat_needs_a_chat_template(tokenizer) -> None:
    bare = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer)
    with pytest.raises(ValueError, match="chat template"):
        split_prompt(Prompt("x"), bare, WORDS)


def test_label_words_must_differ(tokenizer) -> None:
    with pytest.raises(ValueError, match="identical"):
        encode_prompt(Prompt("x"), tokenizer, ("yes", "yes"))
