"""``SeriesBatch``: the dense shape every model works on.

``values`` is a float64 array ``[n_series, n_steps]``.  Column ``k`` stands for the time
``start + k * step`` (ms, UTC) and holds the **last sample (by timestamp) in the half-open
interval ``[start + k*step, start + (k+1)*step)``**; a step without a sample is NaN.
Row ``i`` is the series ``series_ids[i]`` whose labels are ``labels[i]`` (a dict, or the
catalog's canonical JSON text decoded on demand).

Building a batch from the long table is vectorised (one lexsort, no Python loop over series).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from vigil.series import parse_labels_json


@dataclass(frozen=True)
class SeriesBatch:
    series_ids: np.ndarray  # int64 [n]
    start: int  # ms of column 0
    step: int  # ms between columns
    values: np.ndarray  # float64 [n, T]
    labels: Sequence[dict[str, str]] = field(default_factory=list)
    # shard of each row's peer group (int64 [n]; None: no group is sharded): a peer group larger
    # than the engine's bound is split into shards, each a peer group of its own
    # (vigil.engine.partition.peer_shards)
    shard: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.step <= 0:
            raise ValueError(f"step={self.step} ms is invalid: expected a positive step")
        if self.values.ndim != 2:
            raise ValueError(f"values has shape {self.values.shape}: expected [n_series, n_steps]")
        if self.values.shape[0] != len(self.series_ids):
            raise ValueError(
                f"values has {self.values.shape[0]} rows but {len(self.series_ids)} series ids"
            )
        if self.labels and len(self.labels) != len(self.series_ids):
            raise ValueError(f"{len(self.labels)} label sets for {len(self.series_ids)} series")
        if self.shard is not None and np.shape(self.shard) != (len(self.series_ids),):
            raise ValueError(f"shard has shape {np.shape(self.shard)}: expected "
                             f"({len(self.series_ids)},), one shard per series")

    @property
    def n_series(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.values.shape[1])

    @property
    def end(self) -> int:
        """Exclusive end (ms) of the last column's interval."""
        return self.start + self.n_steps * self.step

    def timestamps(self) -> np.ndarray:
        return self.start + self.step * np.arange(self.n_steps, dtype=np.int64)

    def rows(self, index: np.ndarray | slice) -> SeriesBatch:
        idx = np.arange(self.n_series)[index]
        labels = [self.labels[i] for i in idx] if self.labels else []
        return SeriesBatch(self.series_ids[idx], self.start, self.step, self.values[idx], labels,
                           None if self.shard is None else self.shard[idx])

    def columns(self, first: int, stop: int) -> SeriesBatch:
        """The sub-batch of columns ``first..stop-1`` (a view, no copy)."""
        return SeriesBatch(
            self.series_ids,
            self.start + first * self.step,
            self.step,
            self.values[:, first:stop],
            self.labels,
            self.shard,
        )

    def with_values(self, values: np.ndarray, start: int | None = None) -> SeriesBatch:
        """The same rows (ids, labels, shards) with other values (same number of rows)."""
        return SeriesBatch(self.series_ids, self.start if start is None else start, self.step,
                           values, self.labels, self.shard)

    def to_long(self) -> pa.Table:
        """The long table ``series_id | timestamp | value`` of the non-NaN cells."""
        row, col = np.nonzero(~np.isnan(self.values))
        return pa.table(
            {
                "series_id": pa.array(self.series_ids[row], pa.int64()),
                "timestamp": pa.array(self.start + col.astype(np.int64) * self.step, pa.int64()),
                "value": pa.array(self.values[row, col], pa.float64()),
            }
        )


def batch_from_long(
    series_ids: np.ndarray,
    timestamps: np.ndarray,
    values: np.ndarray,
    *,
    start: int,
    end: int,
    step: int,
    order: np.ndarray | None = None,
    labels: Sequence[dict[str, str]] | None = None,
) -> SeriesBatch:
    """Align long-format samples onto the grid ``[start, end)`` with ``step`` (see module doc).

    ``order`` fixes the row order (int64 series ids); by default the sorted unique ids.
    Samples outside ``[start, end)`` or of series not in ``order`` are ignored.
    """
    if step <= 0:
        raise ValueError(f"step={step} ms is invalid: expected a positive step")
    if end <= start:
        raise ValueError(f"time range [{start}, {end}) is empty: expected end > start")
    sid = np.asarray(series_ids, dtype=np.int64)
    ts = np.asarray(timestamps, dtype=np.int64)
    val = np.asarray(values, dtype=np.float64)
    rows_ids = np.unique(sid) if order is None else np.asarray(order, dtype=np.int64)
    n_steps = int(-(-(end - start) // step))
    out = np.full((len(rows_ids), n_steps), np.nan)
    keep = (ts >= start) & (ts < end)
    sid, ts, val = sid[keep], ts[keep], val[keep]
    if len(rows_ids) and len(sid):
        sorter = np.argsort(rows_ids, kind="stable")
        pos = np.searchsorted(rows_ids, sid, sorter=sorter)
        pos = np.clip(pos, 0, len(rows_ids) - 1)
        row = sorter[pos]
        known = rows_ids[row] == sid
        row, ts, val = row[known], ts[known], val[known]
        col = (ts - start) // step
        # last sample by timestamp in each (row, col) cell
        idx = np.lexsort((ts, col, row))
        row, col, val = row[idx], col[idx], val[idx]
        last = np.ones(len(row), dtype=bool)
        last[:-1] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
        out[row[last], col[last]] = val[last]
    return SeriesBatch(rows_ids, int(start), int(step), out, list(labels) if labels else [])


def labels_from_json(texts: Sequence[str]) -> list[dict[str, str]]:
    return [parse_labels_json(t) for t in texts]
