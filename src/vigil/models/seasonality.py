"""Per-series seasonality detection and robust seasonal profiles (numba, rows independent).

Phases are absolute: column ``k`` of a batch starting at ``start`` has phase
``(start // step + k) mod period``, so a profile learnt on one batch applies to any later one
(daily phase 0 is midnight UTC; weekly phase 0 is Thursday 00:00 UTC, the epoch's weekday).

Detection (``detect_profiles``), with ``L`` the longest candidate period (daily, weekly, in
steps) that fits twice in the batch:

1. a robust trend: medians of the blocks ``[jL, (j+1)L)`` (a block needs a quarter of its
   points), interpolated linearly between the blocks' mean positions; one trend for every
   candidate, so that a weekly pattern of daily levels is not absorbed by it;
2. for each candidate ``P``, two-fold cross-validation of the per-phase median profile of the
   detrended values: the profile from even cycles predicts odd cycles and vice versa; the
   spread of the candidate is the mean absolute out-of-fold residual (honest: a weekly
   profile from few cycles does not win by fitting noise);
3. "none" has the mean absolute deviation of the detrended values from their median.

Absolute residuals are clipped at 4 MADs of the detrended values, so anomalies in the history
barely move the comparison.

A candidate is chosen over the current best (starting from "none") when its spread is below
``(1 - margin)`` times the best's, in increasing period order; a candidate needs ``2 P``
columns and out-of-fold residuals for half the observed points.  The chosen profile is the
per-phase median of all cycles, centred (median 0); ``madrel`` is the per-phase mean
absolute residual (each clipped at 4 spreads) relative to the overall one, pooled over
``P // 48`` neighbouring phases, shrunk towards 1 by the empirical-Bayes (James-Stein) factor
``max(0, 1 - expected sampling variance / observed variance across phases)`` — a homoscedastic
series gets ``madrel`` ~ 1 instead of its in-sample noise — and clipped to [0.3, 3].
"""

from __future__ import annotations

import numpy as np
from numba import njit

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


