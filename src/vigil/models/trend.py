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
