"""Turn MediaWiki markup into plain prose (pure string functions).

Good enough for perplexity and calibration text, not a full wikitext parser: templates,
tables, references, comments, files, categories and HTML tags are removed; links keep
their visible text; headings keep their title; bold/italic quotes and list bullets go.
"""

from __future__ import annotations

import html
import re

_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_REF_BLOCK = re.compile(r"<ref[^>/]*>.*?</ref>", re.DOTALL | re.IGNORECASE)
_REF_EMPTY = re.compile(r"<ref[^>]*/>", re.IGNORECASE)
_DROP_TAG_BLOCKS = re.compile(
    r"<(math|gallery|timeline|syntaxhighlight|source|score|imagemap)[^>]*>.*?</\1>",
    re.DOTALL | re.IGNORECASE,
)
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
# Namespaces whose links are not prose: images, categories, interwiki language links.
_NON_PROSE_LINK = re.compile(r"^\s*(file|image|category|media|[a-z]{2,3}(-[a-z]+)?)\s*:", re.I)
_EXTERNAL_LINK = re.compile(r"\[(?:https?:)?//[^\s\]]+\s*([^\]]*)\]")
_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$", re.MULTILINE)
_QUOTES = re.compile(r"'{2,}")
_LIST_MARK = re.compile(r"^[*#:;]+\s*", re.MULTILINE)
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACE_RUNS = re.compile(r"[ \t]{2,}")


def _strip_nested(text: str, open_mark: str, close_mark: str) -> str:
    """Remove every (possibly nested) ``open_mark ... close_mark`` span.

    Templates nest (``{{a|{{b}}}}``), which a regular expression cannot match, so walk
    the string once keeping a depth counter. An unbalanced opener drops the rest.

    Example:
        >>> _strip_nested("a{{b|{{c}}}}d", "{{", "}}")
        'ad'
    """
    out: list[str] = []
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        if text.startswith(open_mark, i):
            depth += 1
            i += len(open_mark)
        elif depth and text.startswith(close_mark, i):
            depth -= 1
            i += len(close_mark)
        else:
            if depth == 0:
                out.append(text[i])
            i += 1
    return "".join(out)


def _replace_links(text: str) -> str:
    """``[[target|shown]]`` -> ``shown``; ``[[target]]`` -> ``target``; drop files etc.

    File links can contain links in their captions, so resolve innermost links first.

    Example:
        >>> _replace_links("see [[Paris|the capital]] and [[France]][[Category:X]]")
        'see the capital and France'
    """
    inner = re.compile(r"\[\[([^\[\]]*)\]\]")

    def visible(match: re.Match[str]) -> str:
        body = match.group(1)
        if _NON_PROSE_LINK.match(body):
            return ""
        return body.rsplit("|", 1)[-1]

    while True:
        new = inner.sub(visible, text)
        if new == text:
            return new
        text = new


def wikitext_to_plain(text: str) -> str:
    """Plain prose from one article's wikitext.

    Example:
        >>> wikitext_to_plain("{{Infobox|x=1}}'''Anarchism''' is a [[political philosophy|"
        ...                   "philosophy]].<ref>Cite</ref>\\n== History ==\\n* Early")
        'Anarchism is a philosophy.\\nHistory\\nEarly'
    """
    text = html.unescape(text)  # dumps escape twice: &amp;nbsp; -> &nbsp; -> space
    text = html.unescape(text).replace("\xa0", " ")
    text = _COMMENT.sub("", text)
    text = _REF_BLOCK.sub("", text)
    text = _REF_EMPTY.sub("", text)
    text = _DROP_TAG_BLOCKS.sub("", text)
    text = _strip_nested(text, "{{", "}}")
    text = _strip_nested(text, "{|", "|}")
    text = _replace_links(text)
    text = _EXTERNAL_LINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _HEADING.sub(r"\2", text)
    text = _QUOTES.sub("", text)
    text = _LIST_MARK.sub("", text)
    text = _MAGIC_WORD.sub("", text)
    text = _SPACE_RUNS.sub(" ", text)
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return _BLANK_RUNS.sub("\n\n", text).strip()
