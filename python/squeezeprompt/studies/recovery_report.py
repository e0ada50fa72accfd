"""The recovery study's outputs: one result per cell, a Markdown table and JSON.

:func:`cell_result` reduces one pipeline run's stage records (dense, compression,
recover) to the table's figures; :func:`markdown` only formats them.

Example:
    >>> records = [
    ...     {"stage": "dense", "seconds": 5.0, "metrics": {"perplexity": {"perplexity": 20.0}}},
    ...     {"stage": "quantize", "seconds": 3.0, "metrics": {"perplexity": {"perplexity": 40.0}}},
    ...     {"stage": "recover", "seconds": 90.0, "metrics": {"perplexity": {"perplexity": 25.0}},
    ...      "summary": {"steps": 80, "lr": 1e-3}}]
    >>> r = cell_result(records)
    >>> r["before"], r["after"], r["steps"], r["minutes"], r["passed"]
    (40.0, 25.0, 80, 1.5, True)
    >>> round(r["share"], 3)
    0.678
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from squeezeprompt.studies.compression_checks import RECOVERY_SHARE, recovered_share

COMPRESSING = ("prune", "quantize")


def _ppl(record: dict[str, Any]) -> float:
    return float(record["metrics"]["perplexity"]["perplexity"])


def cell_result(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Dense, before and after perplexity, the share of the log gap closed and whether it
    is at least half; ``after`` and the recovery figures are None until recovery ran.

    Example: see the module docstring.
    """
    by_stage = {r["stage"]: r for r in records}
    before = [r for r in records if r["stage"] in COMPRESSING][-1]
    recover = by_stage.get("recover")
    dense, start = _ppl(by_stage["dense"]), _ppl(before)
    result: dict[str, Any] = {
        "dense": dense,
        "before": start,
        "after": None,
        "share": None,
        "passed": None,
        "steps": None,
        "lr": None,
        "minutes": None,
    }
    if recover is None:
        return result
    summary = recover["summary"]
    after = _ppl(recover)
    share = recovered_share(dense, start, after)
    result.update(
        after=after,
        share=share,
        passed=None if share is None else share >= RECOVERY_SHARE,
        steps=summary["steps"],
        lr=summary["lr"],
        minutes=recover["seconds"] / 60,
    )
    return result


def _num(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "–"}[passed]


def markdown(results: Sequence[dict[str, Any]], caption: str) -> str:
    """The results table under ``caption`` (rows in the order given).

    Example:
        >>> row = {"start_label": "int4", "method": "lora", "steps": 80, "lr": 1e-3,
        ...        "dense": 20.0, "before": 40.0, "after": 25.0, "share": 0.678,
        ...        "minutes": 1.5, "passed": True}
        >>> markdown([row], "# t").splitlines()[-1]
        '| int4 | lora | 80 | 0.001 | 40.00 | 25.00 | 20.00 | 68% | 1.5 | PASS |'
    """
    head = (
        "| start | method | steps | lr | ppl before | ppl after | dense | log gap closed "
        "| minutes | ≥ half |"
    )
    lines = [caption, "", head, "|" + "---|" * 10]
    for r in results:
        share = None if r["share"] is None else 100 * r["share"]
        lines.append(
            f"| {r['start_label']} | {r['method']} | {_num(r['steps'], 'd')} "
            f"| {_num(r['lr'], 'g')} | {r['before']:.2f} | {_num(r['after'], '.2f')} "
            f"| {r['dense']:.2f} | {_num(share, '.0f')}{'%' if share is not None else ''} "
            f"| {_num(r['minutes'], '.1f')} | {_verdict(r['passed'])} |"
        )
    return "\n".join(lines) + "\n"
