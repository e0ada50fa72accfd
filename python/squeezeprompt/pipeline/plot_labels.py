"""Point labels that do not overlap: merged where points coincide, spread where they stack.

Stages often share a point or a column on the accuracy-against-size plot: ``calibrate``
repeats the dense model's numbers, and ``quantize``, ``recover`` and ``prompt`` share a
size. Coincident points get one label (``dense, calibrate``); labels of points in one
column are pushed apart vertically (least-squares displacement, see :func:`spread`) and
joined to their points by arrows.

Example:
    >>> merge_coincident([(1.0, 0.5), (1.0, 0.5), (2.0, 0.4)], ["dense", "calibrate", "q"])
    [(1.0, 0.5, 'dense, calibrate'), (2.0, 0.4, 'q')]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

COLUMN_PX = 40.0  # points closer than this horizontally share a label column
GAP_PX = 13.0  # vertical distance between label baselines (a 10 pt line at 100 dpi)


def merge_coincident(
    points: Sequence[tuple[float, float]], labels: Sequence[str]
) -> list[tuple[float, float, str]]:
    """One ``(x, y, "a, b")`` per distinct point, in first-seen order.

    Example: see the module docstring.
    """
    merged: dict[tuple[float, float], list[str]] = {}
    for point, label in zip(points, labels, strict=True):
        merged.setdefault(point, []).append(label)
    return [(x, y, ", ".join(names)) for (x, y), names in merged.items()]


def spread(wanted: Sequence[float], gap: float) -> list[float]:
    """Positions ``>= gap`` apart, in the order of ``wanted``, as close to it as possible.

    Labels are kept in sorted order and gathered into clusters; each cluster sits centred
    on the mean of what its members want, and overlapping clusters merge until none
    overlap (the least-squares solution of the 1-D problem).

    Example:
        >>> spread([0.0, 1.0, 30.0], gap=10.0)
        [-4.5, 5.5, 30.0]
    """
    order = sorted(range(len(wanted)), key=lambda i: (wanted[i], i))
    clusters: list[list[int]] = []  # indices into ``order``, each cluster contiguous

    def start(cluster: list[int]) -> float:
        mean = sum(wanted[order[k]] for k in cluster) / len(cluster)
        return mean - gap * (len(cluster) - 1) / 2

    for k in range(len(order)):
        clusters.append([k])
        while len(clusters) > 1:
            prev, last = clusters[-2], clusters[-1]
            if start(prev) + gap * len(prev) <= start(last) + 1e-9:
                break
            clusters[-2:] = [prev + last]
    out = [0.0] * len(wanted)
    for cluster in clusters:
        s = start(cluster)
        for j, k in enumerate(cluster):
            out[order[k]] = s + j * gap
    return out


def annotate_points(ax: Any, points: Sequence[tuple[float, float]], labels: Sequence[str]) -> None:
    """Labels ``points`` on ``ax`` without overlaps (call after the axis limits are final).

    Example: ``pipeline/report.py`` (the accuracy-against-size plot).
    """
    merged = merge_coincident(points, labels)
    px = [tuple(ax.transData.transform((x, y))) for x, y, _ in merged]
    order = sorted(range(len(merged)), key=lambda i: (px[i][0], i))
    columns: list[list[int]] = []
    for i in order:
        if columns and px[i][0] - px[columns[-1][-1]][0] <= COLUMN_PX:
            columns[-1].append(i)
        else:
            columns.append([i])
    for column in columns:
        right = max(px[i][0] for i in column)
        ys = spread([px[i][1] for i in column], GAP_PX)
        for i, y in zip(column, ys, strict=True):
            x, y0, text = merged[i]
            dx, dy = right - px[i][0] + 6.0, y - px[i][1]
            moved = abs(dy) > 1.0 or dx > 7.0
            ax.annotate(
                text,
                (x, y0),
                xytext=(dx, dy),
                textcoords="offset pixels",
                va="center",
                fontsize=9,
                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6} if moved else None,
            )
