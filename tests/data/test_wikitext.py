"""Wikitext cleaning on hand-written snippets with known plain text."""

from __future__ import annotations

import pytest

from squeezeprompt.data.wikitext import wikitext_to_plain


@pytest.mark.parametrize(
    ("markup", "plain"),
    [
        ("{{Infobox|a={{nested|b}}}}Text", "Text"),
        ("'''Bold''' and ''italic''", "Bold and italic"),
        ("[[Paris|the capital]] of [[France]]", "the capital of France"),
        ("A[[File:x.png|thumb|a [[caption]] link]]B", "AB"),
        ("End.[[Category:Things]][[de:Ding]]", "End."),
        ("Fact.<ref name=a>Source {{cite}}</ref> More.<ref name=b/>", "Fact. More."),
        ("x<!-- hidden -->y", "xy"),
        ("== History ==\nBody", "History\nBody"),
        ("* one\n# two", "one\ntwo"),
        ("[http://example.com Example site] here", "Example site here"),
        ("{| class=wikitable\n|a||b\n|}\nAfter", "After"),
        ("AT&amp;amp;T&amp;nbsp;Corp", "AT&T Corp"),
        ("a<sub>2</sub>b", "a2b"),
    ],
)
def test_markup_to_plain(markup: str, plain: str) -> None:
    assert wikitext_to_plain(markup) == plain
