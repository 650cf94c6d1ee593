"""The store-backed replay: partitions load themselves, results do not depend on the split."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vigil.engine.backtest import BacktestConfig, backtest_store, replay_config, tenant_grid
from vigil.engine.stream import PartitionJob, run_job
from vigil.ingest import ingest_files
from vigil.models.defaults import default_factory
from vigil.simulate import simulate_fleet
from vigil.store import Store

CFG = {"warmup": "1d", "refit_every": "1d", "fit_window": "3d"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("stream")
    simulate_fleet(root / "fleet", sites=1, services=2, pods=3, days=4, seed=5)
    st = Store(root / "store")
    ingest_files(st, "t", sorted((root / "fleet" / "samples").glob("*")))
    return st


def _outputs(out: Path) -> tuple[str, str, np.ndarray, np.ndarray]:
    scores = pq.read_table(out / "scores.parquet").sort_by(
        [("series_id", "ascending"), ("timestamp", "ascending")])
    cols = [scores.column(c).to_numpy().astype(np.float64) for c in
            ("value", "expected", "lower", "upper", "anomaly_score", "p_value")]
    keys = np.vstack([scores.column("series_id").to_numpy(),
                      scores.column("timestamp").cast("int64").to_numpy()])
    return ((out / "anomalies.json").read_text(), (out / "exhaustion.json").read_text(),
            keys, np.vstack(cols))


@pytest.mark.slow
def test_same_outputs_whatever_the_split(store: Store, tmp_path: Path) -> None:
    one = backtest_store(store, "t", tmp_path / "a", default_factory(),
                         config=BacktestConfig(**CFG, partitions=1, workers=1))
    many = backtest_store(store, "t", tmp_path / "b", default_factory(),
                          config=BacktestConfig(**CFG, partitions=7, workers=2))
    assert one["series"] == many["series"] > 0
    assert one["score_rows"] == many["score_rows"] > 0
    a, b = _outputs(tmp_path / "a"), _outputs(tmp_path / "b")
    assert a[:2] == b[:2]  # anomalies.json and exhaustion.json byte for byte
    np.testing.assert_array_equal(a[2], b[2])  # the same (series, timestamp) rows
    np.testing.assert_array_equal(a[3], b[3])  # every score, bit for bit (NaN == NaN)
    assert not (tmp_path / "b" / "scores.parts").exists()
    assert json.loads((tmp_path / "a" / "insights.json").read_text()) == json.loads(
        (tmp_path / "b" / "insights.json").read_text())


def test_a_job_loads_only_its_partition(store: Store, tmp_path: Path) -> None:
    start, end, step = tenant_grid(store, "t", None)
    ids = np.sort(store.catalog("t").column("series_id").to_numpy())[:5]
    job = PartitionJob(str(store.root), "t", ids, start, end, step,
                       replay_config(BacktestConfig(**CFG), step), keep_from=0,
                       merge_gap_steps=3, scores_path=str(tmp_path / "p.parquet"))
    result = run_job(job, default_factory())
    assert result.n_series == 5
    written = pq.read_table(tmp_path / "p.parquet")
    assert set(written.column("series_id").to_pylist()) <= set(ids.tolist())
    assert {a["series_id"] for a in result.anomalies} <= set(ids.tolist())
