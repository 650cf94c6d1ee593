"""Time to exhaustion inside a replay: which limited series cross their limit, and when.

Exhaustion extrapolates exactly the drift a detector refuses to learn as normal, so it uses
:class:`~vigil.models.trend.LocalTrend` lines over the raw recent window (flagged points
included).  Three rules keep it honest on real fleets (measured on the default simulated fleet,
see docs/models.md):

1. **Start-up**: the first ``startup_steps`` of every series are ignored (a fresh pod's working
   set ramps up for an hour or two and then plateaus; a line through the ramp predicts a crossing
   that never comes), and a series needs ``min_age_steps`` after its start-up before it is
   forecast at all;
2. **Agreement**: the line over the whole trend window and the line over its last
   ``short_steps`` must both predict the crossing within the horizon (a drift that has already
   flattened out does not count; when the whole window's line is sure, the recent line's
   probability is the one kept);
3. **Onset**: the crossing *time* comes from a line fitted only since the drift began
   (:func:`~vigil.models.trend.hinge_start`), since a line through the flat hours before a leak
   underestimates its slope; its probability also has to agree.

The probability reported is the smallest of those that must agree, the crossing times are the
onset line's.  Everything is vectorised over the limited rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.batch import SeriesBatch
from vigil.models.exhaustion import Exhaustion, time_to_exhaustion
from vigil.models.trend import LocalTrend, hinge_start

# 5%..95% every 5%: enough to read p10/p50/p90 crossing times and the probability
EXHAUSTION_QUANTILES = tuple(round(0.05 * i, 2) for i in range(1, 20))


@dataclass(frozen=True)
class RunwayConfig:
    """Steps of the batch.  Defaults are for 5-minute steps (24 h window, 3 h start-up...)."""

    horizon_steps: int
    window_steps: int = 288
    startup_steps: int = 36
    min_age_steps: int = 72
    short_steps: int = 72
    hinge_min_post: int = 96
    hinge_every: int = 12

    @classmethod
    def for_step(cls, step_ms: int, horizon_steps: int, window_steps: int) -> RunwayConfig:
        """The rules in time (3 h start-up, 6 h minimum age and recent line, onset at least
        8 h back, candidates every hour) converted to steps of ``step_ms``."""
        hour = 3_600_000

        def steps(hours: float) -> int:
            return max(1, round(hours * hour / step_ms))

        return cls(horizon_steps=horizon_steps, window_steps=window_steps,
                   startup_steps=steps(3), min_age_steps=steps(6), short_steps=steps(6),
                   hinge_min_post=steps(8), hinge_every=steps(1))

    def __post_init__(self) -> None:
        for name in ("horizon_steps", "window_steps", "short_steps", "hinge_min_post",
                     "hinge_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} is invalid: expected >= 1 step")
        for name in ("startup_steps", "min_age_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} is invalid: expected >= 0 steps")


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


def first_seen(values: np.ndarray) -> np.ndarray:
    """Per row, the first column holding a finite value (the row length when none)."""
    finite = np.isfinite(values)
    return np.where(finite.any(axis=1), np.argmax(finite, axis=1), values.shape[1])


def _crossing(window: np.ndarray, limit: np.ndarray, horizon: int) -> Exhaustion:
    ids = np.arange(window.shape[0], dtype=np.int64)
    trend = LocalTrend().fit(SeriesBatch(ids, 0, 1, window))
    return time_to_exhaustion(trend, limit, horizon, quantiles=EXHAUSTION_QUANTILES)


def exhaustion_at(batch: SeriesBatch, limit: np.ndarray, born: np.ndarray, col: int,
                  cfg: RunwayConfig) -> ExhaustionRecords:
    """Exhaustion forecasts of the rows with a limit at ``col`` (columns ``< col`` only).

    ``limit`` [n]: each row's limit at ``col - 1`` (NaN: none); ``born`` [n]: first column of
    each row (:func:`first_seen`)."""
    usable = born + cfg.startup_steps
    rows = np.flatnonzero(np.isfinite(limit) & (col - usable >= max(cfg.min_age_steps, 3)))
    if len(rows) == 0:
        return ExhaustionRecords.concat([])
    first = max(0, col - cfg.window_steps)
    window = batch.values[rows, first:col].copy()
    cols = np.arange(first, col)
    window[cols[None, :] < usable[rows, None]] = np.nan
    lim = limit[rows]
    # both lines must see the crossing within the horizon (letting the whole window's line,
    # which lags a drift that began inside it, look two horizons ahead flagged 71 series
    # falsely instead of 3 on the demo fleet)
    whole = _crossing(window, lim, cfg.horizon_steps)
    recent = _crossing(window[:, -cfg.short_steps:], lim, cfg.horizon_steps)
    agreed = np.where(whole.probability >= 0.5, recent.probability,
                      np.minimum(whole.probability, recent.probability))
    onset = hinge_start(window, cfg.hinge_min_post, cfg.hinge_every)
    since = window.copy()
    since[np.arange(window.shape[1])[None, :] < onset[:, None]] = np.nan
    drift = _crossing(since, lim, cfg.horizon_steps)
    ms = drift.to_ms(batch.start + col * batch.step, batch.step)
    return ExhaustionRecords(
        col=np.full(len(rows), col, dtype=np.int64),
        row=rows,
        limit=lim,
        probability=np.minimum(agreed, drift.probability),
        p50=ms["median"],
        lo=ms["early"],
        hi=ms["late"],
    )
