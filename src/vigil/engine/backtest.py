"""Backtest: replay what a store holds as if live and write scores, anomalies and a summary.

``backtest_store`` loads one tenant's series as a batch on a regular grid, replays it causally
partition by partition (:func:`vigil.engine.pool.run_partitioned`), and writes

* ``scores.parquet``: labels, timestamp, value, expected, lower, upper, anomaly_score, p_value,
  warming_up (one row per series and step that holds a value);
* ``anomalies.json``: per series, the intervals where ``anomaly_score > 1`` with start, end
  (RFC 3339, end inclusive of the last flagged step) and peak score;
* ``insights.json``: the insights built from the anomalies, the exhaustion forecasts and the
  store's change events (:mod:`vigil.insights`, contract in docs/insights.md); they are also
  kept in the store's ``insights`` table, so ``vigil insights`` reads them;
* ``summary.json``: alerts per series-day and, with a truth file, precision, recall and delay per
  incident kind (:mod:`vigil.engine.evaluate`) and the insight-level scores under
  ``insight_truth`` (:mod:`vigil.insights.evaluate`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vigil.batch import SeriesBatch
from vigil.engine.evaluate import evaluate, load_truth
from vigil.engine.intervals import Intervals, find_intervals
from vigil.engine.limits import limit_matrix
from vigil.engine.partition import group_ids
from vigil.engine.pool import Progress, run_partitioned
from vigil.engine.replay import ModelFactory, ReplayConfig
from vigil.engine.runway import ExhaustionRecords, RunwayConfig
from vigil.models.base import Scores
from vigil.series import labels_json
from vigil.timeparse import format_ms

DAY_MS = 86_400_000


@dataclass(frozen=True)
class BacktestConfig:
    warmup: str = "3d"
    refit_every: str = "1d"
    fit_window: str = "14d"
    step_ms: int | None = None  # None: the most common spacing of the data
    merge_gap_steps: int = 3
    forecast_every: str = "1h"  # "0": no exhaustion forecasts
    horizon: str = "48h"
    trend_window: str = "24h"
    partitions: int = 16
    workers: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_duration(text: str) -> int:
    """``90s``, ``5m``, ``2h``, ``3d``, ``1w`` to milliseconds."""
    units = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}
    t = text.strip()
    if len(t) < 2 or t[-1] not in units:
        raise ValueError(f"duration {text!r} is invalid: expected a number and a unit s/m/h/d/w")
    try:
        value = float(t[:-1])
    except ValueError:
        raise ValueError(f"duration {text!r} is invalid: expected e.g. 5m, 2h, 3d") from None
    if value <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return int(value * units[t[-1]])


def infer_step(samples: pa.Table) -> int:
    """The most common positive spacing between consecutive samples of a series (ms)."""
    sid = samples["series_id"].to_numpy()
    ts = samples["timestamp"].to_numpy()
    same = sid[1:] == sid[:-1]
    diffs = np.diff(ts)[same]
    diffs = diffs[diffs > 0]
    if len(diffs) == 0:
        raise ValueError("cannot infer the step: no series has two samples; pass --step")
    values, counts = np.unique(diffs, return_counts=True)
    return int(values[np.argmax(counts)])


def load_tenant_batch(store: Any, tenant: str, step_ms: int | None) -> SeriesBatch:
    stats = store.stats(tenant)
    if not stats["samples"]:
        raise ValueError(f"tenant {tenant!r} holds no samples: ingest data first (vigil ingest)")
    if step_ms is None:
        first_day = stats["min_timestamp"] + DAY_MS
        step_ms = infer_step(store.select(tenant, None, stats["min_timestamp"], first_day))
    start = stats["min_timestamp"] - stats["min_timestamp"] % step_ms
    return store.load_batch(tenant, None, start, stats["max_timestamp"] + 1, step_ms)


def backtest_batch(
    batch: SeriesBatch,
    config: BacktestConfig,
    factory: ModelFactory,
    progress: Progress | None = None,
    exclude: np.ndarray | None = None,
) -> tuple[Scores, ExhaustionRecords]:
    """Replay ``batch`` causally by partitions; ``exclude`` [n, T] marks points never learnt
    (do-not-learn suppressions, see :func:`do_not_learn_mask`)."""
    step = batch.step
    forecasting = config.forecast_every not in ("0", "", "off")
    replay = ReplayConfig(
        warmup_steps=max(1, parse_duration(config.warmup) // step),
        refit_every_steps=max(1, parse_duration(config.refit_every) // step),
        fit_window_steps=max(1, parse_duration(config.fit_window) // step),
        forecast_every_steps=max(1, parse_duration(config.forecast_every) // step)
        if forecasting else 0,
        horizon_steps=max(1, parse_duration(config.horizon) // step),
        trend_window_steps=max(3, parse_duration(config.trend_window) // step),
    )
    if forecasting:
        replay = replace(replay, runway=RunwayConfig.for_step(
            step, replay.horizon_steps, replay.trend_window_steps))
    groups = group_ids(list(batch.labels))
    limits = limit_matrix(batch.labels, batch.values) if forecasting else None
    return run_partitioned(batch, groups, replay, factory, n_partitions=config.partitions,
                           workers=config.workers, progress=progress, limits=limits,
                           exclude=exclude)


def do_not_learn_mask(store: Any, tenant: str, batch: SeriesBatch) -> np.ndarray | None:
    """The tenant's do-not-learn suppressions as a mask over ``batch`` (None when none)."""
    from vigil.insights.persist import read_suppressions
    from vigil.insights.suppress import exclusion_mask

    rules = [r for r in read_suppressions(store, tenant) if r.do_not_learn]
    if not rules:
        return None
    return exclusion_mask(batch.labels, batch.start, batch.step, batch.n_steps, rules)


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


