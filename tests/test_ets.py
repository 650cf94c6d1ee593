"""ETS: parameter search, forecasts and intervals, online scoring, edge cases, errors."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.batch import SeriesBatch
from vigil.models.ets import ETS

HOUR = 3_600_000
DAY = 24 * HOUR


def _batch(values: np.ndarray, start: int = 0, step: int = HOUR) -> SeriesBatch:
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    return SeriesBatch(np.arange(len(values), dtype=np.int64), start, step, values)


def _seasonal(n: int, t_len: int, seed: int, noise: float = 1.0, slope: float = 0.0):
    rng = np.random.default_rng(seed)
    t = np.arange(t_len)
    truth = 100.0 + 10.0 * np.sin(2 * np.pi * t / 24) + slope * t
    return truth, truth[None, :] + noise * rng.standard_normal((n, t_len))


def test_recovers_level_trend_and_season_forecast() -> None:
    truth, y = _seasonal(60, 720 + 48, seed=1, slope=0.02)
    model = ETS().fit(_batch(y[:, :720]))
    fc = model.forecast(48, (0.5,))[:, :, 0]
    err = fc - truth[None, 720:]
    # noise sd is 1: the median forecast must sit well inside it on average
    assert np.sqrt(np.mean(err**2)) < 0.6
    assert abs(err.mean()) < 0.5
    # a seasonal form with a (damped) trend, smoothing parameters small for a stable signal
    assert np.mean(model.form_ == 3) > 0.8
    assert np.median(model.alpha_) <= 0.1 and np.median(model.gamma_) <= 0.03


def test_recovers_smoothing_parameter_of_local_level() -> None:
    rng = np.random.default_rng(2)
    n, t_len, alpha = 200, 600, 0.3
    e = rng.standard_normal((n, t_len))
    level = 50.0 + np.cumsum(alpha * e, axis=1)
    y = np.empty_like(e)
    y[:, 0] = 50.0 + e[:, 0]
    y[:, 1:] = level[:, :-1] + e[:, 1:]
    model = ETS(season_ms=None, forms=("ANN",)).fit(_batch(y))
    assert 0.2 <= np.median(model.alpha_) <= 0.45
    assert np.all(model.form_ == 0)
    # one-step sd recovered
    assert 0.85 < np.median(np.sqrt(model.sigma2_)) < 1.15


def test_interval_coverage_on_seasonal_noise() -> None:
    _truth, y = _seasonal(150, 600 + 48, seed=3, noise=2.0)
    model = ETS().fit(_batch(y[:, :600]))
    q = model.forecast(48, (0.1, 0.5, 0.9))
    inside = (y[:, 600:] >= q[:, :, 0]) & (y[:, 600:] <= q[:, :, 2])
    assert 0.7 <= inside.mean() <= 0.9
    assert np.all(q[:, :, 0] <= q[:, :, 1]) and np.all(q[:, :, 1] <= q[:, :, 2])


def test_simulated_paths_match_analytic_quantiles() -> None:
    _truth, y = _seasonal(20, 480, seed=4, slope=0.05)
    model = ETS().fit(_batch(y))
    q = model.forecast(30, (0.1, 0.5, 0.9))
    sims = model.simulate(30, 4000, seed=7)
    emp = np.quantile(sims, (0.1, 0.5, 0.9), axis=1).transpose(1, 2, 0)
    width = q[:, :, 2] - q[:, :, 0]
    # the calibrated t law is close to Gaussian here: within 10% of the band width
    assert np.max(np.abs(emp - q) / width[:, :, None]) < 0.1
    assert np.array_equal(sims, model.simulate(30, 4000, seed=7))


def test_nan_gaps_constant_and_short_series() -> None:
    truth, y = _seasonal(4, 500, seed=5)
    y[0, ::5] = np.nan  # gaps everywhere (every phase still observed)
    y[1, 100:300] = np.nan  # a long gap
    y[2] = 7.0  # constant
    y[3, :490] = np.nan  # only ten points
    model = ETS().fit(_batch(y))
    fc = model.forecast(24, (0.1, 0.5, 0.9))
    assert np.isfinite(fc).all()
    assert np.allclose(fc[2], 7.0)  # a constant stays constant, with a negligible band
    assert np.abs(fc[0, :, 1] - truth[500 - 24 :][np.arange(24) % 24]).max() < 4
    nxt = np.vstack([truth[np.arange(500, 548) % 24] + 0.0] * 4)
    nxt[2] = 7.0
    nxt[2, 10] = 9.0
    nxt[0, 5] = np.nan
    sc = model.score(_batch(nxt, start=500 * HOUR))
    assert np.isnan(sc.p_value[0, 5]) and np.isnan(sc.anomaly_score[0, 5])
    assert np.isfinite(sc.expected).all()
    assert sc.anomaly_score[2, 9] == 0.0  # exactly as expected
    assert sc.anomaly_score[2, 10] > 1.0  # a constant series changing is anomalous


def test_series_without_history_starts_online() -> None:
    y = np.full((2, 100), np.nan)
    y[0] = 5.0 + np.sin(np.arange(100))
    model = ETS().fit(_batch(y))
    assert np.isnan(model.forecast(3)[1]).all()  # nothing known yet
    nxt = np.full((2, 30), 3.0)
    sc = model.score(_batch(nxt, start=100 * HOUR))
    assert sc.warming_up[1, :10].all() and not sc.warming_up[1, -1]
    assert np.allclose(sc.expected[1, 1:], 3.0)
    assert np.isfinite(model.forecast(3)[1]).all()


def test_causal_scores_and_online_equivalence() -> None:
    _truth, y = _seasonal(8, 700, seed=6)
    base = ETS().fit(_batch(y[:, :500]))
    state = base.state()
    a = ETS.from_state(base.params(), state).score(_batch(y[:, 500:], start=500 * HOUR))
    changed = y[:, 500:].copy()
    changed[:, 120:] += 50.0
    b = ETS.from_state(base.params(), state).score(_batch(changed, start=500 * HOUR))
    for field in ("expected", "lower", "upper", "p_value", "anomaly_score"):
        assert np.array_equal(getattr(a, field)[:, :120], getattr(b, field)[:, :120])
    assert not np.array_equal(a.expected[:, 121:], b.expected[:, 121:])
    # score and update advance the state identically; state round-trips
    m1 = ETS.from_state(base.params(), state)
    m1.score(_batch(y[:, 500:], start=500 * HOUR))
    m2 = ETS.from_state(base.params(), state).update(_batch(y[:, 500:], start=500 * HOUR))
    assert np.array_equal(m1.forecast(24), m2.forecast(24))
    assert m1.end_ == 700 * HOUR


def test_deterministic() -> None:
    _truth, y = _seasonal(10, 400, seed=7, slope=0.01)
    s1 = ETS(log=True).fit(_batch(y)).state()
    s2 = ETS(log=True).fit(_batch(y)).state()
    assert s1.keys() == s2.keys()
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)


def test_anomalies_are_not_learnt_and_shifts_are() -> None:
    truth, y = _seasonal(2, 600, seed=8)
    model = ETS(max_run=5).fit(_batch(y[:, :500]))
    nxt = y[:, 500:].copy()
    nxt[0, 10] += 60.0  # an isolated spike
    nxt[1, 10:] += 60.0  # a lasting shift
    sc = model.score(_batch(nxt, start=500 * HOUR))
    assert sc.anomaly_score[0, 10] > 1 and sc.anomaly_score[1, 10] > 1
    # the spike left the level alone
    assert abs(sc.expected[0, 11] - truth[511]) < 3
    # the shift was accepted after max_run anomalous points
    assert np.all(sc.anomaly_score[1, 10:15] > 1)
    assert abs(sc.expected[1, 30] - (truth[530] + 60)) < 5
    assert np.median(sc.anomaly_score[1, 30:]) < 1


def test_log_rows_and_non_positive_values() -> None:
    rng = np.random.default_rng(9)
    t = np.arange(480)
    base = 100 * (1 + 0.5 * np.sin(2 * np.pi * t / 24))
    y = np.vstack([base * np.exp(0.05 * rng.standard_normal(480)), base - 100])
    model = ETS(log=True).fit(_batch(y))
    assert model.log_.tolist() == [True, False]
    fc = model.forecast(24, (0.1, 0.5, 0.9))
    assert np.all(fc[0] > 0)
    nxt = np.vstack([base[:24], base[:24] - 100])
    nxt[0, 5] = 0.0
    sc = model.score(_batch(nxt, start=480 * HOUR))
    assert sc.anomaly_score[0, 5] > 1 and np.isfinite(sc.expected[0]).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"forms": ("AAA",)}, "forms"),
        ({"forms": ()}, "forms"),
        ({"season_ms": 0}, "season_ms=0"),
        ({"alarm_rate": 0.7}, "alpha=0.7"),
        ({"alphas": (0.0, 0.5)}, "alphas"),
        ({"phis": ()}, "phis"),
        ({"phi_max": 1.5}, "phi_max=1.5"),
        ({"stride": 0}, "stride=0"),
        ({"refine": -1}, "refine=-1"),
        ({"horizons_ms": (0,)}, "horizons_ms"),
        ({"guards": {"bogus": 1}}, "unknown guard settings"),
    ],
)
def test_invalid_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ETS(**kwargs)


def test_usage_errors() -> None:
    _truth, y = _seasonal(3, 200, seed=10)
    with pytest.raises(RuntimeError, match="not fitted"):
        ETS().score(_batch(y))
    with pytest.raises(RuntimeError, match="not fitted"):
        ETS().state()
    model = ETS().fit(_batch(y))
    with pytest.raises(ValueError, match="starts at"):
        model.score(_batch(y, start=0))
    with pytest.raises(ValueError, match="step"):
        model.score(_batch(y, start=200 * HOUR, step=60_000))
    with pytest.raises(ValueError, match="2 series but the model was fitted on 3"):
        model.score(_batch(y[:2], start=200 * HOUR))
    with pytest.raises(ValueError, match="horizon=0"):
        model.forecast(0)
    with pytest.raises(ValueError, match="n_paths=0"):
        model.simulate(5, 0)
    with pytest.raises(ValueError, match="state lacks"):
        ETS().set_state({"alpha_": np.zeros(3)})


def test_season_length_and_loss_horizons() -> None:
    model = ETS(horizons_ms=(12 * HOUR, DAY, 2 * DAY))
    assert model.season_length(HOUR) == 24
    assert model.season_length(7 * HOUR) == 1  # not a whole number of steps
    assert model.season_length(60_000) == 1440
    assert model.season_length(1_000) == 1  # longer than max_season
    assert model.loss_horizons(HOUR, 720) == (12, 24, 48)
    assert model.loss_horizons(HOUR, 60) == (12, 24)
    assert model.loss_horizons(DAY, 100) == (2,)


@pytest.mark.parametrize(
    "make",
    [lambda: ETS(), lambda: ETS(log=True, horizons_ms=(12 * HOUR, DAY), refine=0)],
    ids=["default", "forecasting"],
)
def test_conformance(make, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from model_conformance import ModelCase, check_all

    check_all(ModelCase(make=make), tmp_path)


def test_level_reanchors_after_a_gap() -> None:
    """After a scrape outage the first point is a multi-step forecast: a wandering level that
    moved while nothing was observed is learnt at once, not rejected as anomalous for
    ``max_run`` steps (before this rule: up to 32 of the 40 points after the gap flagged)."""
    rng = np.random.default_rng(11)
    n, fit, t_len, g0, g1 = 20, 1500, 1700, 1600, 1630
    walk = 100.0 + np.cumsum(rng.normal(0.0, 1.0, (n, t_len)), axis=1)
    y = walk + rng.normal(0.0, 0.3, (n, t_len))
    y[:, g0:g1] = np.nan  # a 30-step outage while the level keeps wandering
    model = ETS(season_ms=None).fit(_batch(y[:, :fit]))
    sc = model.score(_batch(y[:, fit:], start=fit * HOUR))
    after = sc.anomaly_score[:, g1 - fit:g1 - fit + 40]
    assert (after > 1).sum(axis=1).max() <= 2  # at most the first point or two, no long run
    # the level is back on the series within a few points
    err = np.abs(sc.expected[:, g1 - fit + 3:g1 - fit + 40] - y[:, g1 + 3:g1 + 40])
    assert np.median(err) < 3.0
