"""The surprise-tail recalibration (calibration.fit_surprise_tail / recalibrate_log_p)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.batch import SeriesBatch
from vigil.models import calibration
from vigil.models.ensemble import Ensemble


def test_calibrated_surprises_give_nearly_the_identity() -> None:
    rng = np.random.default_rng(0)
    lp = np.log(rng.uniform(size=(4, 20_000)))  # p uniform: a calibrated law
    tail = calibration.fit_surprise_tail(lp)
    assert np.allclose(tail.u, -math.log(calibration.SURPRISE_Q0), atol=0.15)
    assert np.allclose(tail.beta, 1.0, atol=0.15)


def test_heavier_tail_than_the_law_shrinks_surprise() -> None:
    rng = np.random.default_rng(1)
    lp = -3.0 * rng.exponential(size=(1, 5_000))  # surprises three times too large
    tail = calibration.fit_surprise_tail(lp)
    assert tail.beta[0] > 2.0
    big = calibration.recalibrate_log_p(-30.0, tail.u[0], tail.beta[0])
    assert -30.0 < big < -8.0


def test_too_few_points_keep_the_identity() -> None:
    tail = calibration.fit_surprise_tail(np.full((2, 50), -1.0))
    assert np.array_equal(tail.beta, np.ones(2))
    for lp in (-0.5, -3.0, -20.0):
        assert calibration.recalibrate_log_p(lp, tail.u[0], tail.beta[0]) == lp


@settings(max_examples=200, deadline=None)
@given(u=st.floats(0.0, 50.0), beta=st.floats(0.25, 1e3),
       a=st.floats(0.0, 600.0), b=st.floats(0.0, 600.0))
def test_recalibration_is_monotone(u: float, beta: float, a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    rec = calibration.recalibrate_log_p
    assert rec(-hi, u, beta) <= rec(-lo, u, beta)


def test_band_edge_scores_one_after_recalibration() -> None:
    tail = calibration.SurpriseTail(np.array([2.0, 8.0]), np.array([1.0, 3.0]))
    alpha = 1e-4
    lt = calibration.recalibrated_alpha_log(tail, alpha)
    q = calibration.band_factor_log(np.array([5.0, 3.0]), lt)
    for i, nu in enumerate((5.0, 3.0)):
        lp = calibration.log_tail2(q[i], nu, calibration.t_lbeta(nu))
        rec = calibration.recalibrate_log_p(lp, tail.u[i], tail.beta[i])
        assert abs(rec / math.log(alpha) - 1.0) < 1e-9


def test_zero_inflated_series_is_not_flagged_for_its_usual_bursts() -> None:
    """A series that is 0 most of the time with bursts of the usual size: the long-run scale
    floor and the recalibration keep its usual bursts quiet (without them 5.7% of the points
    were flagged: the running scale decayed to ~0 between bursts)."""
    rng = np.random.default_rng(3)
    t_len = 6 * 1440
    y = np.where(rng.uniform(size=t_len) < 0.05, rng.exponential(20.0, t_len), 0.0)
    batch = SeriesBatch(np.array([1]), 0, 60_000, y[None], [{"__name__": "x"}])
    fit, rest = batch.columns(0, 4 * 1440), batch.columns(4 * 1440, t_len)
    model = Ensemble().fit(fit)
    assert model.floor2_[0] > 0.01
    flagged = np.nanmean(model.score(rest).anomaly_score > 1)
    assert flagged < 0.005
