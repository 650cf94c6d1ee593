"""Exhaustion rules of the replay: start-up ramps, drifts that flattened, onset of a leak."""

import numpy as np
import pytest

from vigil.batch import SeriesBatch
from vigil.engine.runway import RunwayConfig, exhaustion_at, first_seen
from vigil.models.trend import hinge_start

STEP = 300_000  # 5 minutes
CFG = RunwayConfig.for_step(STEP, horizon_steps=576, window_steps=288)


def _batch(values: np.ndarray) -> SeriesBatch:
    return SeriesBatch(np.arange(len(values), dtype=np.int64), 0, STEP, values)


def test_for_step_converts_hours() -> None:
    assert (CFG.startup_steps, CFG.min_age_steps, CFG.short_steps) == (36, 72, 72)
    assert (CFG.hinge_min_post, CFG.hinge_every) == (96, 12)
    with pytest.raises(ValueError, match="short_steps=0"):
        RunwayConfig(horizon_steps=10, short_steps=0)


def test_hinge_start_finds_the_onset() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(288, dtype=float)
    flat_then_leak = 100 + np.maximum(0, t - 120) * 0.5 + rng.normal(0, 1, 288)
    straight = 100 + 0.3 * t + rng.normal(0, 1, 288)
    k = hinge_start(np.vstack([flat_then_leak, straight]), min_post=96, every=12)
    assert abs(k[0] - 120) <= 12
    assert k[1] <= 24


def test_young_pod_ramp_then_plateau_is_not_a_risk() -> None:
    rng = np.random.default_rng(2)
    n = 600
    values = np.full((1, n), np.nan)
    age = np.arange(n - 300, dtype=float)  # the pod appears at column 300
    values[0, 300:] = 550 * (1 - 0.4 * np.exp(-age / 12)) + rng.normal(0, 15, len(age))
    limit = np.array([1024.0])
    born = first_seen(values)
    for col in range(312, n + 1, 12):
        rec = exhaustion_at(_batch(values), limit, born, col, CFG)
        assert not (rec.probability >= 0.5).any(), col
        if col < 300 + 36 + 72:  # too young to forecast at all
            assert len(rec.row) == 0


def test_leak_inside_the_window_crosses_on_time() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    t = np.arange(n, dtype=float)
    onset, slope = 1000, 0.25  # per step after the onset
    values = (200 + np.maximum(0, t - onset) * slope + rng.normal(0, 3, n))[None, :]
    limit = np.array([600.0])
    true_cross = onset + (600 - 200) / slope  # column 2600
    col = 1250  # ~21 h into the leak (the window still holds flat points), 1350 steps ahead
    cfg = RunwayConfig.for_step(STEP, horizon_steps=1600, window_steps=288)
    rec = exhaustion_at(_batch(values), limit, first_seen(values), col, cfg)
    assert rec.probability[0] >= 0.5
    predicted_col = rec.p50[0] / STEP
    assert abs(predicted_col - true_cross) / (true_cross - col) < 0.2
    assert rec.lo[0] <= rec.p50[0] <= rec.hi[0]


DAY = 288  # 5-minute steps


def _daily_leak(n: int, onset: int, slope: float, phase: float = 0.0, seed: int = 4,
                amp: float = 40.0) -> np.ndarray:
    """A working set that follows a daily load curve, leaking ``slope`` per step after
    ``onset``: the line through a few hours of it is biased by the time of day."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    daily = amp * np.sin(2 * np.pi * (t / DAY + phase))
    return 400 + daily + np.maximum(0, t - onset) * slope + rng.normal(0, 2, n)


def test_seasonal_drift_sees_the_slope_through_the_day() -> None:
    from vigil.models.trend import seasonal_drift

    onset, slope = 3 * DAY + 40, 0.2
    values = _daily_leak(3 * DAY + 160, onset, slope)[None, :]
    hist = values[:, -2 * DAY:]  # one season of references, then the window
    b, se, sigma, k = seasonal_drift(hist, DAY, min_post=36, every=12)
    assert abs(b[0] - slope) / slope < 0.05
    assert abs((values.shape[1] - 2 * DAY + DAY + k[0]) - onset) <= 6
    assert se[0] > 0 and sigma[0] > 0


def test_crossing_time_of_a_leak_that_follows_the_day() -> None:
    limit = np.array([1000.0])
    onset, slope = 3 * DAY, 1.0  # crosses ~600 steps (50 h) after the onset
    values = _daily_leak(6 * DAY, onset, slope, phase=0.3)[None, :]
    truth = onset + np.argmax(values[0, onset:] >= limit[0])
    plain = RunwayConfig.for_step(STEP, horizon_steps=2 * DAY, window_steps=DAY)
    plain = RunwayConfig(**{**plain.__dict__, "season_steps": 0})
    seasonal = RunwayConfig.for_step(STEP, horizon_steps=2 * DAY, window_steps=DAY)
    err_plain, err_seasonal = [], []
    for col in range(onset + 108, int(truth) - 36, 12):
        for cfg, errs in ((plain, err_plain), (seasonal, err_seasonal)):
            rec = exhaustion_at(_batch(values), limit, first_seen(values), col, cfg)
            if np.isfinite(rec.p50[0]):
                errs.append(abs(rec.p50[0] / STEP - truth) / (truth - col))
    assert len(err_seasonal) > 10
    assert np.median(err_seasonal) < 0.1
    assert np.median(err_seasonal) < np.median(err_plain)


def test_a_young_replica_borrows_its_peers_season() -> None:
    n = 5 * DAY
    onset, slope = 4 * DAY - 60, 0.4
    rows = [_daily_leak(n, onset, slope * f, seed=s) for s, f in ((5, 1.0), (6, 0.95),
                                                                  (7, 1.05), (8, 1.0))]
    values = np.vstack(rows)
    values[3, : onset - 100] = np.nan  # a pod that started ~8 h before the leak
    labels = [{"__name__": "mem", "service": "api", "pod": f"p{i}"} for i in range(4)]
    batch = SeriesBatch(np.arange(4, dtype=np.int64), 0, STEP, values, labels)
    limit = np.full(4, 560.0)
    col = onset + 108  # 9 h into the leak: the young pod has no day of its own
    truth = onset + np.argmax(values[3, onset:] >= 560.0)
    cfg = RunwayConfig.for_step(STEP, horizon_steps=2 * DAY, window_steps=DAY)
    off = RunwayConfig(**{**cfg.__dict__, "peer_fill": False})
    with_peers = exhaustion_at(batch, limit, first_seen(values), col, cfg)
    alone = exhaustion_at(batch, limit, first_seen(values), col, off)
    i = int(np.flatnonzero(with_peers.row == 3)[0])
    err = abs(with_peers.p50[i] / STEP - truth) / (truth - col)
    err_alone = abs(alone.p50[i] / STEP - truth) / (truth - col)
    assert err < 0.2
    assert err < err_alone


def test_trailing_max_is_the_envelope() -> None:
    from vigil.models.trend import trailing_max

    rng = np.random.default_rng(0)
    y = rng.normal(size=(2, 60))
    y[0, 10:14] = np.nan  # a gap shorter than every width tried
    for width in (5, 16, 17):
        got = trailing_max(y, width)
        want = np.array([[np.nanmax(r[max(0, t - width + 1):t + 1]) for t in range(60)]
                         for r in y])
        np.testing.assert_allclose(got, want)
