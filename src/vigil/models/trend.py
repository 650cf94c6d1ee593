"""``LocalTrend``: a per-series least-squares line over the recent window, for time to exhaustion.

Exhaustion is about extrapolating exactly the drift that a detector refuses to learn as normal
(a leak is anomalous), so it gets its own small model fitted on the raw recent window:

* ``fit(batch)``: per row, ordinary least squares of the observed values on the column index
  (NaN ignored), closed form and vectorised; residual standard deviation ``sigma_`` and the
  slope's standard error ``slope_se_``;
* ``forecast(h, q)``: ``level + slope * k`` plus the Gaussian quantile of the predictive spread
  ``sqrt(sigma^2 + (slope_se * k)^2)`` at each step ``k`` ahead (comonotone paths, which is what
  :func:`vigil.models.exhaustion.crossing_from_quantiles` reads exactly).

Rows with fewer than ``min_points`` observations forecast NaN.

:func:`hinge_start` finds, per row, where a drift began: the least-squares fit of
``a + b * max(0, x - k)`` over candidate hinges ``k`` (every ``every`` columns, leaving at least
``min_post`` columns after it); the window cut at that hinge is what ``LocalTrend`` should fit
when a leak started inside the window (a straight line through the flat part before it
underestimates the slope, so the crossing comes late).

:func:`seasonal_drift` measures a drift on day-over-day differences (a daily pattern cancels)
and :func:`seasonal_drift_paths` turns it into quantile paths "same time one season back plus
the drift since", on the :func:`trailing_max` envelope; the crossing times of
:mod:`vigil.engine.runway` come from them when a series has a season of history.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist
from typing import Any, ClassVar, Self

import numpy as np

from vigil.batch import SeriesBatch
from vigil.models.base import Model, Scores


class LocalTrend(Model):
    name: ClassVar[str] = "local_trend"
    version: ClassVar[str] = "1"

    def __init__(self, min_points: int = 12) -> None:
        if min_points < 3:
            raise ValueError(f"min_points={min_points} is invalid: a line needs at least 3 points")
        self.min_points = int(min_points)

    def params(self) -> dict[str, Any]:
        return {"min_points": self.min_points}

    def fit(self, batch: SeriesBatch) -> Self:
        y = batch.values
        _n, t = y.shape
        seen = np.isfinite(y)
        cnt = seen.sum(axis=1).astype(float)
        x = np.broadcast_to(np.arange(t, dtype=float), y.shape)
        yz = np.where(seen, y, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mx = np.where(seen, x, 0.0).sum(axis=1) / cnt
            my = yz.sum(axis=1) / cnt
            dx = np.where(seen, x - mx[:, None], 0.0)
            sxx = (dx * dx).sum(axis=1)
            slope = (dx * (yz - my[:, None])).sum(axis=1) / sxx
            resid = np.where(seen, yz - my[:, None] - slope[:, None] * dx, 0.0)
            dof = np.maximum(cnt - 2, 1)
            sigma = np.sqrt((resid * resid).sum(axis=1) / dof)
            slope_se = sigma / np.sqrt(sxx)
        ok = (cnt >= self.min_points) & (sxx > 0)
        # the line's value at the last column, from which forecasts start
        self.level_ = np.where(ok, my + slope * (t - 1 - mx), np.nan)
        self.slope_ = np.where(ok, slope, np.nan)
        self.sigma_ = np.where(ok, sigma, np.nan)
        self.slope_se_ = np.where(ok, slope_se, np.nan)
        self.end_ = batch.end
        self.step_ = batch.step
        return self

    def forecast(self, horizon: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
        k = np.arange(1, horizon + 1, dtype=float)
        mean = self.level_[:, None] + self.slope_[:, None] * k
        spread = np.sqrt(self.sigma_[:, None] ** 2 + (self.slope_se_[:, None] * k) ** 2)
        z = np.array([NormalDist().inv_cdf(q) for q in quantiles])
        return mean[:, :, None] + spread[:, :, None] * z

    def score(self, batch: SeriesBatch) -> Scores:
        raise NotImplementedError(
            "LocalTrend only forecasts (time to exhaustion); score with the default detector"
        )

    def state(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(getattr(self, k)) for k in
                ("level_", "slope_", "sigma_", "slope_se_", "end_", "step_")}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        for k in ("level_", "slope_", "sigma_", "slope_se_"):
            setattr(self, k, np.asarray(state[k]))
        self.end_, self.step_ = int(state["end_"]), int(state["step_"])


def hinge_start(values: np.ndarray, min_post: int, every: int) -> np.ndarray:
    """Per row, the column (within ``values``) at which a hinged line fits best; 0 when the
    window is too short for any later hinge.  Vectorised over rows, a loop over candidates."""
    y = np.asarray(values, dtype=np.float64)
    n, t = y.shape
    seen = np.isfinite(y)
    yz = np.where(seen, y, 0.0)
    cnt = seen.sum(axis=1).astype(float)
    sy = yz.sum(axis=1)
    x = np.arange(t, dtype=float)
    best = np.full(n, np.inf)
    best_k = np.zeros(n, dtype=np.int64)
    for k in range(0, max(t - min_post, 0) + 1, max(every, 1)):
        z = np.where(seen, np.maximum(0.0, x - k), 0.0)
        sz, szz, szy = z.sum(axis=1), (z * z).sum(axis=1), (z * yz).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            det = cnt * szz - sz * sz
            b = (cnt * szy - sz * sy) / det
            a = (sy - b * sz) / cnt
            resid = np.where(seen, yz - a[:, None] - b[:, None] * z, 0.0)
            sse = (resid * resid).sum(axis=1)
        better = np.isfinite(sse) & (sse < best)
        best = np.where(better, sse, best)
        best_k = np.where(better, k, best_k)
    return best_k


def seasonal_drift(values: np.ndarray, season: int, min_post: int, every: int,
                   min_points: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row, a drift measured on the differences over one season (``y[t] - y[t - season]``).

    ``values`` [n, season + W]: the last ``W`` columns are the window, the ``season`` before it
    their references.  A daily pattern (traffic, log rotation, a working set that follows load)
    cancels in the differences, so what is left of a drift that began at column ``k`` of the
    window is ``b * clip(x - k, 0, season)``: zero before it, a ramp while the reference is
    still from before it, flat once both are inside it.  The onset ``k`` is searched every
    ``every`` columns from ``-season`` (a drift older than the whole window) to ``W - min_post``
    by least squares without intercept (no drift, no difference).

    Returns ``slope`` (per column), its standard error, the residual standard deviation of one
    value (the differences' over ``sqrt 2``) and the onset (column of the window); NaN / 0 for
    rows with fewer than ``min_points`` differences.
    """
    y = np.asarray(values, dtype=np.float64)
    n, total = y.shape
    w = total - season
    if season < 1 or w < 1:
        raise ValueError(f"values has {total} columns: expected more than season={season}")
    d = y[:, season:] - y[:, :w]
    seen = np.isfinite(d)
    dz = np.where(seen, d, 0.0)
    cnt = seen.sum(axis=1)
    x = np.arange(w, dtype=float)
    best = np.full(n, np.inf)
    slope = np.full(n, np.nan)
    szz_best = np.full(n, np.nan)
    onset = np.zeros(n, dtype=np.int64)
    def try_onsets(near: np.ndarray) -> None:
        """Fit the hinge from each row's candidate onset ``near``; keep it where it fits best."""
        nonlocal best, slope, szz_best, onset
        z = np.where(seen, np.clip(x[None, :] - near[:, None], 0.0, float(season)), 0.0)
        szz = (z * z).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            b = (z * dz).sum(axis=1) / szz
            resid = np.where(seen, dz - b[:, None] * z, 0.0)
            sse = (resid * resid).sum(axis=1)
        better = np.isfinite(sse) & (szz > 0) & (sse < best)
        best = np.where(better, sse, best)
        slope = np.where(better, b, slope)
        szz_best = np.where(better, szz, szz_best)
        onset = np.where(better, near, onset)

    last = max(w - min_post, -season)
    for k in range(-season, last + 1, max(every, 1)):  # coarse candidates, every few columns
        try_onsets(np.full(n, k, dtype=np.int64))
    coarse = onset.copy()  # then every column around each row's best one
    for off in range(-max(every, 1) + 1, max(every, 1)):
        try_onsets(np.clip(coarse + off, -season, last))
    ok = (cnt >= min_points) & np.isfinite(best)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma_d = np.sqrt(best / np.maximum(cnt - 1, 1))
        slope_se = sigma_d / np.sqrt(szz_best)
    return (np.where(ok, slope, np.nan), np.where(ok, slope_se, np.nan),
            np.where(ok, sigma_d / np.sqrt(2.0), np.nan), np.where(ok, onset, 0))


