"""Backtest: replay what a store holds as if live and write scores, anomalies and a summary.

``backtest_store`` replays one tenant's series on a regular grid causally, partition by
partition, each partition loaded from the store by its worker
(:func:`vigil.engine.stream.replay_store`), and writes

* ``scores.parquet``: labels, timestamp, value, expected, lower, upper, anomaly_score, p_value,
  warming_up (one row per series and step that holds a value; the partitions' parts
  concatenated, each ordered by series then time);
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
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vigil.batch import SeriesBatch
from vigil.engine.evaluate import evaluate, load_truth
from vigil.engine.limits import LimitPair, limit_matrix
from vigil.engine.partition import group_ids
from vigil.engine.pool import Progress, run_partitioned
from vigil.engine.replay import ModelFactory, ReplayConfig
from vigil.engine.runway import ExhaustionRecords, RunwayConfig
from vigil.models.base import Scores
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
    limit_pairs: tuple[LimitPair, ...] = ()  # the user's usage/limit pairs (engine.limits)


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


def backtest_batch(  # the in-memory replay of a batch at hand (tests, benchmarks)
    batch: SeriesBatch,
    config: BacktestConfig,
    factory: ModelFactory,
    progress: Progress | None = None,
    exclude: np.ndarray | None = None,
) -> tuple[Scores, ExhaustionRecords]:
    """Replay ``batch`` causally by partitions; ``exclude`` [n, T] marks points never learnt
    (do-not-learn suppressions, see :func:`do_not_learn_mask`)."""
    replay = replay_config(config, batch.step)
    groups = group_ids(list(batch.labels))
    limits = (limit_matrix(batch.labels, batch.values, pairs=replay.pairs())
              if replay.forecast_every_steps else None)
    return run_partitioned(batch, groups, replay, factory, n_partitions=config.partitions,
                           workers=config.workers, progress=progress, limits=limits,
                           exclude=exclude)


def replay_config(config: BacktestConfig, step: int) -> ReplayConfig:
    """The backtest schedule (durations) in steps of ``step`` ms."""
    forecasting = config.forecast_every not in ("0", "", "off")
    replay = ReplayConfig(
        warmup_steps=max(1, parse_duration(config.warmup) // step),
        refit_every_steps=max(1, parse_duration(config.refit_every) // step),
        fit_window_steps=max(1, parse_duration(config.fit_window) // step),
        forecast_every_steps=max(1, parse_duration(config.forecast_every) // step)
        if forecasting else 0,
        horizon_steps=max(1, parse_duration(config.horizon) // step),
        trend_window_steps=max(3, parse_duration(config.trend_window) // step),
        limit_pairs=tuple(config.limit_pairs),
    )
    if forecasting:
        replay = replace(replay, runway=RunwayConfig.for_step(
            step, replay.horizon_steps, replay.trend_window_steps))
    return replay


def do_not_learn_mask(store: Any, tenant: str, batch: SeriesBatch) -> np.ndarray | None:
    """The tenant's do-not-learn suppressions as a mask over ``batch`` (None when none)."""
    from vigil.insights.persist import read_suppressions
    from vigil.insights.suppress import exclusion_mask

    rules = [r for r in read_suppressions(store, tenant) if r.do_not_learn]
    if not rules:
        return None
    return exclusion_mask(batch.labels, batch.start, batch.step, batch.n_steps, rules)


def write_anomalies(out_dir: Path, anomalies: list[dict]) -> None:
    by_series: dict[int, dict[str, Any]] = {}
    for a in anomalies:
        entry = by_series.setdefault(a["series_id"], {"series_id": a["series_id"],
                                                      "labels": a["labels"], "intervals": []})
        entry["intervals"].append({"start": format_ms(a["start"]), "end": format_ms(a["end"]),
                                   "peak_score": round(a["peak_score"], 4)})
    (out_dir / "anomalies.json").write_text(json.dumps(list(by_series.values()), indent=1))


def merge_parts(parts: list[Path], path: Path) -> int:
    """Concatenate the partitions' scores files into one Parquet file, part by part (memory:
    one part); returns the row count."""
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table)
            rows += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def tenant_grid(store: Any, tenant: str, step_ms: int | None) -> tuple[int, int, int]:
    """``(start, end, step)`` covering every sample of the tenant on a regular grid."""
    stats = store.stats(tenant)
    if not stats["samples"]:
        raise ValueError(f"tenant {tenant!r} holds no samples: ingest data first (vigil ingest)")
    if step_ms is None:
        first_day = stats["min_timestamp"] + DAY_MS
        step_ms = infer_step(store.select(tenant, None, stats["min_timestamp"], first_day))
    start = stats["min_timestamp"] - stats["min_timestamp"] % step_ms
    end = stats["max_timestamp"] + 1
    end += (-(end - start)) % step_ms
    return start, end, step_ms


