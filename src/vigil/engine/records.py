"""Replay results as records: anomaly intervals, exhaustion forecasts and the scores table.

Shared by the in-memory backtest and the partition-by-partition replay over the store.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from vigil.batch import SeriesBatch
from vigil.engine.intervals import Intervals, find_intervals
from vigil.engine.runway import ExhaustionRecords
from vigil.models.base import Scores
from vigil.series import labels_json


def exhaustion_records(batch: SeriesBatch, ex: ExhaustionRecords) -> list[dict[str, Any]]:
    """The engine's exhaustion forecasts as dicts (times in ms, None beyond the horizon)."""

    def ms(v: float) -> int | None:
        return None if not np.isfinite(v) else int(v)

    return [
        {
            "series_id": int(batch.series_ids[r]),
            "labels": batch.labels[r],
            "evaluated_at": batch.start + int(c) * batch.step,
            "limit": float(lim),
            "probability": float(p),
            "crossing_p50": ms(p50),
            "crossing_lo": ms(lo),
            "crossing_hi": ms(hi),
        }
        for c, r, lim, p, p50, lo, hi in zip(ex.col, ex.row.astype(np.int64), ex.limit,
                                             ex.probability, ex.p50, ex.lo, ex.hi, strict=True)
    ]


def anomaly_records(batch: SeriesBatch, scores: Scores, merge_gap_steps: int) -> list[dict]:
    iv: Intervals = find_intervals(scores.anomaly_score > 1.0, scores.anomaly_score,
                                   max_gap=merge_gap_steps)
    out = []
    for row, first, last, peak in zip(iv.row, iv.first, iv.last, iv.peak, strict=True):
        out.append({
            "series_id": int(batch.series_ids[row]),
            "labels": batch.labels[row],
            "start": batch.start + int(first) * batch.step,
            "end": batch.start + int(last) * batch.step,
            "peak_score": float(peak),
        })
    return out


def scores_table(batch: SeriesBatch, scores: Scores) -> pa.Table:
    rows, cols = np.nonzero(~np.isnan(batch.values))
    label_text = pa.array([labels_json(ls) for ls in batch.labels], pa.string())
    return pa.table({
        "series_id": pa.array(batch.series_ids[rows], pa.int64()),
        "labels": pa.DictionaryArray.from_arrays(pa.array(rows, pa.int32()), label_text),
        "timestamp": pa.array(batch.start + cols.astype(np.int64) * batch.step,
                              pa.timestamp("ms", tz="UTC")),
        "value": batch.values[rows, cols],
        "expected": scores.expected[rows, cols],
        "lower": scores.lower[rows, cols],
        "upper": scores.upper[rows, cols],
        "anomaly_score": scores.anomaly_score[rows, cols],
        "p_value": scores.p_value[rows, cols],
        "warming_up": scores.warming_up[rows, cols],
    })