def seasonal_drift_paths(values: np.ndarray, season: int, horizon: int,
                         quantiles: Sequence[float], min_post: int, every: int,
                         min_points: int = 12, envelope: int = 1) -> np.ndarray:
    """Quantile paths ``[n, horizon, Q]`` of "the same moment one season back, plus the drift
    since" (seasonal naive with drift, the drift from :func:`seasonal_drift`).

    Step ``h`` ahead (column ``total - 1 + h`` of ``values``) starts from the last season's
    value at the same phase (gaps filled from the nearest observed neighbour) and adds
    ``slope`` times the columns since that reference or since the onset, whichever is later;
    the spread is ``sqrt(sigma^2 + (slope_se * drift columns)^2)``.  Rows whose last season
    is more than half empty forecast NaN."""
    y = trailing_max(np.asarray(values, dtype=np.float64), envelope)
    total = y.shape[1]
    slope, slope_se, sigma, onset = seasonal_drift(y, season, min_post, every, min_points)
    ref = _fill_gaps(y[:, -season:])
    enough = np.isfinite(y[:, -season:]).sum(axis=1) * 2 >= season
    h = np.arange(1, horizon + 1)
    phase = (h - 1) % season  # position in the last season
    ref_col = total - season + phase  # absolute column of the reference
    target = total - 1 + h
    start = np.maximum(ref_col[None, :], (season + onset)[:, None])
    steps = np.maximum(target[None, :] - start, 0).astype(float)
    mean = ref[:, phase] + slope[:, None] * steps
    spread = np.sqrt(sigma[:, None] ** 2 + (slope_se[:, None] * steps) ** 2)
    z = np.array([NormalDist().inv_cdf(q) for q in quantiles])
    paths = mean[:, :, None] + spread[:, :, None] * z
    paths[~enough] = np.nan
    return paths