def member_ids(anomalies: list[dict], forecasts: list[dict]) -> np.ndarray:
    """Series that appear in the records (what insights and the report need values of)."""
    return np.unique(np.array([r["series_id"] for r in (*anomalies, *forecasts)],
                              dtype=np.int64))


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
    ledger: bool = True,
) -> dict[str, Any]:
    """Replay partition by partition from the store (:mod:`vigil.engine.stream`), write the
    outputs (module docstring) and, with ``report``, the HTML report.  With ``ledger`` every
    anomaly, exhaustion risk and insight is also a signed record in the tenant's decision
    ledger (:mod:`vigil.ledger`)."""
    from vigil.engine.stream import replay_store
    from vigil.insights.persist import read_suppressions
    from vigil.ledger.record import new_run, record_engine

    config = config or BacktestConfig()
    spec = new_run("backtest") if ledger else None
    timings: dict[str, float] = {}
    start, end, step = tenant_grid(store, tenant, config.step_ms)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts_dir = out_dir / "scores.parts"
    shutil.rmtree(parts_dir, ignore_errors=True)
    t0 = time.perf_counter()
    result = replay_store(
        store, tenant, start=start, end=end, step=step, replay=replay_config(config, step),
        factory=factory, parts_dir=parts_dir, merge_gap_steps=config.merge_gap_steps,
        n_partitions=config.partitions, workers=config.workers, progress=progress,
        suppressions=[r for r in read_suppressions(store, tenant) if r.do_not_learn],
        ledger=spec,
    )
    if spec is not None:
        record_engine(store, tenant, result.decisions)
    timings["score_s"] = time.perf_counter() - t0
    anomalies, forecasts = result.anomalies, result.forecasts
    days = result.n_steps * step / DAY_MS
    summary: dict[str, Any] = {
        "series": result.n_series,
        "steps": result.n_steps,
        "step_ms": step,
        "start": format_ms(start),
        "end": format_ms(end),
        "alerts": len(anomalies),
        "alerts_per_series_day": len(anomalies) / max(result.n_series * days, 1e-9),
        "config": asdict(config),
    }
    if truth is not None:
        summary["truth"] = evaluate(anomalies, load_truth(truth), n_series=result.n_series,
                                    days=days)
    t0 = time.perf_counter()
    summary["score_rows"] = merge_parts(result.scores_parts, out_dir / "scores.parquet")
    shutil.rmtree(parts_dir, ignore_errors=True)
    write_anomalies(out_dir, anomalies)
    (out_dir / "exhaustion.json").write_text(json.dumps(forecasts))
    timings["write_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    members = store.load_batch(tenant, None, start, end, step,
                               series_ids=member_ids(anomalies, forecasts))
    insights = _insights(store, tenant, members, end, anomalies, forecasts, out_dir, summary,
                         truth, result.n_series, days, spec)
    timings["insights_s"] = time.perf_counter() - t0
    if report is not None:
        from vigil.report import TableSource, write_report
        from vigil.report import member_ids as report_members

        t0 = time.perf_counter()
        source = TableSource.from_parquet(out_dir / "scores.parquet", report_members(insights))
        write_report(report, insights, source,
                     events=store.events(tenant), title=f"Vigil backtest of tenant {tenant}")
        timings["report_s"] = time.perf_counter() - t0
    summary["timings"] = timings
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _insights(store: Any, tenant: str, batch: SeriesBatch, end: int, anomalies: list[dict],
              forecasts: list[dict[str, Any]], out_dir: Path, summary: dict[str, Any],
              truth: Path | None, n_series: int, days: float,
              spec: Any = None) -> list[Any]:
    """Build the insights at the end of the replay, keep them in the store and insights.json,
    and score them against the truth."""
    from vigil.insights import InsightConfig, evaluate_insights, insights_to_json
    from vigil.insights.inputs import values_from_arrays
    from vigil.insights.persist import refresh_insights

    cfg = InsightConfig(tenant=tenant, step_ms=batch.step)
    result = refresh_insights(
        store, tenant, config=cfg,
        values=values_from_arrays(batch.series_ids, batch.start, batch.step, batch.values),
        now=end - batch.step, anomalies=anomalies, exhaustion=forecasts,
    )
    if spec is not None:
        from vigil.ledger.record import record_insights

        record_insights(store, tenant, spec, result, config=cfg, now=end - batch.step,
                        window=(batch.start, end, batch.step), exhaustion=forecasts)
    (out_dir / "insights.json").write_text(insights_to_json(result.insights))
    summary["insights"] = {**result.stats, "notes": result.notes}
    if truth is not None:
        summary["insight_truth"] = evaluate_insights(result.insights, load_truth(truth),
                                                     n_series=n_series, days=days)
    return result.insights
