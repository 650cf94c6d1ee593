"""Scores and forecast quantiles of ETS and the ensemble, through :mod:`vigil.models.calibration`.

Both models keep a running one-step scale ``sd`` per series; standardised residuals
``z = (y - expected) / sd`` of the fit window calibrate a Student-t law ``c * T_nu`` per series
(:func:`calibration.fit_tail`), which gives every p-value, anomaly score, band and forecast
quantile, and :mod:`vigil.models.guards` then quiets operationally irrelevant points, so all
models of the engine score the same way.  The per-point work is one numba kernel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


# ------------------------------------------------------------- variance function
#
# Noise rarely has one size all day: request counts are Poisson-like (sd ~ level^0.5), latency
# and byte rates have a roughly constant coefficient of variation (sd ~ level), a CPU ratio's
# noise may not depend on the level at all.  A running scale alone follows such changes with
# its lag (hours), so at the quiet hours after a busy period the band is several noise sds too
# wide, and at the busy hours after a quiet period too narrow.  The ensemble therefore scales
# its residuals by ``level_factor = (max(|expected|, ref / 10) / ref) ^ gamma`` before the
# running scale learns them (``ref`` the mean |value| of the held-out window, so the factor is
# about 1 at a typical level); ``gamma`` is chosen per series among ``VARIANCE_GAMMAS`` by the
# held-out residuals' predictive log-likelihood (Student-t, nu = 5, robust to the tail) under
# each candidate's causal scale: out-of-sample evidence, nothing fitted to a corpus.

VARIANCE_GAMMAS = (0.0, 0.5, 1.0)


@njit(cache=True, error_model="numpy", inline="always")
def level_factor(e: float, gamma: float, ref: float) -> float:  # pragma: no cover - compiled
    """``(max(|e|, ref / 10) / ref) ^ gamma``; 1 for ``gamma == 0``, ``ref <= 0`` or NaN ``e``."""
    if gamma == 0.0 or not ref > 0.0 or e != e:
        return 1.0
    x = max(abs(e), 0.1 * ref) / ref
    if gamma == 1.0:
        return x
    if gamma == 0.5:
        return math.sqrt(x)
    return x ** gamma


def level_factors(expected: np.ndarray, gamma: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """:func:`level_factor` of ``expected`` [n, T] with per-row ``gamma``, ``ref`` [n]."""
    e = np.asarray(expected, dtype=np.float64)
    gam = np.asarray(gamma, dtype=np.float64)[:, None]
    r = np.asarray(ref, dtype=np.float64)[:, None]
    off = (gam == 0.0) | ~(r > 0.0) | np.isnan(e)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.maximum(np.abs(e), 0.1 * r) / np.where(r > 0.0, r, 1.0)
        return np.where(off, 1.0, x ** gam)


def predictive_nll(resid: np.ndarray, sd: np.ndarray, skip: int) -> np.ndarray:
    """Mean negative log-likelihood per row of ``resid`` under a Student-t (nu = 5) of
    scales ``sd`` [n, T] (constants dropped), over the finite points after the first ``skip``
    columns; NaN where a row has none."""
    nu = 5.0
    with np.errstate(invalid="ignore", divide="ignore"):
        z = resid[:, skip:] / sd[:, skip:]
        term = np.log(sd[:, skip:]) + 0.5 * (nu + 1.0) * np.log1p(z * z / nu)
    ok = np.isfinite(term)
    cnt = ok.sum(axis=1)
    return np.where(cnt > 0, np.where(ok, term, 0.0).sum(axis=1) / np.maximum(cnt, 1), np.nan)


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
    ew: np.ndarray,  # [n, S] in/out window statistics (WindowTest)
    wclip: np.ndarray,  # [n]
    wrate: np.ndarray,  # [S]
    wnu: np.ndarray,  # [n, S]
    wc: np.ndarray,  # [n, S]
    gamma: np.ndarray,  # [n] variance function (level_factor)
    gref: np.ndarray,  # [n]
    qfloor2: np.ndarray,  # [n] floor of the total scale's square, in the values' units
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Scores of predictions with a running residual scale (as :func:`scale_filter`):
    ``out [5, n, T]`` (expected, lower, upper, p, raw score) and ``warming [n, T]``; every
    log p-value goes through :func:`calibration.recalibrate_log_p` (``qband`` must be the band
    factor of the recalibrated law, :func:`recalibrated_band`), combined with the multi-scale
    window test's (:func:`with_window`); the scale is ``level_factor`` times the running scale
    of the residuals divided by it, at least ``sqrt(qfloor2)``."""
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
            su = np.sqrt(max(s2, floor2[i]))
            e = expected[i, t]
            g = level_factor(e, gamma[i], gref[i])
            sig = max(su * g, np.sqrt(qfloor2[i]))
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
            if cnt >= warmup and sig > 0.0:
                lp = with_window(lp, window_log_p(r / sig, ew[i], wclip[i], wrate, wnu[i],
                                                  wc[i]), wc[i])
            out[3, i, t] = math.exp(lp)
            out[4, i, t] = max(lp, calibration.LOG_P_FLOOR) / log_alpha
            cnt += 1
            s2 = scale_step(s2, r / g, su, cnt, rate, reject, warmup)
        sigma2[i] = s2
        nobs[i] = cnt
    return out, warming