def write_outputs(out_dir: Path, batch: SeriesBatch, scores: Scores, anomalies: list[dict],
                  summary: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(scores_table(batch, scores), out_dir / "scores.parquet", compression="zstd")
    by_series: dict[int, dict[str, Any]] = {}
    for a in anomalies:
        entry = by_series.setdefault(a["series_id"], {"series_id": a["series_id"],
                                                      "labels": a["labels"], "intervals": []})
        entry["intervals"].append({"start": format_ms(a["start"]), "end": format_ms(a["end"]),
                                   "peak_score": round(a["peak_score"], 4)})
    (out_dir / "anomalies.json").write_text(json.dumps(list(by_series.values()), indent=1))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


def backtest_store(
    store: Any,
    tenant: str,
    out_dir: Path,
    factory: ModelFactory,
    *,
    config: BacktestConfig | None = None,
    truth: Path | None = None,
    progress: Progress | None = None,
    report: Path | None = None,
) -> dict[str, Any]:
    """Replay, write the outputs (module docstring) and, with ``report``, the HTML report."""
    config = config or BacktestConfig()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    batch = load_tenant_batch(store, tenant, config.step_ms)
    timings["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores, exhaustion = backtest_batch(batch, config, factory, progress,
                                        exclude=do_not_learn_mask(store, tenant, batch))
    timings["score_s"] = time.perf_counter() - t0
    forecasts = exhaustion_records(batch, exhaustion)
    anomalies = anomaly_records(batch, scores, config.merge_gap_steps)
    days = batch.n_steps * batch.step / DAY_MS
    summary: dict[str, Any] = {
        "series": batch.n_series,
        "steps": batch.n_steps,
        "step_ms": batch.step,
        "start": format_ms(batch.start),
        "end": format_ms(batch.end),
        "alerts": len(anomalies),
        "alerts_per_series_day": len(anomalies) / max(batch.n_series * days, 1e-9),
        "config": asdict(config),
    }
    if truth is not None:
        summary["truth"] = evaluate(anomalies, load_truth(truth), n_series=batch.n_series,
                                    days=days)
    t0 = time.perf_counter()
    write_outputs(out_dir, batch, scores, anomalies, summary)
    (out_dir / "exhaustion.json").write_text(json.dumps(forecasts))
    timings["write_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    insights = _insights(store, tenant, batch, anomalies, forecasts, out_dir, summary,
                         truth, days)
    timings["insights_s"] = time.perf_counter() - t0
    if report is not None:
        from vigil.report import ArraySource, write_report

        t0 = time.perf_counter()
        write_report(report, insights, ArraySource(batch, scores),
                     events=store.events(tenant), title=f"Vigil backtest of tenant {tenant}")
        timings["report_s"] = time.perf_counter() - t0
    summary["timings"] = timings
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _insights(store: Any, tenant: str, batch: SeriesBatch, anomalies: list[dict],
              forecasts: list[dict[str, Any]], out_dir: Path, summary: dict[str, Any],
              truth: Path | None, days: float) -> list[Any]:
    """Build the insights at the end of the replay, keep them in the store and insights.json,
    and score them against the truth."""
    from vigil.insights import InsightConfig, evaluate_insights, insights_to_json
    from vigil.insights.inputs import values_from_arrays
    from vigil.insights.persist import refresh_insights

    result = refresh_insights(
        store, tenant, config=InsightConfig(tenant=tenant, step_ms=batch.step),
        values=values_from_arrays(batch.series_ids, batch.start, batch.step, batch.values),
        now=batch.end - batch.step, anomalies=anomalies, exhaustion=forecasts,
    )
    (out_dir / "insights.json").write_text(insights_to_json(result.insights))
    summary["insights"] = {**result.stats, "notes": result.notes}
    if truth is not None:
        summary["insight_truth"] = evaluate_insights(result.insights, load_truth(truth),
                                                     n_series=batch.n_series, days=days)
    return result.insights
