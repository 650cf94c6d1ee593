"""Calibrated tail probabilities and anomaly scores from one-step residuals.

Public API (small on purpose; other models import it):

* ``DEFAULT_ALPHA = 1e-3`` — the default false-alarm rate (two-sided, per point).
* ``anomaly_score(log_p, alpha)`` — vmanomaly's convention, **score = log(p) / log(alpha)**:
  0 when ``p = 1``, exactly 1 when ``p = alpha``, above 1 when ``p < alpha``; monotone
  (decreasing) in ``p``.  ``log_p`` is floored at ``LOG_P_FLOOR`` so scores stay finite.
* ``fit_tail(z, min_count=200, prior_nu=5.0) -> TailFit`` — per-series tail calibration from
  standardised one-step residuals ``z = r / s`` (``s`` the model's running robust scale, any
  units).  The predictive law of ``z`` is taken as ``c * T_nu`` (Student-t, ``nu`` degrees of
  freedom):  ``nu`` is chosen so that the t law's ratio of quantiles ``Q98(|T|) / Q50(|T|)``
  matches the residuals' empirical ratio (nearest value of ``NU_GRID``), and ``c`` so that
  ``c * Q98(|T_nu|)`` equals the empirical ``Q98(|z|)``: the band and the tail match the
  series' own residual quantiles.  Rows with fewer than ``min_count`` finite residuals keep
  ``prior_nu`` and ``c`` matched at the median (at least 30 residuals) or
  ``c = 1 / E|T_nu|`` (the ratio of a t law's scale to its mean absolute deviation, which is
  how the running scales here are defined).
* ``log_p_value(z, nu, c)`` — ``log P(|c T_nu| >= |z|)``, arrays broadcast; NaN stays NaN.
* ``band_factor(nu, c, alpha)`` — ``c * q`` with ``P(|T_nu| >= q) = alpha``: the band
  ``expected ± s * band_factor`` has ``anomaly_score == 1`` exactly on its edges.
* ``t_quantile(prob, nu)`` — signed Student-t quantiles (for forecasts).
* numba scalar kernels for use inside other ``@njit`` recursions: ``log_tail2(absz, nu, lbeta)``
  (``log P(|T_nu| >= absz)``), ``t_lbeta(nu)`` (its constant ``log B(nu/2, 1/2)``) and the
  ~10x faster ``fast_log_tail2(absz, nu, lbeta, table, zmax)`` with tables from
  ``tail_tables(nu)``: linear interpolation (error < 1e-5 of ``max(1, |log p|)``) where the
  tail exceeds ``TABLE_TAIL = 0.01``, the exact value beyond, so every score near or above 1
  is exact whenever ``alpha < 0.01``.

Tail probabilities use the identity ``P(|T_nu| >= t) = I_x(nu/2, 1/2)`` with
``x = nu / (nu + t^2)`` (regularised incomplete beta), evaluated in log space with a continued
fraction (modified Lentz), so tiny tails keep full relative precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from vigil.models.seasonality import select

DEFAULT_ALPHA = 1e-3
LOG_P_FLOOR = math.log(1e-300)
NU_GRID = np.array([2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 60.0])
TAIL_LEVEL = 0.98  # quantile of |z| the calibration matches exactly
TABLE_SIZE = 1025  # knots of the interpolation tables of log_tail2
TABLE_TAIL = 0.01  # tables cover |z| up to the quantile with this two-sided tail
_TINY = 1e-300


@njit(cache=True, error_model="numpy")
def _beta_cf(a: float, b: float, x: float) -> float:  # pragma: no cover - compiled
    """Continued fraction of I_x(a, b) (converges fast for x < (a + 1) / (a + b + 2))."""
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    if abs(d) < _TINY:
        d = _TINY
    d = 1.0 / d
    h = d
    for m in range(1, 400):
        m2 = 2.0 * m
        num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2))
        d = 1.0 + num * d
        c = 1.0 + num / c
        d = 1.0 / (d if abs(d) >= _TINY else _TINY)
        c = c if abs(c) >= _TINY else _TINY
        h *= d * c
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0))
        d = 1.0 + num * d
        c = 1.0 + num / c
        d = 1.0 / (d if abs(d) >= _TINY else _TINY)
        c = c if abs(c) >= _TINY else _TINY
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h


@njit(cache=True, error_model="numpy")
def t_lbeta(nu: float) -> float:  # pragma: no cover - compiled
    """``log B(nu / 2, 1 / 2)``, the constant of ``log_tail2``."""
    return math.lgamma(0.5 * nu) + math.lgamma(0.5) - math.lgamma(0.5 * nu + 0.5)


@njit(cache=True, error_model="numpy")
def log_tail2(absz: float, nu: float, lbeta: float) -> float:  # pragma: no cover - compiled
    """``log P(|T_nu| >= absz)`` floored at ``LOG_P_FLOOR``; NaN in, NaN out."""
    if absz != absz:
        return np.nan
    if absz <= 0.0:
        return 0.0
    if absz == np.inf:
        return LOG_P_FLOOR
    la = math.log(absz)
    if absz > 1e100:  # t^2 would overflow; nu / t^2 is negligible
        lden = 2.0 * la
        l1x = 0.0
    else:
        lden = math.log(nu + absz * absz)
        l1x = 2.0 * la - lden  # log (1 - x)
    lx = math.log(nu) - lden  # log x, x = nu / (nu + t^2)
    a = 0.5 * nu
    b = 0.5
    x = math.exp(lx)
    if x < (a + 1.0) / (a + b + 2.0):
        out = a * lx + b * l1x - lbeta - math.log(a) + math.log(_beta_cf(a, b, x))
    else:
        j = math.exp(b * l1x + a * lx - lbeta - math.log(b)) * _beta_cf(b, a, math.exp(l1x))
        out = math.log1p(-min(j, 1.0))
    return max(min(out, 0.0), LOG_P_FLOOR)


@njit(cache=True, error_model="numpy", inline="always")
def residual_log_p(
    r: float, sig: float, c: float, nu: float, lbeta: float, table: np.ndarray, zmax: float
) -> float:  # pragma: no cover - compiled
    """``log P(|c T_nu| >= |r| / sig)`` of one residual (``sig = 0``: 0 for ``r = 0``, the
    floor otherwise), with :func:`fast_log_tail2`."""
    if sig > 0:
        z = abs(r) / (sig * c)
    elif r == 0:
        z = 0.0
    else:
        z = np.inf
    return fast_log_tail2(z, nu, lbeta, table, zmax)


@njit(cache=True, error_model="numpy")
def fast_log_tail2(
    absz: float, nu: float, lbeta: float, table: np.ndarray, zmax: float
) -> float:  # pragma: no cover - compiled
    """``log_tail2`` by linear interpolation in ``table`` (``TABLE_SIZE`` knots evenly spaced
    on ``[0, zmax]``, from ``tail_tables``) below ``zmax``, exact above."""
    u = absz * ((table.shape[0] - 1) / zmax)
    if u < table.shape[0] - 1:  # False for NaN and beyond the table
        j = int(u)
        f = u - j
        return table[j] + f * (table[j + 1] - table[j])
    return log_tail2(absz, nu, lbeta)


@njit(cache=True, error_model="numpy")
def _fill_table(nu: float, zmax: float, size: int) -> np.ndarray:  # pragma: no cover
    lb = t_lbeta(nu)
    out = np.empty(size)
    for j in range(size):
        out[j] = log_tail2(zmax * j / (size - 1), nu, lb)
    return out


@lru_cache(maxsize=64)
def _table(nu: float) -> tuple[np.ndarray, float]:
    zmax = _abs_quantile_cached(1.0 - TABLE_TAIL, nu)
    return _fill_table(nu, zmax, TABLE_SIZE), zmax


def tail_tables(nu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolation tables for ``fast_log_tail2``: ``(row[n], tables[m, TABLE_SIZE],
    zmax[m])`` where series ``i`` uses ``tables[row[i]]`` and ``zmax[row[i]]``."""
    nu = np.asarray(nu, dtype=np.float64)
    uniq, inv = np.unique(nu, return_inverse=True)
    built = [_table(float(v)) for v in uniq]
    tables = np.array([b[0] for b in built]).reshape(len(uniq), TABLE_SIZE)
    return inv.astype(np.int64).ravel(), tables, np.array([b[1] for b in built], dtype=np.float64)


