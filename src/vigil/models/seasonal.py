"""``SeasonalBaseline``: robust seasonal profile + tracked level, scored online and causally.

Fit (per series, vectorised; see :mod:`vigil.models.seasonality` for detection):

* seasonality ``none``/``daily``/``weekly`` by cross-validated robust spread; the per-phase
  median profile and relative MAD profile ``madrel`` of the chosen period;
* the level smoothing rate, chosen from ``level_rates`` by the smallest mean clipped one-step
  error of a robust EWMA of the deseasonalised values;
* then the online recursion below runs over the fit batch from an empty state (so the state
  stands at ``batch.end``) and the tail calibration ``(nu, c)`` is fitted on its standardised
  one-step residuals (:func:`vigil.models.calibration.fit_tail`); with
  ``calibration_passes = 2`` (default) the recursion runs again from an empty state with that
  calibration (which decides what is anomalous, hence learnt) and is recalibrated.

Online recursion (``score``/``update``; one numba kernel, loops over series inside):

* expected ``e = level + profile[phase]``; running scale ``s`` (EWMA of clipped ``|r| /
  madrel``, a mean absolute deviation); ``z = (y - e) / (s madrel[phase])``; ``p`` is the
  two-sided tail of ``c T_nu`` at ``z``; ``anomaly_score = log p / log alpha`` then guards;
  the band is ``e ± s madrel c q_nu(1 - alpha)``;
* a point with raw score <= 1 teaches the model: ``level += rate psi(r)``, ``profile[phase] +=
  profile_rate psi(y - level - profile[phase])``, ``psi`` clipping at ``huber`` scales;
* a point with raw score > 1 does **not** teach level, profile or scale.  A sustained change is
  accepted in two ways: the CUSUM of :mod:`vigil.models.changepoint` confirms a level shift
  (level := mean of the deseasonalised values since the CUSUM left 0), or after
  ``relearn_after`` consecutive anomalous observed points the level becomes their mean and the
  scale at least ``0.8`` times their standard deviation (a volatility change);
* warming up: until ``min_history`` points were observed the level is a running mean and the
  scale the running mean absolute residual; the point is not scored (``p_value`` and
  ``anomaly_score`` NaN, ``warming_up`` True; :mod:`vigil.models.peer` gives the prior).

A missing point (NaN) advances the phase only.  A constant series has scale 0: any change gets
the floor ``p = 1e-300`` before guards, whose relative-deviation rule keeps tiny changes quiet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
from numba import njit

from vigil.batch import SeriesBatch
from vigil.models.base import Scores
from vigil.models.calibration import (
    DEFAULT_ALPHA,
    anomaly_score,
    band_factor,
    check_alpha,
    fast_log_tail2,
    fit_tail,
    log_p_value,
    mean_abs_t,
    t_lbeta,
    t_quantile,
    tail_tables,
)
from vigil.models.changepoint import Changepoints, CusumParams, cusum_update
from vigil.models.guards import Guards, apply_guards
from vigil.models.persist import StatefulModel
from vigil.models.seasonality import (
    DAY_MS,
    WEEK_MS,
    candidate_periods,
    choose_level_rate,
    detect_profiles,
)

# columns of the dynamic state ``dyn_``
LEVEL, SCALE, COUNT, RUN_N, RUN_SUM, RUN_SQ, CU_POS, CU_NEG, POS_N, POS_SUM, NEG_N, NEG_SUM = range(
    12
)
N_DYN = 12
# what ``_run`` writes: every plane (scores), expected + z (fitting), expected only (an
# ensemble's one-step predictions); the recursion itself is the same in every mode
FULL, FIT, PREDICT = 0, 1, 2
N_PLANES = (6, 2, 1)
FIT_BLOCK_CELLS = 2_000_000  # rows x columns fitted at once


@njit(cache=True, error_model="numpy")
def _run(
    values: np.ndarray,
    origin: int,
    period: np.ndarray,
    prof: np.ndarray,
    madrel: np.ndarray,
    rate: np.ndarray,
    nu: np.ndarray,
    c: np.ndarray,
    qband: np.ndarray,
    tabrow: np.ndarray,
    tabs: np.ndarray,
    zmax: np.ndarray,
    dyn: np.ndarray,
    par: np.ndarray,
    out: np.ndarray,
    warming: np.ndarray,
    cp_flag: np.ndarray,
    mode: int,
) -> None:  # pragma: no cover - compiled
    """Advance ``dyn``/``prof`` over ``values``; ``out[j]`` = expected, lower, upper, log p,
    raw z, CUSUM statistic (each ``[n, T]``) in mode ``FULL``; expected and raw z in ``FIT``;
    expected in ``PREDICT``."""
    n, t_len = values.shape
    full = mode == FULL
    zi = 4 if full else (1 if mode == FIT else -1)  # plane of the raw z
    min_hist, prate, srate, huber, relearn, ck, ch, cclip, log_alpha = (
        par[0], par[1], par[2], par[3], par[4], par[5], par[6], par[7], par[8],
    )  # fmt: skip
    for i in range(n):
        big_p = period[i]
        ph = origin % big_p
        level, s, count = dyn[i, LEVEL], dyn[i, SCALE], dyn[i, COUNT]
        run_n, run_sum, run_sq = dyn[i, RUN_N], dyn[i, RUN_SUM], dyn[i, RUN_SQ]
        cpos, cneg = dyn[i, CU_POS], dyn[i, CU_NEG]
        pos_n, pos_sum, neg_n, neg_sum = (
            dyn[i, POS_N],
            dyn[i, POS_SUM],
            dyn[i, NEG_N],
            dyn[i, NEG_SUM],
        )
        lb = t_lbeta(nu[i])
        tab = tabs[tabrow[i]]
        zm = zmax[tabrow[i]]
        for k in range(t_len):
            y = values[i, k]
            pr = prof[i, ph]
            mr = madrel[i, ph]
            e = level + pr
            out[0, i, k] = e
            cp_flag[i, k] = 0
            if count < min_hist:
                warming[i, k] = True
                if full:
                    for j in range(1, 6):
                        out[j, i, k] = np.nan
                elif zi > 0:
                    out[zi, i, k] = np.nan
                if y == y:
                    d = y - pr
                    if count == 0 or level != level:
                        level = d
                        s = 0.0
                    else:
                        r = d - level
                        s += (abs(r) / mr - s) / count
                        level += max(rate[i], 1.0 / (count + 1.0)) * r
                    count += 1
            else:
                warming[i, k] = False
                sc = s * mr
                if full:
                    half = sc * c[i] * qband[i]
                    out[1, i, k] = e - half
                    out[2, i, k] = e + half
                if y != y:
                    if full:
                        for j in range(3, 6):
                            out[j, i, k] = np.nan
                    elif zi > 0:
                        out[zi, i, k] = np.nan
                else:
                    r = y - e
                    if sc > 0:
                        z = r / sc
                    elif r == 0:
                        z = 0.0
                    else:
                        z = math.copysign(np.inf, r)
                    zt = z / c[i]
                    lp = fast_log_tail2(abs(zt), nu[i], lb, tab, zm)
                    if full:
                        out[3, i, k] = lp
                    if zi > 0:
                        out[zi, i, k] = z
                    d = y - pr
                    if cpos == 0.0:
                        pos_n = 0.0
                        pos_sum = 0.0
                    if cneg == 0.0:
                        neg_n = 0.0
                        neg_sum = 0.0
                    cpos, cneg = cusum_update(zt, cpos, cneg, ck, cclip)
                    if cpos > 0.0:
                        pos_n += 1.0
                        pos_sum += d
                    if cneg > 0.0:
                        neg_n += 1.0
                        neg_sum += d
                    if full:
                        out[5, i, k] = max(cpos, cneg) / ch
                    if lp < log_alpha:  # anomalous: not learnt
                        run_n += 1.0
                        run_sum += d
                        run_sq += d * d
                    else:
                        run_n = run_sum = run_sq = 0.0
                        lim = huber * sc
                        level += rate[i] * min(max(r, -lim), lim)
                        if big_p > 1:
                            r2 = y - level - pr
                            prof[i, ph] = pr + prate * min(max(r2, -lim), lim)
                        s += srate * (min(abs(r) / mr, huber * s) - s)
                    if cpos >= ch or cneg >= ch:  # confirmed level shift
                        cp_flag[i, k] = 1 if cpos >= ch else -1
                        level = pos_sum / pos_n if cpos >= ch else neg_sum / neg_n
                        cpos = cneg = 0.0
                    elif relearn > 0 and run_n >= relearn:  # long anomalous run: accept it
                        m = run_sum / run_n
                        sd = math.sqrt(max(run_sq / run_n - m * m, 0.0))
                        cp_flag[i, k] = 1 if m > level else -1
                        level = m
                        s = max(s, 0.8 * sd)
                        cpos = cneg = run_n = run_sum = run_sq = 0.0
                    count += 1
            ph += 1
            if ph == big_p:
                ph = 0
        dyn[i, LEVEL], dyn[i, SCALE], dyn[i, COUNT] = level, s, count
        dyn[i, RUN_N], dyn[i, RUN_SUM], dyn[i, RUN_SQ] = run_n, run_sum, run_sq
        dyn[i, CU_POS], dyn[i, CU_NEG] = cpos, cneg
        dyn[i, POS_N], dyn[i, POS_SUM], dyn[i, NEG_N], dyn[i, NEG_SUM] = (
            pos_n,
            pos_sum,
            neg_n,
            neg_sum,
        )


def _empty_dyn(n: int) -> np.ndarray:
    dyn = np.zeros((n, N_DYN))
    dyn[:, LEVEL] = np.nan
    return dyn


class SeasonalBaseline(StatefulModel):
    """Robust seasonal baseline (see the module docstring)."""

    name: ClassVar[str] = "seasonal_baseline"
    version: ClassVar[str] = "1"

    def __init__(
        self,
        alpha: float = DEFAULT_ALPHA,
        seasons_ms: Sequence[int] = (DAY_MS, WEEK_MS),
        max_period: int = 2016,
        margin: float = 0.1,
        min_history: int = 24,
        level_rates: Sequence[float] = (0.02, 0.08, 0.25, 0.6, 1.0),
        profile_rate: float = 0.1,
        scale_rate: float = 0.02,
        huber: float = 2.5,
        relearn_after: int = 12,
        tail_min_count: int = 200,
        prior_nu: float = 5.0,
        calibration_passes: int = 2,
        cusum: dict[str, float] | None = None,
        guards: dict[str, Any] | None = None,
    ) -> None:
        self.alpha = check_alpha(alpha)
        self.seasons_ms = tuple(int(s) for s in seasons_ms)
        self.max_period = int(max_period)
        self.margin = float(margin)
        self.min_history = int(min_history)
        self.level_rates = tuple(float(r) for r in level_rates)
        self.profile_rate = float(profile_rate)
        self.scale_rate = float(scale_rate)
        self.huber = float(huber)
        self.relearn_after = int(relearn_after)
        self.tail_min_count = int(tail_min_count)
        self.prior_nu = float(prior_nu)
        self.calibration_passes = int(calibration_passes)
        self.cusum = CusumParams.from_dict(cusum)
        self.guards = Guards.from_dict(guards)
        if self.min_history < 2:
            raise ValueError(f"min_history={min_history} is invalid: expected >= 2 points")
        if not self.level_rates or not all(0 < r <= 1 for r in self.level_rates):
            raise ValueError(
                f"level_rates={list(level_rates)} is invalid: expected rates in (0, 1]"
            )
        for nm in ("profile_rate", "scale_rate"):
            if not 0 <= getattr(self, nm) <= 1:
                raise ValueError(f"{nm}={getattr(self, nm)} is invalid: expected a rate in [0, 1]")
        if not self.huber > 1:
            raise ValueError(f"huber={huber} is invalid: expected a clip > 1 scale")
        if not 0 <= self.margin < 1:
            raise ValueError(f"margin={margin} is invalid: expected a fraction in [0, 1)")
        if self.calibration_passes < 1:
            raise ValueError(
                f"calibration_passes={calibration_passes} is invalid: expected >= 1 pass"
            )
        if self.relearn_after < 0:
            raise ValueError(f"relearn_after={relearn_after} is invalid: expected >= 0 (0: never)")

    def params(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "seasons_ms": list(self.seasons_ms),
            "max_period": self.max_period,
            "margin": self.margin,
            "min_history": self.min_history,
            "level_rates": list(self.level_rates),
            "profile_rate": self.profile_rate,
            "scale_rate": self.scale_rate,
            "huber": self.huber,
            "relearn_after": self.relearn_after,
            "tail_min_count": self.tail_min_count,
            "prior_nu": self.prior_nu,
            "calibration_passes": self.calibration_passes,
            "cusum": self.cusum.to_dict(),
            "guards": self.guards.to_dict(),
        }

    # --- fitting -------------------------------------------------------------------------
    def fit(self, batch: SeriesBatch) -> Self:
        """Fit every row; rows are independent, so large batches are fitted in row blocks of
        about ``FIT_BLOCK_CELLS`` cells (bounded memory, results identical)."""
        rows = max(1, FIT_BLOCK_CELLS // max(batch.n_steps, 1))
        if batch.n_series <= rows:
            return self._fit_block(batch)
        blocks = [
            SeasonalBaseline(**self.params())._fit_block(batch.rows(slice(a, a + rows))).state()
            for a in range(0, batch.n_series, rows)  # a loop over blocks of rows
        ]
        width = max(b["prof_"].shape[1] for b in blocks)
        merged: dict[str, np.ndarray] = {}
        for key in self._STATE:
            if key in ("step_", "end_"):
                merged[key] = blocks[0][key]
            elif key in ("prof_", "madrel_"):
                fill = 0.0 if key == "prof_" else 1.0
                merged[key] = np.concatenate(
                    [np.pad(b[key], ((0, 0), (0, width - b[key].shape[1])), constant_values=fill)
                     for b in blocks]
                )  # fmt: skip
            else:
                merged[key] = np.concatenate([b[key] for b in blocks])
        self.set_state(merged)
        return self

    def _fit_block(self, batch: SeriesBatch) -> Self:
        values = np.ascontiguousarray(batch.values, dtype=np.float64)
        n = batch.n_series
        origin = batch.start // batch.step
        cands = candidate_periods(batch.step, self.seasons_ms, self.max_period)
        width = int(cands.max()) if len(cands) else 1
        period, prof, madrel, spread = detect_profiles(values, origin, cands, self.margin, width)
        used = max(int(period.max()) if n else 1, 1)
        self.series_ids_ = np.array(batch.series_ids, dtype=np.int64)
        self.period_ = period
        self.prof_ = np.ascontiguousarray(prof[:, :used])
        self.madrel_ = np.ascontiguousarray(madrel[:, :used])
        burn = min(self.min_history, max(batch.n_steps // 10, 1))
        self.rate_ = choose_level_rate(
            values, origin, period, self.prof_, spread, np.array(self.level_rates), burn
        )
        self.nu_ = np.full(n, self.prior_nu)
        self.c_ = np.full(n, 1.0 / float(mean_abs_t(np.array([self.prior_nu]))[0]))
        self.guard_hist_ = np.zeros(n, dtype=np.int64)
        self.direction_ = self.guards.direction_codes(batch.labels, n)
        self.step_ = int(batch.step)
        prof0 = self.prof_
        for _ in range(self.calibration_passes):  # pass 1: prior calibration; then the last
            self.prof_, self.dyn_, self.end_ = prof0, _empty_dyn(n), int(batch.start)
            out, _, _ = self._advance(batch, FIT)
            tail = fit_tail(out[1], self.tail_min_count, self.prior_nu)
            self.nu_, self.c_ = tail.nu, tail.c
        # the duration guard's history: flags of the last window - 1 columns, recalibrated
        last = slice(max(batch.n_steps - self.guards.window + 1, 0), batch.n_steps)
        raw = anomaly_score(log_p_value(out[1][:, last], self.nu_, self.c_), self.alpha)
        _, self.guard_hist_ = apply_guards(
            values[:, last], out[0][:, last], raw, self.direction_, self.guards,
            np.zeros(n, dtype=np.int64),
        )  # fmt: skip
        return self

    # --- online --------------------------------------------------------------------------
    def _advance(
        self, batch: SeriesBatch, mode: int = FULL
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._check_batch(batch)
        values = np.ascontiguousarray(batch.values, dtype=np.float64)
        n, t_len = values.shape
        tabrow, tabs, zmax = tail_tables(self.nu_)
        qband = band_factor(self.nu_, np.ones(n), self.alpha)
        par = np.array([
            self.min_history, self.profile_rate, self.scale_rate, self.huber,
            self.relearn_after, self.cusum.k, self.cusum.h, self.cusum.clip,
            math.log(self.alpha),
        ], dtype=np.float64)  # fmt: skip
        out = np.empty((N_PLANES[mode], n, t_len))
        warming = np.empty((n, t_len), dtype=np.bool_)
        cp_flag = np.empty((n, t_len), dtype=np.int8)
        prof = self.prof_.copy()
        dyn = self.dyn_.copy()
        _run(
            values, batch.start // batch.step, self.period_, prof, self.madrel_, self.rate_,
            self.nu_, self.c_, qband, tabrow, tabs, zmax, dyn, par, out, warming, cp_flag, mode,
        )  # fmt: skip
        self.prof_, self.dyn_, self.end_ = prof, dyn, int(batch.end)
        return out, warming, cp_flag

    def score_with_changepoints(self, batch: SeriesBatch) -> tuple[Scores, Changepoints]:
        """``score`` plus the per-point CUSUM statistic and confirmed level shifts."""
        out, warming, cp_flag = self._advance(batch)
        values = batch.values
        raw = anomaly_score(out[3], self.alpha)
        guarded, self.guard_hist_ = apply_guards(
            values, out[0], raw, self.direction_, self.guards, self.guard_hist_, inplace=True
        )
        scores = Scores(
            expected=out[0],
            lower=out[1],
            upper=out[2],
            p_value=np.exp(out[3]),
            anomaly_score=guarded,
            warming_up=warming,
        )
        return scores, Changepoints(out[5], cp_flag)

    def score(self, batch: SeriesBatch) -> Scores:
        return self.score_with_changepoints(batch)[0]

    def one_step(self, batch: SeriesBatch) -> tuple[np.ndarray, np.ndarray]:
        """Advance over ``batch`` like ``score``; only the one-step predictions and the
        warm-up flags ``[n, T]`` (what an ensemble needs; the guards' history is not advanced,
        as no scores are produced)."""
        out, warming, _ = self._advance(batch, PREDICT)
        return out[0], warming

    def update(self, batch: SeriesBatch) -> Self:
        self.score_with_changepoints(batch)
        return self

    def forecast(self, horizon: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
        """Quantiles ``[n, horizon, q]`` of the next ``horizon`` columns after ``end_``:
        ``level + profile[phase]`` with the calibrated t band widened as ``sqrt(1 + h
        rate^2)`` (a local-level model); NaN for series still warming up."""
        if horizon < 1:
            raise ValueError(f"horizon={horizon} is invalid: expected >= 1 step")
        self._check_fitted()
        origin = self.end_ // self.step_
        steps = np.arange(horizon)
        ph = (origin + steps)[None, :] % self.period_[:, None]
        level, s = self.dyn_[:, LEVEL], self.dyn_[:, SCALE]
        expected = level[:, None] + np.take_along_axis(self.prof_, ph, axis=1)
        sc = s[:, None] * np.take_along_axis(self.madrel_, ph, axis=1) * self.c_[:, None]
        sc = sc * np.sqrt(1.0 + steps[None, :] * self.rate_[:, None] ** 2)
        tq = t_quantile(np.asarray(quantiles, dtype=np.float64), self.nu_)
        out = expected[:, :, None] + sc[:, :, None] * tq[:, None, :]
        out[self.dyn_[:, COUNT] < self.min_history] = np.nan
        return out

    _STATE: ClassVar[tuple[str, ...]] = (
        "series_ids_", "period_", "prof_", "madrel_", "rate_", "nu_", "c_", "dyn_",
        "guard_hist_", "direction_", "step_", "end_",
    )  # fmt: skip
