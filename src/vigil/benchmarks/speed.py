"""CPU cost of a model's fit and score per series, on synthetic hourly series.

``measure_speed`` fits a fresh model on ``n_steps`` columns of ``n_series`` synthetic series
(daily season of random amplitude, a slow trend on some, noise, 1% gaps and a few spikes),
then scores the next ``n_steps`` columns, and reports the **process CPU time** (all threads)
and the wall time of each phase, per series.  A small warm-up fit first compiles every numba
kernel, so compilation is not counted.  Run it with ``NUMBA_NUM_THREADS=1`` for the cleanest
CPU figure (thread start-up and spinning count as CPU time).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from vigil.batch import SeriesBatch
from vigil.models.base import Model

HOUR_MS = 3_600_000


def synthetic_hourly(n_series: int, n_steps: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps)
    level = rng.uniform(10, 1000, (n_series, 1))
    amp = rng.uniform(0, 0.5, (n_series, 1)) * level
    phase = rng.uniform(0, 2 * np.pi, (n_series, 1))
    trend = np.where(rng.random((n_series, 1)) < 0.3, rng.normal(0, 0.001, (n_series, 1)), 0.0)
    x = level * (1 + trend * t) + amp * np.sin(2 * np.pi * t / 24 + phase)
    x = x + rng.normal(0, 1, x.shape) * rng.uniform(0.01, 0.1, (n_series, 1)) * level
    x[rng.random(x.shape) < 0.01] = np.nan
    spikes = rng.random(x.shape) < 0.002
    x[spikes] += 10 * amp.repeat(n_steps, axis=1)[spikes] + level.repeat(n_steps, axis=1)[spikes]
    return x


def measure_speed(
    make: Callable[[], Model],
    n_series: int = 10_000,
    n_steps: int = 720,
    seed: int = 0,
) -> dict[str, float]:
    """CPU and wall microseconds per series of ``make().fit`` on ``n_steps`` columns and of
    ``score`` on the next ``n_steps``."""
    values = synthetic_hourly(n_series, 2 * n_steps, seed)
    ids = np.arange(n_series, dtype=np.int64)
    # replicas: five pods per service, so peer models have groups to compare within
    labels = [{"__name__": "requests", "service": f"s{i // 5}", "pod": f"p{i}"}
              for i in range(n_series)]
    fit_b = SeriesBatch(ids, 0, HOUR_MS, values[:, :n_steps], labels)
    score_b = SeriesBatch(ids, n_steps * HOUR_MS, HOUR_MS, values[:, n_steps:], labels)
    warm = slice(0, min(n_series, 50))
    make().fit(fit_b.rows(warm)).score(score_b.rows(warm))  # compile every kernel
    model = make()
    c0, w0 = time.process_time(), time.perf_counter()
    model.fit(fit_b)
    c1, w1 = time.process_time(), time.perf_counter()
    model.score(score_b)
    c2, w2 = time.process_time(), time.perf_counter()
    per = 1e6 / n_series
    return {
        "fit_cpu_us": (c1 - c0) * per,
        "score_cpu_us": (c2 - c1) * per,
        "total_cpu_us": (c2 - c0) * per,
        "fit_wall_us": (w1 - w0) * per,
        "score_wall_us": (w2 - w1) * per,
        "n_series": float(n_series),
        "n_steps": float(n_steps),
    }
