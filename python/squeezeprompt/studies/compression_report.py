"""The compression study's outputs: one result per row, a Markdown table, JSON and a PNG.

:func:`row_result` reduces one pipeline run's stage metrics to the figures before and
after recovery; the writers below only format those results.

Example:
    >>> stages = [
    ...     {"stage": "dense", "seconds": 5.0, "metrics": {"perplexity": {"perplexity": 20.0}}},
    ...     {"stage": "quantize", "seconds": 3.0, "metrics": {"perplexity": {"perplexity": 30.0}}},
    ...     {"stage": "recover", "seconds": 9.0, "metrics": {"perplexity": {"perplexity": 25.0}}}]
    >>> r = row_result(stages)
    >>> r["before"]["perplexity"], r["after"]["perplexity"], r["seconds"]
    (30.0, 25.0, {'compress': 3.0, 'recover': 9.0})
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from squeezeprompt.pipeline.store import write_bytes_atomic
from squeezeprompt.studies.compression_checks import Check, recovered_share

COMPRESSING = ("prune", "quantize")


def _figures(metrics: dict[str, Any]) -> dict[str, Any]:
    """The table's numbers from one stage's measurements (absent ones are None)."""
    ppl = metrics.get("perplexity") or {}
    acc = metrics.get("accuracy") or {}
    size = metrics.get("size") or {}
    return {
        "perplexity": ppl.get("perplexity"),
        "accuracy": acc.get("accuracy"),
        "ci_low": acc.get("ci_low"),
        "ci_high": acc.get("ci_high"),
        "n": acc.get("n"),
        "bytes": size.get("bytes"),
        "bits_per_weight": size.get("bits_per_weight"),
    }


def row_result(stage_metrics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Figures after the last prune/quantize stage (the dense ones for the dense row) and
    after the recover stage (None if the run has none), with the seconds each part took.

    Example: see the module docstring.
    """
    by_stage = {m["stage"]: m for m in stage_metrics}
    compressed = [m for m in stage_metrics if m["stage"] in COMPRESSING]
    before = compressed[-1] if compressed else by_stage["dense"]
    after = by_stage.get("recover")
    # The dense stage is shared by every row (measured once): only the dense row's cost.
    own = [m for m in stage_metrics if m["stage"] != "dense"] or list(stage_metrics)
    recover_s = after["seconds"] if after else 0.0
    return {
        "before": _figures(before["metrics"]),
        "after": None if after is None else _figures(after["metrics"]),
        "seconds": {
            "compress": sum(m["seconds"] for m in own) - recover_s,
            "recover": recover_s,
        },
    }


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _acc(f: dict[str, Any] | None) -> str:
    if not f or f["accuracy"] is None:
        return "–"
    return f"{f['accuracy']:.3f} [{f['ci_low']:.3f}, {f['ci_high']:.3f}]"


def _mb(f: dict[str, Any] | None) -> str:
    return "–" if not f or f["bytes"] is None else f"{f['bytes'] / 1e6:.1f}"


def _closed(dense: dict[str, Any] | None, row: dict[str, Any]) -> str:
    b, a = row["before"]["perplexity"], (row["after"] or {}).get("perplexity")
    if dense is None or b is None or a is None:
        return "–"
    share = recovered_share(dense["before"]["perplexity"], b, a)
    return "no gap" if share is None else f"{100 * share:.0f}%"


def markdown(rows: Sequence[dict[str, Any]], checks: Sequence[Check], caption: str) -> str:
    """The results table, its caption, and one line per acceptance check.

    Example:
        >>> row = {"key": "dense", "label": "dense fp32", "after": None,
        ...        "seconds": {"compress": 60.0, "recover": 0.0},
        ...        "before": {"perplexity": 20.0, "accuracy": 0.7, "ci_low": 0.6,
        ...                   "ci_high": 0.8, "bytes": 5e8}}
        >>> print(markdown([row], [], "Caption.").splitlines()[4])
        | dense fp32 | 500.0 | 20.00 | 0.700 [0.600, 0.800] | – | – | – | 1.0 |
    """
    dense = next((r for r in rows if r["key"] == "dense"), None)
    lines = [
        caption.strip(),
        "",
        "| compression | MB | perplexity | accuracy [95% CI] | perplexity after recovery "
        "| accuracy after recovery [95% CI] | perplexity gap closed | minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b, a = r["before"], r["after"]
        if a is not None and a["bytes"] != b["bytes"]:
            raise ValueError(f"{r['key']}: recovery changed the model's size; show both")
        minutes = sum(r["seconds"].values()) / 60
        lines.append(
            f"| {r['label']} | {_mb(b)} | {_num(b['perplexity'], '.2f')} | {_acc(b)} "
            f"| {_num((a or {}).get('perplexity'), '.2f')} | {_acc(a)} | {_closed(dense, r)} "
            f"| {minutes:.1f} |"
        )
    if checks:
        lines += ["", "Acceptance checks:", ""]
        lines += [f"- **{c.mark}** {c.name}: {c.detail}" for c in checks]
    return "\n".join(lines) + "\n"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Indented JSON, written atomically.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "r.json"; write_json(p, {"a": 1}); p.read_text()
        '{\\n  "a": 1\\n}\\n'
    """
    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def write_plot(path: Path, rows: Sequence[dict[str, Any]], title: str) -> None:
    """Perplexity (log scale) against model MB: hollow before recovery, filled after,
    an arrow between them.

    Example:
        >>> import tempfile
        >>> row = {"key": "dense", "label": "dense", "after": None,
        ...        "before": {"perplexity": 20.0, "bytes": 5e8}}
        >>> p = Path(tempfile.mkdtemp()) / "p.png"; write_plot(p, [row], "t"); p.stat().st_size > 0
        True
    """
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(rows):
        b, a = r["before"], r["after"]
        if b["perplexity"] is None or b["bytes"] is None:
            continue
        color = colors[i % len(colors)]
        x0, y0 = b["bytes"] / 1e6, b["perplexity"]
        marker = "*" if r["key"] == "dense" else "o"
        ax.scatter([x0], [y0], s=90, marker=marker, facecolors="none", edgecolors=color)
        if a is not None and a["perplexity"] is not None:
            x1, y1 = a["bytes"] / 1e6, a["perplexity"]
            ax.scatter([x1], [y1], s=40, color=color, label=r["label"])
            ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": color})
        else:
            ax.scatter([], [], s=40, marker=marker, color=color, label=r["label"])
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("model size (MB)")
    ax.set_ylabel("held-out perplexity (log scale)")
    ax.set_title(f"{title}\nhollow: before recovery, filled: after recovery")
    ax.legend(fontsize=7, loc="best")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
