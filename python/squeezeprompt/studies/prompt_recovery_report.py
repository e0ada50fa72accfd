"""The table of the prompt-recovery study (Markdown + JSON) from its cached steps.

Example:
    >>> gap_closed(dense=0.7, compressed=0.5, recovered=0.6)
    0.5
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROWS = (
    ("dense_default", "dense, default prompt"),
    ("compressed_default", "compressed, default prompt"),
    ("compressed_searched", "compressed, searched prompt"),
    ("compressed_searched_soft", "compressed, searched prompt + soft prompt (labels)"),
    ("compressed_default_deep", "compressed, default prompt + deep prompt (labels)"),
)
OPTIONAL_ROWS = {"compressed_default_deep"}  # only with --deep-tokens: no "not run" line
PPL_ROWS = (
    ("ppl_dense", "dense"),
    ("ppl_compressed", "compressed"),
    ("ppl_compressed_soft", "compressed + soft prompt (teacher KL)"),
)


def gap_closed(dense: float, compressed: float, recovered: float) -> float | None:
    """Share of ``dense - compressed`` that ``recovered`` wins back (None: no gap).

    Example: see the module docstring.
    """
    gap = dense - compressed
    return None if gap <= 0 else (recovered - compressed) / gap


def _load(root: Path) -> dict[str, Any]:
    steps = {}
    for path in sorted((root / "steps").glob("*.json")):
        steps[path.stem] = json.loads(path.read_text())
    return steps


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def _accuracy_table(steps: dict[str, Any]) -> list[str]:
    lines = [
        "| model and prompt | accuracy [95% CI] | n | share of gap closed | minutes |",
        "|---|---|---|---|---|",
    ]
    dense = steps.get("dense_default", {}).get("accuracy")
    base = steps.get("compressed_default", {}).get("accuracy")
    for key, label in ROWS:
        r = steps.get(key)
        if r is None and key in OPTIONAL_ROWS:
            continue
        if r is None:
            lines.append(f"| {label} | not run | | | |")
            continue
        share = None
        if dense is not None and base is not None and key.startswith("compressed_"):
            share = gap_closed(dense, base, r["accuracy"])
        minutes = f"{r['minutes']:.1f}"
        if "same_as" in r:  # the search kept the default prompt: not scored again
            minutes = f"same prompt as {r['same_as']}"
        lines.append(
            f"| {label} | {r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
            f"| {r['n']} | {_fmt(share, '.0%')} | {minutes} |"
        )
    return lines


def _ppl_table(steps: dict[str, Any]) -> list[str]:
    lines = ["| model | held-out perplexity | tokens | minutes |", "|---|---|---|---|"]
    for key, label in PPL_ROWS:
        r = steps.get(key)
        if r is None:
            lines.append(f"| {label} | not run | | |")
        else:
            lines.append(
                f"| {label} | {r['perplexity']:.2f} | {r['tokens']} | {r['minutes']:.1f} |"
            )
    return lines


def _search_lines(stage: dict[str, Any]) -> list[str]:
    s = stage["summary"]
    strategy = stage.get("inputs", {}).get("search", {}).get("search", "beam")
    return [
        "",
        f"Search: {strategy}, {s['calls_used']} scored dev examples of a budget of "
        f"{s['budget']} ({s['rounds']} rounds after the first screen, stopped: {s['stop']}, "
        f"{stage['minutes']:.1f} min); dev accuracy {s['default_score']:.3f} (default) -> "
        f"{s['score']:.3f} (best).",
        f"Winning prompt: instruction {s['best']['instruction']!r}, "
        f"demonstrations (train indices) {s['best']['demos']}.",
    ]


def _soft_line(soft: dict[str, Any], minutes: float | None) -> str:
    took = "" if minutes is None else f", {minutes:.1f} min"
    return (
        f"Soft prompt (labels): {soft['tokens']} tokens initialised from "
        f"{soft.get('init', 'the default instruction')}, {soft['steps']} Adam steps of "
        f"{soft['batch_size']} train reviews, lr {soft['lr']}; dev label loss "
        f"{soft['heldout_loss_without']:.3f} without, {soft['heldout_loss_with']:.3f} with it"
        f"{took}."
    )


def _details(steps: dict[str, Any]) -> list[str]:
    out = []
    stage = steps.get("prompt_search", steps.get("prompt_stage"))
    if stage is not None:
        out += _search_lines(stage)
    soft = steps.get("soft_labels")
    if soft is not None:
        out.append(_soft_line(soft["summary"], soft["minutes"]))
    elif stage is not None and "soft_prompt" in stage["summary"]:
        out.append(_soft_line(stage["summary"]["soft_prompt"], None))
    deep = steps.get("deep_labels")
    if deep is not None:
        d = deep["summary"]
        out.append(
            f"Deep prompt (labels): {d['tokens']} virtual positions x every layer's keys and "
            f"values ({d['parameters']} numbers) initialised from what the model computes for "
            f"{d['init']}, placed before the chat head; {d['steps']} Adam steps of "
            f"{d['batch_size']} train reviews, lr {d['lr']}, default prompt on top; dev label "
            f"loss {d['heldout_loss_without']:.3f} without, {d['heldout_loss_at_init']:.3f} at "
            f"its start, {d['heldout_loss_with']:.3f} trained ({deep['minutes']:.1f} min)."
        )
    teacher = steps.get("teacher_soft")
    if teacher is not None:
        t = teacher["summary"]
        out.append(
            f"Soft prompt (teacher): {t['tokens']} tokens, {t['steps']} steps of "
            f"{t['batch_size']} calibration windows, lr {t['lr']}; KL to dense on held-back "
            f"calibration windows {t['heldout_loss_without']:.3f} without, "
            f"{t['heldout_loss_with']:.3f} with it ({teacher['minutes']:.1f} min)."
        )
    return out


def load_sweep(root: Path) -> list[dict[str, Any]]:
    """The deep-prompt dev runs of ``prompt_recovery_deep`` (``root/deep_sweep.jsonl``)."""
    path = root / "deep_sweep.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sweep_table(runs: list[dict[str, Any]]) -> list[str]:
    """One line per dev run: settings, dev label CE / accuracy / share "positive" at its
    end, and the dev accuracy at each checkpoint (how much it swings).

    Example:
        >>> run = {"tokens": 8, "lr": 0.003, "steps": 20, "dev": 128, "minutes": 1.0,
        ...        "curve": [{"step": 0, "ce": 0.7, "accuracy": 0.6, "positive": 1.0},
        ...                  {"step": 20, "ce": 0.6, "accuracy": 0.7, "positive": 0.5}]}
        >>> sweep_table([run])[-1]
        '| 8 | 0.003 | constant | 20 | 0.600 | 0.700 | 50% | 0.60 0.70 | 1.0 |'
    """
    if not runs:
        return []
    every = runs[0]["curve"][1]["step"] if len(runs[0]["curve"]) > 1 else 0
    lines = [
        "",
        f"Deep-prompt dev runs (`prompt_recovery_deep`; first {runs[0]['dev']} dev reviews, "
        "batches of 8 train reviews, default prompt on top, seed 0; the test split was not "
        f"used). Figures at the end of each run; the curve is dev accuracy every {every} "
        "steps from the start:",
        "",
        "| P | lr | schedule | steps | dev CE | dev acc | predicts positive "
        "| dev acc curve | minutes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        end = r["curve"][-1]
        curve = " ".join(f"{p['accuracy']:.2f}" for p in r["curve"])
        lines.append(
            f"| {r['tokens']} | {r['lr']:g} | {r.get('schedule', 'constant')} | {r['steps']} "
            f"| {end['ce']:.3f} | {end['accuracy']:.3f} | {end['positive']:.0%} | {curve} "
            f"| {r['minutes']:.1f} |"
        )
    return lines


NOTES = "prompt_recovery_notes.md"


def _notes(docs: Path) -> list[str]:
    """``docs/prompt_recovery_notes.md`` verbatim: what was tried outside the cached steps,
    by hand (kept beside the results, under version control, so a rerun keeps it)."""
    path = docs / NOTES
    return [path.read_text().rstrip(), ""] if path.is_file() else []


def write_report(root: Path, docs: Path, recipe: Any) -> Path:
    """Write ``prompt_recovery.md`` and ``.json`` into ``docs`` (and the JSON into ``root``).

    Example (needs a finished study):
        >>> write_report(Path("runs/prompt"), Path("docs/results"), recipe)  # doctest: +SKIP
    """
    steps = _load(root)
    sweep = load_sweep(root)
    data = {
        "recipe": recipe.to_dict(),
        "steps": {k: {kk: vv for kk, vv in v.items() if kk != "state"} for k, v in steps.items()},
        "deep_sweep": [{k: v for k, v in r.items() if k != "train_losses"} for r in sweep],
    }
    text = "\n".join(
        [
            "# Prompt recovery on SmolLM2-135M-Instruct (Wanda 50% + int4 g64 RTN)",
            "",
            "Rotten Tomatoes test split (never used for selection or training), label-word "
            "likelihood, 95% Wilson intervals. Gap = dense default minus compressed default.",
            "int4 uses group 64: the hidden size 576 is no multiple of 128, so g128 is "
            "impossible on most layers. Minutes are wall time on the shared 2-core "
            "development machine (torch on 1 thread, other jobs running).",
            "",
            *_accuracy_table(steps),
            *_details(steps),
            *sweep_table(sweep),
            "",
            "Held-out Wikipedia perplexity:",
            "",
            *_ppl_table(steps),
            "",
            "Reproduce: `python -m squeezeprompt.studies.prompt_recovery --out runs/prompt "
            "--threads 1` (the same stages as `recipe.yaml`, evaluated only where the table "
            "needs it; the deep prompt row comes from `--deep-tokens`, `--deep-steps`, "
            "`--deep-lr`, `--deep-schedule`, whose defaults are the settings chosen on dev).",
            "",
            *_notes(docs),
        ]
    )
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "prompt_recovery.md").write_text(text)
    blob = json.dumps(data, indent=2) + "\n"
    (docs / "prompt_recovery.json").write_text(blob)
    (root / "report.json").write_text(blob)
    return docs / "prompt_recovery.md"
