"""Replay a tenant straight from the store, one partition at a time: the engine at scale.

The parent reads only the catalog (series ids and labels), places every series in a partition
(:mod:`vigil.engine.partition`: peers and paired limit series together) and hands each worker a
:class:`PartitionJob`.  The worker loads **its own partition** from the store as a batch, runs
the pure :func:`vigil.engine.replay.replay_partition`, writes its rows of the scores table to a
Parquet part file and returns only the small records: anomaly intervals and exhaustion
forecasts.  So memory is bounded by the partition size in the workers and by the records in
the parent, whatever the tenant's size; ``vigil backtest``, ``vigil demo`` and ``vigil detect``
all run through here.

Results do not depend on the number of workers or partitions: rows are independent apart from
peers and limits, which share a partition, and the records are sorted (anomalies by series then
start, forecasts by evaluation time then series).  The scores part files are numbered by
partition; their rows are ordered by series then time within a part.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vigil.batch import SeriesBatch
from vigil.engine.limits import limit_matrix
from vigil.engine.modelset import load_partition_model, part_path, save_partition_model
from vigil.engine.partition import group_ids, partition_of, placement_ids, placement_shards
from vigil.engine.pool import Progress, init_worker
from vigil.engine.records import anomaly_records, exhaustion_records, scores_table
from vigil.engine.replay import ModelFactory, ReplayConfig, replay_partition
from vigil.models.base import Scores
from vigil.series import parse_labels_json


@dataclass(frozen=True)
class PartitionJob:
    """What one worker needs: where the store is, which series, which grid, which schedule.

    Columns before ``keep_from`` are replayed (fitted on) but not reported; previously flagged
    anomalies are masked there when ``mask_previous`` (``vigil detect`` continuing a run)."""

    root: str
    tenant: str
    series_ids: np.ndarray
    start: int
    end: int
    step: int
    replay: ReplayConfig
    keep_from: int
    merge_gap_steps: int
    scores_path: str
    suppressions: tuple[Any, ...] = ()
    mask_previous: bool = False
    model_in: str | None = None  # continue this saved model instead of fitting (same series)
    model_out: str | None = None  # save the final model here
    ledger: Any = None  # vigil.ledger.capture.LedgerSpec: also return decision records
    fit_origin: tuple[int, int] | None = None  # of model_in: (fit window start, fitted_at)
    shard: np.ndarray | None = None  # per series_ids entry: its shard (giant placement groups)


@dataclass
class PartitionResult:
    n_series: int
    n_steps: int
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    forecasts: list[dict[str, Any]] = field(default_factory=list)
    scores_path: str | None = None
    continued: bool = False  # a saved model was continued (no fit)
    decisions: list[dict[str, Any]] = field(default_factory=list)  # ledger record bodies


@dataclass
class StreamResult:
    n_series: int
    n_steps: int
    anomalies: list[dict[str, Any]]
    forecasts: list[dict[str, Any]]
    scores_parts: list[Path]
    continued: int = 0  # partitions that continued a saved model
    partitions: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)  # ledger record bodies


def masked_history(store: Any, tenant: str, values: np.ndarray, ids: np.ndarray, start: int,
                   step: int) -> np.ndarray:
    """``values`` with the cells that earlier runs flagged anomalous masked (NaN)."""
    table = store.read_table(tenant, "anomalies")
    if table is None or table.num_rows == 0:
        return values
    # only this partition's records (every worker reads the table, each keeps its own rows)
    table = table.filter(pc.is_in(table.column("series_id"), pa.array(ids, pa.int64())))
    out = values.copy()
    row_of = {int(s): i for i, s in enumerate(ids)}
    n_cols = values.shape[1]
    for rec in table.select(["series_id", "start", "end"]).to_pylist():
        row = row_of[int(rec["series_id"])]
        first = max(0, (int(rec["start"]) - start) // step)
        last = min(n_cols - 1, (int(rec["end"]) - start) // step)
        if first <= last:
            out[row, first:last + 1] = np.nan
    return out


def run_job(job: PartitionJob, factory: ModelFactory) -> PartitionResult:
    """Load one partition from the store, replay it, write its scores part (pure apart from
    reading the store and writing ``job.scores_path``)."""
    from vigil.insights.suppress import exclusion_mask
    from vigil.store import Store

    store = Store(job.root)
    batch = store.load_batch(job.tenant, None, job.start, job.end, job.step,
                             series_ids=job.series_ids)
    n_steps = (job.end - job.start) // job.step
    if batch.n_series == 0:
        return PartitionResult(0, n_steps)
    values = batch.values
    if job.mask_previous and job.keep_from > 0:
        head = masked_history(store, job.tenant, values[:, :job.keep_from], batch.series_ids,
                              job.start, job.step)
        values = np.concatenate([head, values[:, job.keep_from:]], axis=1)
    if job.shard is not None:  # shards of giant peer groups, given by the parent
        batch = SeriesBatch(batch.series_ids, batch.start, batch.step, batch.values,
                            batch.labels, job.shard[np.searchsorted(job.series_ids,
                                                                    batch.series_ids)])
    run = batch.with_values(values)
    limits = (limit_matrix(batch.labels, batch.values, pairs=job.replay.pairs())
              if job.replay.forecast_every_steps > 0 else None)
    exclude = None
    if job.suppressions:
        exclude = exclusion_mask(batch.labels, batch.start, batch.step, batch.n_steps,
                                 list(job.suppressions))
        exclude = exclude if exclude.any() else None
    model = load_partition_model(job.model_in, batch.series_ids) if job.model_in else None
    observer = None
    if job.ledger is not None:
        from vigil.ledger.capture import FitObserver

        observer = FitObserver()
    scores, final, ex = replay_partition(run, job.replay, factory, limits, exclude, model,
                                         observer)
    if job.model_out:
        save_partition_model(final, batch.series_ids, job.model_out)
    kept = batch.columns(job.keep_from, batch.n_steps)
    kept_scores = Scores(**{k: v[:, job.keep_from:] for k, v in scores.__dict__.items()})
    begin = batch.start + job.keep_from * batch.step
    forecasts = [r for r in exhaustion_records(run, ex) if r["evaluated_at"] >= begin]
    Path(job.scores_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(scores_table(kept, kept_scores), job.scores_path, compression="zstd")
    decisions = [] if observer is None else _decisions(job, batch, values, exclude, scores,
                                                       ex, observer, factory, model is not None)
    return PartitionResult(batch.n_series, n_steps,
                           anomaly_records(kept, kept_scores, job.merge_gap_steps), forecasts,
                           job.scores_path, model is not None, decisions)


def _decisions(job: PartitionJob, batch: SeriesBatch, values: np.ndarray,
               exclude: np.ndarray | None, scores: Scores, ex: Any, observer: Any,
               factory: ModelFactory, continued: bool) -> list[dict[str, Any]]:
    from vigil.ledger.capture import Window, partition_entries

    window = Window(job.tenant, job.start, job.end, job.step, job.keep_from,
                    job.merge_gap_steps, job.mask_previous, job.replay,
                    job.model_in if continued else None, job.fit_origin if continued else None)
    return partition_entries(job.ledger, window, batch, values, exclude, scores, ex, observer,
                             factory, job.suppressions)


def replay_store(
    store: Any,
    tenant: str,
    *,
    start: int,
    end: int,
    step: int,
    replay: ReplayConfig,
    factory: ModelFactory,
    parts_dir: Path,
    keep_from: int = 0,
    merge_gap_steps: int = 3,
    n_partitions: int = 16,
    workers: int | None = None,
    progress: Progress | None = None,
    mask_previous: bool = False,
    suppressions: Sequence[Any] = (),
    models_in: Path | None = None,
    models_out: Path | None = None,
    ledger: Any = None,
    fit_origin: tuple[int, int] | None = None,
) -> StreamResult:
    """Replay every series of ``tenant`` over ``[start, end)`` partition by partition.

    ``models_in``: a model set (:mod:`vigil.engine.modelset`) to continue instead of fitting;
    ``models_out``: where to save each partition's final model; ``ledger``
    (:class:`vigil.ledger.capture.LedgerSpec`): each worker also returns the decision records
    of its partition (``StreamResult.decisions``, sorted by kind and subject)."""
    # the series the engine models: gauges as they are, counters and histograms as their
    # derived views (vigil.metrictypes); raw cumulative series are their sources only
    catalog = store.modelled_catalog(tenant)
    ids = catalog.column("series_id").to_numpy()
    labels = [parse_labels_json(t) for t in catalog.column("labels").to_pylist()]
    shard = placement_shards(labels, group_ids(labels))
    part = partition_of(placement_ids(labels, replay.pairs(), shard), n_partitions)
    shard_of = shard if shard.any() else None
    jobs = [
        PartitionJob(str(store.root), tenant, ids[part == p], start, end, step, replay,
                     keep_from, merge_gap_steps, str(parts_dir / f"part-{p:05d}.parquet"),
                     tuple(suppressions), mask_previous,
                     str(part_path(models_in, p)) if models_in else None,
                     str(part_path(models_out, p)) if models_out else None, ledger,
                     fit_origin if models_in else None,
                     None if shard_of is None else shard_of[part == p])
        for p in range(n_partitions) if (part == p).any()
    ]
    results: list[PartitionResult] = []
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            results.append(run_job(job, factory))
            if progress:
                progress(i + 1, len(jobs))
    else:
        # spawn, not fork: numba's threading layer may already run threads in this process
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, initializer=init_worker,
                                 mp_context=ctx) as ex:
            futures = [ex.submit(run_job, job, factory) for job in jobs]
            for done, fut in enumerate(as_completed(futures), start=1):
                results.append(fut.result())
                if progress:
                    progress(done, len(jobs))
    anomalies = sorted((a for r in results for a in r.anomalies),
                       key=lambda a: (a["series_id"], a["start"]))
    forecasts = sorted((f for r in results for f in r.forecasts),
                       key=lambda f: (f["evaluated_at"], f["series_id"]))
    paths = sorted(Path(r.scores_path) for r in results if r.scores_path)
    decisions = sorted((d for r in results for d in r.decisions),
                       key=lambda d: (d["kind"], d["subject"]))
    return StreamResult(sum(r.n_series for r in results), (end - start) // step, anomalies,
                        forecasts, paths, sum(r.continued for r in results),
                        sum(r.n_series > 0 for r in results), decisions)
