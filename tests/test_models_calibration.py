"""Calibration: t tails, scores, tail fitting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.models import calibration as cal


def test_log_tail_matches_student_t() -> None:
    stats = pytest.importorskip("scipy.stats")
    z = np.array([0.0, 1e-6, 0.3, 1.0, 2.0, 3.5, 6.0, 15.0, 80.0, 1e3])
    for nu in (2.0, 3.0, 5.0, 10.0, 60.0):
        ref = np.log(2 * stats.t.sf(z, nu))
        exact = np.array([cal.log_tail2(v, nu, cal.t_lbeta(nu)) for v in z])
        np.testing.assert_allclose(exact, ref, rtol=1e-10, atol=1e-12)
        fast = cal.log_p_value(z[None, :], np.array([nu]), np.array([1.0]))[0]
        assert np.all(np.abs(fast - ref) <= 1e-5 * np.maximum(1.0, np.abs(ref)))
        q = cal.abs_t_quantile(0.999, np.array([nu]))[0]
        assert q == pytest.approx(stats.t.ppf(0.9995, nu), rel=1e-10)


def test_tails_special_values() -> None:
    lb = cal.t_lbeta(5.0)
    assert cal.log_tail2(0.0, 5.0, lb) == 0.0
    assert cal.log_tail2(np.inf, 5.0, lb) == cal.LOG_P_FLOOR
    assert math.isnan(cal.log_tail2(np.nan, 5.0, lb))
    assert cal.log_tail2(1e200, 5.0, lb) == cal.LOG_P_FLOOR  # floored, finite
    lp = cal.log_p_value(np.array([[np.nan, 0.0, np.inf]]), np.array([5.0]), np.array([2.0]))
    assert math.isnan(lp[0, 0]) and lp[0, 1] == 0.0 and lp[0, 2] == cal.LOG_P_FLOOR


def test_score_is_one_at_the_band_edge() -> None:
    alpha = 0.002
    nu, c = np.array([3.0, 8.0, 60.0]), np.array([1.3, 0.7, 2.0])
    edge = cal.band_factor(nu, c, alpha)
    s = cal.anomaly_score(cal.log_p_value(edge[:, None], nu, c), alpha)
    np.testing.assert_allclose(s[:, 0], 1.0, rtol=1e-9)
    inside = cal.anomaly_score(cal.log_p_value(0.99 * edge[:, None], nu, c), alpha)
    outside = cal.anomaly_score(cal.log_p_value(1.01 * edge[:, None], nu, c), alpha)
    assert (inside < 1).all() and (outside > 1).all()


@given(st.lists(st.floats(0.0, 1e6), min_size=2, max_size=30), st.sampled_from([3.0, 5.0, 60.0]))
def test_score_monotone_in_deviation(z: list[float], nu: float) -> None:
    zs = np.sort(np.array(z))
    lp = cal.log_p_value(zs[None, :], np.array([nu]), np.array([1.0]))[0]
    s = cal.anomaly_score(lp, 1e-3)
    assert (np.diff(s) >= -1e-9).all() and (s >= 0).all() and np.isfinite(s).all()


def test_fit_tail_recovers_shape_and_scale() -> None:
    rng = np.random.default_rng(0)
    z = np.vstack([
        3.0 * rng.standard_normal(5000),
        0.5 * rng.standard_t(3, 5000),
        np.concatenate([rng.standard_normal(50), np.full(4950, np.nan)]),  # too short
        np.full(5000, np.nan),
    ])  # fmt: skip
    fit = cal.fit_tail(z, min_count=200, prior_nu=5.0)
    assert fit.nu[0] >= 20 and fit.nu[1] <= 4 and fit.nu[2] == 5.0 and fit.nu[3] == 5.0
    assert fit.c[0] == pytest.approx(3.0, rel=0.1) and fit.c[1] == pytest.approx(0.5, rel=0.15)
    assert fit.n_used.tolist() == [5000, 5000, 50, 0]
    # calibrated: the empirical rate of p < 0.01 is close to 0.01 on fresh draws
    fresh = np.vstack([3.0 * rng.standard_normal(20000), 0.5 * rng.standard_t(3, 20000)])
    p = np.exp(cal.log_p_value(fresh, fit.nu[:2], fit.c[:2]))
    assert np.all(np.abs((p < 0.01).mean(axis=1) - 0.01) < 0.004)


def test_t_quantile_signed() -> None:
    q = cal.t_quantile(np.array([0.1, 0.5, 0.9]), np.array([4.0, 30.0]))
    assert q.shape == (2, 3)
    np.testing.assert_allclose(q[:, 0], -q[:, 2])
    assert (q[:, 1] == 0).all() and q[0, 2] > q[1, 2] > 0


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"alpha=0\.5 is invalid"):
        cal.anomaly_score(np.zeros(2), 0.5)
    with pytest.raises(ValueError, match="alpha=0 is invalid"):
        cal.band_factor(np.array([5.0]), np.array([1.0]), 0)
    with pytest.raises(ValueError, match="min_count=10 is invalid"):
        cal.fit_tail(np.zeros((1, 5)), min_count=10)
    with pytest.raises(ValueError, match=r"prior_nu=1\.0 is invalid"):
        cal.fit_tail(np.zeros((1, 5)), prior_nu=1.0)
    with pytest.raises(ValueError, match=r"quantiles \[0.0, 0.5\] are invalid"):
        cal.t_quantile(np.array([0.0, 0.5]), np.array([5.0]))
