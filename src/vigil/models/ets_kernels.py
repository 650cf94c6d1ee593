"""Numba kernels of the additive-error exponential smoothing family (ETS A,{N,Ad},{N,A}).

One parameterisation covers every form (error-correction form, ``e`` the one-step error)::

    yhat_t = l + phi * b + s[p]            (p = phase of column t)
    l'     = l + phi * b + alpha * e
    b'     = phi * b + beta * e
    s[p]'  = s[p] + gamma * e

``phi = 0`` switches the trend off (b never enters), ``gamma = 0`` with zero seasonal states
switches the season off.  A missing value (NaN) advances the state by its prediction
(``e = 0``).  Errors are clipped at ``clip * scale`` before they update the state, which makes
the filter robust to isolated outliers (Huber-type updates); the fitting loss is the sum of
squared clipped errors.

Kernels run ``prange`` over series; the grid kernel evaluates K parameter combinations of one
series in the same pass over time with the combination as the innermost (SIMD) axis.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from vigil.models import calibration


@njit(parallel=True, cache=True, fastmath=True, error_model="numpy")
def grid_sse(
    y: np.ndarray,  # [n, T]
    ok: np.ndarray,  # bool [n, T] observed (NaN never enters the fast-math arithmetic)
    first: np.ndarray,  # int64 [n] first column to filter (state initialised there)
    phase0: int,  # phase of column 0
    level0: np.ndarray,  # [n]
    trend0: np.ndarray,  # [n]
    season0: np.ndarray,  # [n, m]
    clip: np.ndarray,  # [n] errors clipped to [-clip, clip] (a huge value disables it)
    alpha: np.ndarray,  # [n, K]
    beta: np.ndarray,  # [n, K]
    gamma: np.ndarray,  # [n, K]
    phi: np.ndarray,  # [n, K]
    seasonal: np.ndarray,  # [n, K] 1.0 if the combination has a season, else 0.0
    horizons: np.ndarray,  # int64 [H] extra lead times (>= 2) whose errors join the loss
    stride: int,  # multi-step errors from every `stride`-th origin only, weighted by stride
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loss of K combinations per series: (loss [n, K], one-step sse [n, K], nobs [n]).

    The loss is the sum of squared clipped errors at lead 1 and at every extra horizon.
    """
    n, t_len = y.shape
    m = season0.shape[1]
    k_len = alpha.shape[1]
    n_h = len(horizons)
    loss = np.zeros((n, k_len))
    sse = np.zeros((n, k_len))
    nobs = np.zeros(n, dtype=np.int64)
    for i in prange(n):
        # rows: 0 level, 1 trend, 2.. seasonal states by phase; combinations along columns
        st = np.empty((2 + m, k_len))
        acc = np.zeros(k_len)
        acc1 = np.zeros(k_len)
        al = alpha[i]
        be = beta[i]
        ga = gamma[i]
        ph = phi[i]
        for k in range(k_len):
            st[0, k] = level0[i]
            st[1, k] = trend0[i]
            for p in range(m):
                st[2 + p, k] = season0[i, p] * seasonal[i, k]
        # phi_h = phi + ... + phi^h of every extra horizon
        phih = np.zeros((n_h, k_len))
        for j in range(n_h):
            for k in range(k_len):
                pw = 1.0
                for _ in range(horizons[j]):
                    pw *= ph[k]
                    phih[j, k] += pw
        c = clip[i]
        count = 0
        p = (phase0 + first[i]) % m
        for t in range(first[i], t_len):
            o = 2 + p
            if ok[i, t]:
                count += 1
                v = y[i, t]
                for k in range(k_len):
                    d = ph[k] * st[1, k]
                    e = v - (st[0, k] + d + st[o, k])
                    e = min(max(e, -c), c)
                    acc1[k] += e * e
                    st[0, k] = st[0, k] + d + al[k] * e
                    st[1, k] = d + be[k] * e
                    st[o, k] = st[o, k] + ga[k] * e
                for j in range(n_h if (t - first[i]) % stride == 0 else 0):
                    tj = t + horizons[j]
                    if tj >= t_len or not ok[i, tj]:
                        continue
                    vj = y[i, tj]
                    oj = 2 + (p + horizons[j]) % m
                    for k in range(k_len):
                        e = vj - (st[0, k] + phih[j, k] * st[1, k] + st[oj, k])
                        e = min(max(e, -c), c)
                        acc[k] += stride * e * e
            else:
                for k in range(k_len):
                    d = ph[k] * st[1, k]
                    st[0, k] += d
                    st[1, k] = d
            p += 1
            if p == m:
                p = 0
        for k in range(k_len):
            loss[i, k] = acc[k] + acc1[k]
            sse[i, k] = acc1[k]
        nobs[i] = count
    return loss, sse, nobs


