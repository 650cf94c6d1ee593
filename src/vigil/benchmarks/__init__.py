"""Benchmarks: NAB (:mod:`vigil.benchmarks.nab`), the AIOps 2018 KPIs
(:mod:`vigil.benchmarks.kpi`), M4 Hourly accuracy (:mod:`vigil.benchmarks.m4`) and per-series
CPU cost (:mod:`vigil.benchmarks.speed`)."""

from __future__ import annotations

import numpy as np


def median_step(timestamps: np.ndarray, name: str) -> int:
    """The median of the positive gaps between consecutive ``timestamps`` in time order (in
    their unit): the grid step of a benchmark file named ``name``."""
    d = np.diff(np.sort(np.asarray(timestamps)))
    d = d[d > 0]
    if not len(d):
        raise ValueError(
            f"{name} has no two distinct timestamps: expected at least two rows with "
            "different timestamps to infer the step"
        )
    return int(np.median(d))
