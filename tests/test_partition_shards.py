"""No partition cliffs: a giant placement group (one node-exporter job, only ``instance`` to tell
its series apart) is sharded; results do not depend on the number of partitions or workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from vigil.engine import partition, stream
from vigil.engine.backtest import BacktestConfig
from vigil.engine.detect import detect_store
from vigil.models.defaults import default_factory
from vigil.series import labels_json, series_id
from vigil.store import Store

HOUR = 3_600_000
START = 1_772_409_600_000
N, T = 1200, 4 * 24


def _giant_job(tmp_path: Path, name: str) -> Store:
    rng = np.random.default_rng(4)
    t = np.arange(T)
    labels = [{"__name__": "node_load1", "job": "node", "instance": f"10.0.{i // 250}.{i % 250}"}
              for i in range(N)]
    values = (5 + 2 * np.sin(2 * np.pi * t / 24)[None, :] * rng.uniform(0.5, 1.5, (N, 1))
              + rng.normal(0, 0.3, (N, T)))
    values[:7, 80:90] += 6.0  # a few instances overloaded: decisions to replay
    ids = np.array([series_id(ls) for ls in labels], dtype=np.int64)
    store = Store(tmp_path / name)
    store.append("t", pa.table({"series_id": np.repeat(ids, T),
                                "timestamp": np.tile(START + HOUR * t, N),
                                "value": values.ravel()}),
                 pa.table({"series_id": ids, "labels": [labels_json(ls) for ls in labels]}))
    return store


def test_a_giant_peer_group_is_sharded_and_results_do_not_depend_on_partitions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(partition, "MAX_PLACEMENT_SERIES", 500)
    monkeypatch.setattr(stream, "placement_shards",
                        lambda ls, keys: partition.placement_shards(ls, keys, 500))
    sizes: list[int] = []
    real = stream.run_job

    def spy(job, factory):  # in-process runs only (workers=1): partition sizes
        sizes.append(len(job.series_ids))
        return real(job, factory)

    runs = []
    for name, parts, workers in (("one", 1, 1), ("seven", 7, 1), ("seven2", 7, 2)):
        store = _giant_job(tmp_path, name)
        if workers == 1:
            monkeypatch.setattr(stream, "run_job", spy)
        else:
            monkeypatch.setattr(stream, "run_job", real)
        cfg = BacktestConfig(warmup="2d", fit_window="14d", forecast_every="0",
                             partitions=parts, workers=workers)
        detect_store(store, "t", default_factory(), config=cfg)
        runs.append(store)
    # three shards of about 400 series: with 7 partitions no partition holds the whole job
    assert max(sizes[1:]) < N and sum(sizes[1:]) == N, sizes
    tables = [s.read_table("t", "scores").sort_by([("series_id", "ascending"),
                                                  ("timestamp", "ascending")]) for s in runs]
    for other in tables[1:]:
        for col in ("expected", "lower", "upper", "anomaly_score", "p_value"):
            np.testing.assert_array_equal(tables[0][col].to_numpy(), other[col].to_numpy())
    anomalies = runs[1].read_table("t", "anomalies")
    assert anomalies is not None and anomalies.num_rows >= 5
    from vigil.ledger.replay import replay_many

    results = [r for r in replay_many(runs[1], "t") if r["kind"] == "anomaly"]
    assert results and all(r["status"] == "match" for r in results), results[:2]
