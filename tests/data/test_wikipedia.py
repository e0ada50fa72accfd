"""Wikipedia corpus: parsing and the fixed calibration / held-out split."""

from __future__ import annotations

from squeezeprompt.data import load_wikipedia
from squeezeprompt.data.splits import stable_hash
from squeezeprompt.data.text import HELDOUT_FRACTION, read_articles


def test_articles_are_parsed_as_plain_prose() -> None:
    articles = read_articles()
    assert len(articles) == 106  # non-redirect main-namespace pages in gensim 4.4.0
    assert len({a.title for a in articles}) == len(articles)
    body = "\n".join(a.text for a in articles)
    for markup in ("{{", "}}", "[[Category:", "<ref", "'''", "\n=="):
        assert markup not in body
    assert articles[0].title == "Anarchism"
    assert articles[0].text.startswith("Anarchism is a political philosophy")


def test_split_is_disjoint_and_covers_every_article() -> None:
    wiki = load_wikipedia()
    assert set(wiki.calibration_titles).isdisjoint(wiki.heldout_titles)
    assert set(wiki.calibration).isdisjoint(wiki.heldout)
    titles = set(wiki.calibration_titles) | set(wiki.heldout_titles)
    assert titles == {a.title for a in read_articles()}
    assert len(wiki.heldout) == 27 == round(len(titles) * HELDOUT_FRACTION + 0.5)


def test_split_is_defined_by_title_hash() -> None:
    wiki = load_wikipedia()
    worst_heldout = max(stable_hash(t) for t in wiki.heldout_titles)
    assert all(stable_hash(t) > worst_heldout for t in wiki.calibration_titles)
    assert "Animal Farm" in wiki.heldout_titles  # pinned so a change is noticed


def test_heldout_text_is_large_enough_for_perplexity() -> None:
    wiki = load_wikipedia()
    assert sum(map(len, wiki.heldout)) > 500_000  # characters, ~ 120k tokens
