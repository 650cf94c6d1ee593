"""``vigil detect``: score what the store holds and keep the results in the store.

Each run scores the columns from a **cursor** (where the previous run stopped, kept in the
tenant's ``detect_cursor`` table) up to ``until`` (default: the newest sample).  The model is
fitted on the ``fit_window`` before the cursor, with the points that earlier runs flagged
anomalous masked, then the new columns are replayed causally exactly as in a backtest.  Results
are appended to the tenant's tables ``scores``, ``anomalies`` and ``exhaustion``; then the
insights are rebuilt from the whole ``anomalies`` and ``exhaustion`` tables and kept in the
``insights`` table (:func:`vigil.insights.persist.refresh_insights`), where ``vigil insights``
reads them.  Running again later continues from
the cursor; nothing is scored twice.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from vigil.engine.backtest import (
    BacktestConfig,
    anomaly_records,
    backtest_batch,
    do_not_learn_mask,
    exhaustion_records,
    infer_step,
    parse_duration,
    scores_table,
)
from vigil.engine.replay import ModelFactory
from vigil.models.base import Scores
from vigil.timeparse import format_ms

CURSOR = "detect_cursor"
DAY_MS = 86_400_000


def read_cursor(store: Any, tenant: str) -> dict[str, int] | None:
    table = store.read_table(tenant, CURSOR)
    if table is None or table.num_rows == 0:
        return None
    row = table.sort_by([("end", "descending")]).slice(0, 1).to_pylist()[0]
    return {"end": int(row["end"]), "step": int(row["step"])}


def _masked(store: Any, tenant: str, values: np.ndarray, ids: np.ndarray, start: int,
            step: int) -> np.ndarray:
    """Mask (NaN) the cells that earlier runs flagged anomalous."""
    table = store.read_table(tenant, "anomalies")
    if table is None or table.num_rows == 0:
        return values
    out = values.copy()
    row_of = {int(s): i for i, s in enumerate(ids)}
    n_cols = values.shape[1]
    for rec in table.select(["series_id", "start", "end"]).to_pylist():
        row = row_of.get(int(rec["series_id"]))
        if row is None:
            continue
        first = max(0, (int(rec["start"]) - start) // step)
        last = min(n_cols - 1, (int(rec["end"]) - start) // step)
        if first <= last:
            out[row, first:last + 1] = np.nan
    return out


def detect_store(
    store: Any,
    tenant: str,
    factory: ModelFactory,
    *,
    since: int | None = None,
    until: int | None = None,
    config: BacktestConfig | None = None,
) -> dict[str, Any]:
    config = config or BacktestConfig()
    stats = store.stats(tenant)
    if not stats["samples"]:
        raise ValueError(f"tenant {tenant!r} holds no samples: ingest data first (vigil ingest)")
    cursor = read_cursor(store, tenant)
    step = config.step_ms or (cursor["step"] if cursor else None) or infer_step(
        store.select(tenant, None, stats["min_timestamp"], stats["min_timestamp"] + DAY_MS))
    first_data = stats["min_timestamp"] - stats["min_timestamp"] % step
    if since is not None:
        begin = since - since % step
    elif cursor is not None:
        begin = cursor["end"]
    else:
        begin = first_data + parse_duration(config.warmup)
    end = (until if until is not None else stats["max_timestamp"] + 1)
    end = end + (-(end - begin)) % step  # whole steps
    if end <= begin:
        return {"scored_from": format_ms(begin), "scored_until": format_ms(begin), "steps": 0,
                "series": 0, "anomalies": 0, "note": "nothing new to score since the cursor"}
    fit_start = max(first_data, begin - parse_duration(config.fit_window))
    batch = store.load_batch(tenant, None, fit_start, end, step)
    warm = (begin - fit_start) // step
    if warm < 1:
        raise ValueError(
            f"no history before {format_ms(begin)} to fit on: use --since at least one step "
            "after the first sample"
        )
    masked = _masked(store, tenant, batch.values[:, :warm], batch.series_ids, fit_start, step)
    values = np.concatenate([masked, batch.values[:, warm:]], axis=1)
    from vigil.batch import SeriesBatch

    run = SeriesBatch(batch.series_ids, batch.start, step, values, batch.labels)
    replay_cfg = BacktestConfig(**{**config.__dict__, "warmup": f"{warm * step // 1000}s"})
    scores, exhaustion = backtest_batch(run, replay_cfg, factory,
                                        exclude=do_not_learn_mask(store, tenant, run))
    new = batch.columns(warm, batch.n_steps)
    new_scores = Scores(**{k: v[:, warm:] for k, v in scores.__dict__.items()})
    anomalies = anomaly_records(new, new_scores, config.merge_gap_steps)
    forecasts = [r for r in exhaustion_records(run, exhaustion) if r["evaluated_at"] >= begin]
    store.write_table(tenant, "scores", scores_table(new, new_scores))
    if anomalies:
        store.write_table(tenant, "anomalies", pa.table({
            "series_id": [a["series_id"] for a in anomalies],
            "labels": [json.dumps(a["labels"], sort_keys=True) for a in anomalies],
            "start": [a["start"] for a in anomalies],
            "end": [a["end"] for a in anomalies],
            "peak_score": [a["peak_score"] for a in anomalies],
        }))
    if forecasts:
        store.write_table(tenant, "exhaustion", pa.table({
            "series_id": [f["series_id"] for f in forecasts],
            "labels": [json.dumps(f["labels"], sort_keys=True) for f in forecasts],
            **{k: [f[k] for f in forecasts] for k in
               ("evaluated_at", "limit", "probability", "crossing_p50", "crossing_lo",
                "crossing_hi")},
        }))
    store.write_table(tenant, CURSOR, pa.table({"end": [end], "step": [step]}))
    from vigil.insights import InsightConfig
    from vigil.insights.inputs import values_from_arrays
    from vigil.insights.persist import refresh_insights

    built = refresh_insights(
        store, tenant, config=InsightConfig(tenant=tenant, step_ms=step), now=end - step,
        values=values_from_arrays(batch.series_ids, batch.start, step, batch.values))
    return {"scored_from": format_ms(begin), "scored_until": format_ms(end),
            "steps": new.n_steps, "series": new.n_series, "anomalies": len(anomalies),
            "exhaustion_forecasts": len(forecasts), "insights": len(built.insights),
            "notifications": len(built.notifications)}
