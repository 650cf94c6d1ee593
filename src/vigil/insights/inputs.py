"""Normalising the insight layer's inputs: anomaly intervals, change events, exhaustion records.

Each input is validated once at this boundary, with errors naming the record, the value and
the fix.  Times are epoch ms (ints) or RFC 3339 text; labels are dicts or canonical JSON text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from vigil.insights.model import Anomaly, ChangeEvent
from vigil.timeparse import parse_time

ValuesFn = Callable[[int, int, int], tuple[np.ndarray, np.ndarray]]
"""``values(series_id, start_ms, end_ms) -> (timestamps_ms, values)`` over ``[start, end)``."""


@dataclass(frozen=True)
class ExhaustionRecord:
    series_id: int
    labels: dict[str, str]
    evaluated_at: int
    limit: float
    probability: float
    crossing_p50: int | None
    crossing_lo: int | None
    crossing_hi: int | None


def _time(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str | np.integer):
        raise ValueError(f"{what}={value!r} is invalid: expected epoch ms or RFC 3339 text")
    if isinstance(value, int | np.integer):
        return int(value)  # already ms (the engine's records)
    return parse_time(value)


def _opt_time(value: object, what: str) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return _time(value, what)


def _labels(value: object, what: str) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(f"{what}={value!r} is not JSON: expected a label object") from None
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{what}={value!r} is invalid: expected a dict of label names to string values"
        )
    return {str(k): str(v) for k, v in value.items()}


def _field(rec: Mapping[str, Any], name: str, what: str) -> Any:
    if name not in rec:
        raise ValueError(f"{what} lacks {name!r}: got keys {sorted(rec)}")
    return rec[name]


def to_anomalies(records: Iterable[Mapping[str, Any] | Anomaly]) -> list[Anomaly]:
    """Anomaly dicts (``engine.backtest.anomaly_records``) as :class:`Anomaly`."""
    out = []
    for i, rec in enumerate(records):
        if isinstance(rec, Anomaly):
            out.append(rec)
            continue
        what = f"anomaly {i}"
        labels = _labels(_field(rec, "labels", what), f"{what} labels")
        if "__name__" not in labels:
            raise ValueError(f"{what} labels {labels} lack '__name__': give the metric name")
        start = _time(_field(rec, "start", what), f"{what} start")
        end = _time(_field(rec, "end", what), f"{what} end")
        if end < start:
            raise ValueError(f"{what}: end {end} is before start {start}: swap them")
        peak = float(_field(rec, "peak_score", what))
        if not math.isfinite(peak):
            raise ValueError(f"{what}: peak_score {peak} is not finite: give a finite score")
        out.append(Anomaly(int(_field(rec, "series_id", what)), labels, start, end, peak))
    return out


def to_events(events: pa.Table | Iterable[Mapping[str, Any] | ChangeEvent] | None
              ) -> list[ChangeEvent]:
    """Change events from the store's events table or dicts (``event_id`` or ``id``)."""
    if events is None:
        return []
    rows: Iterable[Any] = events.to_pylist() if isinstance(events, pa.Table) else events
    out = []
    for i, rec in enumerate(rows):
        if isinstance(rec, ChangeEvent):
            out.append(rec)
            continue
        what = f"event {i}"
        if "event_id" in rec:
            eid = rec["event_id"]
        elif "id" in rec:
            eid = rec["id"]
        else:
            raise ValueError(f"{what} lacks 'event_id': got keys {sorted(rec)}")
        attrs = rec.get("attributes") or {}
        if isinstance(attrs, str):
            attrs = json.loads(attrs)
        if not isinstance(attrs, Mapping):
            raise ValueError(f"{what} attributes {attrs!r} must be a JSON object")
        out.append(ChangeEvent(
            event_id=str(eid),
            time=_time(_field(rec, "time", what), f"{what} time"),
            kind=str(_field(rec, "kind", what)),
            labels=_labels(rec.get("labels") or {}, f"{what} labels"),
            summary=str(rec.get("summary") or ""),
            attributes=dict(attrs),
        ))
    out.sort(key=lambda e: (e.time, e.event_id))
    return out


def to_exhaustion(records: Iterable[Mapping[str, Any] | ExhaustionRecord] | None
                  ) -> list[ExhaustionRecord]:
    if records is None:
        return []
    out = []
    for i, rec in enumerate(records):
        if isinstance(rec, ExhaustionRecord):
            out.append(rec)
            continue
        what = f"exhaustion record {i}"
        prob = float(_field(rec, "probability", what))
        if not 0.0 <= prob <= 1.0 and not math.isnan(prob):
            raise ValueError(f"{what}: probability {prob} is outside [0, 1]")
        out.append(ExhaustionRecord(
            series_id=int(_field(rec, "series_id", what)),
            labels=_labels(_field(rec, "labels", what), f"{what} labels"),
            evaluated_at=_time(_field(rec, "evaluated_at", what), f"{what} evaluated_at"),
            limit=float(_field(rec, "limit", what)),
            probability=0.0 if math.isnan(prob) else prob,
            crossing_p50=_opt_time(rec.get("crossing_p50"), f"{what} crossing_p50"),
            crossing_lo=_opt_time(rec.get("crossing_lo"), f"{what} crossing_lo"),
            crossing_hi=_opt_time(rec.get("crossing_hi"), f"{what} crossing_hi"),
        ))
    return out


def values_from_arrays(series_ids: Sequence[int] | np.ndarray, start: int, step: int,
                       values: np.ndarray) -> ValuesFn:
    """A :data:`ValuesFn` over a dense ``[n, T]`` array (column k at ``start + k*step``), e.g.
    a :class:`vigil.batch.SeriesBatch`'s ``series_ids, start, step, values``.  Unknown series
    give empty arrays."""
    if values.ndim != 2 or values.shape[0] != len(series_ids):
        raise ValueError(
            f"values has shape {values.shape}: expected [{len(series_ids)}, n_steps], one row "
            "per series id"
        )
    if step <= 0:
        raise ValueError(f"step={step} is invalid: expected a positive number of ms")
    row_of = {int(s): r for r, s in enumerate(np.asarray(series_ids).tolist())}
    n_steps = values.shape[1]

    def fetch(series_id: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        row = row_of.get(int(series_id))
        first = max(0, -(-(lo - start) // step))
        last = min(n_steps, -(-(hi - start) // step))
        if row is None or last <= first:
            return np.empty(0, dtype=np.int64), np.empty(0)
        cols = np.arange(first, last)
        return start + cols * step, np.asarray(values[row, first:last], dtype=np.float64)

    return fetch
