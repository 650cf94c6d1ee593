"""Per-series weighted ensemble of models, weighted by out-of-sample error: the engine's default.

``fit`` holds out the last ``holdout_ms`` of the window (at most a quarter of it): every
member is fitted on the head, forecasts the holdout from the head's end (multi-step errors)
and then runs over it causally (one-step errors), which also advances it to the window's end,
so each member is fitted once.  Per series and member, the mean absolute error over the
holdout's observed points gives the weight ``err^-power`` (normalised): the **forecast
weights** from the multi-step errors combine forecast quantiles (quantile averaging), the
**score weights** from the one-step errors combine one-step predictions.  ``power = 0`` is the
plain mean; a large power approaches per-series selection of the best member.  A window too
short for a holdout of ``min_holdout`` steps fits every member on all of it, equal weights
(``holdout_ == 0`` tells).

Scores: the combined prediction's residuals get the ensemble's own running scale (EWMA of
squared residuals; residuals beyond ``reject`` scales are not learnt), calibrated per series
on the holdout's standardised residuals with :mod:`vigil.models.calibration` and guarded by
:mod:`vigil.models.guards`, like every model of the engine.

Members are ``(name, params)`` pairs (JSON-serialisable), ``name`` one of :data:`MEMBER_NAMES`.
The default (:data:`DEFAULT_MEMBERS`) is two forecasting-tuned ETS (log scale where the window
is positive, loss over 12/24/48 h leads; one with a daily, one with a weekly season) and the
seasonal baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from vigil.batch import SeriesBatch
from vigil.models import calibration, ets_init
from vigil.models.base import Model, Scores
from vigil.models.ets import ETS
from vigil.models.ets_scoring import (
    VARIANCE_GAMMAS,
    combine,
    combine_members,
    finish_scores,
    fit_window_test,
    level_factors,
    predictive_nll,
    prior_tail,
    recalibrated_band,
    scale_filter,
    scale_score,
    tail_args,
    weighted_majority,
    window_rates,
)
from vigil.models.guards import Guards

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
_LEADS = [12 * HOUR_MS, 24 * HOUR_MS, 48 * HOUR_MS]
DEFAULT_MEMBERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("ets", {"log": True, "horizons_ms": _LEADS, "refine": 0}),
    ("ets", {"log": True, "horizons_ms": _LEADS, "refine": 0, "season_ms": 7 * DAY_MS,
             "init_seasons": 2}),
    ("seasonal", {}),
)  # fmt: skip
MEMBER_NAMES = ("ets", "seasonal")


def _member_class(name: str) -> type[Model]:
    if name == "ets":
        return ETS
    if name == "seasonal":
        from vigil.models.seasonal import SeasonalBaseline

        return SeasonalBaseline
    raise ValueError(f"ensemble member {name!r} is unknown: expected one of {list(MEMBER_NAMES)}")


def normalised_weights(err: np.ndarray, power: float) -> np.ndarray:
    """Weights [n, K] proportional to ``err^-power`` over the members with a finite error
    (errors floored at 1e-6 of the row's largest); rows where no member has one get equal
    weights."""
    err = np.asarray(err, dtype=np.float64)
    finite = np.isfinite(err)
    big = np.max(np.where(finite, np.abs(err), 0.0), axis=1, keepdims=True)
    big = np.where(big > 0, big, 1.0)
    rel = np.where(finite, np.maximum(np.abs(err) / big, 1e-6), 1.0)
    w = np.where(finite, rel ** (-power), 0.0)
    total = w.sum(axis=1, keepdims=True)
    return np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / err.shape[1])


def _mean_abs_error(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean |pred - y| over the observed points -> [n, K]; NaN where the row has no observed
    point or the member has no prediction for one of them (it then gets no weight)."""
    observed = ~np.isnan(y)[None]
    missing = (np.isnan(pred) & observed).any(axis=2)
    err = np.where(observed & ~np.isnan(pred), np.abs(pred - y[None]), 0.0)
    cnt = observed.sum(axis=2)
    mae = np.where((cnt > 0) & ~missing, err.sum(axis=2) / np.maximum(cnt, 1), np.nan)
    return np.ascontiguousarray(mae.T)


SCALE_FLOOR = 0.1  # the running scale never falls below this fraction of the long-run one


def _long_run_floor2(resid: np.ndarray) -> np.ndarray:
    """Per row, ``(SCALE_FLOOR * rms)^2`` with ``rms`` the root mean square of the held-out
    one-step residuals (0 where none).

    The running scale is an EWMA: on a series that sits still for hours (zero most of the
    time, a burst now and then; a flat line with rare steps) it decays towards 0 and the next
    ordinary burst looks like a 1e6-sigma event.  A floor at a tenth of the series' own
    long-run residual scale leaves every series whose volatility varies less than tenfold
    untouched and keeps the others' usual bursts on a finite, comparable scale (which the
    surprise-tail recalibration then calibrates)."""
    observed = np.isfinite(resid)
    cnt = observed.sum(axis=1)
    ms = np.where(observed, resid * resid, 0.0).sum(axis=1) / np.maximum(cnt, 1)
    return np.where(cnt > 0, (SCALE_FLOOR * SCALE_FLOOR) * ms, 0.0)


def _quantum_floor2(values: np.ndarray) -> np.ndarray:
    """Per row, ``q^2 / 12`` with ``q`` the smallest positive gap between the distinct values of
    ``values`` [n, T] (0 where fewer than two distinct values).

    A series on a lattice (counts, an integer gauge, a ratio with a fixed denominator) cannot
    be predicted more finely than its step ``q``: rounding alone adds noise of standard deviation
    ``q / sqrt(12)``, so no residual scale below that is evidence of anything, and a count of 1
    after hours of zeros is not a 1e6-sigma event.  For continuous data the smallest gap among
    hundreds of values is negligible against the noise and the floor changes nothing."""
    q = calibration.value_quantum(values)
    return q * q / 12.0


class Ensemble(Model):
    name: ClassVar[str] = "ensemble"
    version: ClassVar[str] = "2"  # 2: the window test's and the variance function's state

    def __init__(
        self,
        members: Sequence[Sequence[Any]] | None = None,
        holdout_ms: int = 2 * DAY_MS,
        min_holdout: int = 8,
        power: float = 4.0,
        sigma_rate: float = 0.02,
        reject: float = 6.0,
        warmup: int = 10,
        alarm_rate: float = calibration.DEFAULT_ALPHA,
        guards: dict[str, Any] | None = None,
    ) -> None:
        specs = DEFAULT_MEMBERS if members is None else members
        if not specs:
            raise ValueError("ensemble members are empty: give at least one (name, params) pair")
        self.members = [(str(spec[0]), dict(spec[1])) for spec in specs]
        for member_name, _ in self.members:
            if member_name not in MEMBER_NAMES:
                raise ValueError(
                    f"ensemble member {member_name!r} is unknown: expected one of "
                    f"{list(MEMBER_NAMES)}"
                )
        if holdout_ms <= 0 or min_holdout < 1:
            raise ValueError(
                f"holdout_ms={holdout_ms}, min_holdout={min_holdout} are invalid: expected a "
                "positive duration and at least 1 step"
            )
        if power < 0:
            raise ValueError(f"power={power} is invalid: expected >= 0 (0 = plain mean)")
        self.holdout_ms = int(holdout_ms)
        self.min_holdout = int(min_holdout)
        self.power = float(power)
        self.sigma_rate = float(sigma_rate)
        self.reject = float(reject)
        self.warmup = int(warmup)
        self.alarm_rate = calibration.check_alpha(alarm_rate)
        self.guards = Guards.from_dict(guards)

    def params(self) -> dict[str, Any]:
        return {
            "members": [[n, p] for n, p in self.members],
            "holdout_ms": self.holdout_ms,
            "min_holdout": self.min_holdout,
            "power": self.power,
            "sigma_rate": self.sigma_rate,
            "reject": self.reject,
            "warmup": self.warmup,
            "alarm_rate": self.alarm_rate,
            "guards": self.guards.to_dict(),
        }

    def _new_members(self) -> list[Model]:
        return [_member_class(n)(**p) for n, p in self.members]

    def holdout_steps(self, batch: SeriesBatch) -> int:
        """Holdout length in steps for this batch (0: too short for one)."""
        h = min(self.holdout_ms // batch.step, batch.n_steps // 4)
        return int(h) if h >= self.min_holdout else 0

    # ------------------------------------------------------------------ fit

    def fit(self, batch: SeriesBatch) -> Self:
        n, k = batch.n_series, len(self.members)
        h = self.holdout_steps(batch)
        self.models_ = self._new_members()
        self.step_ = int(batch.step)
        self.sigma2_ = np.zeros(n)
        self.nobs_ = np.zeros(n, dtype=np.int64)
        self.floor2_ = np.zeros(n)
        self.qfloor2_ = self._floor2(batch.values)
        self.gamma_ = np.zeros(n)
        self.gref_ = np.zeros(n)
        self.direction_ = self.guards.direction_codes(batch.labels, n)
        self.guard_hist_ = np.zeros(n, dtype=np.int64)
        self.holdout_ = h
        if h == 0:
            for model in self.models_:
                model.fit(batch)
            self.w_forecast_ = np.full((n, k), 1.0 / k)
            self.w_score_ = np.full((n, k), 1.0 / k)
            tail = prior_tail(n)
            self.nu_, self.c_ = tail.nu, tail.c
            self._set_surprise(calibration.identity_surprise(n))
            self._fit_windows(np.full((n, 0), np.nan))
            self.end_ = int(batch.end)
            return self
        head = batch.columns(0, batch.n_steps - h)
        rest = batch.columns(batch.n_steps - h, batch.n_steps)
        y = rest.values
        fc = np.empty((k, n, h))
        expected = np.empty((k, n, h))
        for j, model in enumerate(self.models_):
            model.fit(head)
            fc[j] = model.forecast(h, (0.5,))[:, :, 0]
            expected[j] = self._one_step(model, rest)[0]
        self.w_forecast_ = normalised_weights(_mean_abs_error(fc, y), self.power)
        self.w_score_ = normalised_weights(_mean_abs_error(expected, y), self.power)
        # the ensemble's running scale and tail calibration, from the holdout's residuals
        e_hold = np.ascontiguousarray(combine(expected, self.w_score_))
        resid = np.ascontiguousarray(y - e_hold)
        self.qfloor2_ = np.maximum(self.qfloor2_, _quantum_floor2(y))
        sd = self._fit_scale(resid, e_hold, np.asarray(y, dtype=np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(sd > 0, resid / sd, np.nan)
        z[:, : min(self.warmup, h // 2)] = np.nan
        tail = calibration.fit_tail(z)
        self.nu_, self.c_ = tail.nu, tail.c
        # the surprise-tail recalibration, from the same held-out residuals under that law
        self._set_surprise(calibration.fit_surprise_tail(
            calibration.log_p_value(z, self.nu_, self.c_)
        ))
        self._fit_windows(z)
        self.end_ = int(batch.end)
        return self

    def _fit_windows(self, z: np.ndarray) -> None:
        """The multi-scale window test from held-out standardised residuals ``z`` [n, h] (see
        :mod:`vigil.models.ets_scoring`)."""
        test = fit_window_test(z)
        self.wclip_, self.ew_, self.wnu_, self.wc_ = test.clip, test.ew, test.nu, test.c

    def _set_surprise(self, surprise: calibration.SurpriseTail) -> None:
        self.recal_u_, self.recal_beta_ = surprise.u, surprise.beta
        self.qband_ = recalibrated_band(self.nu_, surprise, self.alarm_rate)

    @staticmethod
    def _one_step(model: Model, batch: SeriesBatch) -> tuple[np.ndarray, np.ndarray]:
        """A member's one-step predictions and warm-up flags over ``batch`` (advancing it):
        its ``one_step`` when it has one (no scores, p-values or guards computed)."""
        one_step = getattr(model, "one_step", None)
        if one_step is not None:
            out: tuple[np.ndarray, np.ndarray] = one_step(batch)
            return out
        sc = model.score(batch)
        return sc.expected, sc.warming_up

    @staticmethod
    def _floor2(values: np.ndarray) -> np.ndarray:
        mag = np.nan_to_num(ets_init.nanmedian(np.abs(values), 1), nan=0.0)
        return (1e-6 * np.maximum(mag, 1e-3)) ** 2

    def _fit_scale(self, resid: np.ndarray, expected: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Choose each row's variance function (``gamma_``, see
        :mod:`vigil.models.ets_scoring`) by the held-out residuals' predictive likelihood, and
        set the running scale (``sigma2_``, ``nobs_``) and its long-run floor (``floor2_``) to
        the chosen candidate's after the held-out window -> its total scales [n, h]."""
        n = resid.shape[0]
        absy = np.abs(y)
        seen = np.isfinite(absy).sum(axis=1)
        self.gref_ = np.where(seen > 0, np.where(np.isfinite(absy), absy, 0.0).sum(axis=1)
                              / np.maximum(seen, 1), 0.0)
        best_nll = np.full(n, np.inf)
        best_sd = np.full(resid.shape, np.nan)
        for gamma in VARIANCE_GAMMAS:  # a loop over the few candidates, each vectorised
            gam = np.full(n, gamma)
            u = resid / level_factors(expected, gam, self.gref_)
            floor2 = _long_run_floor2(u)
            sigma2, nobs = np.zeros(n), np.zeros(n, dtype=np.int64)
            sd = scale_filter(resid, expected, sigma2, floor2, nobs, self.sigma_rate,
                              self.reject, self.warmup, gam, self.gref_, self.qfloor2_)
            nll = predictive_nll(resid, sd, min(self.warmup, resid.shape[1] // 2))
            better = np.where(np.isfinite(nll), nll, np.inf) < best_nll
            if gamma == VARIANCE_GAMMAS[0]:
                better[:] = True  # the first candidate is the default of rows with no data
            best_nll = np.where(better, nll, best_nll)
            best_sd[better] = sd[better]
            self.gamma_[better] = gamma
            self.floor2_[better] = floor2[better]
            self.sigma2_[better] = sigma2[better]
            self.nobs_[better] = nobs[better]
        return best_sd

    # ------------------------------------------------------------------ online

    def _check(self, batch: SeriesBatch) -> None:
        if not hasattr(self, "models_"):
            raise RuntimeError("Ensemble is not fitted: call fit(batch) first")
        self.check_continues(batch, self.end_, self.step_)
        if batch.n_series != len(self.sigma2_):
            raise ValueError(
                f"Ensemble: batch has {batch.n_series} series but the model was fitted on "
                f"{len(self.sigma2_)}; score the same rows in the same order"
            )

    def score(self, batch: SeriesBatch) -> Scores:
        self._check(batch)
        parts = [self._one_step(model, batch) for model in self.models_]
        expected = combine_members(
            tuple(np.ascontiguousarray(p[0], dtype=np.float64) for p in parts), self.w_score_
        )
        nu, c, _, tabrow, tabs, zmax, log_alpha = tail_args((self.nu_, self.c_), self.alarm_rate)

        def f64(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a, dtype=np.float64)

        out, own_warm = scale_score(
            expected, f64(batch.values), self.sigma2_, self.floor2_, self.nobs_,
            self.sigma_rate, self.reject, self.warmup, nu, c, f64(self.qband_), tabrow, tabs,
            zmax, log_alpha, f64(self.recal_u_), f64(self.recal_beta_), self.ew_,
            f64(self.wclip_), window_rates(), f64(self.wnu_), f64(self.wc_), f64(self.gamma_),
            f64(self.gref_), f64(self.qfloor2_),
        )  # fmt: skip
        # warming up: the members holding most of the weight are, or the own scale is
        warming = weighted_majority(
            tuple(np.ascontiguousarray(p[1], dtype=np.bool_) for p in parts), self.w_score_,
            own_warm,
        )  # fmt: skip
        self.end_ = int(batch.end)
        scores, self.guard_hist_ = finish_scores(
            out, warming, batch.values, self.guards, self.direction_, self.guard_hist_
        )
        return scores

    def forecast(self, horizon: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
        if not hasattr(self, "models_"):
            raise RuntimeError("Ensemble is not fitted: call fit(batch) first")
        paths = [model.forecast(horizon, quantiles) for model in self.models_]
        n, _, q = paths[0].shape
        flat = np.stack([p.reshape(n, horizon * q) for p in paths])
        out = combine(flat, self.w_forecast_).reshape(n, horizon, q)
        return np.sort(out, axis=2)

    # ------------------------------------------------------------------ state

    _STATE: ClassVar[tuple[str, ...]] = (
        "w_forecast_", "w_score_", "sigma2_", "floor2_", "nobs_", "nu_", "c_", "direction_",
        "guard_hist_", "holdout_", "step_", "end_", "recal_u_", "recal_beta_", "qband_",
        "ew_", "wclip_", "wnu_", "wc_", "gamma_", "gref_", "qfloor2_",
    )  # fmt: skip

    def state(self) -> dict[str, np.ndarray]:
        if not hasattr(self, "models_"):
            raise RuntimeError("Ensemble is not fitted: call fit(batch) first")
        out = {name: np.asarray(getattr(self, name)) for name in self._STATE}
        for j, model in enumerate(self.models_):
            for key, value in model.state().items():
                out[f"m{j}.{key}"] = value
        return out

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        missing = [k for k in self._STATE if k not in state]
        if missing:
            raise ValueError(f"ensemble state lacks {missing}: expected {list(self._STATE)}")
        models = self._new_members()
        sub: list[dict[str, np.ndarray]] = [{} for _ in models]
        for key, value in state.items():
            if "." not in key:
                continue
            idx, rest = key.split(".", 1)
            if not (idx.startswith("m") and idx[1:].isdigit() and int(idx[1:]) < len(sub)):
                raise ValueError(
                    f"state key {key!r} names no member of this ensemble ({len(sub)} members): "
                    "load it with the parameters it was saved with"
                )
            sub[int(idx[1:])][rest] = value
        for model, member_state in zip(models, sub, strict=True):
            model.set_state(member_state)
        for key in self._STATE:
            arr = np.array(state[key])
            setattr(self, key, int(arr) if arr.ndim == 0 else arr)
        self.models_ = models
