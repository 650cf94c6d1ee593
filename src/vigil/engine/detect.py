"""``vigil detect``: score what the store holds and keep the results in the store.

Each run scores the columns from a **cursor** (where the previous run stopped, kept in the
tenant's ``detect_cursor`` table) up to ``until`` (default: the newest sample).  The model is
fitted on the ``fit_window`` before the cursor, with the points that earlier runs flagged
anomalous masked, then the new columns are replayed causally exactly as in a backtest, partition
by partition straight from the store (:mod:`vigil.engine.stream`).  Results
are appended to the tenant's tables ``scores``, ``anomalies`` and ``exhaustion``; then the
insights are rebuilt from the whole ``anomalies`` and ``exhaustion`` tables and kept in the
``insights`` table (:func:`vigil.insights.persist.refresh_insights`), where ``vigil insights``
reads them.  Running again later continues from
the cursor; nothing is scored twice.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vigil.engine import modelset
from vigil.engine.backtest import BacktestConfig, infer_step, parse_duration, replay_config
from vigil.engine.modelset import catalog_digest
from vigil.engine.replay import ModelFactory
from vigil.engine.stream import replay_store
from vigil.insights.persist import read_suppressions
from vigil.timeparse import format_ms

CURSOR = "detect_cursor"
EXHAUSTION_SCHEMA = pa.schema([
    ("series_id", pa.int64()), ("labels", pa.string()), ("evaluated_at", pa.int64()),
    ("limit", pa.float64()), ("probability", pa.float64()), ("crossing_p50", pa.int64()),
    ("crossing_lo", pa.int64()), ("crossing_hi", pa.int64()),
])
DAY_MS = 86_400_000


def read_cursor(store: Any, tenant: str) -> dict[str, int] | None:
    table = store.read_table(tenant, CURSOR)
    if table is None or table.num_rows == 0:
        return None
    row = table.sort_by([("end", "descending")]).slice(0, 1).to_pylist()[0]
    return {"end": int(row["end"]), "step": int(row["step"])}


def detect_store(
    store: Any,
    tenant: str,
    factory: ModelFactory,
    *,
    since: int | None = None,
    until: int | None = None,
    config: BacktestConfig | None = None,
    models_root: Path | None = None,
    fit_every: str | None = None,
    on_scores: Callable[[pa.Table], None] | None = None,
    ledger: bool = True,
    complete_only: bool = False,
) -> dict[str, Any]:
    """Score the tenant's new columns (see the module doc).

    ``models_root``: keep the fitted models there between runs (:mod:`vigil.engine.modelset`)
    and continue them while the series are the same and ``fit_every`` has not elapsed since the
    last fit, instead of refitting on ``fit_window`` every run.  ``on_scores`` sees each
    partition's scores table (the ``scores`` schema) as it is stored.  ``complete_only``:
    score only the columns that end at or before ``until`` (a live service)."""
    config = config or BacktestConfig()
    span = store.time_range(tenant)  # the Delta log's statistics: no scan of the samples
    if span is None:
        raise ValueError(f"tenant {tenant!r} holds no samples: ingest data first (vigil ingest)")
    stats = {"min_timestamp": span[0], "max_timestamp": span[1]}
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
    if complete_only:  # only whole columns before ``until`` (later samples may still arrive)
        end = begin + max(0, (end - begin) // step * step)
    else:
        end = end + (-(end - begin)) % step  # whole steps
    if end <= begin:
        return {"scored_from": format_ms(begin), "scored_until": format_ms(begin), "steps": 0,
                "series": 0, "anomalies": 0, "note": "nothing new to score since the cursor"}
    digest = catalog_digest(store.modelled_catalog(tenant).column("series_id").to_numpy())
    prev = modelset.current(models_root, tenant) if models_root else None
    reuse = (prev is not None and prev.cursor == begin and prev.catalog == digest
             and (fit_every is None or begin - prev.fitted_at < parse_duration(fit_every)))
    # a continued model needs only the history the exhaustion forecasts look at
    history = config.trend_window if reuse else config.fit_window
    warm = (begin - max(first_data, begin - parse_duration(history))) // step
    fit_start = begin - warm * step  # on the grid of the cursor, whatever the step
    if warm < 1:
        raise ValueError(
            f"no history before {format_ms(begin)} to fit on: use --since at least one step "
            "after the first sample"
        )
    # the warm-up is exactly the columns before the cursor (a duration in seconds would drop
    # the milliseconds of a step such as 299,996 ms and start one column early)
    replay_cfg = dataclasses.replace(replay_config(config, step), warmup_steps=warm)
    from vigil.ledger.record import new_run, record_engine, record_insights

    spec = new_run("detect") if ledger else None  # decisions in the tenant's ledger
    out_dir = modelset.new_dir(models_root, tenant, end) if models_root else None
    with tempfile.TemporaryDirectory(prefix="vigil-detect-") as tmp:
        result = replay_store(
            store, tenant, start=fit_start, end=end, step=step,
            replay=replay_cfg, factory=factory, parts_dir=Path(tmp),
            keep_from=warm, merge_gap_steps=config.merge_gap_steps,
            n_partitions=config.partitions, workers=config.workers, mask_previous=True,
            suppressions=[r for r in read_suppressions(store, tenant) if r.do_not_learn],
            models_in=prev.dir if reuse and prev else None, models_out=out_dir,
            ledger=spec,
            fit_origin=(prev.fit_start, prev.fitted_at) if reuse and prev and prev.fit_start
            else None,
        )
        for part in result.scores_parts:  # one partition in memory at a time
            table = pq.read_table(part)
            store.write_table(tenant, "scores", table)
            if on_scores is not None:
                on_scores(table)
    anomalies, forecasts = result.anomalies, result.forecasts
    if spec is not None:
        record_engine(store, tenant, result.decisions)
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
        }, schema=EXHAUSTION_SCHEMA))  # typed: a run whose crossings are all None appends too
    store.write_table(tenant, CURSOR, pa.table({"end": [end], "step": [step]}))
    if models_root and out_dir is not None:
        # a partition that could not continue (its series changed) was fitted on the short
        # history: fitted_at 0 makes the next run refit everything on fit_window
        whole = reuse and result.continued == result.partitions
        fitted_at = (prev.fitted_at if whole and prev else 0) if reuse else begin
        origin = (prev.fit_start if whole and prev else 0) if reuse else fit_start
        modelset.publish(models_root, tenant,
                         modelset.ModelSet(out_dir, end, fitted_at, digest, origin))
    from vigil.insights import InsightConfig
    from vigil.insights.inputs import values_from_arrays
    from vigil.insights.persist import refresh_insights

    # values for effect sizes: only the series in the insights' records
    stored_anoms = store.read_table(tenant, "anomalies")
    stored_ex = store.read_table(tenant, "exhaustion")
    ids = np.unique(np.concatenate([
        t.column("series_id").to_numpy() for t in (stored_anoms, stored_ex) if t is not None
    ] or [np.zeros(0, dtype=np.int64)]))
    values = store.load_batch(tenant, None, fit_start, end, step, series_ids=ids)
    built = refresh_insights(
        store, tenant, config=InsightConfig(tenant=tenant, step_ms=step), now=end - step,
        values=values_from_arrays(values.series_ids, values.start, step, values.values))
    if spec is not None:
        record_insights(store, tenant, spec, built, config=InsightConfig(tenant=tenant,
                        step_ms=step), now=end - step, window=(fit_start, end, step))
    return {"scored_from": format_ms(begin), "scored_until": format_ms(end),
            "steps": (end - begin) // step, "series": result.n_series,
            "refit": not reuse,
            "anomalies": len(anomalies),
            "exhaustion_forecasts": len(forecasts), "insights": len(built.insights),
            "notifications": len(built.notifications)}
