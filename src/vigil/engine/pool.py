"""Run the per-partition function over partitions on a local process pool.

Rows are split by :func:`vigil.engine.partition.partition_of` of their peer-group id, each
partition is replayed by :func:`vigil.engine.replay.replay_partition` in a worker process (BLAS
and numba threads pinned to one per worker), and the results are put back in the batch's row
order.  Since rows (and peer groups) are independent, the output is bit-identical for any number
of workers or partitions.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import fields

import numpy as np

from vigil.batch import SeriesBatch
from vigil.engine.partition import partition_of
from vigil.engine.replay import ModelFactory, ReplayConfig, replay_partition
from vigil.engine.runway import ExhaustionRecords
from vigil.models.base import Scores

Progress = Callable[[int, int], None]


def init_worker() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import numba

    numba.set_num_threads(1)


def _run_one(batch: SeriesBatch, config: ReplayConfig, factory: ModelFactory,
             limits: np.ndarray | None,
             exclude: np.ndarray | None = None) -> tuple[Scores, ExhaustionRecords]:
    scores, _, exhaustion = replay_partition(batch, config, factory, limits, exclude)
    return scores, exhaustion


def run_partitioned(
    batch: SeriesBatch,
    groups: np.ndarray,
    config: ReplayConfig,
    factory: ModelFactory,
    *,
    n_partitions: int,
    workers: int | None = None,
    progress: Progress | None = None,
    limits: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> tuple[Scores, ExhaustionRecords]:
    """Replay every partition of ``batch``; scores in the batch's row order, and the exhaustion
    forecasts (rows in the batch's numbering, sorted by evaluation column then row)."""
    workers = workers or os.cpu_count() or 1
    part = partition_of(groups, n_partitions)
    members = [np.flatnonzero(part == p) for p in range(n_partitions)]
    members = [m for m in members if len(m)]
    n, t = batch.values.shape
    out = {f.name: np.empty((n, t), dtype=bool if f.name == "warming_up" else np.float64)
           for f in fields(Scores)}

    found: list[ExhaustionRecords] = []

    def place(rows: np.ndarray, result: tuple[Scores, ExhaustionRecords]) -> None:
        scores, exhaustion = result
        for name in out:
            out[name][rows] = getattr(scores, name)
        found.append(exhaustion.take_rows(rows))

    def part_limits(rows: np.ndarray) -> np.ndarray | None:
        return None if limits is None else limits[rows]

    def part_exclude(rows: np.ndarray) -> np.ndarray | None:
        return None if exclude is None or not exclude[rows].any() else exclude[rows]

    done = 0
    if workers == 1 or len(members) == 1:
        for rows in members:
            place(rows, _run_one(batch.rows(rows), config, factory, part_limits(rows),
                                 part_exclude(rows)))
            done += 1
            if progress:
                progress(done, len(members))
    else:
        # spawn, not fork: numba's OpenMP layer may already run threads in this process
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, initializer=init_worker,
                                 mp_context=ctx) as ex:
            futures = {ex.submit(_run_one, batch.rows(rows), config, factory,
                                 part_limits(rows), part_exclude(rows)): i
                       for i, rows in enumerate(members)}
            for fut in as_completed(futures):
                place(members[futures[fut]], fut.result())
                done += 1
                if progress:
                    progress(done, len(members))
    merged = ExhaustionRecords.concat(found)
    order = np.lexsort((merged.row, merged.col))
    return Scores(**out), ExhaustionRecords(*(getattr(merged, k)[order] for k in
                                              ("col", "row", "limit", "probability", "p50",
                                               "lo", "hi")))
