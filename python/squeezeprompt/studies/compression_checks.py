"""The acceptance checks of the compression study, computed from its measured rows.

Input is the study's plain result data: ``{row key: {"before": metrics, "after": metrics
or None}}`` where metrics hold at least ``perplexity``. A check whose rows were not run
is reported as not evaluated (``passed`` None), never as passed.

* method comparisons use perplexity *before* recovery (the compression alone);
* int8 RTN must lie within 1% of the dense perplexity;
* recovery must close at least half of each row's perplexity gap to dense, measured in
  log-perplexity (mean token NLL), as the pipeline report does. That is never more
  lenient than the gap in raw perplexity: log is concave.

Example:
    >>> results = {"dense": {"before": {"perplexity": 20.0}, "after": None},
    ...            "int8-rtn": {"before": {"perplexity": 20.1},
    ...                         "after": {"perplexity": 20.02}}}
    >>> [(c.name, c.passed) for c in compute_checks(results) if c.passed is not None]
    [('int8 RTN within 1% of dense', True), ('recovery closes >= 1/2 of the gap: int8-rtn', True)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

INT8_TOLERANCE = 0.01  # relative perplexity distance to dense
RECOVERY_SHARE = 0.5  # share of the log-perplexity gap recovery must close

# (better row, worse row): the first must have the lower perplexity before recovery.
COMPARISONS = (
    ("int4-gptq", "int4-rtn"),
    ("int4-awq", "int4-rtn"),
    ("50-wanda", "50-magnitude"),
    ("50-sparsegpt", "50-magnitude"),
    ("24-wanda", "24-magnitude"),
    ("24-sparsegpt", "24-magnitude"),
)

Results = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Check:
    """One acceptance line: ``passed`` is None when its rows were not measured.

    Example:
        >>> Check("x", None, "not run").mark
        'not evaluated'
    """

    name: str
    passed: bool | None
    detail: str

    @property
    def mark(self) -> str:
        return {True: "PASS", False: "FAIL", None: "not evaluated"}[self.passed]


def _ppl(results: Results, key: str, when: str = "before") -> float | None:
    metrics = (results.get(key) or {}).get(when)
    return None if not metrics else metrics.get("perplexity")


def _missing(name: str, results: Results, *keys: str) -> Check:
    absent = [k for k in keys if _ppl(results, k) is None]
    return Check(name, None, f"row(s) not run: {', '.join(absent)}")


def comparison_check(results: Results, better: str, worse: str) -> Check:
    """``better``'s perplexity before recovery is strictly below ``worse``'s.

    Example:
        >>> r = {"a": {"before": {"perplexity": 9.0}}, "b": {"before": {"perplexity": 8.0}}}
        >>> comparison_check(r, "a", "b").passed
        False
    """
    name = f"{better} perplexity < {worse}"
    a, b = _ppl(results, better), _ppl(results, worse)
    if a is None or b is None:
        return _missing(name, results, better, worse)
    return Check(name, a < b, f"{a:.3f} vs {b:.3f}")


def int8_check(results: Results, tolerance: float = INT8_TOLERANCE) -> Check:
    """int8 RTN's perplexity before recovery within ``tolerance`` (relative) of dense.

    Example:
        >>> r = {"dense": {"before": {"perplexity": 10.0}},
        ...      "int8-rtn": {"before": {"perplexity": 10.2}}}
        >>> int8_check(r).passed
        False
    """
    name = f"int8 RTN within {100 * tolerance:g}% of dense"
    q, d = _ppl(results, "int8-rtn"), _ppl(results, "dense")
    if q is None or d is None:
        return _missing(name, results, "int8-rtn", "dense")
    rel = q / d - 1.0
    return Check(name, abs(rel) <= tolerance, f"{q:.3f} vs {d:.3f} ({100 * rel:+.2f}%)")


def recovered_share(dense: float, before: float, after: float) -> float | None:
    """Share of the log-perplexity gap ``before -> dense`` that ``after`` closed
    (None when compression opened no gap).

    Example:
        >>> round(recovered_share(10.0, 40.0, 20.0), 3)
        0.5
    """
    gap = math.log(before) - math.log(dense)
    if gap <= 0:
        return None
    return (math.log(before) - math.log(after)) / gap


def recovery_check(results: Results, key: str, share: float = RECOVERY_SHARE) -> Check:
    """Recovery closed at least ``share`` of ``key``'s log-perplexity gap to dense.

    Example:
        >>> r = {"dense": {"before": {"perplexity": 10.0}},
        ...      "x": {"before": {"perplexity": 40.0}, "after": {"perplexity": 30.0}}}
        >>> c = recovery_check(r, "x"); c.passed, c.detail
        (False, '40.000 -> 30.000 (dense 10.000): 21% of the gap closed')
    """
    name = f"recovery closes >= 1/2 of the gap: {key}"
    d, b, a = _ppl(results, "dense"), _ppl(results, key), _ppl(results, key, "after")
    if d is None or b is None:
        return _missing(name, results, "dense", key)
    if a is None:
        return Check(name, None, "recovery not run")
    closed = recovered_share(d, b, a)
    if closed is None:
        return Check(name, None, f"no gap to close ({b:.3f} vs dense {d:.3f})")
    detail = f"{b:.3f} -> {a:.3f} (dense {d:.3f}): {100 * closed:.0f}% of the gap closed"
    return Check(name, closed >= share, detail)


def compute_checks(results: Results) -> list[Check]:
    """Every acceptance check, in a fixed order (recovery checks in ``results`` order).

    Example: see the module docstring.
    """
    checks = [comparison_check(results, a, b) for a, b in COMPARISONS]
    checks.append(int8_check(results))
    checks += [recovery_check(results, key) for key in results if key != "dense"]
    return checks
