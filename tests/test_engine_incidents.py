"""The default detector finds every kind of incident the simulator injects (anomaly level)."""

from pathlib import Path

import pytest

from vigil.engine.backtest import BacktestConfig, backtest_store
from vigil.ingest import ingest_files
from vigil.models.defaults import default_factory
from vigil.simulate import INCIDENT_KINDS, simulate_fleet
from vigil.store import Store


@pytest.mark.slow
def test_every_incident_kind_is_detected(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    simulate_fleet(fleet, sites=2, services=3, pods=3, days=14, seed=7)
    store = Store(tmp_path / "store")
    ingest_files(store, "t", sorted((fleet / "samples").glob("*")))
    summary = backtest_store(store, "t", tmp_path / "bt", default_factory(),
                             config=BacktestConfig(workers=1), truth=fleet / "truth.json")
    per_kind = summary["truth"]["per_kind"]
    assert set(per_kind) == set(INCIDENT_KINDS)
    for kind, row in per_kind.items():
        assert row["recall"] == 1.0, (kind, row)
    # and the default operating point keeps lone false intervals rare
    assert summary["truth"]["false_alerts_per_1000_series_days"] < 100
