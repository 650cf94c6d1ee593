"""Time to exhaustion from quantile paths and simulated paths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.batch import SeriesBatch
from vigil.models import exhaustion as ex
from vigil.models.ets import ETS

MINUTE = 60_000


def _ramp(n: int, t_len: int, slope: float, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(t_len)
    return 10.0 + slope * t[None, :] + noise * rng.standard_normal((n, t_len))


def test_noisy_ramp_crossing_time() -> None:
    n, t_len, slope = 40, 600, 0.1
    y = _ramp(n, t_len, slope, noise=1.0, seed=1)
    batch = SeriesBatch(np.arange(n, dtype=np.int64), 0, MINUTE, y)
    # capacity planning: allow an undamped trend
    model = ETS(season_ms=None, phis=(0.98, 1.0), phi_max=1.0).fit(batch)
    truth = 80  # the ramp reaches the limit 80 steps after the window
    limit = 10.0 + slope * (t_len - 1 + truth)
    res = ex.time_to_exhaustion(model, limit, 200)
    assert np.all(res.direction == 1)
    assert abs(np.median(res.median) - truth) <= 12
    assert np.mean(np.abs(res.median - truth) <= 30) >= 0.7
    assert np.all(res.early <= res.median) and np.all(res.median <= res.late)
    assert np.mean((res.early <= truth) & (truth <= res.late)) >= 0.8
    assert np.median(res.probability) > 0.8
    # a limit far above the horizon's reach: improbable, no median crossing
    far = ex.time_to_exhaustion(model, limit + 1000, 200)
    assert np.all(np.isinf(far.median)) and np.all(far.probability < 0.05)
    # simulated paths agree on the order of magnitude (first passage comes earlier)
    sims = ex.crossing_from_samples(model.simulate(200, 500, seed=3), limit)
    assert np.all(sims.median <= res.median + 1)
    assert abs(np.median(sims.median) - truth) <= 25


def test_falling_series_and_no_limit() -> None:
    y = 100.0 - _ramp(3, 400, 0.2, noise=0.5, seed=2) + 10.0  # free space going down
    batch = SeriesBatch(np.arange(3, dtype=np.int64), 0, MINUTE, y)
    model = ETS(season_ms=None, phis=(1.0,), phi_max=1.0).fit(batch)
    limit = np.array([0.0, np.nan, 0.0])
    res = ex.time_to_exhaustion(model, limit, 300)
    truth = (y[0, -1] - 0.0) / 0.2
    assert res.direction.tolist() == [-1, 0, -1]
    assert abs(res.median[0] - truth) < 40
    assert np.isnan(res.probability[1]) and np.isinf(res.median[1])
    ms = res.to_ms(origin_ms=400 * MINUTE, step_ms=MINUTE)
    assert ms["median"][0] == 400 * MINUTE + (res.median[0] - 1) * MINUTE
    assert np.isnan(ms["median"][1])


def test_exact_quantile_paths() -> None:
    # comonotone paths: median m + h, band +-10 (10% and 90%), limit 50
    h = np.arange(1, 101, dtype=np.float64)
    levels = (0.1, 0.5, 0.9)
    paths = np.stack([h - 10, h, h + 10], axis=-1)[None]  # [1, 100, 3]
    res = ex.crossing_from_quantiles(paths, levels, 50.0)
    assert (res.early[0], res.median[0], res.late[0]) == (40.0, 50.0, 60.0)
    # at h=100 the limit lies at the 1st level: 90% of mass is above
    assert res.probability[0] == pytest.approx(0.9)
    # interpolated interval levels
    res2 = ex.crossing_from_quantiles(paths, levels, 50.0, interval=(0.3, 0.7))
    assert (res2.early[0], res2.late[0]) == (45.0, 55.0)
    # forced direction: falling to 50 from above never happens on a rising path
    res3 = ex.crossing_from_quantiles(paths + 100, levels, 50.0, direction=np.array([-1]))
    assert np.isinf(res3.median[0]) and res3.probability[0] == pytest.approx(0.1)


def test_samples_empirical() -> None:
    # 10 paths crossing at steps 1..10, 10 never crossing
    horizon = 20
    samples = np.zeros((1, 20, horizon))
    for k in range(10):
        samples[0, k, k:] = 5.0
    res = ex.crossing_from_samples(samples, 1.0, direction=np.array([1]))
    assert res.probability[0] == 0.5
    assert res.early[0] == 2.0  # 10% of 20 paths: the 2nd earliest
    assert res.median[0] == 10.0
    assert np.isinf(res.late[0])


@given(
    st.lists(st.floats(-50, 50), min_size=5, max_size=30),
    st.floats(-60, 60),
    st.sampled_from([1, -1]),
)
def test_interval_ordering_invariant(steps: list[float], limit: float, direction: int) -> None:
    base = np.cumsum(np.asarray(steps))
    paths = np.stack([base - 5, base, base + 5], axis=-1)[None]
    res = ex.crossing_from_quantiles(paths, (0.1, 0.5, 0.9), limit, direction=np.array([direction]))
    assert res.early[0] <= res.median[0] <= res.late[0]
    assert 0.0 <= res.probability[0] <= 1.0
    if np.isfinite(res.median[0]):
        assert res.probability[0] >= 0.5


def test_errors() -> None:
    paths = np.zeros((2, 5, 3))
    with pytest.raises(ValueError, match="expected \\[n_series, horizon, 2\\]"):
        ex.crossing_from_quantiles(paths, (0.1, 0.9), 1.0)
    with pytest.raises(ValueError, match="increasing levels"):
        ex.crossing_from_quantiles(paths, (0.5, 0.5, 0.9), 1.0)
    with pytest.raises(ValueError, match="interval"):
        ex.crossing_from_quantiles(paths, (0.1, 0.5, 0.9), 1.0, interval=(0.6, 0.9))
    with pytest.raises(ValueError, match="inf"):
        ex.crossing_from_quantiles(paths, (0.1, 0.5, 0.9), np.inf)
    with pytest.raises(ValueError, match="direction"):
        ex.crossing_from_quantiles(paths, (0.1, 0.5, 0.9), 1.0, direction=np.array([2, 1]))
    with pytest.raises(ValueError, match="n_paths"):
        ex.crossing_from_samples(np.zeros((2, 5)), 1.0)
