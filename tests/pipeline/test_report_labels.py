"""Labels of the accuracy-against-size plot: merged where points coincide, never overlapping."""

from __future__ import annotations

import itertools

import pytest

from squeezeprompt.pipeline.plot_labels import annotate_points, merge_coincident, spread


def test_merge_keeps_order_and_joins_names() -> None:
    merged = merge_coincident(
        [(5.0, 0.6), (5.0, 0.6), (1.0, 0.5), (5.0, 0.6)], ["dense", "calibrate", "q", "x"]
    )
    assert merged == [(5.0, 0.6, "dense, calibrate, x"), (1.0, 0.5, "q")]


@pytest.mark.parametrize(
    "wanted", [[0.0, 0.0, 0.0], [3.0, 1.0, 2.0, 40.0], [10.0, 0.0, 5.0, 5.0], [7.0]]
)
def test_spread_keeps_order_gap_and_centre(wanted: list[float]) -> None:
    got = spread(wanted, gap=10.0)
    order = sorted(range(len(wanted)), key=lambda i: (wanted[i], i))
    placed = [got[i] for i in order]
    assert all(b - a >= 10.0 - 1e-9 for a, b in itertools.pairwise(placed))
    # the least-squares placement never moves the labels' mean
    assert sum(got) == pytest.approx(sum(wanted))


def test_spread_leaves_separated_labels_alone() -> None:
    assert spread([0.0, 50.0, 20.0], gap=10.0) == [0.0, 50.0, 20.0]


def test_labels_of_stages_sharing_a_size_do_not_overlap() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    points = [(538, 0.673), (538, 0.673), (538, 0.61), (105, 0.563), (105, 0.567), (105, 0.57)]
    labels = ["dense", "calibrate", "prune", "quantize", "recover", "prompt"]
    ax.plot(*zip(*points, strict=True), "o")
    ax.margins(x=0.3)
    fig.tight_layout()
    annotate_points(ax, points, labels)
    fig.canvas.draw()
    texts = {t.get_text(): t.get_window_extent() for t in ax.texts}
    plt.close(fig)
    assert sorted(texts) == ["dense, calibrate", "prompt", "prune", "quantize", "recover"]
    for (a, box_a), (b, box_b) in itertools.combinations(texts.items(), 2):
        assert not box_a.overlaps(box_b), (a, b)
