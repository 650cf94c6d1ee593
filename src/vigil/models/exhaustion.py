"""Time to exhaustion: when does a forecast cross a per-series limit?

Every function is vectorised over series.  ``limit`` is one value per series (NaN: the series
has no limit).  The direction of the crossing is +1 (rising to a ceiling, e.g. disk used) or -1
(falling to a floor, e.g. free bytes); by default it is taken from where the limit lies
relative to the first median forecast.

Crossing times are in **steps ahead** (1 = the first forecast column); a time beyond the
horizon is ``inf``.  Two estimators:

* :func:`crossing_from_samples` — from simulated paths ``[n, S, H]``: the first-passage time of
  every path, then its empirical probability within the horizon and its quantiles;
* :func:`crossing_from_quantiles` — from quantile paths ``[n, H, Q]`` (what every model's
  ``forecast`` gives): the ``tau``-quantile of the crossing time is the first step at which the
  ``1 - tau`` quantile path (rising; ``tau`` when falling) reaches the limit, and the probability
  of crossing within the horizon is the largest marginal exceedance probability over the
  horizon, read from the quantile levels by linear interpolation.  Both are exact when the paths
  are comonotone (a trend plus a shared shock, the usual ramp) and otherwise a lower bound for
  the probability; probabilities are resolved only between the outermost quantile levels given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vigil.models.base import Model

# the levels time_to_exhaustion asks for: probabilities resolve between 1% and 99%
DENSE_QUANTILES = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.975,
    0.99,
)


@dataclass(frozen=True)
class Exhaustion:
    """Per-series crossing summary (times in steps ahead, ``inf`` = not within the horizon)."""

    probability: np.ndarray  # [n] P(crossing within the horizon); NaN without a limit
    median: np.ndarray  # [n] median crossing time
    early: np.ndarray  # [n] lower end of the interval (interval[0] quantile of the time)
    late: np.ndarray  # [n] upper end (interval[1] quantile)
    direction: np.ndarray  # int8 [n]: +1 rising to the limit, -1 falling, 0 no limit

    def to_ms(self, origin_ms: int, step_ms: int) -> dict[str, np.ndarray]:
        """Crossing times as timestamps (ms; NaN where not within the horizon).

        Step ``h`` ahead is the column starting at ``origin_ms + (h - 1) * step_ms``.
        """
        out = {}
        for name in ("median", "early", "late"):
            steps = getattr(self, name)
            out[name] = np.where(np.isfinite(steps), origin_ms + (steps - 1) * step_ms, np.nan)
        return out


def _check_limit(limit: np.ndarray | float, n: int) -> np.ndarray:
    lim = np.broadcast_to(np.asarray(limit, dtype=np.float64), (n,)).copy()
    if np.isinf(lim).any():
        raise ValueError("limit holds inf: give a finite limit per series, or NaN for none")
    return lim


def _check_interval(interval: tuple[float, float]) -> None:
    lo, hi = interval
    if not 0.0 < lo < 0.5 < hi < 1.0:
        raise ValueError(
            f"interval={interval} is invalid: expected (low, high) with 0 < low < 0.5 < high < 1"
        )


def _direction(limit: np.ndarray, start: np.ndarray, direction: np.ndarray | None) -> np.ndarray:
    if direction is None:
        d = np.where(limit >= start, 1, -1)
    else:
        d = np.broadcast_to(np.asarray(direction), limit.shape).astype(np.int64)
        if not np.isin(d, (-1, 1)).all():
            raise ValueError("direction must be +1 (rising to the limit) or -1 (falling to it)")
    return np.where(np.isnan(limit), 0, d).astype(np.int8)


def _first_true(mask: np.ndarray, axis: int) -> np.ndarray:
    """1-based index of the first True along ``axis``; inf where none."""
    hit = mask.any(axis=axis)
    first = np.argmax(mask, axis=axis).astype(np.float64) + 1.0
    return np.where(hit, first, np.inf)


def crossing_from_samples(
    samples: np.ndarray,
    limit: np.ndarray | float,
    *,
    direction: np.ndarray | None = None,
    interval: tuple[float, float] = (0.1, 0.9),
) -> Exhaustion:
    """Crossing summary from simulated paths ``samples`` [n, S, H]."""
    if samples.ndim != 3:
        raise ValueError(
            f"samples has shape {samples.shape}: expected [n_series, n_paths, horizon]"
        )
    _check_interval(interval)
    n, n_paths, _ = samples.shape
    lim = _check_limit(limit, n)
    d = _direction(lim, np.nanmedian(samples[:, :, 0], axis=1), direction)
    signed = samples * d[:, None, None]
    with np.errstate(invalid="ignore"):
        crossed = signed >= (lim * d)[:, None, None]
    times = np.sort(_first_true(crossed, axis=2), axis=1)  # [n, S], inf last
    prob = np.isfinite(times).mean(axis=1)

    def q(tau: float) -> np.ndarray:
        k = min(max(int(np.ceil(tau * n_paths)) - 1, 0), n_paths - 1)
        return times[:, k]

    none = d == 0
    return Exhaustion(
        np.where(none, np.nan, prob),
        np.where(none, np.inf, q(0.5)),
        np.where(none, np.inf, q(interval[0])),
        np.where(none, np.inf, q(interval[1])),
        d,
    )


def _interp_path(paths: np.ndarray, levels: np.ndarray, tau: float) -> np.ndarray:
    """The ``tau`` quantile path [n, H] by linear interpolation between quantile levels."""
    if tau <= levels[0]:
        return paths[:, :, 0]
    if tau >= levels[-1]:
        return paths[:, :, -1]
    j = int(np.searchsorted(levels, tau)) - 1
    w = (tau - levels[j]) / (levels[j + 1] - levels[j])
    return (1 - w) * paths[:, :, j] + w * paths[:, :, j + 1]


def crossing_from_quantiles(
    paths: np.ndarray,
    quantiles: Sequence[float],
    limit: np.ndarray | float,
    *,
    direction: np.ndarray | None = None,
    interval: tuple[float, float] = (0.1, 0.9),
) -> Exhaustion:
    """Crossing summary from quantile paths ``paths`` [n, H, Q] at levels ``quantiles``."""
    levels = np.asarray(quantiles, dtype=np.float64)
    if paths.ndim != 3 or paths.shape[2] != len(levels):
        raise ValueError(
            f"paths has shape {paths.shape}: expected [n_series, horizon, {len(levels)}] "
            "(one column per quantile level)"
        )
    if len(levels) < 2 or np.any(np.diff(levels) <= 0):
        raise ValueError(f"quantiles {levels.tolist()} must be at least two increasing levels")
    _check_interval(interval)
    n = paths.shape[0]
    lim = _check_limit(limit, n)
    # quantile paths must not cross each other: sort along the level axis
    paths = np.sort(paths, axis=2)
    d = _direction(lim, _interp_path(paths, levels, 0.5)[:, 0], direction)
    up = (d >= 0)[:, None]
    target = lim[:, None]

    def time_at(tau: float) -> np.ndarray:
        # rising: the tau-quantile time is when the (1 - tau) path reaches the limit
        hi = _interp_path(paths, levels, 1.0 - tau)
        lo = _interp_path(paths, levels, tau)
        with np.errstate(invalid="ignore"):
            hit = np.where(up, hi >= target, lo <= target)
        return _first_true(hit, axis=1)

    # marginal P(beyond the limit) per step, from the CDF interpolated over the levels
    rows = paths.reshape(-1, len(levels))
    lim_rows = np.repeat(lim, paths.shape[1])
    below = np.sum(rows < lim_rows[:, None], axis=1)  # how many quantile values lie below
    k = np.clip(below, 1, len(levels) - 1)
    lo_v = rows[np.arange(len(rows)), k - 1]
    hi_v = rows[np.arange(len(rows)), k]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.clip((lim_rows - lo_v) / np.where(hi_v > lo_v, hi_v - lo_v, 1.0), 0.0, 1.0)
    cdf = levels[k - 1] + w * (levels[k] - levels[k - 1])
    cdf = np.where(below == 0, levels[0], np.where(below == len(levels), levels[-1], cdf))
    cdf = cdf.reshape(paths.shape[:2])
    exceed = np.where(up, 1.0 - cdf, cdf)
    prob = exceed.max(axis=1)
    none = d == 0
    return Exhaustion(
        np.where(none, np.nan, prob),
        np.where(none, np.inf, time_at(0.5)),
        np.where(none, np.inf, time_at(interval[0])),
        np.where(none, np.inf, time_at(interval[1])),
        d,
    )


def time_to_exhaustion(
    model: Model,
    limit: np.ndarray | float,
    horizon: int,
    *,
    direction: np.ndarray | None = None,
    interval: tuple[float, float] = (0.1, 0.9),
    quantiles: Sequence[float] = DENSE_QUANTILES,
) -> Exhaustion:
    """Crossing summary of a fitted model's forecast over ``horizon`` steps."""
    paths = model.forecast(horizon, quantiles)
    return crossing_from_quantiles(paths, quantiles, limit, direction=direction, interval=interval)
