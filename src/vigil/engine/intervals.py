"""Anomaly intervals: runs of flagged steps per series, found without a loop over series."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Intervals:
    """Runs of flagged steps: row index, first and last column (inclusive), peak score."""

    row: np.ndarray
    first: np.ndarray
    last: np.ndarray
    peak: np.ndarray

    def __len__(self) -> int:
        return len(self.row)


def find_intervals(flagged: np.ndarray, scores: np.ndarray, *, max_gap: int = 0) -> Intervals:
    """Runs of True in each row of ``flagged`` ``[n, T]``; runs separated by at most ``max_gap``
    unflagged steps are merged.  ``peak`` is the maximum of ``scores`` over the merged run."""
    n, t = flagged.shape
    if n == 0 or t == 0 or not flagged.any():
        empty = np.empty(0, dtype=np.int64)
        return Intervals(empty, empty, empty, np.empty(0))
    rows, cols = np.nonzero(flagged)  # row-major: sorted by row then column
    new_run = np.ones(len(rows), dtype=bool)
    new_run[1:] = (rows[1:] != rows[:-1]) | (cols[1:] - cols[:-1] > max_gap + 1)
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], len(rows)] - 1
    peak = np.maximum.reduceat(np.nan_to_num(scores[rows, cols], nan=0.0), starts)
    return Intervals(rows[starts], cols[starts], cols[ends], peak)
