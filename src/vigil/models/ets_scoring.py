"""Scores and forecast quantiles of ETS and the ensemble, through :mod:`vigil.models.calibration`.

Both models keep a running one-step scale ``sd`` per series; standardised residuals
``z = (y - expected) / sd`` of the fit window calibrate a Student-t law ``c * T_nu`` per series
(:func:`calibration.fit_tail`), which gives every p-value, anomaly score, band and forecast
quantile, and :mod:`vigil.models.guards` then quiets operationally irrelevant points, so all
models of the engine score the same way.  The per-point work is one numba kernel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from vigil.models import calibration
from vigil.models.base import Scores
from vigil.models.guards import Guards, apply_guards


def calibrate(resid: np.ndarray, sd: np.ndarray, skip: np.ndarray) -> calibration.TailFit:
    """Tail fit of the standardised residuals, leaving out each row's first ``skip`` columns."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(sd > 0, resid / sd, np.nan)
    z[np.arange(z.shape[1])[None, :] < skip[:, None]] = np.nan
    return calibration.fit_tail(z)


def prior_tail(n: int, nu: float = 5.0) -> calibration.TailFit:
    """The calibration's prior for rows without residuals (``c = 1 / E|T_nu|``)."""
    c = 1.0 / float(calibration.mean_abs_t(np.array([nu]))[0])
    return calibration.TailFit(np.full(n, nu), np.full(n, c), np.zeros(n, dtype=np.int64))


@njit(parallel=True, cache=True)
def _score_points(
    yhat: np.ndarray,
    resid: np.ndarray,
    sd: np.ndarray,
    values: np.ndarray,
    logged: np.ndarray,
    nu: np.ndarray,
    c: np.ndarray,
    qband: np.ndarray,
    tabrow: np.ndarray,
    tabs: np.ndarray,
    zmax: np.ndarray,
    log_alpha: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    n, t_len = yhat.shape
    expected = np.empty((n, t_len))
    lower = np.empty((n, t_len))
    upper = np.empty((n, t_len))
    p = np.full((n, t_len), np.nan)
    score = np.full((n, t_len), np.nan)
    for i in prange(n):
        lb = calibration.t_lbeta(nu[i])
        tab = tabs[tabrow[i]]
        zm = zmax[tabrow[i]]
        for t in range(t_len):
            e = yhat[i, t]
            half = sd[i, t] * c[i] * qband[i]
            lo = e - half
            hi = e + half
            if logged[i]:
                e = math.exp(min(e, 700.0))
                lo = math.exp(min(lo, 700.0))
                hi = math.exp(min(hi, 700.0))
            expected[i, t] = e
            lower[i, t] = lo
            upper[i, t] = hi
            r = resid[i, t]
            if np.isnan(values[i, t]) or np.isnan(r):
                continue
            s = sd[i, t]
            if s > 0:
                z = abs(r) / (s * c[i])
            elif r == 0:
                z = 0.0
            else:
                z = np.inf
            lp = calibration.fast_log_tail2(z, nu[i], lb, tab, zm)
            p[i, t] = math.exp(lp)
            score[i, t] = max(lp, calibration.LOG_P_FLOOR) / log_alpha
    return expected, lower, upper, p, score


def make_scores(
    yhat: np.ndarray,
    resid: np.ndarray,
    sd: np.ndarray,
    values: np.ndarray,
    logged: np.ndarray,
    tail: tuple[np.ndarray, np.ndarray],
    alarm_rate: float,
    warming: np.ndarray,
    guards: Guards,
    direction: np.ndarray,
    guard_hist: np.ndarray,
) -> tuple[Scores, np.ndarray]:
    """Scores from one-step predictions (model scale), residuals and their running sd, and the
    guards' new duration history.

    ``tail`` is ``(nu, c)`` per row.  The band is where the raw ``anomaly_score <= 1``.  Rows in
    ``logged`` are modelled on the log scale: expected value and band are transformed back
    (they are quantiles, exact under the monotone transform).
    """
    nu, c = (np.ascontiguousarray(a, dtype=np.float64) for a in tail)
    tabrow, tabs, zmax = calibration.tail_tables(nu)
    qband = calibration.band_factor(nu, np.ones(len(nu)), alarm_rate)
    expected, lower, upper, p, raw = _score_points(
        yhat, resid, sd, np.ascontiguousarray(values, dtype=np.float64),
        np.ascontiguousarray(logged, dtype=np.bool_), nu, c, qband, tabrow, tabs, zmax,
        math.log(alarm_rate),
    )  # fmt: skip
    score, hist = apply_guards(values, expected, raw, direction, guards, guard_hist)
    return Scores(expected, lower, upper, p, score, warming), hist


def quantile_factors(quantiles: np.ndarray, tail: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Multipliers of the forecast sd for each quantile level -> [n, Q]."""
    nu, c = tail
    return c[:, None] * calibration.t_quantile(quantiles, nu)


@njit(parallel=True, cache=True)
def combine(parts: np.ndarray, w: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Weighted mean over members of ``parts`` [K, n, L] with weights ``w`` [n, K],
    renormalised over the members with a finite value at each point (NaN where none)."""
    k_len, n, width = parts.shape
    out = np.full((n, width), np.nan)
    for i in prange(n):
        for t in range(width):
            num = 0.0
            den = 0.0
            for k in range(k_len):
                v = parts[k, i, t]
                if np.isfinite(v):
                    num += w[i, k] * v
                    den += w[i, k]
            if den > 0:
                out[i, t] = num / den
    return out
