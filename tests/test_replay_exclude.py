"""Do-not-learn: excluded points are scored, but no fit and no online update learns them."""

import numpy as np
import pytest

from vigil.batch import SeriesBatch
from vigil.engine.replay import ReplayConfig, replay_partition
from vigil.models.defaults import default_factory

STEP = 300_000


def _batch() -> SeriesBatch:
    rng = np.random.default_rng(5)
    n, t = 6, 288 * 4
    day = np.sin(2 * np.pi * np.arange(t) / 288)
    values = 100 + 10 * day + rng.normal(0, 1, (n, t))
    values[:, 500:600] += 25.0  # a maintenance window with a different level
    labels = [{"__name__": "rps", "service": "api", "pod": f"p{i}"} for i in range(n)]
    return SeriesBatch(np.arange(n, dtype=np.int64), 0, STEP, values, labels)


def test_excluded_points_are_scored_but_not_learnt() -> None:
    batch = _batch()
    cfg = ReplayConfig(warmup_steps=288, refit_every_steps=144, fit_window_steps=576)
    exclude = np.zeros(batch.values.shape, dtype=bool)
    exclude[:2, 500:600] = True  # the rule covers two of the six pods
    scored, _, _ = replay_partition(batch, cfg, default_factory(), exclude=exclude)
    masked = SeriesBatch(batch.series_ids, batch.start, batch.step,
                         np.where(exclude, np.nan, batch.values), batch.labels)
    gap, _, _ = replay_partition(masked, cfg, default_factory())
    # inside the window the excluded points are scored from their real values...
    assert np.isfinite(scored.expected[:2, 500:600]).all()
    assert (scored.anomaly_score[:2, 500:600] > 1).any()
    # ...while every later score is exactly that of a replay that never saw them
    for name in ("expected", "lower", "upper", "anomaly_score", "p_value"):
        np.testing.assert_array_equal(getattr(scored, name)[:, 600:],
                                      getattr(gap, name)[:, 600:], err_msg=name)
    # and nothing before the window changed
    plain, _, _ = replay_partition(batch, cfg, default_factory())
    np.testing.assert_array_equal(scored.anomaly_score[:, :500], plain.anomaly_score[:, :500])


def test_exclude_shape_is_checked() -> None:
    batch = _batch()
    cfg = ReplayConfig(warmup_steps=288, refit_every_steps=144, fit_window_steps=576)
    with pytest.raises(ValueError, match="exclude has shape"):
        replay_partition(batch, cfg, default_factory(), exclude=np.zeros((1, 1), dtype=bool))


def test_do_not_learn_rules_in_the_store_become_the_mask(tmp_path) -> None:
    from vigil.engine.backtest import do_not_learn_mask
    from vigil.insights.persist import write_suppressions
    from vigil.store import Store

    store = Store(tmp_path / "store")
    batch = _batch()
    assert do_not_learn_mask(store, "t", batch) is None
    write_suppressions(store, "t", [
        {"id": "maint", "selector": '{pod=~"p0|p1"}', "mute": False, "do_not_learn": True,
         "start": "1970-01-02T17:40:00Z", "end": "1970-01-03T02:00:00Z"},
        {"id": "quiet", "selector": '{pod="p2"}', "mute": True, "do_not_learn": False},
    ])
    mask = do_not_learn_mask(store, "t", batch)
    assert mask is not None
    assert mask[:2, 500:600].all() and not mask[2:].any()
    assert mask.sum() == 2 * 100
