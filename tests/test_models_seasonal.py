"""SeasonalBaseline: false-alarm rate, spikes, level shifts, ramps, seasonality, warm-up."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vigil.batch import SeriesBatch
from vigil.models.base import Scores
from vigil.models.changepoint import Changepoints
from vigil.models.seasonal import COUNT, LEVEL, SeasonalBaseline
from vigil.models.seasonality import DAY_MS, candidate_periods, period_names

STEP5 = 300_000
DAY5 = DAY_MS // STEP5  # 288 steps
HOUR = 3_600_000
START = 1_700_006_400_000  # midnight UTC


def _batch(x: np.ndarray, first: int, stop: int, step: int) -> SeriesBatch:
    ids = np.arange(x.shape[0], dtype=np.int64)
    return SeriesBatch(ids, START + first * step, step, np.ascontiguousarray(x[:, first:stop]))


def _fit_score(
    x: np.ndarray, n_fit: int, step: int = HOUR, **params: Any
) -> tuple[SeasonalBaseline, tuple[Scores, Changepoints]]:
    model = SeasonalBaseline(**params).fit(_batch(x, 0, n_fit, step))
    return model, model.score_with_changepoints(_batch(x, n_fit, x.shape[1], step))


def _seasonal(n: int, days: int, seed: int, step: int = HOUR, weekly: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    per_day = DAY_MS // step
    t = np.arange(days * per_day)
    x = 100.0 + 20.0 * np.sin(2 * np.pi * t / per_day + rng.uniform(0, 6, (n, 1)))
    dow = (START // DAY_MS + t // per_day) % 7
    x = x + weekly * (dow >= 5)[None, :]
    return x + rng.normal(0, 2.0, x.shape)


def test_clean_seasonal_series_stay_within_twice_alpha() -> None:
    """Many daily+weekly series with noise at 5-min steps over weeks: alerts (after guards)
    stay within twice the configured false-alarm rate."""
    rng = np.random.default_rng(42)
    n, days, n_fit = 90, 35, 21 * DAY5
    t = np.arange(days * DAY5)
    dow = (START // DAY_MS + t // DAY5) % 7
    level = rng.uniform(20, 2000, (n, 1))
    amp = rng.uniform(0.05, 0.4, (n, 1)) * level
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    noise_sd = rng.uniform(0.01, 0.05, (n, 1)) * level
    # half the series drop at weekends by 3-15 noise sd (smaller drops are left to the level)
    weekend = np.where(rng.random((n, 1)) < 0.5, -rng.uniform(3, 15, (n, 1)) * noise_sd, 0.0)
    noise = rng.standard_normal((n, len(t)))
    noise[::3] = rng.standard_t(5, (len(noise[::3]), len(t))) / np.sqrt(5 / 3)  # heavier tails
    x = level + amp * np.sin(2 * np.pi * t / DAY5 + phase) + weekend * (dow >= 5) + noise_sd * noise
    alpha = 1e-3
    model, (scores, _) = _fit_score(x, n_fit, STEP5, alpha=alpha)
    rate = np.mean(scores.anomaly_score > 1)
    assert rate <= 2 * alpha, rate
    assert np.isfinite(scores.anomaly_score).all()
    names = period_names(model.period_, STEP5)
    has_weekend = weekend[:, 0] != 0
    assert np.mean(names[has_weekend] == "weekly") > 0.8
    assert np.mean(names[~has_weekend] == "daily") > 0.8


def test_detects_none_daily_weekly() -> None:
    rng = np.random.default_rng(3)
    days = 28
    daily = _seasonal(4, days, 1)
    weekly = _seasonal(4, days, 2, weekly=-40.0)
    walk = 100 + np.cumsum(rng.normal(0, 1, (4, days * 24)), axis=1)
    model = SeasonalBaseline().fit(_batch(np.vstack([daily, weekly, walk]), 0, days * 24, HOUR))
    assert list(period_names(model.period_, HOUR)) == ["daily"] * 4 + ["weekly"] * 4 + ["none"] * 4
    assert model.period_.tolist() == [24] * 4 + [168] * 4 + [1] * 4


def test_candidate_periods() -> None:
    assert candidate_periods(HOUR).tolist() == [24, 168]
    assert candidate_periods(STEP5).tolist() == [288, 2016]
    assert candidate_periods(STEP5, max_period=300).tolist() == [288]
    assert candidate_periods(7 * 60_000).tolist() == [1440]  # divides a week, not a day
    assert candidate_periods(11 * 60_000).tolist() == []
    with pytest.raises(ValueError, match="step=0 ms is invalid"):
        candidate_periods(0)


def test_spikes_flagged_and_not_learnt() -> None:
    x = _seasonal(6, 21, 5)
    n_fit = 14 * 24
    spikes = n_fit + np.array([20, 60, 100])
    clean = x.copy()
    x[:, spikes] += 30.0  # ~15 noise sd
    x[3:, spikes] -= 60.0  # downward spikes too
    _, (s, cp) = _fit_score(x, n_fit)
    k = spikes - n_fit
    assert (s.anomaly_score[:, k] > 1).all()
    others = np.setdiff1d(np.arange(s.anomaly_score.shape[1]), k)
    assert np.mean(s.anomaly_score[:, others] > 1) < 0.01
    # the point after a spike is predicted as if the spike had not happened
    err = np.abs(s.expected[:, k + 1] - clean[:, spikes + 1])
    assert err.max() < 8.0
    assert not (cp.flag != 0).any()  # isolated spikes are no level shift


def test_level_shift_alarms_then_is_accepted() -> None:
    x = _seasonal(5, 21, 6)
    n_fit, at = 14 * 24, 14 * 24 + 30
    x[:, at:] += 40.0
    _, (s, cp) = _fit_score(x, n_fit)
    k = at - n_fit
    assert (s.anomaly_score[:, k] > 1).all()
    assert (cp.statistic[:, k] > 0).all()
    first_cp = np.argmax(cp.flag[:, k:] == 1, axis=1)
    assert (cp.flag[:, k:] == 1).any(axis=1).all() and (first_cp <= 5).all()
    late = slice(k + 12, None)
    assert np.mean(s.anomaly_score[:, late] > 1) < 0.01
    assert np.abs(s.expected[:, late] - (x[:, at + 12 :] - 0)).mean() < 4.0


def test_level_shift_relearnt_by_run_rule_without_cusum() -> None:
    x = _seasonal(3, 21, 7)
    n_fit, at = 14 * 24, 14 * 24 + 10
    x[:, at:] += 40.0
    huge_h = {"k": 1.0, "h": 1e9, "clip": 4.0}  # CUSUM never confirms
    _, (s, cp) = _fit_score(x, n_fit, relearn_after=6, cusum=huge_h)
    k = at - n_fit
    assert (s.anomaly_score[:, k : k + 6] > 1).all()
    assert (cp.flag[:, k + 5] == 1).all()
    assert np.mean(s.anomaly_score[:, k + 8 :] > 1) < 0.01


def test_slow_ramp_is_followed() -> None:
    x = _seasonal(5, 28, 8)
    n_fit = 14 * 24
    ramp = np.zeros(x.shape[1])
    ramp[n_fit:] = np.arange(x.shape[1] - n_fit) * 0.1  # +34 over two weeks (17 noise sd)
    x = x + ramp
    _, (s, _) = _fit_score(x, n_fit)
    assert np.mean(s.anomaly_score > 1) < 0.01
    tail = slice(-48, None)
    assert np.abs(s.expected[:, tail] - x[:, tail]).mean() < 4.0


def test_new_series_warms_up_then_scores() -> None:
    x = _seasonal(3, 15, 9)
    n_fit = 14 * 24
    x[1, :n_fit] = np.nan  # new series: no history at fit
    x[1, n_fit : n_fit + 5] = np.nan  # appears 5 steps into scoring
    model, (s, _) = _fit_score(x, n_fit, min_history=10)
    w = s.warming_up[1]
    assert w[:15].all() and not w[15:].any()  # 10 observed points after its first one
    assert np.isnan(s.p_value[1, :15]).all() and np.isfinite(s.p_value[1, 15:]).all()
    assert np.isfinite(s.expected[1, 6:]).all()
    assert not s.warming_up[[0, 2]].any()
    assert model.dyn_[1, COUNT] == s.anomaly_score.shape[1] - 5


def test_volatility_change_accepted() -> None:
    x = np.full((2, 24 * 20), 50.0)
    n_fit = 24 * 14
    x[:, n_fit + 10 :] += np.random.default_rng(1).normal(0, 5, (2, x.shape[1] - n_fit - 10))
    _, (s, _) = _fit_score(x, n_fit, guards={"min_rel_dev": 0.0})
    assert (s.anomaly_score[:, 10:20] > 1).mean() > 0.5
    assert np.mean(s.anomaly_score[:, 60:] > 1) < 0.05


def test_flat_series_tiny_wiggles_never_alarm() -> None:
    x = np.full((2, 24 * 20), 1000.0)
    n_fit = 24 * 14
    x[:, n_fit:] += np.random.default_rng(2).normal(0, 1e-3, (2, x.shape[1] - n_fit))
    _, (s, _) = _fit_score(x, n_fit)
    assert np.isfinite(s.anomaly_score).all() and (s.anomaly_score < 1).all()
    assert (s.p_value[:, 0] < 1e-3).all()  # statistically it is a change; the guard holds it


def test_band_edge_is_score_one() -> None:
    x = _seasonal(2, 15, 10)
    n_fit = 14 * 24
    model = SeasonalBaseline(guards={"min_rel_dev": 0.0}).fit(_batch(x, 0, n_fit, HOUR))
    probe = model.score(_batch(x, n_fit, n_fit + 1, HOUR))
    edge = x.copy()
    edge[:, n_fit] = probe.upper[:, 0]
    model2 = SeasonalBaseline(guards={"min_rel_dev": 0.0}).fit(_batch(x, 0, n_fit, HOUR))
    s = model2.score(_batch(edge, n_fit, n_fit + 1, HOUR))
    np.testing.assert_allclose(s.anomaly_score[:, 0], 1.0, rtol=1e-9)


def test_forecast_continues_phase() -> None:
    x = _seasonal(3, 16, 11)
    x[2] = np.nan
    model = SeasonalBaseline().fit(_batch(x, 0, 14 * 24, HOUR))
    fc = model.forecast(48, (0.05, 0.5, 0.95))
    assert fc.shape == (3, 48, 3)
    assert (fc[:2, :, 0] < fc[:2, :, 1]).all() and (fc[:2, :, 1] < fc[:2, :, 2]).all()
    assert np.isnan(fc[2]).all()
    truth = x[:2, 14 * 24 : 16 * 24 + 0]
    assert np.abs(fc[:2, :, 1] - truth[:, :48]).mean() < 4.0
    expected_median = model.dyn_[:2, LEVEL, None] + model.prof_[:2, :24][:, np.arange(48) % 24]
    np.testing.assert_allclose(fc[:2, :, 1], expected_median)
    with pytest.raises(ValueError, match="horizon=0 is invalid"):
        model.forecast(0)
    with pytest.raises(ValueError, match=r"quantiles .* are invalid"):
        model.forecast(3, (0.0, 0.5))


def test_errors_name_the_problem() -> None:
    x = _seasonal(2, 3, 12)
    with pytest.raises(ValueError, match="is not fitted"):
        SeasonalBaseline().score(_batch(x, 0, 10, HOUR))
    model = SeasonalBaseline().fit(_batch(x, 0, 48, HOUR))
    with pytest.raises(ValueError, match=r"batch starts at \d+ but the state ends at"):
        model.score(_batch(x, 49, 60, HOUR))
    with pytest.raises(ValueError, match="differs from the fitted step"):
        model.score(_batch(x, 48, 60, STEP5))
    other = SeriesBatch(np.array([5, 6]), START + 48 * HOUR, HOUR, x[:, 48:60])
    with pytest.raises(ValueError, match="differ from the 2 fitted ones"):
        model.score(other)
    bad = [
        ({"alpha": 0.7}, "alpha=0.7 is invalid"),
        ({"min_history": 1}, "min_history=1 is invalid"),
        ({"level_rates": []}, "level_rates=.* is invalid"),
        ({"profile_rate": 2.0}, "profile_rate=2.0 is invalid"),
        ({"huber": 1.0}, "huber=1.0 is invalid"),
        ({"margin": 1.0}, "margin=1.0 is invalid"),
        ({"relearn_after": -1}, "relearn_after=-1 is invalid"),
        ({"calibration_passes": 0}, "calibration_passes=0 is invalid"),
        ({"cusum": {"h": 0}}, "cusum h=0 is invalid"),
        ({"guards": {"direction": "sideways"}}, "direction='sideways' is invalid"),
    ]
    for params, msg in bad:
        with pytest.raises(ValueError, match=msg):
            SeasonalBaseline(**params)  # type: ignore[arg-type]


def test_block_fit_is_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    import vigil.models.seasonal as seasonal

    x = _seasonal(12, 21, 13, weekly=-30.0)
    x[:6] = _seasonal(6, 21, 14)  # daily rows in some blocks, weekly in others
    x[2] = np.nan
    n_fit = 14 * 24
    whole = SeasonalBaseline().fit(_batch(x, 0, n_fit, HOUR))
    monkeypatch.setattr(seasonal, "FIT_BLOCK_CELLS", n_fit * 5)  # blocks of 5 rows
    blocks = SeasonalBaseline().fit(_batch(x, 0, n_fit, HOUR))
    assert sorted(set(whole.period_.tolist())) == [1, 24, 168]
    for k, v in whole.state().items():
        assert np.array_equal(v, blocks.state()[k], equal_nan=True), k
    a, b = (m.score(_batch(x, n_fit, x.shape[1], HOUR)) for m in (whole, blocks))
    assert np.array_equal(a.anomaly_score, b.anomaly_score, equal_nan=True)
