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


def prior_tail(n: int, nu: float = 5.0) -> calibration.TailFit:
    """The calibration's prior for rows without residuals (``c = 1 / E|T_nu|``)."""
    c = 1.0 / float(calibration.mean_abs_t(np.array([nu]))[0])
    return calibration.TailFit(np.full(n, nu), np.full(n, c), np.zeros(n, dtype=np.int64))


def tail_args(
    tail: tuple[np.ndarray, np.ndarray], alarm_rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """``(nu, c, qband, tabrow, tabs, zmax, log_alpha)``: what the scoring kernels need."""
    nu, c = (np.ascontiguousarray(a, dtype=np.float64) for a in tail)
    tabrow, tabs, zmax = calibration.tail_tables(nu)
    qband = calibration.band_factor(nu, np.ones(len(nu)), alarm_rate)
    return nu, c, np.asarray(qband, dtype=np.float64), tabrow, tabs, zmax, math.log(alarm_rate)


def recalibrated_band(nu: np.ndarray, surprise: calibration.SurpriseTail,
                      alarm_rate: float) -> np.ndarray:
    """The band factor (in units of ``c`` times the running scale) whose edge has a
    recalibrated anomaly score of exactly 1 (the t law's own where the recalibration is the
    identity: only the corrected rows need the per-row inversion)."""
    nu = np.asarray(nu, dtype=np.float64)
    out = np.asarray(calibration.band_factor(nu, np.ones(len(nu)), alarm_rate), dtype=np.float64)
    ident = calibration.identity_surprise(1)
    moved = (surprise.beta != ident.beta[0]) | (surprise.u != ident.u[0])
    if moved.any():
        sub = calibration.SurpriseTail(surprise.u[moved], surprise.beta[moved])
        out[moved] = calibration.band_factor_log(
            nu[moved], calibration.recalibrated_alpha_log(sub, alarm_rate)
        )
    return out


def finish_scores(
    out: np.ndarray,
    warming: np.ndarray,
    values: np.ndarray,
    guards: Guards,
    direction: np.ndarray,
    guard_hist: np.ndarray,
) -> tuple[Scores, np.ndarray]:
    """``Scores`` from the kernels' planes (expected, lower, upper, p, raw score) after the
    guards, and the guards' new duration history (the raw score plane ``out[4]`` is scratch:
    the guarded scores are written over it)."""
    score, hist = apply_guards(
        values, out[0], out[4], direction, guards, guard_hist, inplace=True
    )
    return Scores(out[0], out[1], out[2], out[3], score, warming), hist


@njit(cache=True, error_model="numpy", inline="always")
def scale_step(s2: float, r: float, sig: float, cnt: int, rate: float, reject: float,
               warmup: int) -> float:  # pragma: no cover - compiled
    """The running mean square after the ``cnt``-th residual ``r``: the plain mean over the
    first ``warmup``, then an EWMA of rate ``rate`` that skips ``|r| > reject * sig``."""
    if cnt <= warmup:
        return s2 + (r * r - s2) / cnt
    if reject <= 0.0 or abs(r) <= reject * sig:
        return (1.0 - rate) * s2 + rate * r * r
    return s2


@njit(parallel=True, cache=True, error_model="numpy")
def scale_score(
    expected: np.ndarray,  # [n, T] one-step predictions
    values: np.ndarray,  # [n, T]
    sigma2: np.ndarray,  # [n] in/out running mean square of the residuals
    floor2: np.ndarray,  # [n]
    nobs: np.ndarray,  # int64 [n] in/out residuals seen
    rate: float,
    reject: float,
    warmup: int,
    nu: np.ndarray,
    c: np.ndarray,
    qband: np.ndarray,
    tabrow: np.ndarray,
    tabs: np.ndarray,
    zmax: np.ndarray,
    log_alpha: float,
    recal_u: np.ndarray,  # [n] surprise-tail recalibration (calibration.SurpriseTail)
    recal_beta: np.ndarray,  # [n]
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Scores of predictions with a running residual scale (as :func:`scale_filter`):
    ``out [5, n, T]`` (expected, lower, upper, p, raw score) and ``warming [n, T]``; every
    log p-value goes through :func:`calibration.recalibrate_log_p` (``qband`` must be the band
    factor of the recalibrated law, :func:`recalibrated_band`)."""
    n, t_len = values.shape
    out = np.empty((5, n, t_len))  # every cell is written below
    warming = np.empty((n, t_len), dtype=np.bool_)
    for i in prange(n):
        s2 = sigma2[i]
        cnt = nobs[i]
        lb = calibration.t_lbeta(nu[i])
        tab = tabs[tabrow[i]]
        zm = zmax[tabrow[i]]
        hb = c[i] * qband[i]
        for t in range(t_len):
            sig = np.sqrt(max(s2, floor2[i]))
            e = expected[i, t]
            out[0, i, t] = e
            out[1, i, t] = e - sig * hb
            out[2, i, t] = e + sig * hb
            r = values[i, t] - e
            warming[i, t] = cnt < warmup
            if np.isnan(r):
                out[3, i, t] = np.nan
                out[4, i, t] = np.nan
                continue
            lp = calibration.recalibrate_log_p(
                calibration.residual_log_p(r, sig, c[i], nu[i], lb, tab, zm),
                recal_u[i], recal_beta[i],
            )
            out[3, i, t] = math.exp(lp)
            out[4, i, t] = max(lp, calibration.LOG_P_FLOOR) / log_alpha
            cnt += 1
            s2 = scale_step(s2, r, sig, cnt, rate, reject, warmup)
        sigma2[i] = s2
        nobs[i] = cnt
    return out, warming


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


@njit(parallel=True, cache=True)
def combine_members(parts: tuple, w: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """:func:`combine` of a tuple of K member arrays ``[n, L]`` (no stacked copy); the same
    arithmetic, so the same bits."""
    k_len = len(parts)
    n, width = parts[0].shape
    out = np.empty((n, width))
    for i in prange(n):
        for t in range(width):
            num = 0.0
            den = 0.0
            for k in range(k_len):
                v = parts[k][i, t]
                if np.isfinite(v):
                    num += w[i, k] * v
                    den += w[i, k]
            out[i, t] = num / den if den > 0 else np.nan
    return out


@njit(parallel=True, cache=True)
def weighted_majority(
    flags: tuple, w: np.ndarray, extra: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """``(combine(flags as 0/1, w) > 0.5) | extra`` for a tuple of K bool arrays ``[n, L]``:
    whether the members holding most of the weight are flagged (or ``extra`` is)."""
    k_len = len(flags)
    n, width = extra.shape
    out = np.empty((n, width), dtype=np.bool_)
    for i in prange(n):
        for t in range(width):
            num = 0.0
            den = 0.0
            for k in range(k_len):
                num += w[i, k] * (1.0 if flags[k][i, t] else 0.0)
                den += w[i, k]
            out[i, t] = (den > 0 and num / den > 0.5) or extra[i, t]
    return out


@njit(parallel=True, cache=True)
def scale_filter(
    resid: np.ndarray,  # [n, T] one-step residuals (NaN: missing)
    sigma2: np.ndarray,  # [n] in/out running mean square
    floor2: np.ndarray,  # [n] lower bound of sigma2
    nobs: np.ndarray,  # int64 [n] in/out residuals seen
    rate: float,  # EWMA rate
    reject: float,  # |r| > reject * sd is not learnt (<= 0: learn everything)
    warmup: int,  # the first `warmup` residuals are all learnt, sigma2 as their mean
) -> np.ndarray:
    """Running sd of residuals, causal: sd[:, t] is the scale before residual t -> [n, T]."""
    n, t_len = resid.shape
    sd = np.full((n, t_len), np.nan)
    for i in prange(n):
        s2 = sigma2[i]
        cnt = nobs[i]
        for t in range(t_len):
            sig = np.sqrt(max(s2, floor2[i]))
            sd[i, t] = sig
            r = resid[i, t]
            if np.isnan(r):
                continue
            cnt += 1
            s2 = scale_step(s2, r, sig, cnt, rate, reject, warmup)
        sigma2[i] = s2
        nobs[i] = cnt
    return sd