def _fill_gaps(values: np.ndarray) -> np.ndarray:
    """NaN cells replaced by the previous observed value of the row (the next one before the
    first); rows without any value stay NaN."""
    n, t = values.shape
    seen = np.isfinite(values)
    idx = np.where(seen, np.arange(t), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    first = np.argmax(seen, axis=1)
    idx = np.where(np.maximum.accumulate(seen, axis=1), idx, first[:, None])
    return values[np.arange(n)[:, None], idx]


def trailing_max(values: np.ndarray, width: int) -> np.ndarray:
    """Per row, the largest observed value over the last ``width`` columns (NaN ignored, NaN
    where none; the first columns see what there is): the upper envelope of a sawtooth."""
    y = np.asarray(values, dtype=np.float64)
    if width <= 1:
        return y.copy()
    out = y.copy()
    span = 1
    while span * 2 <= width:  # out: max over the last ``span`` columns, doubled each pass
        shifted = np.full_like(out, np.nan)
        shifted[:, span:] = out[:, :-span]
        out = np.fmax(out, shifted)
        span *= 2
    if span < width:  # two overlapping windows of ``span`` cover exactly ``width``
        shifted = np.full_like(out, np.nan)
        shifted[:, width - span:] = out[:, :span - width] if span < width else out
        out = np.fmax(out, shifted)
    return out
