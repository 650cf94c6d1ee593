"""Exponential smoothing (ETS with additive errors: A,N,N / A,Ad,N / A,N,A / A,Ad,A).

One error-correction recursion covers the four forms (see :mod:`vigil.models.ets_kernels`);
``phi = 0`` switches the trend off, ``gamma = 0`` the season.  The season is ``season_ms``
(default a day) in steps of the batch, phases absolute (``(start // step + k) % m``).

**Fit** (vectorised over series):

* initial states: level and trend from the first ``init_seasons`` seasons, the seasonal
  states as per-phase medians around a centred moving mean of the whole window (robust);
* a shared grid over every requested form (``alphas`` / ``trend_alphas``, ``beta_ratios``
  times alpha, ``gammas``, ``phis``) is evaluated for all series in one numba pass (``prange``
  over series, the combinations as the SIMD axis), then ``refine`` rounds of per-series
  coordinate steps around each form's best point;
* the loss is the sum of squared one-step errors, clipped at ``clip`` robust sds (of the first
  differences) so isolated outliers barely move the parameters, plus — with ``horizons_ms`` —
  the squared errors of the forecasts those leads ahead (from every ``stride``-th origin,
  weighted by ``stride``): a forecasting criterion;
* the form is chosen per series by AIC, ``nobs log(loss / nobs) + 2 k``;
* the filter then runs over the window (the state stands at ``batch.end``), and the one-step
  residuals calibrate the tail law through :mod:`vigil.models.calibration`.

**Score** is causal and online: each point is predicted from the state before it, scored,
then learnt unless anomalous (``|e| > reject * sigma``), in which case the prediction stands
in for it; a run of more than ``max_run`` anomalous points is a level shift and is learnt.
A missing value advances the state by its prediction; the first point after ``g`` missing
ones is a ``(g + 1)``-step forecast, so its scale (and with it the rejection and clipping
thresholds, band and p-value) is the one-step scale times the forecasts' sd factor
``sqrt(1 + sum_{i<=g} c_i^2)`` (``c_i`` below).  Scores go through the guards.

**Forecast**: quantiles ``mean + sd_h c t_nu(q)`` with the analytic variance growth
``sigma^2 (1 + sum_{i<h} c_i^2)``, ``c_i = alpha + beta (phi + ... + phi^i) + gamma [m | i]``;
``simulate`` draws paths from the same model.

With ``log=True`` series whose fit window is strictly positive are modelled on the log scale
(multiplicative error, trend and season); values and quantiles are transformed back (exact
for quantiles).  A later value <= 0 on such a series is placed far below normal.

A series with no observed value yet has a NaN state and forecast; it starts from its first
value online and is ``warming_up`` for ``warmup`` points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from vigil.batch import SeriesBatch
from vigil.models import calibration, ets_init, ets_kernels
from vigil.models.base import Model, Scores
from vigil.models.ets_kernels import NO_OUTPUT, PREDICT, RESIDUALS, SCORES
from vigil.models.ets_scoring import finish_scores, quantile_factors, tail_args
from vigil.models.guards import Guards

FORMS = ("ANN", "AAdN", "ANA", "AAdA")


class ETS(Model):
    name: ClassVar[str] = "ets"
    version: ClassVar[str] = "2"  # 2: gap_ (steps since the last observed point)

    def __init__(
        self,
        season_ms: int | None = 86_400_000,
        forms: Sequence[str] = FORMS,
        max_season: int = 1440,
        init_seasons: int = 3,
        clip: float = 4.0,
        reject: float = 6.0,
        max_run: int = 30,
        sigma_rate: float = 0.02,
        warmup: int = 10,
        log: bool = False,
        alarm_rate: float = calibration.DEFAULT_ALPHA,
        horizons_ms: Sequence[int] = (),
        refine: int = 1,
        guards: dict[str, Any] | None = None,
        alphas: Sequence[float] = (0.005, 0.02, 0.1, 0.3, 0.7),
        trend_alphas: Sequence[float] = (0.005, 0.02, 0.1),
        gammas: Sequence[float] = (0.005, 0.03, 0.1, 0.3),
        beta_ratios: Sequence[float] = (0.1,),
        phis: Sequence[float] = (0.98,),
        phi_max: float = 0.98,
        stride: int = 4,
    ) -> None:
        bad = [f for f in forms if f not in FORMS]
        if bad or not forms:
            raise ValueError(f"ETS forms {list(forms)!r} are invalid: expected a subset of {FORMS}")
        if season_ms is not None and season_ms <= 0:
            raise ValueError(f"season_ms={season_ms} is invalid: expected a positive duration")
        self.season_ms = season_ms
        self.forms = tuple(forms)
        self.max_season = int(max_season)
        self.init_seasons = int(init_seasons)
        self.clip = float(clip)
        self.reject = float(reject)
        self.max_run = int(max_run)
        self.sigma_rate = float(sigma_rate)
        self.warmup = int(warmup)
        self.log = bool(log)
        self.alarm_rate = calibration.check_alpha(alarm_rate)
        self.horizons_ms = tuple(int(h) for h in horizons_ms)
        self.refine = int(refine)
        self.guards = Guards.from_dict(guards)
        self.grid = ets_init.Grid(
            tuple(float(a) for a in alphas),
            tuple(float(a) for a in trend_alphas),
            tuple(float(g) for g in gammas),
            tuple(float(b) for b in beta_ratios),
            tuple(float(p) for p in phis),
            float(phi_max),
            int(stride),
        )
        self._check_grid()
        if any(h <= 0 for h in self.horizons_ms):
            raise ValueError(
                f"horizons_ms={list(self.horizons_ms)} is invalid: expected positive durations (ms)"
            )

    # ------------------------------------------------------------------ interface

    def params(self) -> dict[str, Any]:
        return {
            "season_ms": self.season_ms,
            "forms": list(self.forms),
            "max_season": self.max_season,
            "init_seasons": self.init_seasons,
            "clip": self.clip,
            "reject": self.reject,
            "max_run": self.max_run,
            "sigma_rate": self.sigma_rate,
            "warmup": self.warmup,
            "log": self.log,
            "alarm_rate": self.alarm_rate,
            "horizons_ms": list(self.horizons_ms),
            "refine": self.refine,
            "guards": self.guards.to_dict(),
            "alphas": list(self.grid.alphas),
            "trend_alphas": list(self.grid.trend_alphas),
            "gammas": list(self.grid.gammas),
            "beta_ratios": list(self.grid.beta_ratios),
            "phis": list(self.grid.phis),
            "phi_max": self.grid.phi_max,
            "stride": self.grid.stride,
        }

    def season_length(self, step: int) -> int:
        """Season in steps for a grid step (1 = no season)."""
        if self.season_ms is None or self.season_ms % step:
            return 1
        m = self.season_ms // step
        return m if 2 <= m <= self.max_season else 1

    def _check_grid(self) -> None:
        g = self.grid
        checks = [
            ("alphas", g.alphas, 0.0, 1.0),
            ("trend_alphas", g.trend_alphas, 0.0, 1.0),
            ("gammas", g.gammas, 0.0, 1.0),
            ("beta_ratios", g.beta_ratios, 0.0, 1.0),
            ("phis", g.phis, 0.0, 1.0),
        ]
        for name, values, lo, hi in checks:
            if not values or any(not lo < v <= hi for v in values):
                raise ValueError(
                    f"ETS {name}={list(values)} is invalid: expected a non-empty list of values "
                    f"in ({lo}, {hi}]"
                )
        if not 0.0 < g.phi_max <= 1.0:
            raise ValueError(f"ETS phi_max={g.phi_max} is invalid: expected a value in (0, 1]")
        if g.stride < 1 or self.refine < 0:
            raise ValueError(
                f"ETS stride={g.stride}, refine={self.refine} are invalid: expected stride >= 1 "
                "and refine >= 0"
            )

    def loss_horizons(self, step: int, n_steps: int) -> tuple[int, ...]:
        """Extra lead times (steps) of the fitting loss: ``horizons_ms`` on this grid, those
        between 2 steps and half the window."""
        steps = sorted({h // step for h in self.horizons_ms})
        return tuple(h for h in steps if 2 <= h <= n_steps // 2)

    def fit(self, batch: SeriesBatch) -> Self:
        n = batch.n_series
        m = self.season_length(batch.step)
        phase0 = (batch.start // batch.step) % m
        y_raw = np.ascontiguousarray(batch.values, dtype=np.float64)
        self.log_, self.log_floor_ = self._log_rows(y_raw)
        y = ets_init.log_rows(y_raw, self.log_) if self.log_.any() else y_raw
        init = ets_init.initial_states(y, m, phase0, self.init_seasons)
        alpha, beta, gamma, phi, sse, nobs, form = ets_init.search(
            y, m, phase0, init, self.forms, self.clip, self.grid,
            self.loss_horizons(batch.step, batch.n_steps), self.refine,
        )  # fmt: skip
        self.alpha_, self.beta_, self.gamma_, self.phi_ = alpha, beta, gamma, phi
        self.form_ = form
        self.level_ = init.level.copy()
        self.trend_ = np.where(phi > 0, init.trend, 0.0)
        self.season_ = np.ascontiguousarray(np.where((gamma > 0)[:, None], init.season, 0.0))
        mag = np.nan_to_num(np.abs(init.level), nan=0.0)
        self.floor2_ = (1e-6 * np.maximum(mag, 1e-3)) ** 2
        self.sigma2_ = np.where(nobs > 0, sse / np.maximum(nobs, 1), 0.0)
        self.run_ = np.zeros(n, dtype=np.int64)
        self.run_sum_ = np.zeros(n)
        self.gap_ = np.zeros(n, dtype=np.int64)
        # series with a searched fit skip the warm-up (their sigma2 comes from the search)
        self.nobs_ = np.where(nobs > 2 * self.warmup, self.warmup, 0).astype(np.int64)
        self.direction_ = self.guards.direction_codes(batch.labels, n)
        self.guard_hist_ = np.zeros(n, dtype=np.int64)
        self.m_ = m
        self.step_ = int(batch.step)
        self.end_ = int(batch.start)
        out, _ = self._filter(y_raw, init.first, RESIDUALS)
        tail = calibration.fit_tail(out[0])
        self.nu_, self.c_ = tail.nu, tail.c
        self.end_ = int(batch.end)
        return self

    def one_step(self, batch: SeriesBatch) -> tuple[np.ndarray, np.ndarray]:
        """Advance over ``batch``; the one-step predictions (data scale) and the warm-up flags
        [n, T] (cheaper than ``score`` when only predictions are needed)."""
        self._check(batch)
        out, warming = self._filter(batch.values, self._no_first(batch), PREDICT)
        self.end_ = int(batch.end)
        return out[0], warming

    def score(self, batch: SeriesBatch) -> Scores:
        self._check(batch)
        args = tail_args((self.nu_, self.c_), self.alarm_rate)
        out, warming = self._filter(batch.values, self._no_first(batch), SCORES, args)
        self.end_ = int(batch.end)
        scores, self.guard_hist_ = finish_scores(
            out, warming, batch.values, self.guards, self.direction_, self.guard_hist_
        )
        return scores

    def update(self, batch: SeriesBatch) -> Self:
        self._check(batch)
        self._filter(batch.values, self._no_first(batch), NO_OUTPUT)
        self.end_ = int(batch.end)
        return self

    @staticmethod
    def _no_first(batch: SeriesBatch) -> np.ndarray:
        return np.zeros(batch.n_series, dtype=np.int64)

    def forecast(self, horizon: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
        mean, sd = self.forecast_moments(horizon)
        factors = quantile_factors(np.asarray(quantiles, dtype=np.float64), (self.nu_, self.c_))
        out = mean[:, :, None] + sd[:, :, None] * factors[:, None, :]
        if self.log_.any():
            out[self.log_] = np.exp(np.minimum(out[self.log_], 700.0))
        return out

    def forecast_moments(self, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd [n, horizon] on the model scale (log scale for log series)."""
        if horizon < 1:
            raise ValueError(f"horizon={horizon} is invalid: expected at least 1 step")
        h = np.arange(1, horizon + 1)
        phi = self.phi_[:, None]
        # phi_h = phi + ... + phi^h, cumulated without a Python loop over steps
        powers = np.power(phi, h[None, :])
        phi_h = np.cumsum(powers, axis=1)
        phase = (self.end_ // self.step_ + h - 1) % self.m_
        mean = self.level_[:, None] + phi_h * self.trend_[:, None] + self.season_[:, phase]
        c = self.alpha_[:, None] + self.beta_[:, None] * phi_h
        c = c + self.gamma_[:, None] * (h % self.m_ == 0)[None, :]
        growth = np.concatenate([np.ones((len(c), 1)), 1.0 + np.cumsum(c[:, :-1] ** 2, axis=1)], 1)
        sd = np.sqrt(np.maximum(self.sigma2_, self.floor2_)[:, None] * growth)
        return mean, sd

    def simulate(self, horizon: int, n_paths: int, seed: int = 0) -> np.ndarray:
        """Sample paths [n, n_paths, horizon] from the fitted state, errors drawn from the
        calibrated law ``sigma c T_nu`` (the forecast's one-step law).

        Vectorised over series and paths (a loop over the horizon only); memory is
        ``n * n_paths * m`` floats for the seasonal states.
        """
        if horizon < 1 or n_paths < 1:
            raise ValueError(
                f"horizon={horizon}, n_paths={n_paths} are invalid: expected at least 1 each"
            )
        rng = np.random.default_rng(seed)
        n = len(self.level_)
        sig = (np.sqrt(np.maximum(self.sigma2_, self.floor2_)) * self.c_)[:, None]
        nu = np.broadcast_to(self.nu_[:, None], (n, n_paths))
        lv = np.repeat(self.level_[:, None], n_paths, axis=1)
        tr = np.repeat(self.trend_[:, None], n_paths, axis=1)
        season = np.repeat(self.season_[:, None, :], n_paths, axis=1)
        a, b, g, ph = (x[:, None] for x in (self.alpha_, self.beta_, self.gamma_, self.phi_))
        out = np.empty((n, n_paths, horizon))
        first = self.end_ // self.step_
        for h in range(horizon):
            p = (first + h) % self.m_
            e = rng.standard_t(nu) * sig
            d = ph * tr
            out[:, :, h] = lv + d + season[:, :, p] + e
            lv = lv + d + a * e
            tr = d + b * e
            season[:, :, p] += g * e
        if self.log_.any():
            out[self.log_] = np.exp(np.minimum(out[self.log_], 700.0))
        return out

    _STATE: ClassVar[tuple[str, ...]] = (
        "alpha_", "beta_", "gamma_", "phi_", "form_", "level_", "trend_", "season_",
        "sigma2_", "floor2_", "run_", "run_sum_", "gap_", "nobs_", "log_", "log_floor_", "nu_",
        "c_", "direction_", "guard_hist_", "m_", "step_", "end_",
    )  # fmt: skip

    def state(self) -> dict[str, np.ndarray]:
        if not hasattr(self, "level_"):
            raise RuntimeError("ETS is not fitted: call fit(batch) first")
        return {name: np.array(getattr(self, name)) for name in self._STATE}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        missing = [k for k in self._STATE if k not in state]
        if missing:
            raise ValueError(f"ETS state lacks {missing}: expected {list(self._STATE)}")
        for name in self._STATE:
            arr = np.array(state[name])
            setattr(self, name, int(arr) if arr.ndim == 0 else arr)

    # ------------------------------------------------------------------ internals

    def _check(self, batch: SeriesBatch) -> None:
        if not hasattr(self, "level_"):
            raise RuntimeError("ETS is not fitted: call fit(batch) first")
        self.check_continues(batch, self.end_, self.step_)
        if batch.n_series != len(self.level_):
            raise ValueError(
                f"ETS: batch has {batch.n_series} series but the model was fitted on "
                f"{len(self.level_)}; score the same rows in the same order"
            )

    def _log_rows(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows to model on the log scale (strictly positive fit windows when ``log``) and
        their floor: a later value <= 0 is taken as 1e-9 x the window's maximum, far below
        normal, so it scores as the drop it is."""
        n = len(values)
        if not self.log:
            return np.zeros(n, dtype=bool), np.zeros(n)
        lo, hi = ets_init.row_range(values)
        positive = lo > 0  # NaN (no data) compares False
        return positive, np.where(positive, 1e-9 * hi, 0.0)

    def _filter(
        self, y: np.ndarray, first: np.ndarray, mode: int, tail: tuple[Any, ...] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if tail is None:
            n = len(self.level_)
            tail = (np.ones(n), np.ones(n), np.ones(n), np.zeros(n, dtype=np.int64),
                    np.zeros((1, 2)), np.ones(1), -1.0)  # fmt: skip
        return ets_kernels.filter_states(
            np.ascontiguousarray(y, dtype=np.float64),
            first.astype(np.int64),
            int((self.end_ // self.step_) % self.m_),
            self.alpha_, self.beta_, self.gamma_, self.phi_,
            self.level_, self.trend_, self.season_, self.sigma2_,
            self.run_, self.run_sum_, self.gap_, self.floor2_, self.nobs_,
            self.clip, self.reject, self.max_run, self.sigma_rate, self.warmup,
            self.log_, self.log_floor_, mode, *tail,
        )  # fmt: skip
