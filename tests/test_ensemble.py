"""Ensemble: holdout weights, scoring, forecasts, state, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vigil.batch import SeriesBatch
from vigil.models.ensemble import DEFAULT_MEMBERS, Ensemble, normalised_weights

HOUR = 3_600_000
FLAT_AND_DAILY = [("ets", {"season_ms": None}), ("ets", {})]


def _batch(values: np.ndarray, start: int = 0, step: int = HOUR) -> SeriesBatch:
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    return SeriesBatch(np.arange(len(values), dtype=np.int64), start, step, values)


def _daily(n: int, t_len: int, seed: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(t_len)
    truth = 50.0 + 10.0 * np.sin(2 * np.pi * t / 24)
    return truth, truth[None, :] + noise * rng.standard_normal((n, t_len))


def test_weights_favour_the_better_member() -> None:
    truth, y = _daily(30, 24 * 25, seed=1)
    model = Ensemble(members=FLAT_AND_DAILY).fit(_batch(y))
    assert model.holdout_ == 48
    assert np.all(model.w_forecast_[:, 1] > 0.9)  # the seasonal ETS forecasts far better
    assert np.mean(model.w_score_[:, 1] > 0.5) > 0.8
    assert np.allclose(model.w_forecast_.sum(axis=1), 1.0)
    fc = model.forecast(24, (0.5,))[:, :, 0]
    assert np.sqrt(np.mean((fc - truth[None, np.arange(600, 624) % 24]) ** 2)) < 1.0


def test_default_ensemble_scores_and_forecasts() -> None:
    _truth, y = _daily(20, 24 * 28 + 24 * 7, seed=2)
    fit_len = 24 * 28
    model = Ensemble().fit(_batch(y[:, :fit_len]))
    assert len(model.models_) == len(DEFAULT_MEMBERS)
    sc = model.score(_batch(y[:, fit_len:], start=fit_len * HOUR))
    assert sc.expected.shape == (20, 24 * 7)
    assert np.isfinite(sc.expected).all() and np.isfinite(sc.p_value).all()
    assert np.all(sc.lower <= sc.expected) and np.all(sc.expected <= sc.upper)
    # clean data: few points beyond the 1e-3 band
    assert np.mean(sc.anomaly_score > 1) < 0.01
    spike = y[:, fit_len:].copy()
    spike[:, 30] += 25.0
    model2 = Ensemble().fit(_batch(y[:, :fit_len]))
    sc2 = model2.score(_batch(spike, start=fit_len * HOUR))
    assert np.all(sc2.anomaly_score[:, 30] > 1)
    q = model.forecast(48, (0.1, 0.5, 0.9))
    assert q.shape == (20, 48, 3)
    assert np.all(np.diff(q, axis=2) >= 0)


def test_ensemble_interval_coverage() -> None:
    _truth, y = _daily(60, 24 * 28 + 48, seed=3, noise=2.0)
    fit_len = 24 * 28
    q = Ensemble().fit(_batch(y[:, :fit_len])).forecast(48, (0.1, 0.9))
    inside = (y[:, fit_len:] >= q[:, :, 0]) & (y[:, fit_len:] <= q[:, :, 1])
    assert 0.7 <= inside.mean() <= 0.9


def test_causal_deterministic_and_round_trip() -> None:
    _truth, y = _daily(6, 24 * 30, seed=4)
    fit_len = 24 * 20
    base = Ensemble(members=FLAT_AND_DAILY).fit(_batch(y[:, :fit_len]))
    state, params = base.state(), base.params()
    rest = y[:, fit_len:]
    a = Ensemble.from_state(params, state).score(_batch(rest, start=fit_len * HOUR))
    changed = rest.copy()
    changed[:, 100:] *= 3.0
    b = Ensemble.from_state(params, state).score(_batch(changed, start=fit_len * HOUR))
    for field in ("expected", "lower", "upper", "p_value", "anomaly_score", "warming_up"):
        assert np.array_equal(getattr(a, field)[:, :100], getattr(b, field)[:, :100])
    again = Ensemble(members=FLAT_AND_DAILY).fit(_batch(y[:, :fit_len])).state()
    assert state.keys() == again.keys() and all(np.array_equal(state[k], again[k]) for k in state)
    assert np.array_equal(base.forecast(12), Ensemble.from_state(params, state).forecast(12))


def test_short_window_has_no_holdout() -> None:
    _truth, y = _daily(3, 20, seed=5)
    model = Ensemble(members=FLAT_AND_DAILY).fit(_batch(y))
    assert model.holdout_ == 0
    assert np.allclose(model.w_score_, 0.5)
    assert np.isfinite(model.forecast(4)).all()


def test_normalised_weights_cases() -> None:
    err = np.array([[1.0, 2.0], [np.nan, np.nan], [0.0, 1.0], [3.0, np.nan]])
    w = normalised_weights(err, 2.0)
    assert w[0] == pytest.approx([0.8, 0.2])
    assert w[1].tolist() == [0.5, 0.5]  # nothing known: equal
    assert w[2, 0] > 0.999  # a perfect member takes (almost) all
    assert w[3].tolist() == [1.0, 0.0]  # no error, no weight
    assert np.allclose(normalised_weights(err[:1], 0.0), 0.5)


@given(hnp.arrays(np.float64, (5, 3), elements=st.floats(0, 1e6) | st.just(np.nan)))
def test_normalised_weights_invariants(err: np.ndarray) -> None:
    w = normalised_weights(err, 4.0)
    assert np.all(w >= 0) and np.allclose(w.sum(axis=1), 1.0)
    both = np.isfinite(err[:, 0]) & np.isfinite(err[:, 1])
    better = both & (err[:, 0] < err[:, 1])
    assert np.all(w[better, 0] >= w[better, 1])


def test_errors() -> None:
    with pytest.raises(ValueError, match="'arima' is unknown"):
        Ensemble(members=[("arima", {})])
    with pytest.raises(ValueError, match="members are empty"):
        Ensemble(members=[])
    with pytest.raises(ValueError, match="holdout_ms=0"):
        Ensemble(holdout_ms=0)
    with pytest.raises(ValueError, match="power=-1"):
        Ensemble(power=-1)
    with pytest.raises(ValueError, match=r"alpha=0\.9"):
        Ensemble(alarm_rate=0.9)
    model = Ensemble(members=FLAT_AND_DAILY)
    for call in (lambda: model.score(_batch(np.zeros((1, 5)))), lambda: model.forecast(3),
                 model.state):  # fmt: skip
        with pytest.raises(RuntimeError, match="not fitted"):
            call()
    _truth, y = _daily(2, 24 * 10, seed=6)
    model.fit(_batch(y))
    with pytest.raises(ValueError, match="1 series but the model was fitted on 2"):
        model.score(_batch(y[:1], start=240 * HOUR))
    state = model.state()
    with pytest.raises(ValueError, match="lacks"):
        Ensemble(members=FLAT_AND_DAILY).set_state({"m0.level_": state["m0.level_"]})
    bad = dict(state)
    bad["m7.level_"] = state["m0.level_"]
    with pytest.raises(ValueError, match=r"'m7\.level_' names no member"):
        Ensemble(members=FLAT_AND_DAILY).set_state(bad)


@pytest.mark.parametrize(
    "make",
    [lambda: Ensemble(), lambda: Ensemble(members=FLAT_AND_DAILY, power=0.0, alarm_rate=0.01)],
    ids=["default", "two_ets"],
)
def test_conformance(make, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from model_conformance import ModelCase, check_all

    check_all(ModelCase(make=make), tmp_path)


def _business_day(n: int, days: int, seed: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """5-min series with a daily shape (quiet nights at a tenth of the day's level) and noise
    whose sd grows as ``level ** gamma`` (2 % of the day's level at the peak)."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 288)
    shape = 0.1 + 0.9 * np.clip(np.sin(2 * np.pi * (t % 288) / 288 - np.pi / 2) + 0.3, 0, 1)
    mu = 100.0 * np.broadcast_to(shape, (n, len(t)))
    sd = 2.0 * (mu / 100.0) ** gamma
    return mu, mu + sd * rng.standard_normal(mu.shape)


@pytest.mark.parametrize(("gamma", "chosen"), [(0.0, 0.0), (1.0, 1.0)])
def test_variance_function_is_chosen_from_the_holdout(gamma: float, chosen: float) -> None:
    """Noise that grows with the level gets the proportional scale; constant noise keeps the
    plain running scale; the choice is per series, from held-out likelihood."""
    _mu, y = _business_day(12, 10, seed=3, gamma=gamma)
    model = Ensemble().fit(_batch(y, step=300_000))
    assert np.mean(model.gamma_ == chosen) >= 0.75


def test_variance_function_narrows_quiet_hours() -> None:
    """With noise proportional to the level, the band at night is a small fraction of the
    band at the day's peak (a running scale alone carries the day's noise into the night)."""
    mu, y = _business_day(8, 12, seed=4, gamma=1.0)
    fit = 10 * 288
    model = Ensemble().fit(_batch(y[:, :fit], step=300_000))
    sc = model.score(_batch(y[:, fit:], start=fit * 300_000, step=300_000))
    half = (sc.upper - sc.lower) / 2
    night = mu[0, fit:] < 20
    day = mu[0, fit:] > 90
    assert np.median(half[:, night]) < 0.4 * np.median(half[:, day])
    # the night's band still covers the night's noise (sd 0.2 there): no flood of alarms
    assert np.mean(sc.anomaly_score[:, night] > 1) < 0.01


def test_window_test_finds_a_sustained_small_shift_not_a_lone_spike() -> None:
    """A 3-sd level shift for 12 steps never leaves a 1e-4 point band but is flagged by the
    windows; a lone 30-sd spike alarms once (the point test) and the windows do not keep
    alarming after it: a clipped residual moves a window by at most a typical tail value."""
    rng = np.random.default_rng(5)
    step = 300_000  # 5-min steps: a 2-day holdout of 576 residuals calibrates the windows
    n, t_len, fit = 40, 288 * 10, 288 * 8
    y = 100.0 + rng.standard_normal((n, t_len))
    y[:20, fit + 100:fit + 112] += 3.0
    y[20:, fit + 100] += 30.0
    model = Ensemble(members=[("ets", {"season_ms": None})], alarm_rate=1e-4).fit(
        _batch(y[:, :fit], step=step))
    assert np.isfinite(model.wc_).all()
    sc = model.score(_batch(y[:, fit:], start=fit * step, step=step))
    shifted = sc.anomaly_score[:20, 100:112]
    assert np.mean((shifted > 1).any(axis=1)) >= 0.9
    assert np.abs(sc.expected[:20, 100:112] - 100.0).max() < 3.0  # within the point band
    spiked = sc.anomaly_score[20:]
    assert (spiked[:, 101:112] > 1).sum() == 0
    clean = np.delete(sc.anomaly_score[20:], 100, axis=1)
    assert np.mean(clean > 1) < 1e-3