NO_OUTPUT, PREDICT, RESIDUALS, SCORES = 0, 1, 2, 3
N_OUT = (0, 1, 1, 5)  # output planes per mode


@njit(parallel=True, cache=True, error_model="numpy")
def filter_states(
    y: np.ndarray,  # [n, T] data scale
    first: np.ndarray,  # int64 [n] first column to learn from (earlier columns only predicted)
    phase0: int,  # phase of column 0
    alpha: np.ndarray,  # [n]
    beta: np.ndarray,  # [n]
    gamma: np.ndarray,  # [n]
    phi: np.ndarray,  # [n]
    level: np.ndarray,  # [n] in/out
    trend: np.ndarray,  # [n] in/out
    season: np.ndarray,  # [n, m] in/out
    sigma2: np.ndarray,  # [n] in/out running one-step error variance
    run: np.ndarray,  # int64 [n] in/out consecutive rejected points
    run_sum: np.ndarray,  # [n] in/out sum of their errors
    gap: np.ndarray,  # int64 [n] in/out unobserved steps since the last observed point
    floor2: np.ndarray,  # [n] lower bound of sigma2 (a constant series still has a scale)
    nobs: np.ndarray,  # int64 [n] in/out observed points seen
    clip: float,  # errors clipped at clip * sigma before the update (<= 0: no clipping)
    reject: float,  # |e| > reject * sigma is not learnt (<= 0: learn everything)
    max_run: int,  # a run longer than this is taken as a level shift and learnt
    rate: float,  # EWMA rate of sigma2 (0: frozen)
    warmup: int,  # the first `warmup` points of a series are all learnt, sigma2 as their mean
    logged: np.ndarray,  # bool [n] rows on the log scale: log(max(y, log_floor)) is filtered
    log_floor: np.ndarray,  # [n]
    mode: int,  # NO_OUTPUT, PREDICT, RESIDUALS or SCORES (see below)
    nu: np.ndarray,  # [n] tail calibration (SCORES only)
    c: np.ndarray,  # [n]
    qband: np.ndarray,  # [n] |T_nu| quantile of the band
    tabrow: np.ndarray,  # int64 [n] row of `tabs` / `zmax` of each series
    tabs: np.ndarray,  # tail tables (calibration.tail_tables)
    zmax: np.ndarray,
    log_alpha: float,  # log of the false-alarm rate
) -> tuple[np.ndarray, np.ndarray]:
    """Run the filter over ``y`` from the given states (updated in place).

    Returns ``out [N_OUT[mode], n, T]`` and ``warming [n, T]`` (whether fewer than
    ``warmup`` points had been seen before the column; empty for NO_OUTPUT):

    * PREDICT: the one-step prediction on the data scale;
    * RESIDUALS: the standardised residual ``e / sd`` (sd the running scale before the
      point; NaN where not observed or before column ``first + warmup``);
    * SCORES: expected, lower, upper (data scale), p-value and raw anomaly score.
    """
    n, t_len = y.shape
    m = season.shape[1]
    width = t_len if mode != NO_OUTPUT else 0
    out = np.empty((N_OUT[mode], n, width))  # every cell is written below
    warming = np.empty((n, width), dtype=np.bool_)
    for i in prange(n):
        lv = level[i]
        tr = trend[i]
        s2 = sigma2[i]
        r = run[i]
        rs = run_sum[i]
        g = gap[i]
        cnt = nobs[i]
        if mode == SCORES:
            lb = calibration.t_lbeta(nu[i])
            tab = tabs[tabrow[i]]
            zm = zmax[tabrow[i]]
            hb = c[i] * qband[i]
        p = (phase0 % m + m) % m
        for t in range(t_len):
            v = y[i, t]
            if logged[i] and not np.isnan(v):
                v = np.log(max(v, log_floor[i]))
            if np.isnan(lv) and t >= first[i] and not np.isnan(v):
                # no state yet (no history at fit time): start from the first value
                lv = v - season[i, p]
                tr = 0.0
            d = phi[i] * tr
            pred = lv + d + season[i, p]
            sig = np.sqrt(max(s2, floor2[i]))
            observed = t >= first[i] and not np.isnan(v)
            if observed and g > 0:
                # after g unobserved steps the prediction is a (g + 1)-step forecast
                sig *= horizon_factor(g, alpha[i], beta[i], gamma[i], phi[i], m)
            e = v - pred
            if mode != NO_OUTPUT:
                warming[i, t] = cnt < warmup
                if mode == PREDICT:
                    out[0, i, t] = math.exp(min(pred, 700.0)) if logged[i] else pred
                elif mode == RESIDUALS:
                    if observed and sig > 0 and t >= first[i] + warmup:
                        out[0, i, t] = e / sig
                    else:
                        out[0, i, t] = np.nan
                else:
                    half = sig * hb
                    lo = pred - half
                    hi = pred + half
                    if logged[i]:
                        out[0, i, t] = math.exp(min(pred, 700.0))
                        out[1, i, t] = math.exp(min(lo, 700.0))
                        out[2, i, t] = math.exp(min(hi, 700.0))
                    else:
                        out[0, i, t] = pred
                        out[1, i, t] = lo
                        out[2, i, t] = hi
                    if observed:
                        lp = calibration.residual_log_p(e, sig, c[i], nu[i], lb, tab, zm)
                        out[3, i, t] = math.exp(lp)
                        out[4, i, t] = max(lp, calibration.LOG_P_FLOOR) / log_alpha
                    else:
                        out[3, i, t] = np.nan
                        out[4, i, t] = np.nan
            p += 1
            if p == m:
                p = 0
            if not observed:
                lv = lv + d
                tr = d
                if cnt > 0:
                    g += 1
                continue
            g = 0
            cnt += 1
            pp = p - 1 if p > 0 else m - 1
            if cnt <= warmup:
                s2 = s2 + (e * e - s2) / cnt
                lv = lv + d + alpha[i] * e
                tr = d + beta[i] * e
                season[i, pp] = season[i, pp] + gamma[i] * e
                continue
            if reject > 0.0 and abs(e) > reject * sig:
                if r < max_run:
                    # anomalous: advance by the prediction, do not learn the point
                    r += 1
                    rs += e
                    lv = lv + d
                    tr = d
                    continue
                # the run outlasted max_run: a level shift; jump by its mean error
                lv = lv + d + (rs + e) / (r + 1)
                tr = d
                r = 0
                rs = 0.0
                continue
            r = 0
            rs = 0.0
            ec = e
            if clip > 0.0:
                lim = clip * sig
                ec = min(max(e, -lim), lim)
            s2 = (1.0 - rate) * s2 + rate * ec * ec
            lv = lv + d + alpha[i] * ec
            tr = d + beta[i] * ec
            season[i, pp] = season[i, pp] + gamma[i] * ec
        level[i] = lv
        trend[i] = tr
        sigma2[i] = s2
        run[i] = r
        run_sum[i] = rs
        gap[i] = g
        nobs[i] = cnt
    return out, warming


@njit(cache=True, error_model="numpy", inline="always")
def horizon_factor(g: int, alpha: float, beta: float, gamma: float, phi: float,
                   m: int) -> float:  # pragma: no cover - compiled
    """``sqrt(1 + sum_{i=1..g} c_i^2)``, ``c_i = alpha + beta (phi + ... + phi^i) +
    gamma [m | i]``: the sd of a ``(g + 1)``-step forecast in one-step sds (the forecasts'
    analytic variance).  A point after a gap of ``g`` steps is such a forecast: its rejection
    and clipping thresholds widen with it, so the level re-anchors after a scrape outage
    instead of rejecting ``max_run`` points that only show where the series went meanwhile."""
    total = 1.0
    damp = 0.0
    pw = 1.0
    for i in range(1, min(g, 100_000) + 1):
        pw *= phi
        damp += pw
        ci = alpha + beta * damp + (gamma if m > 1 and i % m == 0 else 0.0)
        total += ci * ci
    return math.sqrt(total)
