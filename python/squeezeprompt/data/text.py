"""Wikipedia prose (``gensim==4.4.0`` test data) split into calibration and held-out sets.

Source: ``gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-
shortened.bz2``, a MediaWiki XML dump of 206 pages. Only main-namespace pages that are
not redirects are articles (106 of them); their wikitext becomes plain prose through
``wikitext_to_plain``, and articles whose prose is shorter than ``MIN_CHARS`` are dropped.

The split is fixed and does not depend on any seed: articles are ordered by the SHA-256
of their title, and the first quarter (rounded up) is held out for evaluation; the rest
is calibration text. A title hash keeps an article on its side even if the parser or
the filter later changes which other articles exist.

Example:
    >>> from squeezeprompt.data import load_wikipedia
    >>> wiki = load_wikipedia()
    >>> set(wiki.calibration).isdisjoint(wiki.heldout)
    True
"""

from __future__ import annotations

import bz2
import functools
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from squeezeprompt.data._files import packaged_file
from squeezeprompt.data.splits import stable_hash
from squeezeprompt.data.wikitext import wikitext_to_plain

__all__ = ["Article", "WikipediaSplits", "load_wikipedia", "read_articles"]

DISTRIBUTION = "gensim"
RELATIVE_PATH = (
    "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
)
HELDOUT_FRACTION = 0.25
MIN_CHARS = 200  # stubs shorter than this are navigation leftovers, not prose


@dataclass(frozen=True)
class Article:
    """One Wikipedia article as plain prose."""

    title: str
    text: str


@dataclass(frozen=True)
class WikipediaSplits:
    """Disjoint article sets: ``calibration`` for compression, ``heldout`` for perplexity.

    ``*_titles`` name the articles in the same order as the texts.
    """

    calibration: tuple[str, ...]
    heldout: tuple[str, ...]
    calibration_titles: tuple[str, ...]
    heldout_titles: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.calibration) != len(self.calibration_titles) or len(self.heldout) != len(
            self.heldout_titles
        ):
            raise ValueError("WikipediaSplits: every text needs exactly one title")
        overlap = set(self.calibration_titles) & set(self.heldout_titles)
        if overlap:
            raise ValueError(f"WikipediaSplits: articles on both sides: {sorted(overlap)[:5]}")


def _local(tag: str) -> str:
    """Tag name without the XML namespace (the dump's schema version varies)."""
    return tag.rsplit("}", 1)[-1]


@functools.lru_cache(maxsize=1)
def read_articles() -> tuple[Article, ...]:
    """Every article (main namespace, not a redirect) as plain prose, in dump order.

    Example:
        >>> arts = read_articles()
        >>> arts[0].title
        'Anarchism'
    """
    path = packaged_file(DISTRIBUTION, RELATIVE_PATH)
    articles: list[Article] = []
    with bz2.open(path, "rb") as f:
        for _, elem in ET.iterparse(f, events=("end",)):
            if _local(elem.tag) != "page":
                continue
            fields = {_local(child.tag): child for child in elem}
            is_article = fields["ns"].text == "0" and "redirect" not in fields
            if is_article:
                raw = next(
                    (e.text or "" for e in elem.iter() if _local(e.tag) == "text"),
                    "",
                )
                prose = wikitext_to_plain(raw)
                if len(prose) >= MIN_CHARS:
                    articles.append(Article(fields["title"].text or "", prose))
            elem.clear()  # keep memory flat while streaming the dump
    return tuple(articles)


@functools.lru_cache(maxsize=1)
def load_wikipedia() -> WikipediaSplits:
    """The fixed calibration / held-out split of the packaged Wikipedia articles.

    Example:
        >>> wiki = load_wikipedia()
        >>> len(wiki.heldout) < len(wiki.calibration)
        True
    """
    articles = sorted(read_articles(), key=lambda a: stable_hash(a.title))
    n_heldout = math.ceil(len(articles) * HELDOUT_FRACTION)
    heldout = articles[:n_heldout]
    calibration = articles[n_heldout:]
    return WikipediaSplits(
        calibration=tuple(a.text for a in calibration),
        heldout=tuple(a.text for a in heldout),
        calibration_titles=tuple(a.title for a in calibration),
        heldout_titles=tuple(a.title for a in heldout),
    )