# ------------------------------------------------------------- multi-scale window test
#
# The point test above needs one residual beyond the band (at an alarm rate of 1e-4 per point,
# 4 sds for Gaussian noise, 6-13 for Laplace or Student-t noise).  A level shift of 3-6 noise
# sds that lasts an hour never produces such a point, and the members start to follow it.
# Persistent deviations are what exponentially weighted means of the standardised residuals
# (the EWMA control chart) detect: for spans of ``k`` steps, ``E_t = (1 - a) E_{t-1} + a z_t``
# with ``a = 2 / (k + 1)``.  Each ``z`` is clipped at the series' own 98% quantile of ``|z|``
# first, so one large residual (the point test's business) moves a window by at most a
# typical tail value: only a run of deviations moves it far.  Under independent residuals of
# unit variance ``E`` has variance ``a / (2 - a)``; real residuals are autocorrelated and
# skewed, so each window's statistic ``E / sqrt(a / (2 - a))`` gets its own per-series
# Student-t law fitted, like the point residuals, on the same held-out residuals
# (:func:`calibration.fit_tail`).  The spans are in steps (a window test asks "how many
# consecutive points deviate", whatever the step); the p-value of the smallest of the
# ``S`` windows is multiplied by ``S`` (Bonferroni), and a point's p-value is twice the
# smaller of the point test's and the windows' (Bonferroni again, over the two tests), so the
# point and window tests together spend at most the alarm rate.

WINDOW_SPANS = (4, 16)  # EWMA spans in steps


def window_rates(spans: Sequence[int] = WINDOW_SPANS) -> np.ndarray:
    """EWMA rates ``2 / (k + 1)`` of the spans ``k``."""
    return np.array([2.0 / (k + 1.0) for k in spans], dtype=np.float64)


@njit(cache=True, error_model="numpy", inline="always")
def window_log_p(z: float, ew: np.ndarray, clip: float, rate: np.ndarray, nu: np.ndarray,
                 c: np.ndarray) -> float:  # pragma: no cover - compiled
    """Advance the windows ``ew`` [S] by the standardised residual ``z`` and return the
    Bonferroni ``log p`` of the most surprising window (0 when none is beyond 2 of its
    scales: such a window cannot matter at any alarm rate below 0.05)."""
    zc = min(max(z, -clip), clip)
    best = 0.0
    for s in range(rate.shape[0]):
        a = rate[s]
        ew[s] = (1.0 - a) * ew[s] + a * zc
        stat = abs(ew[s]) / (math.sqrt(a / (2.0 - a)) * c[s])
        if stat > 2.0:
            lw = calibration.log_tail2(stat, nu[s], calibration.t_lbeta(nu[s]))
            best = min(best, lw)
    if best < 0.0:
        best = min(best + math.log(rate.shape[0]), 0.0)
    return best


@njit(cache=True, error_model="numpy", inline="always")
def with_window(lp: float, lw: float, c: np.ndarray) -> float:  # pragma: no cover - compiled
    """A point's ``log p`` from its point test's ``lp`` and its window test's ``lw``:
    ``log 2 min(p, p_window)`` (at most 0); ``lp`` unchanged for a row without a window test
    (every window scale ``c`` infinite) or a missing ``lp``."""
    if lp != lp:
        return lp
    for s in range(c.shape[0]):
        if c[s] < np.inf:
            return min(min(lp, lw) + math.log(2.0), 0.0)
    return lp


