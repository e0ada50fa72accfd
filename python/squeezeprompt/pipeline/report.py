"""The run report: one row per stage as JSON, a Markdown table and PNG plots.

Derived figures (pure functions of the stage metrics, tested on their own):

* decode speed-up: tokens/s of the stage over the dense baseline's;
* recovery share: accuracy lost to compression is ``dense - after the last prune or
  quantize stage``; each later stage's gain over the stage before it is reported as a
  share of that loss (1.0 = the whole gap closed). The same for perplexity, in log space.

Stages that changed the weights also carry a per-layer loss (``metrics.layers``, see
:mod:`squeezeprompt.pipeline.layer_measure`): ``report.md`` lists each one's worst layers
(all of them in a folded table), ``plots/layer_loss_<NN-stage>.png`` draws them, and
``report.json`` keeps every row under ``stages[i].metrics.layers.rows``.

Example:
    >>> rows = report_rows([
    ...     {"stage": "dense", "metrics": {"size": {"bytes": 100, "bits_per_weight": 32.0},
    ...                                    "accuracy": {"accuracy": 0.7}}},
    ...     {"stage": "quantize", "metrics": {"size": {"bytes": 25, "bits_per_weight": 4.5},
    ...                                       "accuracy": {"accuracy": 0.5}}},
    ...     {"stage": "prompt", "metrics": {"size": {"bytes": 25, "bits_per_weight": 4.5},
    ...                                     "accuracy": {"accuracy": 0.65}}}])
    >>> [round(r["accuracy_recovered_share"], 2) for r in rows if r["stage"] == "prompt"]
    [0.75]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from squeezeprompt.analysis import LayerLoss, layer_loss_png, to_markdown, worst
from squeezeprompt.pipeline.plot_labels import annotate_points
from squeezeprompt.pipeline.store import stage_dir_name, write_bytes_atomic, write_json_atomic

COMPRESSING = ("prune", "quantize")  # stages that lose accuracy; later ones win it back
WORST_LAYERS = 10  # per stage, in report.md's visible table
LAYER_HEADING = "## Where accuracy was lost, layer by layer"


def _get(metrics: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(metrics, dict) or k not in metrics:
            return None
        metrics = metrics[k]
    return metrics


def _gap_shares(values: list[float | None], stages: list[str]) -> list[float | None]:
    """Share of the compression loss in ``values`` that each recovery stage won back."""
    last_compress = max((i for i, s in enumerate(stages) if s in COMPRESSING), default=None)
    shares: list[float | None] = [None] * len(values)
    if last_compress is None or values[0] is None or values[last_compress] is None:
        return shares
    lost = values[0] - values[last_compress]
    if lost <= 0:
        return shares  # nothing was lost; a share of nothing means nothing
    for i in range(last_compress + 1, len(values)):
        if values[i] is not None and values[i - 1] is not None:
            shares[i] = (values[i] - values[i - 1]) / lost
    return shares


def report_rows(stage_metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per stage with the derived figures.

    Example: see the module docstring.
    """
    stages = [m["stage"] for m in stage_metrics]
    ms = [m["metrics"] for m in stage_metrics]
    acc = [_get(m, "accuracy", "accuracy") for m in ms]
    ppl = [_get(m, "perplexity", "perplexity") for m in ms]
    neg_log_ppl = [None if p is None else -math.log(p) for p in ppl]
    acc_share = _gap_shares(acc, stages)
    ppl_share = _gap_shares(neg_log_ppl, stages)
    base_speed = _get(ms[0], "decode", "tokens_per_s") if ms else None
    rows = []
    for i, m in enumerate(ms):
        speed = _get(m, "decode", "tokens_per_s")
        rows.append(
            {
                "stage": stages[i],
                "bytes": _get(m, "size", "bytes"),
                "bits_per_weight": _get(m, "size", "bits_per_weight"),
                "perplexity": ppl[i],
                "accuracy": acc[i],
                "accuracy_ci": [_get(m, "accuracy", "ci_low"), _get(m, "accuracy", "ci_high")],
                "accuracy_n": _get(m, "accuracy", "n"),
                "tokens_per_s": speed,
                "decode_speedup": speed / base_speed if speed and base_speed else None,
                "accuracy_recovered_share": acc_share[i],
                "perplexity_recovered_share": ppl_share[i],
            }
        )
    return rows


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    return "–" if value is None else format(value, spec) + unit


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a GitHub Markdown table.

    Example:
        >>> print(markdown_table([{"stage": "dense", "bytes": 2e6, "bits_per_weight": 32.0,
        ...     "perplexity": None, "accuracy": None, "accuracy_ci": [None, None],
        ...     "decode_speedup": 1.0, "accuracy_recovered_share": None}]).splitlines()[2])
        | dense | 2.00 | 32.00 | – | – | 1.00× | – |
    """
    lines = [
        "| stage | MB | bits/weight | perplexity | accuracy [95% CI] | decode speed-up "
        "| accuracy gap won back |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["accuracy_ci"]
        acc = "–" if r["accuracy"] is None else f"{r['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"
        share = r["accuracy_recovered_share"]
        lines.append(
            f"| {r['stage']} | {_fmt(r['bytes'] and r['bytes'] / 1e6, '.2f')} "
            f"| {_fmt(r['bits_per_weight'], '.2f')} | {_fmt(r['perplexity'], '.3f')} | {acc} "
            f"| {_fmt(r['decode_speedup'], '.2f', '×')} "
            f"| {'–' if share is None else f'{100 * share:.0f}%'} |"
        )
    return "\n".join(lines) + "\n"


def _plots(out: Path, rows: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    out.mkdir(exist_ok=True)
    written = []
    labels = [f"{i}:{r['stage']}" for i, r in enumerate(rows)]
    have_acc = [r for r in rows if r["accuracy"] is not None]
    if have_acc:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r["bytes"] / 1e6 for r in have_acc]
        ys = [r["accuracy"] for r in have_acc]
        err = [
            [y - r["accuracy_ci"][0] for y, r in zip(ys, have_acc, strict=True)],
            [r["accuracy_ci"][1] - y for y, r in zip(ys, have_acc, strict=True)],
        ]
        ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=3)
        ax.set_xlabel("model size (MB)")
        ax.set_ylabel("task accuracy (95% CI)")
        ax.set_title("accuracy against model size")
        ax.margins(x=0.3)  # room on the right of the last column for its labels
        fig.tight_layout()  # final axes size first: labels are placed in pixels
        annotate_points(ax, list(zip(xs, ys, strict=True)), [r["stage"] for r in have_acc])
        written.append(_save(fig, out / "accuracy_vs_size.png"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, key, title in zip(
        axes,
        ("bits_per_weight", "perplexity", "decode_speedup"),
        ("bits per weight", "perplexity", "decode speed-up (×)"),
        strict=True,
    ):
        ax.bar(labels, [r[key] or 0.0 for r in rows])
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=45)
    written.append(_save(fig, out / "stages.png"))
    return written


def layer_sections(
    stage_metrics: list[dict[str, Any]],
) -> list[tuple[str, list[LayerLoss], str | None]]:
    """``(stage label, rows, label of an earlier stage with the same weights or None)``
    for every stage that carries a per-layer loss.

    Example:
        >>> layer_sections([{"stage": "dense", "metrics": {}}])
        []
    """
    out: list[tuple[str, list[LayerLoss], str | None]] = []
    seen: dict[str, str] = {}  # digest -> first stage label with it
    for i, m in enumerate(stage_metrics):
        layers = m["metrics"].get("layers")
        if not layers:
            continue
        label = stage_dir_name(m.get("index", i), m["stage"])
        rows = [LayerLoss.from_dict(r) for r in layers["rows"]]
        out.append((label, rows, seen.get(layers["digest"])))
        seen.setdefault(layers["digest"], label)
    return out


def _layer_markdown(sections: list[tuple[str, list[LayerLoss], str | None]]) -> str:
    if not sections:
        return ""
    md = (
        f"\n{LAYER_HEADING}\n\n"
        "Each Linear against the dense model, both fed the dense model's inputs to that layer "
        "on calibration text; error share = the layer's relative output error "
        "||Y_c - Y_d||² / ||Y_d||² over the sum of all layers'.\n"
    )
    for label, rows, same_as in sections:
        md += f"\n### {label}\n\n"
        if same_as is not None:
            md += f"Same Linear weights as {same_as}.\n"
            continue
        md += (
            f"The {min(WORST_LAYERS, len(rows))} layers with the largest error share "
            f"(plot: plots/layer_loss_{label}.png):\n\n{to_markdown(worst(rows, WORST_LAYERS))}"
            f"\n<details><summary>all {len(rows)} layers</summary>\n\n{to_markdown(rows)}"
            "\n</details>\n"
        )
    return md


def _save(fig: Any, path: Path) -> Path:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return path


def write_report(out: Path, stage_metrics: list[dict[str, Any]], plots: bool = True) -> list[Path]:
    """Writes ``report.json``, ``report.md`` and (``plots``) ``plots/*.png`` into ``out``.

    Example:
        >>> import tempfile
        >>> rows = [{"stage": "dense", "metrics": {"size": {"bytes": 8, "bits_per_weight": 32.0}}}]
        >>> [p.name for p in write_report(Path(tempfile.mkdtemp()), rows, plots=False)]
        ['report.json', 'report.md']
    """
    rows = report_rows(stage_metrics)
    write_json_atomic(out / "report.json", {"rows": rows, "stages": stage_metrics})
    md = "# squeezeprompt report\n\n" + markdown_table(rows)
    prompts = [m["metrics"].get("accuracy", {}).get("instruction") for m in stage_metrics]
    if prompts and prompts[-1]:
        md += f"\nFinal prompt instruction: {prompts[-1]!r}\n"
    sections = layer_sections(stage_metrics)
    md += _layer_markdown(sections)
    write_bytes_atomic(out / "report.md", md.encode())
    paths = [out / "report.json", out / "report.md"]
    if plots and rows:
        paths += _plots(out / "plots", rows)
        for label, layer_rows, same_as in sections:
            if same_as is None:
                path = out / "plots" / f"layer_loss_{label}.png"
                write_bytes_atomic(path, layer_loss_png(layer_rows, f"per-layer loss: {label}"))
                paths.append(path)
    return paths
