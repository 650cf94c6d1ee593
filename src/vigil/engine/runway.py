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

4. **Through the day**: where a row has a day (``season_steps``) of history before its window,
   the crossing *times* come from the seasonal naive forecast with drift of
   :func:`~vigil.models.trend.seasonal_drift_paths` (yesterday's value at the same time plus
   the drift since, the drift fitted on day-over-day differences, both on the
   ``envelope_steps`` trailing maximum): a line through the first hours of a leak whose
   apparent rate follows the day runs early by day and late by night.  A row too young for
   that day borrows the part before its first value from its replicas
   (:func:`_fill_from_peers`); otherwise the onset line's times stay.

The probability reported is the smallest of those that must agree (rule 4's too, so that a
row at risk always has the crossing time reported).  Everything is vectorised over the limited rows
(the replica fill loops over the few peer groups that hold a young row).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from vigil.batch import SeriesBatch
from vigil.models.exhaustion import Exhaustion, crossing_from_quantiles, time_to_exhaustion
from vigil.models.peer import DEFAULT_GROUP_BY, peer_groups, with_shards
from vigil.models.trend import LocalTrend, hinge_start, seasonal_drift, seasonal_drift_paths

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
    season_steps: int = 288
    season_min_post: int = 36
    envelope_steps: int = 16
    peer_fill: bool = True

    @classmethod
    def for_step(cls, step_ms: int, horizon_steps: int, window_steps: int) -> RunwayConfig:
        """The rules in time (3 h start-up, 6 h minimum age and recent line, onset at least
        8 h back, candidates every hour) converted to steps of ``step_ms``."""
        hour = 3_600_000

        def steps(hours: float) -> int:
            return max(1, round(hours * hour / step_ms))

        return cls(horizon_steps=horizon_steps, window_steps=window_steps,
                   startup_steps=steps(3), min_age_steps=steps(6), short_steps=steps(6),
                   hinge_min_post=steps(8), hinge_every=steps(1), season_steps=steps(24),
                   season_min_post=steps(3), envelope_steps=steps(80 / 60))

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


def _seasonal_crossing(batch: SeriesBatch, rows: np.ndarray, usable: np.ndarray, col: int,
                       lim: np.ndarray, cfg: RunwayConfig) -> tuple[Exhaustion, np.ndarray]:
    season = cfg.season_steps
    first = col - cfg.window_steps - season
    hist = np.full((len(rows), cfg.window_steps + season), np.nan)
    hist[:, max(0, -first):] = batch.values[rows, max(first, 0):col]
    cols = np.arange(first, col)
    hist[cols[None, :] < usable[rows, None]] = np.nan
    if cfg.peer_fill:
        hist = _fill_from_peers(hist, [batch.labels[r] for r in rows] if batch.labels else [],
                                cfg, None if batch.shard is None else batch.shard[rows])
    paths = seasonal_drift_paths(hist, season, cfg.horizon_steps, EXHAUSTION_QUANTILES,
                                 cfg.season_min_post, cfg.hinge_every,
                                 envelope=cfg.envelope_steps)
    ok = np.isfinite(paths).all(axis=(1, 2))
    return crossing_from_quantiles(np.where(ok[:, None, None], paths, 0.0),
                                   EXHAUSTION_QUANTILES, lim), ok


def _fill_from_peers(hist: np.ndarray, labels: list, cfg: RunwayConfig,
                     shard: np.ndarray | None = None) -> np.ndarray:
    """Rows too young for a season of their own history get the part before their first
    observed value from their replicas (same metric and group labels, see
    :data:`vigil.models.peer.DEFAULT_GROUP_BY`): the median of the established replicas'
    values with their own drift removed, shifted to the young row's level over its first
    ``startup_steps`` observed columns.  A young pod then compares with what its replicas
    did one season back."""
    season = cfg.season_steps
    if not labels or len(labels) != hist.shape[0]:
        return hist
    seen = np.isfinite(hist)
    own = (seen[:, season:] & seen[:, :-season]).sum(axis=1)
    young = (own < cfg.min_age_steps) & (seen.sum(axis=1) >= cfg.min_age_steps)
    established = own >= season // 2
    if not young.any() or not established.any():
        return hist
    groups = peer_groups(labels, DEFAULT_GROUP_BY)
    if shard is not None:  # a sharded giant group: its shards are peer groups apart
        groups = with_shards(groups, shard)
    wanted = np.isin(groups, groups[young]) & established
    if not wanted.any():
        return hist
    slope, _, _, onset = seasonal_drift(hist[wanted], season, cfg.season_min_post,
                                        cfg.hinge_every)
    x = np.arange(hist.shape[1], dtype=float)
    flat = hist[wanted] - np.where(np.isfinite(slope), slope, 0.0)[:, None] * np.maximum(
        0.0, x[None, :] - (season + onset)[:, None])
    out = hist.copy()
    peers_of = groups[wanted]
    for g in np.unique(groups[young]):
        mine = peers_of == g
        if mine.sum() < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # columns no replica observed
            base = np.nanmedian(flat[mine], axis=0)
        for i in np.flatnonzero(young & (groups == g)):
            obs = np.flatnonzero(seen[i])
            head = obs[:cfg.startup_steps]
            shift = np.nanmedian(hist[i, head] - base[head])
            if not np.isfinite(shift):
                continue
            before = x < obs[0]
            out[i, before] = base[before] + shift
    return out


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
    times = drift
    probability = np.minimum(agreed, drift.probability)
    if cfg.season_steps > 0:
        seasonal, have = _seasonal_crossing(batch, rows, usable, col, lim, cfg)
        times = Exhaustion(drift.probability,
                           np.where(have, seasonal.median, drift.median),
                           np.where(have, seasonal.early, drift.early),
                           np.where(have, seasonal.late, drift.late), drift.direction)
        # it must agree too: a row at risk always carries the crossing time reported
        probability = np.where(have, np.minimum(probability, seasonal.probability),
                               probability)
    ms = times.to_ms(batch.start + col * batch.step, batch.step)
    return ExhaustionRecords(
        col=np.full(len(rows), col, dtype=np.int64),
        row=rows,
        limit=lim,
        probability=probability,
        p50=ms["median"],
        lo=ms["early"],
        hi=ms["late"],
    )
