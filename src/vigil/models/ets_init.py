"""Initial states and the vectorised parameter search of :mod:`vigil.models.ets`."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from vigil.models import ets_kernels
from vigil.models.seasonality import select

FORM_CODES = {"ANN": 0, "AAdN": 1, "ANA": 2, "AAdA": 3}
_MIN_SEARCH = 8  # fewer observed points than this: no search, ANN with _DEFAULT_ALPHA
_DEFAULT_ALPHA = 0.2


@dataclass(frozen=True)
class Grid:
    """The shared search grid (see :class:`vigil.models.ets.ETS`)."""

    alphas: tuple[float, ...]
    trend_alphas: tuple[float, ...]
    gammas: tuple[float, ...]
    beta_ratios: tuple[float, ...]
    phis: tuple[float, ...]
    phi_max: float
    stride: int


_NO_CLIP = 1e300  # clip bound that never binds (fast-math kernels assume finite values)


@dataclass(frozen=True)
class Init:
    first: np.ndarray  # int64 [n] first observed column (0 when none)
    count: np.ndarray  # int64 [n] observed points
    level: np.ndarray  # [n] level before column `first` (NaN when no data)
    trend: np.ndarray  # [n]
    season: np.ndarray  # [n, m] by phase, mean zero
    seasonal_ok: np.ndarray  # bool [n] enough history for a seasonal form
    scale: np.ndarray  # [n] robust sd of the first differences / sqrt(2) (-1: unknown)


def nanmedian(x: np.ndarray, axis: int) -> np.ndarray:
    """NaN-ignoring median along ``axis`` by one sort (NaN sorts last); NaN where all NaN."""
    srt = np.sort(x, axis=axis)
    cnt = np.sum(~np.isnan(x), axis=axis, keepdims=True)
    lo = np.take_along_axis(srt, np.maximum((cnt - 1) // 2, 0), axis=axis)
    hi = np.take_along_axis(srt, np.maximum(cnt // 2, 0), axis=axis)
    med = np.where(cnt > 0, 0.5 * (lo + hi), np.nan)
    return np.squeeze(med, axis=axis)


def initial_states(y: np.ndarray, m: int, phase0: int, init_seasons: int) -> Init:
    """Robust starting states of each row (vectorised over rows).

    Level and trend come from the first ``init_seasons`` seasons (median season-to-season
    change of the season means); the seasonal states are the per-phase medians of the whole
    window around its centred moving mean (robust to outliers and to a noisy first season).
    Rows without ``seasonal_ok`` history start from the mean of their first 10 values, flat.
    """
    n, t_len = y.shape
    valid = ~np.isnan(y)
    count = valid.sum(axis=1).astype(np.int64)
    first = np.where(count > 0, np.argmax(valid, axis=1), 0).astype(np.int64)
    span = t_len - first
    rows = np.arange(n)[:, None]
    season = np.zeros((n, m))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        idx0 = first[:, None] + np.arange(10)[None, :]
        level = np.nanmean(np.where(idx0 < t_len, y[rows, np.minimum(idx0, t_len - 1)], np.nan), 1)
        trend = np.zeros(n)
        seasonal_ok = np.zeros(n, dtype=bool)
        if m > 1:
            k = np.minimum(init_seasons, span // m)
            width = init_seasons * m
            idx = first[:, None] + np.arange(width)[None, :]
            inside = idx < first[:, None] + (k * m)[:, None]
            win = np.where(inside, y[rows, np.minimum(idx, t_len - 1)], np.nan)
            means = np.nanmean(win.reshape(n, init_seasons, m), axis=2)  # [n, S]
            slope = nanmedian(np.diff(means, axis=1), 1) / m
            slope = np.where(np.isfinite(slope), slope, 0.0)
            centre = m * np.arange(init_seasons) + (m - 1) / 2
            start = nanmedian(means - slope[:, None] * centre[None, :], 1)
            seasonal_ok = (k >= 2) & (count >= 2 * m) & (span >= 3 * m) & np.isfinite(start)
            if seasonal_ok.any():
                prof = seasonal_profile(y, m, int(phase0))
                season = np.where(seasonal_ok[:, None], prof, 0.0)
            level = np.where(seasonal_ok, start - slope, level)
            trend = np.where(seasonal_ok, slope, 0.0)
    return Init(
        first, count, level, trend, season, seasonal_ok,
        diff_scale(y),
    )  # fmt: skip


def _run_grid(
    y: np.ndarray,
    m: int,
    phase0: int,
    init: Init,
    clip: float,
    combos: tuple[np.ndarray, ...],
    horizons: Sequence[int],
    stride: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    alpha, beta, gamma, phi, sf = (np.ascontiguousarray(c, dtype=np.float64) for c in combos)
    bound = np.where(init.scale > 0, clip * init.scale, _NO_CLIP) if clip > 0 else _NO_CLIP
    return ets_kernels.grid_sse(
        y,
        ~np.isnan(y),
        init.first,
        int(phase0),
        np.nan_to_num(init.level),
        init.trend,
        init.season,
        np.broadcast_to(bound, (len(y),)).astype(np.float64),
        alpha, beta, gamma, phi, sf, np.asarray(horizons, dtype=np.int64), stride,
    )  # fmt: skip


def _stage1(forms: Sequence[str], seasonal: bool, grid: Grid) -> np.ndarray:
    """The shared grid: rows (alpha, beta, gamma, phi, seasonal flag)."""
    rows: list[tuple[float, float, float, float, float]] = []
    for form in forms:
        code = FORM_CODES[form]
        s = code >= 2
        trend = code in (1, 3)
        if s and not seasonal:
            continue
        for a in grid.trend_alphas if trend else grid.alphas:
            for br in grid.beta_ratios if trend else (0.0,):
                for g in grid.gammas if s else (0.0,):
                    for ph in grid.phis if trend else (0.0,):
                        if g <= 1.0 - a:
                            rows.append((a, br * a, g, ph, 1.0 if s else 0.0))
    return np.array(rows).reshape(-1, 5)


def _steps(
    params: tuple[np.ndarray, ...], code: int, phi_max: float
) -> list[tuple[np.ndarray, ...]]:
    """Coordinate steps around per-series best parameters of one form."""
    a, b, g, ph, s = params
    out: list[tuple[np.ndarray, ...]] = []
    for fa in (0.6, 1.6):
        na = np.clip(a * fa, 0.005, 1.0)
        out.append((na, np.minimum(b, na), np.minimum(g, 1.0 - na), ph, s))
    if code in (1, 3):
        for fb in (0.4, 2.5):
            out.append((a, np.clip(b * fb, 1e-4, a), g, ph, s))
        for nph in (1.0 - 2.0 * (1.0 - ph), 1.0 - 0.5 * (1.0 - ph)):
            out.append((a, b, g, np.clip(nph, 0.8, max(phi_max, 0.8)), s))
    if code >= 2:
        for fg in (0.5, 2.0):
            out.append((a, b, np.clip(g * fg, 0.001, 1.0 - a), ph, s))
    return out


def _form_of(sf: np.ndarray, phi: np.ndarray) -> np.ndarray:
    return np.where(sf > 0, 2, 0) + np.where(phi > 0, 1, 0)


def search(
    y: np.ndarray,
    m: int,
    phase0: int,
    init: Init,
    forms: Sequence[str],
    clip: float,
    grid: Grid,
    horizons: Sequence[int] = (),
    refine: int = 1,
) -> tuple[np.ndarray, ...]:
    """Per-series (alpha, beta, gamma, phi, one-step sse, nobs, form code) chosen by AIC.

    A shared grid over every requested form, then ``refine`` rounds of coordinate steps around
    each series' best point of each form.  With extra ``horizons`` the criterion is AIC-like
    on the mean multi-step loss.
    """
    n = len(y)
    seasonal = m > 1 and bool(init.seasonal_ok.any())
    rows = _stage1(forms, seasonal, grid)
    cands = [np.ascontiguousarray(np.broadcast_to(rows[:, j], (n, len(rows)))) for j in range(5)]
    loss, sse, nobs = _run_grid(y, m, phase0, init, clip, tuple(cands), horizons, grid.stride)
    r = np.arange(n)
    codes = sorted({FORM_CODES[f] for f in forms if seasonal or FORM_CODES[f] < 2})
    for _ in range(refine):
        form = _form_of(cands[4], cands[3])
        new: list[list[np.ndarray]] = [[], [], [], [], []]
        for code in codes:
            best = np.argmin(np.where(form == code, loss, np.inf), axis=1)
            params = tuple(c[r, best] for c in cands)
            for st in _steps(params, code, grid.phi_max):
                for j in range(5):
                    new[j].append(np.asarray(st[j], dtype=np.float64))
        combos = tuple(np.stack(col, axis=1) for col in new)
        loss2, sse2, _ = _run_grid(y, m, phase0, init, clip, combos, horizons, grid.stride)
        cands = [np.concatenate([c1, c2], axis=1) for c1, c2 in zip(cands, combos, strict=True)]
        loss = np.concatenate([loss, loss2], axis=1)
        sse = np.concatenate([sse, sse2], axis=1)
    alpha, beta, gamma, phi, sf = cands
    form = _form_of(sf, phi)
    nob = np.maximum(nobs, 1).astype(np.float64)
    floor = (1e-9 * (np.abs(np.nan_to_num(init.level)) + 1.0)) ** 2
    mean_loss = loss / (1 + len(horizons)) / nob[:, None]
    n_par = np.where(phi > 0, 5.0, 2.0) + np.where(sf > 0, m, 0.0)
    aic = nob[:, None] * np.log(mean_loss + floor[:, None]) + 2.0 * n_par
    allowed = np.zeros_like(aic, dtype=bool)
    for code in codes:
        ok = form == code
        if code >= 2:
            ok &= init.seasonal_ok[:, None]
        if code in (1, 3):
            ok &= (nobs >= 2 * _MIN_SEARCH)[:, None]
        allowed |= ok
    # rows too short for every requested form fall back to the plainest candidate (ANN if
    # requested, else the first of the grid); `short` rows below get ANN defaults anyway
    none = ~allowed.any(axis=1)
    allowed[none] = (form[none] == min(codes)) if codes else True
    best = np.argmin(np.where(allowed, aic, np.inf), axis=1)
    out_a, out_b, out_g, out_p = alpha[r, best], beta[r, best], gamma[r, best], phi[r, best]
    out_form = form[r, best].astype(np.int64)
    short = nobs < _MIN_SEARCH
    out_a = np.where(short, _DEFAULT_ALPHA, out_a)
    out_b = np.where(short, 0.0, out_b)
    out_g = np.where(short, 0.0, out_g)
    out_p = np.where(short, 0.0, out_p)
    out_form = np.where(short, 0, out_form)
    return out_a, out_b, out_g, out_p, sse[r, best], nobs, out_form


@njit(cache=True)
def _median(buf: np.ndarray, k: int) -> float:  # pragma: no cover - compiled
    """Median of ``buf[:k]`` (no NaN), reordering it in place."""
    hi = select(buf, k, k // 2)
    if k % 2:
        return hi
    lo = buf[0]
    for j in range(1, k // 2):
        lo = max(lo, buf[j])
    return 0.5 * (lo + hi)


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
        mad = _median(buf, k) * 1.4826 / np.sqrt(2.0)
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
                out[i, p] = _median(buf[p], cnt[p])
                total += out[i, p]
                used += 1
        if used > 0:
            mean = total / used
            for p in range(m):
                if cnt[p] > 0:
                    out[i, p] -= mean
    return out


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
