"""The per-layer loss as a Markdown table and a PNG plot.

Example:
    >>> rows = [LayerLoss("model.layers.0.mlp.up_proj", 0, "up_proj", "Int4WeightOnlyLinear",
    ...                   20.0, 18.5, 0.0141, 1.0)]
    >>> print(to_markdown(rows).splitlines()[2])
    | model.layers.0.mlp.up_proj | Int4WeightOnlyLinear | 20.00 | 18.50 | 0.0141 | 100.0% |
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

from squeezeprompt.analysis.layer_loss import LayerLoss


def _db(value: float) -> str:
    return "∞" if math.isinf(value) and value > 0 else f"{value:.2f}"


def worst(rows: Sequence[LayerLoss], n: int) -> list[LayerLoss]:
    """The ``n`` layers with the largest single-layer KL when every row has one, else the
    largest error share (ties: module order).

    Example:
        >>> a = LayerLoss("a", 0, "a", "L", 30.0, 30.0, 0.001, 0.1)
        >>> b = LayerLoss("b", 0, "b", "L", 10.0, 10.0, 0.1, 0.9)
        >>> [r.name for r in worst([a, b], 1)]
        ['b']
    """
    by_kl = bool(rows) and all(r.kl is not None for r in rows)
    order = sorted(range(len(rows)), key=lambda i: (-(rows[i].kl if by_kl else rows[i].share), i))
    return [rows[i] for i in order[:n]]


def to_markdown(rows: Sequence[LayerLoss]) -> str:
    """A GitHub Markdown table, one line per layer in the order given (a KL column when
    any row has one).

    Example: see the module docstring.
    """
    with_kl = any(r.kl is not None for r in rows)
    lines = [
        "| layer | type | weight SQNR (dB) | output SQNR (dB) | relative output error "
        "| error share |" + (" KL, only this layer (nats/token) |" if with_kl else ""),
        "|---|---|---|---|---|---|" + ("---|" if with_kl else ""),
    ]
    for r in rows:
        kl = "" if not with_kl else " – |" if r.kl is None else f" {r.kl:.4g} |"
        lines.append(
            f"| {r.name} | {r.layer_type} | {_db(r.weight_sqnr_db)} | {_db(r.output_sqnr_db)} "
            f"| {r.relative_error:.4g} | {100 * r.share:.1f}% |{kl}"
        )
    return "\n".join(lines) + "\n"


def layer_loss_png(rows: Sequence[LayerLoss], title: str = "per-layer loss") -> bytes:
    """PNG bytes: output SQNR per layer (bars, coloured by projection, weight SQNR as dots)
    above each layer's error share, layers in module order with block boundaries marked.

    Identical layers (infinite SQNR) are drawn as hollow bars at the top of the scale.

    Example:
        >>> layer_loss_png([LayerLoss("fc", None, "fc", "L", 12.0, 11.0, 0.08, 1.0)])[:4]
        b'\\x89PNG'
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    kinds = list(dict.fromkeys(r.kind for r in rows))
    cmap = plt.get_cmap("tab10")
    colour = {k: cmap(i % 10) for i, k in enumerate(kinds)}
    finite = [v for r in rows for v in (r.output_sqnr_db, r.weight_sqnr_db) if math.isfinite(v)]
    top = (max(finite) if finite else 0.0) + 5.0
    xs = range(len(rows))
    fig, (ax, ax_share) = plt.subplots(
        2,
        1,
        figsize=(max(6.0, 0.06 * len(rows) + 3), 6),
        sharex=True,
        gridspec_kw={"height_ratios": [2, 1]},
    )
    for x, r in zip(xs, rows, strict=True):
        identical = math.isinf(r.output_sqnr_db)
        ax.bar(
            x,
            top if identical else r.output_sqnr_db,
            width=0.8,
            color="none" if identical else colour[r.kind],
            edgecolor=colour[r.kind],
        )
        ax_share.bar(x, 100 * r.share, width=0.8, color=colour[r.kind])
    weight = [min(r.weight_sqnr_db, top) for r in rows]
    ax.plot(list(xs), weight, "k.", markersize=3, label="weight SQNR")
    starts = _block_starts(rows)
    for ax_ in (ax, ax_share):
        for x in starts[1:]:
            ax_.axvline(x - 0.5, color="0.8", linewidth=0.5)
    if any(r.block is not None for r in rows):
        step = max(1, len(starts) // 16)  # at most ~16 tick labels
        ticks = starts[::step]
        names = [r.kind if r.block is None else str(r.block) for r in (rows[i] for i in ticks)]
        ax_share.set_xticks(ticks, names)
        ax_share.set_xlabel("decoder block (grey lines separate blocks)")
    else:
        ax_share.set_xlabel("layer (module order)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[k]) for k in kinds]
    labels = list(kinds)
    if any(math.isinf(r.output_sqnr_db) for r in rows):
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="none", edgecolor="0.3"))
        labels.append("identical (∞ dB)")
    ax.legend(
        [*handles, ax.lines[0]],
        [*labels, "weight SQNR"],
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    ax.set_ylabel("output SQNR (dB)")
    ax.set_title(title)
    ax_share.set_ylabel("error share (%)")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _block_starts(rows: Sequence[LayerLoss]) -> list[int]:
    return [i for i, r in enumerate(rows) if i == 0 or r.block != rows[i - 1].block]


def plot_layer_loss(
    rows: Sequence[LayerLoss], path: str | os.PathLike[str], title: str = "per-layer loss"
) -> Path:
    """Writes :func:`layer_loss_png` to ``path`` (parents created); returns the path.

    Example:
        >>> import tempfile
        >>> row = LayerLoss("fc", None, "fc", "L", 12.0, 11.0, 0.08, 1.0)
        >>> plot_layer_loss([row], Path(tempfile.mkdtemp()) / "p.png").name
        'p.png'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(layer_loss_png(rows, title))
    return path