@njit(cache=True, error_model="numpy")
def _log_p_value(
    z: np.ndarray,
    nu: np.ndarray,
    c: np.ndarray,
    row: np.ndarray,
    tabs: np.ndarray,
    zmax: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty(z.shape)
    for i in range(z.shape[0]):
        lb = t_lbeta(nu[i])
        r = row[i]
        for k in range(z.shape[1]):
            out[i, k] = fast_log_tail2(abs(z[i, k]) / c[i], nu[i], lb, tabs[r], zmax[r])
    return out


@njit(cache=True, error_model="numpy")
def _bisect_log_tail(target: float, nu: float, lo: float, hi: float,
                     halvings: int) -> float:  # pragma: no cover - compiled
    """``q`` with ``log P(|T_nu| >= q) = target`` by bisection on ``log q`` over ``[lo, hi]``."""
    lb = t_lbeta(nu)
    for _ in range(halvings):
        mid = 0.5 * (lo + hi)
        if log_tail2(math.exp(mid), nu, lb) > target:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


@njit(cache=True, error_model="numpy")
def _abs_quantile(level: float, nu: float) -> float:  # pragma: no cover - compiled
    """``q`` with ``P(|T_nu| <= q) = level`` by bisection on ``log q``."""
    return _bisect_log_tail(math.log1p(-level), nu, -30.0, 30.0, 200)


@lru_cache(maxsize=64)
def _abs_quantile_cached(level: float, nu: float) -> float:
    return float(_abs_quantile(level, nu))


def abs_t_quantile(level: float, nu: np.ndarray) -> np.ndarray:
    """``q[i]`` with ``P(|T_nu[i]| <= q) = level``; computed once per distinct ``nu``."""
    nu = np.asarray(nu, dtype=np.float64)
    uniq, inv = np.unique(nu, return_inverse=True)
    vals = np.array([_abs_quantile_cached(float(level), float(v)) for v in uniq])
    return vals[inv].reshape(nu.shape)


def mean_abs_t(nu: np.ndarray) -> np.ndarray:
    """``E|T_nu|`` (finite for ``nu > 1``)."""
    nu = np.asarray(nu, dtype=np.float64)
    lg = np.vectorize(math.lgamma, otypes=[np.float64])
    return np.asarray(
        2.0 * np.sqrt(nu) * np.exp(lg((nu + 1) / 2) - lg(nu / 2)) / (np.sqrt(np.pi) * (nu - 1))
    )


def t_quantile(prob: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """Signed quantiles: ``out[i, j] = F_nu[i]^{-1}(prob[j])`` for ``prob`` in (0, 1)."""
    prob = np.asarray(prob, dtype=np.float64)
    if np.any((prob <= 0) | (prob >= 1)):
        raise ValueError(f"quantiles {prob.tolist()} are invalid: expected probabilities in (0, 1)")
    nu = np.asarray(nu, dtype=np.float64)
    out = np.empty((len(nu), len(prob)))
    for j, q in enumerate(prob):  # loop over the few requested quantiles, not series
        mag = abs_t_quantile(abs(2.0 * q - 1.0), nu) if q != 0.5 else np.zeros(len(nu))
        out[:, j] = np.sign(q - 0.5) * mag
    return out


def log_p_value(z: np.ndarray, nu: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``log P(|c T_nu| >= |z|)`` for ``z`` ``[n, T]`` and per-row ``nu``, ``c`` ``[n]``."""
    z2 = np.ascontiguousarray(np.atleast_2d(np.asarray(z, dtype=np.float64)))
    nu1 = np.asarray(nu, dtype=np.float64).ravel()
    row, tabs, zmax = tail_tables(nu1)
    c1 = np.asarray(c, dtype=np.float64).ravel()
    return _log_p_value(z2, nu1, c1, row, tabs, zmax).reshape(np.shape(z))


def anomaly_score(log_p: np.ndarray, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """``log(p) / log(alpha)``: 0 normal, 1 at ``p = alpha``, > 1 anomalous; NaN stays NaN."""
    check_alpha(alpha)
    return np.asarray(np.maximum(log_p, LOG_P_FLOOR) / math.log(alpha))


def band_factor(nu: np.ndarray, c: np.ndarray, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Half-width of the ``1 - alpha`` band in units of the running scale."""
    check_alpha(alpha)
    return np.asarray(c) * abs_t_quantile(1.0 - alpha, nu)


def check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 0.5:
        raise ValueError(
            f"alpha={alpha} is invalid: expected a false-alarm rate in (0, 0.5), e.g. 0.001"
        )
    return float(alpha)


@dataclass(frozen=True)
class TailFit:
    nu: np.ndarray  # float64 [n], degrees of freedom (a value of NU_GRID)
    c: np.ndarray  # float64 [n], scale factor of the standardised residuals
    n_used: np.ndarray  # int64 [n], finite residuals the fit used


@njit(cache=True)
def _row_quantiles(z: np.ndarray, lo: float, hi: float) -> tuple:  # pragma: no cover
    n = z.shape[0]
    q = np.full((2, n), np.nan)
    cnt = np.zeros(n, np.int64)
    buf = np.empty(z.shape[1])
    for i in range(n):
        m = 0
        for k in range(z.shape[1]):
            v = abs(z[i, k])
            if v < np.inf:  # False for NaN and inf
                buf[m] = v
                m += 1
        cnt[i] = m
        if m == 0:
            continue
        # the lower quantile first; the upper one (lo <= hi) is then selected among the
        # values above it only (exact: the same order statistics, about half the work)
        base = 0
        for which in range(2):
            pos = (lo if which == 0 else hi) * (m - 1)
            j = int(pos)  # pos >= 0
            if j < base:  # both quantiles fall on the same order statistic
                j0 = base - 1
                v = buf[j0]
            else:
                v = select(buf[base:m], m - base, j - base)
                j0 = j
            if j + 1 < m:
                nxt = buf[j0 + 1]
                for jj in range(j0 + 2, m):
                    nxt = min(nxt, buf[jj])
                v += (pos - j) * (nxt - v)
            q[which, i] = v
            base = j0 + 1
    return q[0], q[1], cnt


@lru_cache(maxsize=1)
def _ratio_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q50 = abs_t_quantile(0.5, NU_GRID)
    qhi = abs_t_quantile(TAIL_LEVEL, NU_GRID)
    return np.log(qhi / q50), q50, qhi


def fit_tail(z: np.ndarray, min_count: int = 200, prior_nu: float = 5.0) -> TailFit:
    """Per-row ``(nu, c)`` from standardised residuals ``z`` ``[n, T]`` (see module doc)."""
    if min_count < 30:
        raise ValueError(f"min_count={min_count} is invalid: expected >= 30 residuals")
    if not 1.0 < prior_nu:
        raise ValueError(f"prior_nu={prior_nu} is invalid: expected degrees of freedom > 1")
    z = np.ascontiguousarray(np.atleast_2d(np.asarray(z, dtype=np.float64)))
    q50, qhi, cnt = _row_quantiles(z, 0.5, TAIL_LEVEL)
    n = z.shape[0]
    log_ratio, _, ghi = _ratio_table()
    nu = np.full(n, float(prior_nu))
    c = np.full(n, 1.0 / float(mean_abs_t(np.array([prior_nu]))[0]))
    p50 = float(abs_t_quantile(0.5, np.array([prior_nu]))[0])
    med_ok = (cnt >= 30) & (q50 > 0)
    c[med_ok] = q50[med_ok] / p50
    tail_ok = (cnt >= min_count) & (q50 > 0) & (qhi > 0)
    if tail_ok.any():
        lr = np.log(qhi[tail_ok] / q50[tail_ok])
        k = np.abs(lr[:, None] - log_ratio[None, :]).argmin(axis=1)
        nu[tail_ok] = NU_GRID[k]
        c[tail_ok] = qhi[tail_ok] / ghi[k]
    return TailFit(nu, np.clip(c, 0.05, 20.0), cnt)


# ---------------------------------------------------------------- surprise-tail recalibration
#
# The Student-t law above matches a series' residuals at two quantiles (50% and 98%).  Beyond
# them it is an assumption, and real series break it: zero-inflated and bursty series (most
# residuals exactly 0, a burst now and then), quantised counts, volatility that comes and goes.
# On such series far more than ``alpha`` of the points get ``p < alpha``, and one fixed alarm
# rate means very different false-alarm rates from one series to the next.
#
# The recalibration works on the *surprise* ``S = -log p``.  Under a calibrated law ``p`` is
# uniform, so ``S`` is exactly Exp(1): its ``1 - q0`` quantile is ``a = -log q0`` and its excess
# over that quantile is Exp(1) again (memorylessness).  On held-out residuals of the series we
# measure the empirical ``1 - q0`` quantile ``u`` and fit the excess over it by an exponential
# (the peaks-over-threshold law with shape 0); ``beta`` is the lower ~95% confidence bound of
# its mean, at least 1: the law is corrected only where the series' own data prove its tail
# heavier.  The recalibrated surprise is
#
#     S' = S * a / u                 for S <= u   (the body: a monotone rescaling)
#     S' = a + (S - u) / beta        for S >  u   (the tail: the fitted exponential)
#
# which is continuous, increasing, and the identity when the law was right (u = a, beta = 1).
# Nothing here is fitted to labels or to a corpus: ``q0`` only says how far into the tail the
# held-out residuals are trusted (2% of 500-3,000 held-out points: 10-60 exceedances).

SURPRISE_Q0 = 0.02  # the held-out tail the exponential is fitted on
SURPRISE_Z = 2.0  # the correction uses the mean excess's lower bound at this many SEs
SURPRISE_MIN_COUNT = 200  # fewer held-out surprises: the identity


@dataclass(frozen=True)
class SurpriseTail:
    u: np.ndarray  # float64 [n], empirical 1 - q0 quantile of the held-out surprises
    beta: np.ndarray  # float64 [n], mean excess over u (1: calibrated)


def identity_surprise(n: int) -> SurpriseTail:
    return SurpriseTail(np.full(n, -math.log(SURPRISE_Q0)), np.ones(n))


def fit_surprise_tail(log_p: np.ndarray, min_count: int = SURPRISE_MIN_COUNT) -> SurpriseTail:
    """Per-row ``(u, beta)`` from held-out log p-values ``[n, T]`` (NaN: not observed)."""
    lp = np.atleast_2d(np.asarray(log_p, dtype=np.float64))
    n = lp.shape[0]
    out = identity_surprise(n)
    s = -lp
    finite = np.isfinite(s)
    cnt = finite.sum(axis=1)
    ok = cnt >= min_count
    if not ok.any():
        return out
    rows = np.flatnonzero(ok)
    sub = np.sort(np.where(finite[rows], s[rows], np.inf), axis=1)  # finite values first
    # the 1 - q0 quantile of each row's finite values (linear interpolation, as np.quantile;
    # a sort instead of np.nanquantile, which is 10x slower on many short rows)
    pos = (1.0 - SURPRISE_Q0) * (cnt[rows] - 1)
    j = np.floor(pos).astype(np.int64)
    j1 = np.minimum(j + 1, cnt[rows] - 1)
    r = np.arange(len(rows))
    u = sub[r, j] + (pos - j) * (sub[r, j1] - sub[r, j])
    above = np.isfinite(sub) & (sub > u[:, None])
    k = above.sum(axis=1)
    mean_excess = np.where(above, sub - u[:, None], 0.0).sum(axis=1) / np.maximum(k, 1)
    # only a tail proven heavier than the law is corrected: the lower ~95% bound of the
    # exponential mean (relative standard error 1 / sqrt(k)), never below 1 (held-out
    # residuals have the points the replay flagged masked, so a lighter tail is not evidence)
    lower = mean_excess * np.maximum(0.0, 1.0 - SURPRISE_Z / np.sqrt(np.maximum(k, 1)))
    beta = np.where(k > 0, lower, 1.0)
    beta = np.clip(beta, 1.0, 1e3)
    u = np.maximum(u, 0.0)
    # where the t law already sits at the 98% quantile (it is fitted there) and no heavier tail
    # is proven, keep the exact identity (and the t law's own band, no per-row inversion)
    a = -math.log(SURPRISE_Q0)
    same = (beta == 1.0) & (np.abs(u - a) <= 0.01 * a)
    out.u[rows] = np.where(same, a, u)
    out.beta[rows] = beta
    return out


@njit(cache=True, error_model="numpy", inline="always")
def recalibrate_log_p(lp: float, u: float, beta: float) -> float:  # pragma: no cover
    """The recalibrated ``log p`` of one point (see the section comment); NaN stays NaN."""
    a = -math.log(SURPRISE_Q0)
    s = -lp
    if s > u:
        s2 = a + (s - u) / beta
    elif u > 0.0:
        s2 = a * (s / u)  # s <= u: no overflow for a tiny u
    else:
        s2 = s
    return max(-s2, LOG_P_FLOOR)


@njit(cache=True, error_model="numpy")
def _recalibrate_rows(lp: np.ndarray, u: np.ndarray,
                      beta: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty_like(lp)
    for i in range(lp.shape[0]):
        for t in range(lp.shape[1]):
            v = lp[i, t]
            out[i, t] = v if v != v else recalibrate_log_p(v, u[i], beta[i])
    return out


def recalibrate_array(log_p: np.ndarray, tail: SurpriseTail) -> np.ndarray:
    """:func:`recalibrate_log_p` of ``log_p`` ``[n, T]`` with per-row ``tail`` (NaN stays):
    the same scalar rule the scoring kernels apply, one formula."""
    lp = np.ascontiguousarray(np.atleast_2d(np.asarray(log_p, dtype=np.float64)))
    return _recalibrate_rows(lp, np.ascontiguousarray(tail.u, dtype=np.float64),
                             np.ascontiguousarray(tail.beta, dtype=np.float64))


def recalibrated_alpha_log(tail: SurpriseTail, alpha: float) -> np.ndarray:
    """Per row, the t-law ``log p`` whose recalibrated value is ``log alpha`` (the band edge)."""
    a = -math.log(SURPRISE_Q0)
    big = -math.log(alpha)
    u, beta = tail.u, tail.beta
    if big > a:
        s = u + beta * (big - a)
    else:
        s = big * u / a
    return -np.maximum(s, 0.0)


@njit(cache=True, error_model="numpy")
def _abs_quantile_log(nu: np.ndarray, log_tail: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Per row, ``q`` with ``log P(|T_nu| >= q) = log_tail`` by bisection on ``log q`` (60
    halvings of [-30, 300]: a relative error below 1e-15)."""
    out = np.empty(len(nu))
    for i in range(len(nu)):
        out[i] = _bisect_log_tail(log_tail[i], nu[i], -30.0, 300.0, 60)
    return out


def band_factor_log(nu: np.ndarray, log_tail: np.ndarray) -> np.ndarray:
    """Per row, ``q`` with ``log P(|T_nu| >= q) = log_tail`` (the band half-width in units of
    ``c`` times the running scale)."""
    return np.asarray(_abs_quantile_log(np.ascontiguousarray(nu, dtype=np.float64),
                                        np.ascontiguousarray(log_tail, dtype=np.float64)))


def value_quantum(values: np.ndarray) -> np.ndarray:
    """Per row of ``values`` [n, T], the smallest positive gap between distinct finite values
    (0 where there are fewer than two): the lattice step of counts, integer gauges and ratios
    with a fixed denominator; negligible against the noise for continuous data."""
    v = np.sort(np.where(np.isfinite(values), values, np.inf), axis=1)
    with np.errstate(invalid="ignore"):  # inf - inf past the last finite value
        gaps = np.diff(v, axis=1)
    gaps = np.where(np.isfinite(gaps) & (gaps > 0), gaps, np.inf)
    q = gaps.min(axis=1) if gaps.shape[1] else np.full(len(values), np.inf)
    return np.where(np.isfinite(q), q, 0.0)
