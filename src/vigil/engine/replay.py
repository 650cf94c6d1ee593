"""The pure per-partition function: replay a batch causally through a model.

``replay_partition(batch, config, factory)`` fits a fresh model on the warm-up span, then scores
the following columns chunk by chunk (scoring is causal and advances the state one step at a
time), refitting on the configured schedule on a trailing window from which points already flagged
anomalous are masked, so anomalies never teach the model that they are normal.

It is pure: arrays in, arrays out, no I/O, no globals.  The local pool and Spark both call exactly
this function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vigil.batch import SeriesBatch
from vigil.models.base import Model, Scores
from vigil.models.exhaustion import time_to_exhaustion
from vigil.models.trend import LocalTrend

# 5%..95% every 5%: enough to read p10/p50/p90 crossing times and the probability
EXHAUSTION_QUANTILES = tuple(round(0.05 * i, 2) for i in range(1, 20))


@dataclass(frozen=True)
class ReplayConfig:
    """Schedule of a causal replay, in steps of the batch."""

    warmup_steps: int
    refit_every_steps: int
    fit_window_steps: int
    forecast_every_steps: int = 0  # 0: no exhaustion forecasts
    horizon_steps: int = 0
    trend_window_steps: int = 288

    def __post_init__(self) -> None:
        for name in ("warmup_steps", "refit_every_steps", "fit_window_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} is invalid: expected >= 1 step")
        if self.forecast_every_steps < 0 or (self.forecast_every_steps and self.horizon_steps < 1):
            raise ValueError(
                f"forecast_every_steps={self.forecast_every_steps}, horizon_steps="
                f"{self.horizon_steps}: expected 0 (off) or a positive schedule and horizon"
            )


@dataclass(frozen=True)
class ExhaustionRecords:
    """Exhaustion forecasts made during a replay, one entry per (evaluation, limited series).

    ``col`` is the column count seen at evaluation (the forecast starts at that column);
    crossing times are ms timestamps (NaN: not within the horizon)."""

    col: np.ndarray
    row: np.ndarray
    limit: np.ndarray
    probability: np.ndarray
    p50: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @staticmethod
    def concat(parts: list[ExhaustionRecords]) -> ExhaustionRecords:
        names = ("col", "row", "limit", "probability", "p50", "lo", "hi")
        if not parts:
            return ExhaustionRecords(*(np.empty(0) for _ in names))
        return ExhaustionRecords(*(np.concatenate([getattr(p, k) for p in parts]) for k in names))

    def take_rows(self, rows: np.ndarray) -> ExhaustionRecords:
        """Map partition-local row numbers to the caller's rows."""
        return ExhaustionRecords(self.col, rows[self.row.astype(np.int64)], self.limit,
                                 self.probability, self.p50, self.lo, self.hi)


ModelFactory = Callable[[], Model]


def replay_partition(
    batch: SeriesBatch,
    config: ReplayConfig,
    factory: ModelFactory,
    limits: np.ndarray | None = None,
) -> tuple[Scores, Model, ExhaustionRecords]:
    """Scores for every column of ``batch``, the final model and the exhaustion forecasts.

    Columns of the warm-up span get NaN expectations, ``anomaly_score`` 0 and ``warming_up``
    True: nothing is scored before a model exists.  ``limits`` ``[n, T]`` (NaN: none; see
    :mod:`vigil.engine.limits`) turns on time-to-exhaustion forecasts every
    ``forecast_every_steps`` for the rows that have a limit at that moment.
    """
    n, t_total = batch.values.shape
    warm = min(config.warmup_steps, t_total)
    parts: list[Scores] = [_warming(n, warm)]
    model = factory().fit(batch.columns(0, warm))
    flagged = np.zeros((n, t_total), dtype=bool)
    forecasting = limits is not None and config.forecast_every_steps > 0 and bool(
        np.isfinite(limits).any())
    exhaustion: list[ExhaustionRecords] = []
    col = warm
    next_refit = warm + config.refit_every_steps
    while col < t_total:
        stop = min(next_refit, t_total)
        if forecasting:
            stop = min(stop, col + config.forecast_every_steps)
        scores = model.score(batch.columns(col, stop))
        parts.append(scores)
        flagged[:, col:stop] = scores.anomaly_score > 1.0
        col = stop
        if forecasting and limits is not None:
            exhaustion.append(_exhaustion(batch, limits[:, col - 1], col, config))
        if col >= next_refit and col < t_total:
            next_refit = col + config.refit_every_steps
            first = max(0, col - config.fit_window_steps)
            window = batch.columns(first, col)
            clean = np.where(flagged[:, first:col], np.nan, window.values)
            model = factory().fit(
                SeriesBatch(window.series_ids, window.start, window.step, clean, window.labels)
            )
    return Scores.concat(parts, axis=1), model, ExhaustionRecords.concat(exhaustion)


def _exhaustion(batch: SeriesBatch, limit: np.ndarray, col: int,
                config: ReplayConfig) -> ExhaustionRecords:
    """Time to exhaustion of the limited rows from a local trend over the raw recent window
    (flagged points included: a leak is the drift to extrapolate)."""
    rows = np.flatnonzero(np.isfinite(limit))
    if len(rows) == 0:
        return ExhaustionRecords.concat([])
    window = batch.rows(rows).columns(max(0, col - config.trend_window_steps), col)
    trend = LocalTrend().fit(window)
    ex = time_to_exhaustion(trend, limit[rows], config.horizon_steps,
                            quantiles=EXHAUSTION_QUANTILES)
    ms = ex.to_ms(batch.start + col * batch.step, batch.step)
    return ExhaustionRecords(
        col=np.full(len(rows), col, dtype=np.int64),
        row=rows,
        limit=limit[rows],
        probability=ex.probability,
        p50=ms["median"],
        lo=ms["early"],
        hi=ms["late"],
    )


def _warming(n: int, t: int) -> Scores:
    nan = np.full((n, t), np.nan)
    return Scores(
        expected=nan,
        lower=nan.copy(),
        upper=nan.copy(),
        p_value=np.ones((n, t)),
        anomaly_score=np.zeros((n, t)),
        warming_up=np.ones((n, t), dtype=bool),
    )