@njit(cache=True, error_model="numpy")
def window_history(z: np.ndarray, clip: np.ndarray, rate: np.ndarray,
                   ew: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """The windows' standardised statistics over held-out ``z`` [n, T] -> [S, n, T] (NaN where
    ``z`` is missing or a window has seen fewer than ``2 k`` residuals), advancing ``ew``
    [n, S] (in/out) to the end."""
    n, t_len = z.shape
    n_s = rate.shape[0]
    out = np.full((n_s, n, t_len), np.nan)
    for i in range(n):
        seen = 0
        for t in range(t_len):
            v = z[i, t]
            if v != v:
                continue
            seen += 1
            zc = min(max(v, -clip[i]), clip[i])
            for s in range(n_s):
                a = rate[s]
                ew[i, s] = (1.0 - a) * ew[i, s] + a * zc
                if seen * a >= 4.0:  # 2 k residuals, k = 2 / a - 1 (about)
                    out[s, i, t] = ew[i, s] / math.sqrt(a / (2.0 - a))
    return out


@dataclass(frozen=True)
class WindowTest:
    """A fitted multi-scale window test: per-row clip [n], running windows [n, S] and the
    windows' laws (``nu``, ``c`` [n, S]; ``c = inf``: the row has no window test)."""

    clip: np.ndarray
    ew: np.ndarray
    nu: np.ndarray
    c: np.ndarray


def fit_window_test(z: np.ndarray, min_count: int = 200) -> WindowTest:
    """The window test of held-out standardised residuals ``z`` [n, h]: the clip at each row's
    98% quantile of |z|, each window's Student-t law (:func:`calibration.fit_tail` of its
    statistics; rows with fewer than ``min_count`` of them get none), and the windows as they
    stand after ``z``."""
    z = np.ascontiguousarray(z, dtype=np.float64)
    n = z.shape[0]
    rate = window_rates()
    cnt = np.isfinite(z).sum(axis=1)
    clip = np.zeros(n)
    ok = cnt >= 30
    if ok.any():
        clip[ok] = np.nanquantile(np.abs(z[ok]), calibration.TAIL_LEVEL, axis=1)
    ew = np.zeros((n, len(rate)))
    stats = window_history(z, clip, rate, ew)
    nu = np.empty((n, len(rate)))
    c = np.full((n, len(rate)), np.inf)
    for s in range(len(rate)):  # a loop over the few spans, each vectorised over rows
        fit = calibration.fit_tail(stats[s])
        nu[:, s] = fit.nu
        c[:, s] = np.where(fit.n_used >= min_count, fit.c, np.inf)
    return WindowTest(clip, ew, nu, c)


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
    expected: np.ndarray,  # [n, T] the predictions they are residuals of
    sigma2: np.ndarray,  # [n] in/out running mean square
    floor2: np.ndarray,  # [n] lower bound of sigma2
    nobs: np.ndarray,  # int64 [n] in/out residuals seen
    rate: float,  # EWMA rate
    reject: float,  # |r| > reject * sd is not learnt (<= 0: learn everything)
    warmup: int,  # the first `warmup` residuals are all learnt, sigma2 as their mean
    gamma: np.ndarray,  # [n] variance function (level_factor)
    gref: np.ndarray,  # [n]
    qfloor2: np.ndarray,  # [n] floor of the total scale's square
) -> np.ndarray:
    """Running sd of residuals, causal: sd[:, t] is the scale before residual t -> [n, T]
    (the same arithmetic as :func:`scale_score`)."""
    n, t_len = resid.shape
    sd = np.full((n, t_len), np.nan)
    for i in prange(n):
        s2 = sigma2[i]
        cnt = nobs[i]
        for t in range(t_len):
            su = np.sqrt(max(s2, floor2[i]))
            g = level_factor(expected[i, t], gamma[i], gref[i])
            sd[i, t] = max(su * g, np.sqrt(qfloor2[i]))
            r = resid[i, t]
            if np.isnan(r):
                continue
            cnt += 1
            s2 = scale_step(s2, r / g, su, cnt, rate, reject, warmup)
        sigma2[i] = s2
        nobs[i] = cnt
    return sd
