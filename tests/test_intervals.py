import numpy as np

from vigil.engine.intervals import find_intervals


def test_runs_per_row_and_gap_merging():
    flagged = np.array(
        [[0, 1, 1, 0, 0, 1, 0], [1, 0, 1, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]], dtype=bool
    )
    scores = np.arange(21, dtype=float).reshape(3, 7)
    iv = find_intervals(flagged, scores)
    assert list(zip(iv.row, iv.first, iv.last, strict=True)) == [
        (0, 1, 2), (0, 5, 5), (1, 0, 0), (1, 2, 2), (1, 6, 6)
    ]
    assert iv.peak.tolist() == [2.0, 5.0, 7.0, 9.0, 13.0]
    merged = find_intervals(flagged, scores, max_gap=1)
    assert list(zip(merged.row, merged.first, merged.last, strict=True)) == [
        (0, 1, 2), (0, 5, 5), (1, 0, 2), (1, 6, 6)
    ]


def test_runs_never_cross_rows():
    flagged = np.array([[0, 0, 1], [1, 0, 0]], dtype=bool)
    iv = find_intervals(flagged, np.ones((2, 3)), max_gap=5)
    assert list(zip(iv.row, iv.first, iv.last, strict=True)) == [(0, 2, 2), (1, 0, 0)]


def test_empty():
    assert len(find_intervals(np.zeros((3, 4), dtype=bool), np.zeros((3, 4)))) == 0
