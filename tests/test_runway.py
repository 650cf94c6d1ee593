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
