"""Metric types and derived series: counters as rates, histograms as quantiles (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil import metrictypes as mt
from vigil.engine.backtest import BacktestConfig
from vigil.engine.detect import detect_store
from vigil.models.defaults import default_factory
from vigil.series import labels_json, series_id
from vigil.store import Store

STEP = 300_000
START = 1_772_409_600_000  # a Monday, 00:00 UTC
DAY = 86_400_000


def _plan(label_sets, declared=None):
    ids = np.array([series_id(ls) for ls in label_sets], dtype=np.int64)
    return mt.plan_views(ids, label_sets, declared), ids


def _kind(label_sets, i, declared=None):
    plan, _ = _plan(label_sets, declared)
    return plan.type[i], plan.role[i]


def test_types_from_prometheus_naming():
    sets = [
        {"__name__": "http_requests_total", "pod": "a"},
        {"__name__": "rpc_seconds_bucket", "le": "0.1"},
        {"__name__": "rpc_seconds_bucket", "le": "+Inf"},
        {"__name__": "rpc_seconds_count"},
        {"__name__": "rpc_seconds_sum"},
        {"__name__": "gc_seconds", "quantile": "0.99"},
        {"__name__": "gc_seconds_count"},
        {"__name__": "gc_seconds_sum"},
        {"__name__": "build_info", "version": "1"},
        {"__name__": "http_requests_created"},
        {"__name__": "jobs_completed_count"},  # no histogram or summary beside it
        {"__name__": "memory_bytes"},
    ]
    plan, _ = _plan(sets)
    got = list(zip(plan.type.tolist(), plan.role.tolist(), strict=True))
    assert got == [
        ("counter", "source"), ("histogram", "source"), ("histogram", "source"),
        ("histogram", "source"), ("histogram", "ignored"), ("summary", "scored"),
        ("summary", "source"), ("summary", "ignored"), ("info", "ignored"),
        ("counter", "ignored"), ("gauge", "scored"), ("gauge", "scored"),
    ]
    # views: a rate for the counter and for both _count series, 3 quantiles of the histogram
    kinds = sorted(plan.view_kind)
    assert kinds == ["p50", "p90", "p99", "rate", "rate", "rate"]
    rate = plan.view_labels[plan.view_kind.index("rate")]
    assert rate[mt.VIEW_LABEL] == "rate"
    p99 = plan.view_labels[plan.view_kind.index("p99")]
    assert p99 == {"__name__": "rpc_seconds", "vigil_view": "p99"}
    assert plan.view_ids[plan.view_kind.index("p99")] == series_id(p99)


def test_declared_types_win_over_naming():
    sets = [{"__name__": "jobs_completed_count"}, {"__name__": "weird_total"}]
    assert _kind(sets, 0, {"jobs_completed_count": "counter"}) == ("counter", "source")
    assert _kind(sets, 1, {"weird": "gauge"}) == ("gauge", "scored")
    with pytest.raises(ValueError, match="metric type 'histo' for 'x' is invalid"):
        mt.check_type("x", "histo")


def test_filesystem_used_is_size_minus_avail():
    fs = {"instance": "n1", "device": "/dev/sda1", "mountpoint": "/"}
    sets = [{"__name__": "node_filesystem_size_bytes", **fs},
            {"__name__": "node_filesystem_avail_bytes", **fs},
            {"__name__": "node_filesystem_avail_bytes", **fs, "mountpoint": "/data"}]
    plan, ids = _plan(sets)
    assert list(plan.view_kind) == ["used"]
    assert plan.view_labels[0] == {**sets[0], "vigil_view": "used"}
    src = np.array(ids[:2])
    order = np.argsort(src)
    vals = np.array([[100.0, 100, 100], [60.0, 50, 40]])[order]
    np.testing.assert_array_equal(
        mt.view_values(plan, np.array([0]), src[order], vals, 60_000)[0], [40, 50, 60])


def test_rates_follow_prometheus_reset_rule():
    v = np.array([[10.0, 20.0, np.nan, 50.0, 5.0, 7.0]])
    r = mt.rates(v, 60_000)
    # 10/60 per s; 30 over two steps; a reset: the increase is the new value (5)
    np.testing.assert_allclose(r[0], [np.nan, 10 / 60, np.nan, 30 / 120, 5 / 60, 2 / 60])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=2, max_size=60),
       st.sets(st.integers(1, 59), max_size=4))
def test_rate_of_a_counter_with_restarts_recovers_its_increments(incs, restarts):
    """A counter of non-negative increments whose process restarts (the counter starts again
    from the increment counted since): the rate times the step is the increment at every step,
    restarts included, unless a restart's first value is above the value before it (then no
    reader can see the reset; Prometheus has the same limit)."""
    inc = np.array(incs)
    counter = np.empty(len(inc))
    for t, x in enumerate(inc):
        counter[t] = x if t in restarts or t == 0 else counter[t - 1] + x
    got = mt.rates(counter[None, :], 1000)[0]
    assert np.isnan(got[0])
    for t in range(1, len(inc)):
        visible = t not in restarts or counter[t] < counter[t - 1]
        if visible:
            assert got[t] == pytest.approx(inc[t], rel=1e-9, abs=1e-6)
        assert got[t] >= 0


def test_histogram_quantile_interpolates_like_prometheus():
    les = np.array([0.1, 0.5, 1.0, np.inf])
    # increases per step of cumulative buckets: 10 under 0.1, 30 under 0.5, 40 under 1, 40 total
    inc = np.array([[10.0, 0.0], [30.0, 0.0], [40.0, 0.0], [40.0, 0.0]])
    q50 = mt.bucket_quantiles(0.5, les, inc)
    # rank 20: in (0.1, 0.5], 10 below, 20 inside -> 0.1 + 0.4 * 10 / 20
    assert q50[0] == pytest.approx(0.3)
    assert np.isnan(q50[1])  # no observation in that step
    q99 = mt.bucket_quantiles(0.99, les, inc)
    assert q99[0] == pytest.approx(0.5 + 0.5 * (39.6 - 30) / 10)
    # all in +Inf: the highest finite bound
    assert mt.bucket_quantiles(0.9, les, np.array([[0.0], [0.0], [0.0], [5.0]]))[0] == 1.0


# ------------------------------------------------------------------ end to end


def _cumulative(rng, rate_per_s, restart_at=None):
    inc = rng.poisson(rate_per_s * STEP / 1000).astype(float)
    c = np.cumsum(inc)
    if restart_at is not None:
        c[restart_at:] -= c[restart_at - 1]  # the process restarted: the counter began at 0
    return c


def _daily(t):
    return 1.0 + 0.5 * np.sin(2 * np.pi * (t % 288) / 288)


def _store_with(tmp_path, series):
    """Store a dict labels-json -> values [T] at 5-minute steps."""
    st_ = Store(tmp_path / "store")
    ids, labs, tss, vals = [], [], [], []
    for text, v in series.items():
        lab = json.loads(text)
        sid = series_id(lab)
        ok = ~np.isnan(v)
        ids.append(np.full(int(ok.sum()), sid, dtype=np.int64))
        tss.append(START + STEP * np.flatnonzero(ok))
        vals.append(v[ok])
        labs.append((sid, labels_json(lab)))
    long = pa.table({"series_id": np.concatenate(ids), "timestamp": np.concatenate(tss),
                     "value": np.concatenate(vals)})
    cat = pa.table({"series_id": [s for s, _ in labs], "labels": [t for _, t in labs]})
    st_.append("t", long, cat)
    return st_


def _detect(store):
    cfg = BacktestConfig(warmup="4d", fit_window="14d", forecast_every="0")
    return detect_store(store, "t", default_factory(), config=cfg, ledger=False)


def _insights(store):
    table = store.read_table("t", "insights")
    return [] if table is None else table.to_pylist()


def test_counters_are_scored_as_rates_restarts_are_quiet_drops_open_insights(tmp_path: Path):
    rng = np.random.default_rng(3)
    n = 6 * 288
    t = np.arange(n)
    series = {}
    restart = 5 * 288 + 40
    drop = slice(5 * 288 + 150, 5 * 288 + 186)  # 3 h at 15 % of the traffic
    for pod in ("a", "b", "c"):
        rate = 40 * _daily(t)
        lab = {"__name__": "http_requests_total", "namespace": "shop", "service": "cart",
               "pod": f"cart-{pod}"}
        series[json.dumps(lab)] = _cumulative(rng, rate, restart if pod == "a" else None)
        lab2 = {"__name__": "orders_processed_total", "namespace": "shop", "service": "orders",
                "pod": f"orders-{pod}"}
        r2 = 30 * _daily(t)
        r2[drop] *= 0.15
        series[json.dumps(lab2)] = _cumulative(rng, r2)
    store = _store_with(tmp_path, series)
    plan = store.view_plan("t")
    assert sorted(set(plan.view_kind)) == ["rate"] and len(plan.view_ids) == 6
    modelled = store.modelled_catalog("t")
    assert all('"vigil_view":"rate"' in x for x in modelled["labels"].to_pylist())
    _detect(store)
    anomalies = store.read_table("t", "anomalies")
    rows = [] if anomalies is None else anomalies.to_pylist()
    # every scored series is a rate view; the raw counters are never scored
    scores = store.read_table("t", "scores")
    assert set(scores["series_id"].to_pylist()) <= set(plan.view_ids.tolist())
    # the restart of pod a: no anomaly on its rate there
    a_rate = series_id({"__name__": "http_requests_total", "namespace": "shop",
                        "service": "cart", "pod": "cart-a", "vigil_view": "rate"})
    t_restart = START + restart * STEP
    assert not [r for r in rows if r["series_id"] == a_rate
                and r["start"] <= t_restart + 3 * STEP and r["end"] >= t_restart - 3 * STEP]
    # the traffic drop opens an insight that names the counter and its view
    t0, t1 = START + drop.start * STEP, START + drop.stop * STEP
    hits = [i for i in _insights(store) if i["start"] <= t1 and (i["end"] or t1) >= t0]
    assert hits, "the 3-hour drop of orders_processed_total opened no insight"
    text = json.dumps(hits[0])
    assert "orders_processed_total" in text and "rate" in text
    cart = [i for i in _insights(store) if "cart" in json.dumps(i.get("series", i))]
    assert not cart, "the restart of a pod opened an insight"


def _histogram(rng, n, median_s, regress=None, factor=1.0):
    les = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, np.inf]
    counts = np.zeros((len(les), n))
    med = np.full(n, median_s)
    if regress is not None:
        med[regress] *= factor
    per_step = rng.poisson(200, n)
    for k in range(n):
        lat = rng.lognormal(np.log(med[k]), 0.5, per_step[k])
        counts[:, k] = [(lat <= le).sum() for le in les]
    return les, np.cumsum(counts, axis=1)


def test_a_latency_regression_seen_only_in_buckets_opens_an_insight(tmp_path: Path):
    rng = np.random.default_rng(5)
    n = 6 * 288
    regress = slice(5 * 288 + 100, 5 * 288 + 148)  # 4 h at five times the latency
    series = {}
    for pod in ("a", "b"):
        les, cum = _histogram(rng, n, 0.08, regress if pod == "a" else None, 5.0)
        for le, row in zip(les, cum, strict=True):
            lab = {"__name__": "http_request_duration_seconds_bucket", "namespace": "shop",
                   "service": "api", "pod": f"api-{pod}",
                   "le": "+Inf" if np.isinf(le) else repr(le)}
            series[json.dumps(lab)] = row
        base = {"namespace": "shop", "service": "api", "pod": f"api-{pod}"}
        series[json.dumps({**base, "__name__": "http_request_duration_seconds_count"})] = cum[-1]
        series[json.dumps({**base, "__name__": "http_request_duration_seconds_sum"})] = (
            np.cumsum(rng.random(n)))
    store = _store_with(tmp_path, series)
    plan = store.view_plan("t")
    assert sorted(plan.view_kind) == ["p50", "p50", "p90", "p90", "p99", "p99", "rate", "rate"]
    _detect(store)
    t0, t1 = START + regress.start * STEP, START + regress.stop * STEP
    hits = [i for i in _insights(store) if i["start"] <= t1 and (i["end"] or t1) >= t0]
    assert hits, "the latency regression opened no insight"
    text = json.dumps(hits[0])
    assert "http_request_duration_seconds" in text and "_bucket" not in text


# ------------------------------------------------------------------ where types come from


def test_remote_write_metadata_declares_types():
    from vigil.remote.decode import RemoteDecoder, RemoteLimits
    from vigil.remote.proto import WriteRequest

    req = WriteRequest()
    for name, kind in ((b"node_cpu_seconds_total", 1), (b"node_load1", 2),
                       (b"rpc_seconds", 3), (b"gc_seconds", 5), (b"odd", 99)):
        md = req.metadata.add()
        md.metric_family_name, md.type = name, kind
    batch = RemoteDecoder(RemoteLimits()).decode(req.SerializeToString(), compressed=False)
    assert batch.metadata == 5 and batch.n_samples == 0
    assert batch.types == {"node_cpu_seconds_total": "counter", "node_load1": "gauge",
                           "rpc_seconds": "histogram", "gc_seconds": "summary"}


def test_type_lines_of_a_csv_file_and_the_users_override(tmp_path: Path):
    from typer.testing import CliRunner

    from vigil.cli import app
    from vigil.ingest import ingest_files

    path = tmp_path / "a.csv"
    path.write_text("# HELP jobs_done_count Jobs done.\n# TYPE jobs_done_count counter\n"
                    "# TYPE odd_thing sausage\ntimestamp,__name__,pod,value\n"
                    "0,jobs_done_count,a,1\n60,jobs_done_count,a,5\nx,jobs_done_count,a,9\n")
    store = Store(tmp_path / "s")
    report = ingest_files(store, "t", [path])
    fr = report.files[0]
    assert fr.rows_written == 2 and fr.rows_skipped == 1
    assert fr.errors[0].line == 7  # comment lines count in the line numbers
    assert any("'sausage' for 'odd_thing' is invalid" in n for n in fr.notes)
    assert store.metric_types("t") == {"jobs_done_count": "counter"}
    assert list(store.view_plan("t").view_kind) == ["rate"]
    runner = CliRunner()
    res = runner.invoke(app, ["types", "set", "jobs_done_count", "gauge", "--store",
                              str(tmp_path / "s"), "--tenant", "t"])
    assert res.exit_code == 0, res.output
    assert store.metric_types("t") == {"jobs_done_count": "gauge"}
    assert len(store.view_plan("t").view_ids) == 0
    res = runner.invoke(app, ["types", "set", "jobs_done_count", "countr", "--store",
                              str(tmp_path / "s"), "--tenant", "t"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = runner.invoke(app, ["types", "list", "--format", "json", "--store",
                              str(tmp_path / "s"), "--tenant", "t"])
    assert res.exit_code == 0
    row = json.loads(res.output)[0]
    assert (row["metric"], row["type"], row["declared"], row["modelled"]) == (
        "jobs_done_count", "gauge", "gauge", "as is")


def test_a_leaking_container_is_forecast_against_its_kube_state_metrics_limit(tmp_path: Path):
    """cAdvisor's working set (job kubelet) and kube-state-metrics' limits (another job, other
    labels) meet in one partition; the leak is forecast against the KSM limit."""
    rng = np.random.default_rng(11)
    n = 5 * 288
    t = np.arange(n)
    limit = 512 * 2**20
    series = {}
    leak_from = 4 * 288
    for pod in ("a", "b", "c"):
        ctr = {"namespace": "shop", "pod": f"cart-{pod}", "container": "app"}
        ws = 200 * 2**20 + 5 * 2**20 * rng.standard_normal(n)
        if pod == "a":  # +1 MiB per 5 minutes from day 4: crosses 512 MiB about 26 h later
            ws[leak_from:] += 2**20 * (t[leak_from:] - leak_from)
        series[json.dumps({"__name__": "container_memory_working_set_bytes", "job": "kubelet",
                           "instance": "10.0.0.1:10250", **ctr})] = ws
        series[json.dumps({"__name__": "kube_pod_container_resource_limits",
                           "job": "kube-state-metrics", "instance": "10.0.0.9:8080",
                           "resource": "memory", "unit": "byte", **ctr})] = np.full(n, limit)
    store = _store_with(tmp_path, series)
    cfg = BacktestConfig(warmup="3d", fit_window="14d", forecast_every="1h", horizon="48h")
    detect_store(store, "t", default_factory(), config=cfg, until=START + n * STEP)
    ex = store.read_table("t", "exhaustion")
    assert ex is not None
    rows = [r for r in ex.to_pylist() if '"pod": "cart-a"' in r["labels"]
            and r["probability"] >= 0.5 and r["crossing_p50"] is not None]
    assert rows, "no exhaustion forecast for the leaking pod"
    last = max(rows, key=lambda r: r["evaluated_at"])
    assert last["limit"] == limit
    cross = START + (leak_from + (limit - 200 * 2**20) / 2**20) * STEP
    assert last["crossing_lo"] <= last["crossing_p50"] <= last["crossing_hi"]
    left = cross - last["evaluated_at"]
    assert abs(last["crossing_p50"] - cross) <= 0.3 * left, (last, cross)
    assert not [r for r in ex.to_pylist() if '"pod": "cart-b"' in r["labels"]
                and r["probability"] >= 0.5]
    proactive = [i for i in _insights(store) if i["kind"] == "proactive"]
    assert proactive and "cart-a" in proactive[0]["json"]
    # the exhaustion decisions replay bit for bit: their recorded input group holds the limit
    from vigil.ledger.replay import replay_many

    results = [r for r in replay_many(store, "t") if r["kind"] == "exhaustion"]
    assert results and all(r["status"] == "match" for r in results), results[:2]


def test_config_and_cli_take_metric_types_and_limit_pairs(tmp_path: Path):
    from typer.testing import CliRunner

    from vigil.cli import app
    from vigil.serve.config import ConfigError, validate_config

    cfg = validate_config({"metric_types": {"jobs_count": "Counter"},
                           "limit_pairs": [{"usage": "queue_depth", "limit": "queue_capacity",
                                            "on": ["queue"]}]})
    assert cfg.metric_types == {"jobs_count": "counter"}
    assert cfg.limit_pairs[0]["limit"] == "queue_capacity"
    with pytest.raises(ConfigError, match="metric type 'sausage'"):
        validate_config({"metric_types": {"x": "sausage"}})
    with pytest.raises(ConfigError, match="limit pair"):
        validate_config({"limit_pairs": [{"usage": "x"}]})
    bad = tmp_path / "pairs.yaml"
    bad.write_text("- {usage: x}\n")
    res = CliRunner().invoke(app, ["detect", "--store", str(tmp_path / "s"), "--limit-pairs",
                                   str(bad)])
    assert res.exit_code == 2 and "pairs.yaml" in res.output and "Traceback" not in res.output


def test_active_modelled_series_follow_their_sources(tmp_path: Path):
    """A view is active while one of its sources is; raw cumulative series never count."""
    labs = [{"__name__": "a_total", "pod": "x"}, {"__name__": "a_total", "pod": "y"},
            {"__name__": "g", "pod": "x"}, {"__name__": "h_bucket", "le": "1", "pod": "x"},
            {"__name__": "h_bucket", "le": "+Inf", "pod": "x"}]
    ids = np.array([series_id(ls) for ls in labs])
    now = 10_000_000
    store = Store(tmp_path / "s")
    store.append("t", pa.table({"series_id": ids, "value": np.ones(5),
                                "timestamp": [now, now - 5_000_000, now, now - 5_000_000, now]}),
                 pa.table({"series_id": ids, "labels": [labels_json(ls) for ls in labs]}))
    active = set(store.modelled_active_ids("t", now, 1_000_000).tolist())
    want = {series_id(labs[2]), series_id({**labs[0], "vigil_view": "rate"})} | {
        series_id({"__name__": "h", "pod": "x", "vigil_view": q}) for q in ("p50", "p90", "p99")}
    assert active == want


def test_time_range_comes_from_the_delta_log_and_matches_a_scan(tmp_path: Path):
    store = Store(tmp_path / "s")
    assert store.time_range("t") is None
    for k in range(3):  # three appends: three files with their own statistics
        lab = {"__name__": "g", "pod": str(k)}
        store.append("t", pa.table({"series_id": [series_id(lab)] * 2,
                                    "timestamp": [START + k * DAY, START + k * DAY + 7],
                                    "value": [1.0, 2.0]}),
                     pa.table({"series_id": [series_id(lab)], "labels": [labels_json(lab)]}))
    stats = store.stats("t")
    assert store.time_range("t") == (stats["min_timestamp"], stats["max_timestamp"]) == (
        START, START + 2 * DAY + 7)
