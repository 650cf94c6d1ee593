"""Engine: bit-identical results across workers and partitions, causality of the replay,
exhaustion forecasts, and detect continuing from its cursor."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from vigil.batch import SeriesBatch
from vigil.engine.backtest import BacktestConfig, backtest_batch
from vigil.engine.detect import detect_store, read_cursor
from vigil.engine.partition import group_ids, partition_of
from vigil.engine.replay import ReplayConfig, replay_partition
from vigil.models.defaults import default_factory
from vigil.series import labels_json, series_id
from vigil.store import Store

STEP = 300_000
START = 1_767_225_600_000


def fleet_batch(n_pods: int = 4, steps: int = 864, seed: int = 0) -> SeriesBatch:
    rng = np.random.default_rng(seed)
    labels = []
    for svc in ("cart", "web"):
        for metric in ("cpu_usage", "container_memory_working_set_bytes",
                       "container_memory_limit_bytes"):
            for p in range(n_pods):
                labels.append({"__name__": metric, "service": svc, "pod": f"{svc}-{p}",
                               "site": "s1"})
    t = np.arange(steps)
    day = np.sin(2 * np.pi * t / 288)
    values = np.empty((len(labels), steps))
    for i, ls in enumerate(labels):
        if ls["__name__"] == "container_memory_limit_bytes":
            values[i] = 1000.0
        elif ls["__name__"] == "container_memory_working_set_bytes":
            values[i] = 400 + 20 * day + rng.normal(0, 5, steps)
        else:
            values[i] = 10 + 3 * day + rng.normal(0, 0.5, steps)
    values[3, 600:] = 40.0  # one pod stuck far above its replicas
    leak = labels.index({"__name__": "container_memory_working_set_bytes", "service": "web",
                         "pod": "web-1", "site": "s1"})
    values[leak, 576:] += np.arange(steps - 576) * 2.0  # leak: crosses 1000 ~300 steps later
    values[5, 100:130] = np.nan  # a gap
    ids = np.array([series_id(ls) for ls in labels], dtype=np.int64)
    return SeriesBatch(ids, START, STEP, values, labels)


CONFIG = BacktestConfig(warmup="1d", refit_every="12h", fit_window="2d", forecast_every="2h",
                        horizon="24h", trend_window="6h")


@pytest.fixture(scope="module")
def reference():
    batch = fleet_batch()
    return batch, backtest_batch(batch, CONFIG, default_factory())


def _same(a, b):
    for name in ("expected", "lower", "upper", "p_value", "anomaly_score", "warming_up"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize(("workers", "partitions"), [(1, 1), (2, 3), (2, 16)])
def test_bit_identical_across_workers_and_partitions(reference, workers, partitions):
    batch, (scores, exhaustion) = reference
    cfg = BacktestConfig(**{**CONFIG.__dict__, "workers": workers, "partitions": partitions})
    other, other_ex = backtest_batch(batch, cfg, default_factory())
    _same(scores, other)
    for name in ("col", "row", "probability", "p50", "lo", "hi"):
        np.testing.assert_array_equal(getattr(exhaustion, name), getattr(other_ex, name))


def test_stuck_pod_flagged_and_leak_forecast(reference):
    batch, (scores, exhaustion) = reference
    assert (scores.anomaly_score[3, 610:700] > 1).mean() > 0.8
    leak_row = next(i for i, ls in enumerate(batch.labels)
                if ls["pod"] == "web-1" and "working_set" in ls["__name__"])
    mine = exhaustion.row == leak_row
    assert mine.any()
    risky = mine & (exhaustion.probability >= 0.5)
    assert risky.any(), "the leak must be forecast to cross its limit"
    true_cross = START + (576 + 300) * STEP
    last = np.flatnonzero(risky)[-1]
    assert abs(exhaustion.p50[last] - true_cross) < 6 * 3_600_000


def test_replay_is_causal():
    batch = fleet_batch(n_pods=3, steps=700)
    cfg = ReplayConfig(warmup_steps=288, refit_every_steps=144, fit_window_steps=576)
    base, _, _ = replay_partition(batch, cfg, default_factory())
    changed = batch.values.copy()
    changed[:, 500:] = changed[:, 500:] * 3 + 7
    other, _, _ = replay_partition(
        SeriesBatch(batch.series_ids, batch.start, batch.step, changed, batch.labels), cfg,
        default_factory())
    for name in ("expected", "lower", "upper", "p_value", "anomaly_score"):
        np.testing.assert_array_equal(getattr(base, name)[:, :500], getattr(other, name)[:, :500])
    assert not np.array_equal(base.anomaly_score[:, 500:], other.anomaly_score[:, 500:])


def test_peer_groups_stay_in_one_partition():
    batch = fleet_batch()
    groups = group_ids(batch.labels)
    part = partition_of(groups, 7)
    for g in np.unique(groups):
        assert len(np.unique(part[groups == g])) == 1
    with pytest.raises(ValueError, match="n_partitions=0 is invalid"):
        partition_of(groups, 0)


def test_detect_continues_from_its_cursor(tmp_path: Path):
    batch = fleet_batch(n_pods=2, steps=700)
    long = batch.to_long()
    store = Store(tmp_path / "store")
    catalog = pa.table({"series_id": batch.series_ids,
                        "labels": [labels_json(ls) for ls in batch.labels]})
    first_half = long.filter(pa.compute.less(long["timestamp"], START + 500 * STEP))
    store.append("t", first_half, catalog)
    cfg = BacktestConfig(warmup="1d", fit_window="2d", refit_every="12h", forecast_every="0")
    one = detect_store(store, "t", default_factory(), config=cfg)
    assert one["steps"] == 500 - 288
    assert read_cursor(store, "t")["end"] == START + 500 * STEP
    again = detect_store(store, "t", default_factory(), config=cfg)
    assert again["steps"] == 0
    store.append("t", long.filter(pa.compute.greater_equal(long["timestamp"],
                                                           START + 500 * STEP)), catalog)
    two = detect_store(store, "t", default_factory(), config=cfg)
    assert two["steps"] == 200
    scores = store.read_table("t", "scores")
    assert scores.num_rows == pytest.approx(len(batch.labels) * (700 - 288), rel=0.01)


def _scores_by_key(store: Store) -> pa.Table:
    t = store.read_table("t", "scores")
    return t.sort_by([("series_id", "ascending"), ("timestamp", "ascending")])


def test_detect_continues_saved_models_bit_identically(tmp_path: Path):
    """Three runs that keep their models (fit once, then continue the state) score exactly
    like one run over the same span: the state saved between runs loses nothing."""
    batch = fleet_batch(n_pods=2, steps=700)
    long = batch.to_long()
    catalog = pa.table({"series_id": batch.series_ids,
                        "labels": [labels_json(ls) for ls in batch.labels]})
    cfg = BacktestConfig(warmup="1d", fit_window="2d", refit_every="30d", forecast_every="0")
    live = Store(tmp_path / "live")
    live.append("t", long, catalog)
    models = tmp_path / "models"
    runs = [detect_store(live, "t", default_factory(), config=cfg, until=START + k * STEP,
                         models_root=models, fit_every="7d") for k in (400, 600, 700)]
    assert [r["refit"] for r in runs] == [True, False, False]
    once = Store(tmp_path / "once")
    once.append("t", long, catalog)
    detect_store(once, "t", default_factory(), config=cfg)
    a, b = _scores_by_key(live), _scores_by_key(once)
    assert a.num_rows == b.num_rows == len(batch.labels) * (700 - 288)
    for name in ("expected", "lower", "upper", "anomaly_score", "p_value"):
        np.testing.assert_array_equal(a[name].to_numpy(), b[name].to_numpy(), err_msg=name)


def test_saved_models_are_refit_when_due_or_when_series_change(tmp_path: Path):
    batch = fleet_batch(n_pods=2, steps=700)
    long = batch.to_long()
    labels = [labels_json(ls) for ls in batch.labels]
    keep = np.arange(len(labels)) != 0  # series 0 appears later
    store = Store(tmp_path / "s")
    store.append("t", long.filter(pa.compute.is_in(long["series_id"],
                                                    pa.array(batch.series_ids[keep]))),
                 pa.table({"series_id": batch.series_ids[keep],
                           "labels": [s for s, k in zip(labels, keep, strict=True) if k]}))
    cfg = BacktestConfig(warmup="1d", fit_window="2d", refit_every="30d", forecast_every="0")
    models = tmp_path / "models"

    def run(k: int, every: str = "1d") -> bool:
        return bool(detect_store(store, "t", default_factory(), config=cfg, until=START + k * STEP,
                                 models_root=models, fit_every=every)["refit"])

    assert run(350) is True  # first run: fitted on the columns before 288
    assert run(400) is False  # 62 steps (5 h) after that fit: continued
    assert run(450, every="2h") is True  # 112 steps (9 h) after it: due
    assert run(500) is False
    store.append("t", long.filter(pa.compute.equal(long["series_id"], batch.series_ids[0])),
                 pa.table({"series_id": batch.series_ids[:1], "labels": labels[:1]}))
    assert run(550) is True  # a new series: refit so it has a row
    assert run(600) is False
