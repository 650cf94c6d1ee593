"""Replay reproduces every decision of a backtest; altered inputs are named; explain works."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from vigil.engine.backtest import BacktestConfig, backtest_store
from vigil.events import import_events
from vigil.ingest import ingest_files
from vigil.insights.persist import add_feedback, load_insights, write_suppressions
from vigil.ledger import api, chain
from vigil.ledger.replay import replay_decision, replay_many
from vigil.models.defaults import default_factory
from vigil.simulate import simulate_fleet
from vigil.store import Store

CFG = BacktestConfig(warmup="1d", refit_every="1d", fit_window="3d", partitions=3, workers=1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("ledger_replay")
    simulate_fleet(root / "fleet", sites=1, services=2, pods=3, days=4, seed=5)
    st = Store(root / "store")
    ingest_files(st, "t", sorted((root / "fleet" / "samples").glob("*")))
    import_events(st, "t", root / "fleet" / "events.jsonl")
    write_suppressions(st, "t", [{"id": "quiet", "selector": '{pod="none"}', "mute": True}])
    backtest_store(st, "t", root / "out", default_factory(), config=CFG)
    return st


@pytest.mark.slow
def test_replay_reproduces_every_decision_of_a_backtest(store: Store) -> None:
    assert chain.verify(store, "t").ok
    results = replay_many(store, "t")
    kinds = Counter((r["kind"], r["status"]) for r in results)
    assert kinds[("anomaly", "match")] > 20
    assert kinds[("exhaustion", "match")] > 0
    assert kinds[("insight", "match")] > 0
    assert kinds[("suppression", "not replayable")] == 1
    bad = [r for r in results if r["status"] not in ("match", "not replayable")]
    assert not bad, bad[:3]


@pytest.mark.slow
def test_explain_and_api_of_an_insight(store: Store) -> None:
    ins = next(i for i in load_insights(store, "t") if i.kind == "reactive" and i.events)
    ex = api.explain(store, "t", ins.id)
    assert ex["insight"]["id"] == ins.id
    assert ex["members_total"] == len({(a.series_id, a.start) for a in ins.anomalies})
    member = ex["members"][0]
    assert member["kind"] == "anomaly"
    assert {"expected", "lower", "upper", "p_value", "anomaly_score"} <= set(
        member["outputs"]["peak"])
    assert member["thresholds"]["alarm"]["ensemble"]["alarm_rate"] == 1e-4
    assert ex["events_considered"][0]["event_id"] == ins.events[0].event_id
    assert ins.events[0].event_id in ex["why_top_cause"]
    add_feedback(store, "t", ins.id, "true_positive", "checked", time_ms=1)
    fb = chain.read_records(store, "t", kinds=["feedback"]).to_pylist()
    assert json.loads(fb[-1]["body"])["insight_id"] == ins.id
    assert replay_decision(store, "t", fb[-1]["id"])["status"] == "not replayable"
    assert chain.verify(store, "t").ok


@pytest.mark.slow
def test_replay_says_when_the_input_data_was_altered(store: Store, tmp_path: Path) -> None:
    rec = next(json.loads(b) | {"id": i} for b, i in zip(
        *(chain.read_records(store, "t", kinds=["anomaly"]).column(c).to_pylist()
          for c in ("body", "id")), strict=True))
    sid = int(rec["series"]["id"])
    when = rec["outputs"]["start"]
    old = store.select("t", None, when - 3_600_000, when + 3_600_000)
    ts = old.filter(pa.compute.equal(old.column("series_id"), sid)).column(
        "timestamp").to_numpy()[0]
    labels = store.catalog("t").filter(pa.compute.equal(store.catalog("t").column(
        "series_id"), sid)).column("labels").to_pylist()[0]
    store.append("t", pa.table({"series_id": [sid], "timestamp": [int(ts)],
                                "value": [np.float64(123456.0)]}),
                 pa.table({"series_id": [sid], "labels": [labels]}))
    res = replay_decision(store, "t", rec["id"])
    assert res["status"] == "inputs changed"
    assert "the input data changed" in res["messages"][0]
    assert "altered or added after the decision" in res["messages"][0]


@pytest.mark.slow
def test_decisions_of_continued_models_replay_too(tmp_path: Path) -> None:
    """`vigil serve` continues kept models tick after tick; each decision records where its
    model was fitted, and replay refits there and continues it to the decision bit for bit."""
    from vigil.engine.detect import detect_store

    simulate_fleet(tmp_path / "fleet", sites=1, services=2, pods=3, days=4, seed=5)
    st = Store(tmp_path / "store")
    ingest_files(st, "t", sorted((tmp_path / "fleet" / "samples").glob("*")))
    stats = st.stats("t")
    first = stats["min_timestamp"] - stats["min_timestamp"] % 300_000
    cfg = BacktestConfig(warmup="1d", refit_every="7d", fit_window="3d", partitions=3,
                         workers=1)
    runs = [detect_store(st, "t", default_factory(), config=cfg, models_root=tmp_path / "m",
                         fit_every="7d", until=first + hours * 3_600_000)
            for hours in (30, 54, 78, 96)]
    # the first run fits; the next continue (a pod that stopped reporting changes its
    # partition's rows, which makes that partition, and the run after, fit again)
    assert runs[0]["refit"] and not runs[1]["refit"]
    from vigil.ledger.capture import input_record_body

    rows = chain.read_records(st, "t", ["id", "body"]).to_pylist()
    continued = {r["id"] for r in rows if json.loads(r["body"])["kind"] in
                 ("anomaly", "exhaustion")
                 and input_record_body(json.loads(r["body"]), st, "t").get("continued_model")}
    assert len(continued) > 5
    results = [r for r in replay_many(st, "t") if r["id"] in continued]
    statuses = Counter(r["status"] for r in results)
    assert statuses == {"match": len(continued)}, [r for r in results
                                                   if r["status"] != "match"][:2]