def candidate_periods(
    step_ms: int, seasons_ms: tuple[int, ...] = (DAY_MS, WEEK_MS), max_period: int = 2016
) -> np.ndarray:
    """Periods in steps (sorted, int64) of the seasons that are whole multiples of the step,
    at least 2 steps and at most ``max_period`` steps."""
    if step_ms <= 0:
        raise ValueError(f"step={step_ms} ms is invalid: expected a positive step")
    out = sorted(
        {s // step_ms for s in seasons_ms if s % step_ms == 0 and 2 <= s // step_ms <= max_period}
    )
    return np.array(out, dtype=np.int64)


@njit(cache=True)
def select(a: np.ndarray, m: int, k: int) -> float:  # pragma: no cover - compiled
    """The ``k``-th smallest of ``a[:m]`` (no NaN), reordering ``a[:m]`` in place so that
    ``a[:k] <= a[k] <= a[k+1:m]`` (quickselect, insertion sort below 16 elements).

    Partitions are branch-free Lomuto passes around a median-of-three pivot (about twice as
    fast as a Hoare partition on noisy data, whose comparisons the CPU cannot predict); when
    the pivot is the smallest value of the range, its copies are grouped in a second pass, so
    many equal values (flat series) stay linear.  The result is the exact order statistic.
    """
    lo = 0
    hi = m
    while hi - lo > 16:
        mid = (lo + hi - 1) // 2
        x0 = a[lo]
        x1 = a[mid]
        x2 = a[hi - 1]
        if x0 > x1:
            x0, x1 = x1, x0
        pivot = max(x0, min(x1, x2))
        if pivot == a[mid]:  # the pivot to the range's end
            a[mid] = a[hi - 1]
            a[hi - 1] = pivot
        elif pivot == a[lo]:
            a[lo] = a[hi - 1]
            a[hi - 1] = pivot
        store = lo
        for i in range(lo, hi - 1):  # a[lo:store] < pivot <= a[store:i + 1]
            v = a[i]
            a[i] = a[store]
            a[store] = v
            store += v < pivot
        if store == lo:  # nothing below the pivot: group its copies, a[lo:store] == pivot
            for i in range(lo, hi - 1):
                v = a[i]
                a[i] = a[store]
                a[store] = v
                store += v <= pivot
            a[hi - 1] = a[store]
            a[store] = pivot
            if k <= store:
                return pivot
            lo = store + 1
            continue
        a[hi - 1] = a[store]
        a[store] = pivot
        if k < store:
            hi = store
        elif k > store:
            lo = store + 1
        else:
            return pivot
    for i in range(lo + 1, hi):
        v = a[i]
        j = i - 1
        while j >= lo and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v
    return a[k]


@njit(cache=True)
def _median(buf: np.ndarray, m: int) -> float:  # pragma: no cover - compiled
    """Median of ``buf[:m]`` (scratch: reordered in place); NaN when ``m == 0``."""
    if m <= 2:
        return np.nan if m == 0 else (buf[0] if m == 1 else 0.5 * (buf[0] + buf[1]))
    h = m // 2
    hi = select(buf, m, h)
    if m % 2 == 1:
        return hi
    lo = buf[0]
    for j in range(1, h):
        lo = max(lo, buf[j])
    return 0.5 * (lo + hi)


@njit(cache=True)
def _block_trend(
    x: np.ndarray, origin: int, p: int, out: np.ndarray, buf: np.ndarray
) -> None:  # pragma: no cover - compiled
    t_len = x.shape[0]
    b0 = origin // p
    nb = (origin + t_len - 1) // p - b0 + 1
    centers = np.empty(nb)
    meds = np.empty(nb)
    m_ok = 0
    k = 0
    for b in range(nb):
        stop = min(t_len, (b0 + b + 1) * p - origin)
        m = 0
        pos = 0.0
        while k < stop:
            if x[k] == x[k]:
                buf[m] = x[k]
                pos += k
                m += 1
            k += 1
        if m >= max(1, p // 4):
            centers[m_ok] = pos / m
            meds[m_ok] = _median(buf, m)
            m_ok += 1
    if m_ok == 0:
        out[:] = np.nan
        return
    j = 0
    for k in range(t_len):
        if k <= centers[0]:
            out[k] = meds[0]
        elif k >= centers[m_ok - 1]:
            out[k] = meds[m_ok - 1]
        else:
            while centers[j + 1] < k:
                j += 1
            f = (k - centers[j]) / (centers[j + 1] - centers[j])
            out[k] = meds[j] + f * (meds[j + 1] - meds[j])


@njit(cache=True)
def _phase_medians(
    y: np.ndarray, origin: int, p: int, fold: int, med: np.ndarray, cnt: np.ndarray, buf: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Per-phase medians of ``y`` over the cycles of parity ``fold`` (all cycles if -1)."""
    t_len = y.shape[0]
    for ph in range(p):
        k = (ph - origin) % p
        par = ((origin + k) // p) % 2  # parity of the cycle of column k; flips every p columns
        m = 0
        while k < t_len:
            if y[k] == y[k] and (fold < 0 or par == fold):
                buf[m] = y[k]
                m += 1
            k += p
            par ^= 1
        cnt[ph] = m
        med[ph] = _median(buf, m)


@njit(cache=True)
def _cv_spread(
    y: np.ndarray, origin: int, p: int, clip: float, buf: np.ndarray
) -> float:  # pragma: no cover - compiled
    """Mean absolute out-of-fold residual (each clipped at ``clip``) of the per-phase median
    profile of period ``p`` of the detrended values ``y``."""
    med0 = np.empty(p)
    med1 = np.empty(p)
    cnt = np.empty(p, np.int64)
    _phase_medians(y, origin, p, 0, med0, cnt, buf)
    _phase_medians(y, origin, p, 1, med1, cnt, buf)
    m = 0
    n_obs = 0
    tot = 0.0
    ph = origin % p
    par = (origin // p) % 2
    for k in range(y.shape[0]):
        if y[k] == y[k]:
            n_obs += 1
            other = med1[ph] if par == 0 else med0[ph]
            if other == other:
                tot += min(abs(y[k] - other), clip)
                m += 1
        ph += 1
        if ph == p:
            ph = 0
            par ^= 1
    if m == 0 or 2 * m < n_obs:
        return np.nan
    return tot / m


@njit(cache=True)
def detect_profiles(
    values: np.ndarray, origin: int, cands: np.ndarray, margin: float, width: int
) -> tuple:  # pragma: no cover - compiled
    """``(period[n], profile[n, width], madrel[n, width], spread[n])`` (see module doc);
    ``spread`` is the winner's spread (the MAD of the values when no candidate fits).

    ``width`` must be at least the largest candidate (columns past a row's period are unused).
    """
    n, t_len = values.shape
    period = np.ones(n, np.int64)
    prof = np.zeros((n, width))
    madrel = np.ones((n, width))
    spread_out = np.full(n, np.nan)
    y = np.empty(t_len)
    buf = np.empty(max(t_len, 1))
    w = np.empty(max(t_len, 1))
    n_cand = 0
    while n_cand < cands.shape[0] and t_len >= 2 * cands[n_cand]:
        n_cand += 1
    for i in range(n):
        x = values[i]
        best = 1
        if n_cand > 0:
            # one trend for every candidate: blocks of the longest feasible period, so that a
            # weekly pattern of daily levels is not absorbed by the trend
            _block_trend(x, origin, cands[n_cand - 1], y, buf)
            m = 0
            for k in range(t_len):
                y[k] = x[k] - y[k]
                if y[k] == y[k]:
                    w[m] = y[k]
                    m += 1
            centre = _median(w, m)
            for k in range(m):
                w[k] = abs(w[k] - centre)
            mad = _median(w, m)
            clip = 4.0 * mad if mad > 0 else np.inf
            best_spread = 0.0
            for k in range(m):
                best_spread += min(w[k], clip)
            best_spread = best_spread / m if m > 0 else np.nan
            for j in range(n_cand):
                spread = _cv_spread(y, origin, cands[j], clip, buf)
                if spread == spread and best_spread == best_spread:
                    if spread < (1.0 - margin) * best_spread:
                        best = cands[j]
                        best_spread = spread
            spread_out[i] = best_spread
        else:  # too short for any candidate: the MAD of the values
            m = 0
            for k in range(t_len):
                if x[k] == x[k]:
                    w[m] = x[k]
                    m += 1
            centre = _median(w, m)
            for k in range(m):
                w[k] = abs(w[k] - centre)
            spread_out[i] = _median(w, m)
        period[i] = best
        if best > 1:
            _profile(y, origin, best, spread_out[i], buf, w, prof[i], madrel[i])
    return period, prof, madrel, spread_out


@njit(cache=True)
def _profile(
    y: np.ndarray,
    origin: int,
    p: int,
    spread: float,
    buf: np.ndarray,
    w: np.ndarray,
    prof: np.ndarray,
    madrel: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Profile and relative MAD of period ``p`` from the detrended ``y`` (``spread``: the
    candidate's mean absolute residual, the clip scale)."""
    t_len = y.shape[0]
    med = np.empty(p)
    cnt = np.empty(p, np.int64)
    _phase_medians(y, origin, p, -1, med, cnt, buf)
    m = 0
    for ph in range(p):
        if med[ph] == med[ph]:
            w[m] = med[ph]
            m += 1
    centre = _median(w, m)
    for ph in range(p):
        prof[ph] = med[ph] - centre if med[ph] == med[ph] else 0.0
    if not spread > 0:
        return
    # per-phase mean absolute residual (clipped at 4 spreads), relative to the overall one
    clip = 4.0 * spread
    sums = np.zeros(p)
    cnt[:] = 0
    tot = 0.0
    tot2 = 0.0
    m = 0
    ph = origin % p
    for k in range(t_len):
        if y[k] == y[k]:
            a = min(abs(y[k] - centre - prof[ph]), clip)
            sums[ph] += a
            cnt[ph] += 1
            tot += a
            tot2 += a * a
            m += 1
        ph += 1
        if ph == p:
            ph = 0
    if not tot > 0:
        return
    mean_all = tot / m
    rel_var = max(tot2 / m / (mean_all * mean_all) - 1.0, 0.0)  # var(a) / mean(a)^2
    half = min(p // 96, (p - 1) // 2)  # window of 2 * half + 1 phases ~ p // 48
    s_win = 0.0
    n_raw = 0
    for d in range(-half, half + 1):  # window centred on phase 0 ...
        s_win += sums[d % p]
        n_raw += cnt[d % p]
    obs_var = 0.0
    exp_var = 0.0
    n_ph = 0
    for ph in range(p):  # ... then slid one phase at a time
        if n_raw > 0:
            madrel[ph] = s_win / n_raw / mean_all
            obs_var += (madrel[ph] - 1.0) ** 2
            exp_var += rel_var / n_raw
            n_ph += 1
        else:
            madrel[ph] = np.nan
        drop = (ph - half) % p
        add = (ph + half + 1) % p
        s_win += sums[add] - sums[drop]
        n_raw += cnt[add] - cnt[drop]
    # empirical-Bayes shrinkage towards 1: only heteroscedasticity beyond sampling noise stays
    shrink = max(0.0, 1.0 - exp_var / obs_var) if obs_var > 0 else 0.0
    for ph in range(p):
        raw = madrel[ph]
        madrel[ph] = min(3.0, max(0.3, 1.0 + shrink * (raw - 1.0))) if raw == raw else 1.0


@njit(cache=True, error_model="numpy")
def choose_level_rate(
    values: np.ndarray,
    origin: int,
    period: np.ndarray,
    prof: np.ndarray,
    spread: np.ndarray,
    rates: np.ndarray,
    burn: int,
) -> np.ndarray:  # pragma: no cover - compiled
    """Per row, the rate of ``rates`` whose robust EWMA of the deseasonalised values has the
    smallest mean one-step error clipped at ``3 spread`` (after ``burn`` points; ties: the
    first, i.e. the smoothest when ``rates`` is increasing)."""
    n, t_len = values.shape
    out = np.empty(n)
    for i in range(n):
        lim = 3.0 * spread[i] if spread[i] > 0 else np.inf
        best = np.inf
        out[i] = rates[0]
        for j in range(rates.shape[0]):
            a = rates[j]
            lev = np.nan
            tot = 0.0
            seen = 0
            ph = origin % period[i]
            for k in range(t_len):
                y = values[i, k]
                if y == y:
                    d = y - prof[i, ph]
                    if lev != lev:
                        lev = d
                    else:
                        e = min(max(d - lev, -lim), lim)
                        if seen >= burn:
                            tot += abs(e)
                        lev += a * e
                    seen += 1
                ph += 1
                if ph == period[i]:
                    ph = 0
            if tot < best:
                best = tot
                out[i] = a
    return out


def phase_origin(start_ms: int, step_ms: int) -> int:
    """Absolute step index of a batch's column 0 (phase = (origin + k) mod period)."""
    return int(start_ms // step_ms)


def period_names(period: np.ndarray, step_ms: int) -> np.ndarray:
    """Human names of detected periods: ``none``, ``daily``, ``weekly`` or ``<n> steps``."""
    period = np.asarray(period, dtype=np.int64)
    out = np.char.add(period.astype(str), " steps").astype(object)
    out[period == 1] = "none"
    out[period * step_ms == DAY_MS] = "daily"
    out[period * step_ms == WEEK_MS] = "weekly"
    return out
