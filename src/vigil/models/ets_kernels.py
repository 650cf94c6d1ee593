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

import numpy as np
from numba import njit, prange


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


@njit(parallel=True, cache=True)
def filter_states(
    y: np.ndarray,  # [n, T]
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
    floor2: np.ndarray,  # [n] lower bound of sigma2 (a constant series still has a scale)
    nobs: np.ndarray,  # int64 [n] in/out observed points seen
    clip: float,  # errors clipped at clip * sigma before the update (<= 0: no clipping)
    reject: float,  # |e| > reject * sigma is not learnt (<= 0: learn everything)
    max_run: int,  # a run longer than this is taken as a level shift and learnt
    rate: float,  # EWMA rate of sigma2 (0: frozen)
    warmup: int,  # the first `warmup` points of a series are all learnt, sigma2 as their mean
    logged: np.ndarray,  # bool [n] rows modelled on the log scale (values taken as log(max(y, floor)))
    log_floor: np.ndarray,  # [n]
    outputs: bool,  # fill yhat / resid / sd / warming (else they are returned empty)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the filter over ``y`` from the given states (updated in place); with ``outputs``,
    the one-step predictions, residuals and running sd before each point (model scale) and
    whether the point falls in the series' warm-up."""
    n, t_len = y.shape
    m = season.shape[1]
    width = t_len if outputs else 0
    yhat = np.full((n, width), np.nan)
    resid = np.full((n, width), np.nan)
    sd = np.full((n, width), np.nan)
    warming = np.zeros((n, width), dtype=np.bool_)
    for i in prange(n):
        lv = level[i]
        tr = trend[i]
        s2 = sigma2[i]
        r = run[i]
        rs = run_sum[i]
        cnt = nobs[i]
        for t in range(t_len):
            p = (phase0 + t) % m
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
            if outputs:
                yhat[i, t] = pred
                sd[i, t] = sig
                warming[i, t] = cnt < warmup
            if t < first[i] or np.isnan(v):
                lv = lv + d
                tr = d
                continue
            e = v - pred
            cnt += 1
            if outputs:
                resid[i, t] = e
            if cnt <= warmup:
                s2 = s2 + (e * e - s2) / cnt
                lv = lv + d + alpha[i] * e
                tr = d + beta[i] * e
                season[i, p] = season[i, p] + gamma[i] * e
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
            season[i, p] = season[i, p] + gamma[i] * ec
        level[i] = lv
        trend[i] = tr
        sigma2[i] = s2
        run[i] = r
        run_sum[i] = rs
        nobs[i] = cnt
    return yhat, resid, sd, warming


@njit(parallel=True, cache=True)
def diff_scale(y: np.ndarray) -> np.ndarray:
    """Robust sd of the one-step noise per row: 1.4826 x the median absolute difference
    between consecutive observed values, over sqrt(2); -1 where not positive or unknown."""
    n, t_len = y.shape
    out = np.full(n, -1.0)
    for i in prange(n):
        buf = np.empty(t_len)
        k = 0
        prev = np.nan
        for t in range(t_len):
            v = y[i, t]
            if np.isnan(v):
                continue
            if not np.isnan(prev):
                buf[k] = abs(v - prev)
                k += 1
            prev = v
        if k == 0:
            continue
        mad = np.median(buf[:k]) * 1.4826 / np.sqrt(2.0)
        if mad > 0:
            out[i] = mad
    return out


@njit(parallel=True, cache=True)
def seasonal_profile(y: np.ndarray, m: int, phase0: int) -> np.ndarray:
    """Per-phase median of each row minus its centred moving mean (2 x m for even m), centred
    to mean zero -> [n, m]; 0 for phases without data.  Column t has phase (phase0 + t) % m."""
    n, t_len = y.shape
    out = np.zeros((n, m))
    half = m // 2
    even = m % 2 == 0
    cycles = t_len // m + 2
    for i in prange(n):
        csum = np.zeros(t_len + 1)
        ccnt = np.zeros(t_len + 1)
        for t in range(t_len):
            v = y[i, t]
            ok = not np.isnan(v)
            csum[t + 1] = csum[t] + (v if ok else 0.0)
            ccnt[t + 1] = ccnt[t] + (1.0 if ok else 0.0)
        buf = np.empty((m, cycles))
        cnt = np.zeros(m, dtype=np.int64)
        for t in range(half, t_len - half):
            v = y[i, t]
            if np.isnan(v):
                continue
            # box over t-half .. t-half+m-1 (and the one shifted by +1 for even m)
            a = t - half
            s = csum[a + m] - csum[a]
            c = ccnt[a + m] - ccnt[a]
            if even:
                if a + m + 1 > t_len:
                    continue
                s += csum[a + m + 1] - csum[a + 1]
                c += ccnt[a + m + 1] - ccnt[a + 1]
                need = 2.0 * m
            else:
                need = 1.0 * m
            if c < need:
                continue
            p = (phase0 + t) % m
            buf[p, cnt[p]] = v - s / c
            cnt[p] += 1
        total = 0.0
        used = 0
        for p in range(m):
            if cnt[p] > 0:
                out[i, p] = np.median(buf[p, : cnt[p]])
                total += out[i, p]
                used += 1
        if used > 0:
            mean = total / used
            for p in range(m):
                if cnt[p] > 0:
                    out[i, p] -= mean
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
            if cnt <= warmup:
                s2 = s2 + (r * r - s2) / cnt
            elif reject <= 0.0 or abs(r) <= reject * sig:
                s2 = (1.0 - rate) * s2 + rate * r * r
        sigma2[i] = s2
        nobs[i] = cnt
    return sd


@njit(parallel=True, cache=True)
def row_range(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN-ignoring min and max of each row (NaN where the row has no value)."""
    n, t_len = y.shape
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    for i in prange(n):
        a = np.inf
        b = -np.inf
        for t in range(t_len):
            v = y[i, t]
            if not np.isnan(v):
                a = min(a, v)
                b = max(b, v)
        if a <= b:
            lo[i] = a
            hi[i] = b
    return lo, hi


@njit(parallel=True, cache=True)
def log_rows(y: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``y`` with the rows flagged in ``rows`` replaced by their logarithm."""
    n, t_len = y.shape
    out = np.empty((n, t_len))
    for i in prange(n):
        if rows[i]:
            for t in range(t_len):
                out[i, t] = np.log(y[i, t])
        else:
            for t in range(t_len):
                out[i, t] = y[i, t]
    return out
