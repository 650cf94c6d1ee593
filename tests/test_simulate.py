"""Fleet simulator: formats, determinism, and ground truth consistent with the data."""

from __future__ import annotations

import hashlib
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.batch import SeriesBatch, batch_from_long
from vigil.events import parse_event
from vigil.series import canonical_labels, series_id
from vigil.simulate import (
    DEFAULT_PODS,
    EVENT_KINDS,
    INCIDENT_KINDS,
    LABEL_COLUMNS,
    METRICS,
    SimulationSummary,
    simulate_fleet,
)
from vigil.simulate.events import Event, write_events
from vigil.simulate.fleet import build_topology
from vigil.simulate.grid import Grid, parse_start, rfc3339
from vigil.simulate.noise import random_runs
from vigil.simulate.overlays import _crossing
from vigil.simulate.writer import SampleWriter

SMALL: dict[str, Any] = {"sites": 2, "services": 3, "pods": 3, "days": 14, "seed": 7}
DAY = 288  # 5-minute steps per day
WEEK = 7 * DAY


def read_samples(root: Path, fmt: str) -> pa.Table:
    if fmt == "parquet":
        return pads.dataset(root, format="parquet").to_table()
    # label columns are text even when a whole file leaves them empty (node series)
    types = {c: pa.string() for c in ("metric", *LABEL_COLUMNS)}
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
    return pads.dataset(root, format=pads.CsvFileFormat(convert_options=options)).to_table()


class Fleet:
    """A simulated fleet read back: truth, events, and every series as one dense batch."""

    def __init__(self, out: Path, summary: SimulationSummary) -> None:
        self.out = out
        self.summary = summary
        self.truth = json.loads((out / "truth.json").read_text())
        self.events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
        table = read_samples(out / "samples", self.truth["params"]["fmt"])
        self.table = table
        df = table.to_pandas()
        key = df["metric"].astype(str)
        for c in ("metric", *LABEL_COLUMNS):
            df[c] = df[c].astype(object).fillna("").astype(str)
            if c != "metric":
                key = key + "\x1f" + df[c]  # not NUL: pandas 2 drops it in object concat
        self.df = df
        codes, uniq = pd.factorize(key)
        self.labels: list[dict[str, str]] = []
        ids: list[int] = []
        for text in uniq:
            parts = text.split("\x1f")
            raw = {"__name__": parts[0], **dict(zip(LABEL_COLUMNS, parts[1:], strict=True))}
            canon = canonical_labels(raw)
            self.labels.append(canon)
            ids.append(series_id(canon))
        sid = np.asarray(ids, dtype=np.int64)[codes]
        self.start = parse_start(self.truth["start"])
        self.step = self.truth["step_s"] * 1000
        self.end = parse_start(self.truth["end"])
        self.batch: SeriesBatch = batch_from_long(
            sid,
            df["timestamp"].to_numpy(),
            df["value"].to_numpy(),
            start=self.start,
            end=self.end,
            step=self.step,
            order=np.asarray(ids, dtype=np.int64),
            labels=self.labels,
        )

    def col(self, text: str) -> int:
        return (parse_start(text) - self.start) // self.step

    def rows(self, metric: str, **labels: str) -> np.ndarray:
        return np.array(
            [
                i
                for i, ls in enumerate(self.labels)
                if ls["__name__"] == metric and all(ls.get(k) == v for k, v in labels.items())
            ]
        )

    def values(self, metric: str, **labels: str) -> np.ndarray:
        return self.batch.values[self.rows(metric, **labels)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    out = tmp_path_factory.mktemp("sim") / "fleet"
    summary = simulate_fleet(out, **SMALL)
    return Fleet(out, summary)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- formats ---------------------------------------------------------------------------------


def test_sample_files_are_long_format_with_valid_labels(fleet: Fleet) -> None:
    schema = fleet.table.schema
    assert schema.names == ["timestamp", "metric", "value", *LABEL_COLUMNS]
    assert schema.field("timestamp").type == pa.int64()
    assert schema.field("value").type == pa.float64()
    assert set(fleet.df["metric"]) == set(METRICS)
    # several files (one per UTC day and chunk), never one giant table
    assert len(fleet.summary.sample_files) >= 2 * SMALL["days"]
    for ls in fleet.labels:  # canonical_labels ran on every label set in Fleet.__init__
        if ls["__name__"] == "node_disk_usage_ratio":
            assert set(ls) == {"__name__", "site", "node"}  # empty cells mean absent
        else:
            assert set(ls) == {"__name__", "site", "namespace", "service", "pod", "node"}
    ts = fleet.df["timestamp"].to_numpy()
    assert ts.min() >= fleet.start and ts.max() < fleet.end
    # every sample lands in its own step: no two samples of a series share a grid cell
    assert int(np.count_nonzero(~np.isnan(fleet.batch.values))) == len(fleet.df)
    assert fleet.summary.n_samples == len(fleet.df)
    assert fleet.summary.n_series == fleet.batch.n_series == fleet.truth["counts"]["series"]
    text = fleet.summary.describe()
    assert f"{fleet.summary.n_series:,} series" in text and "memory_leak 1" in text
    assert fleet.summary.to_dict()["n_samples"] == len(fleet.df)


def test_memory_limit_is_constant_per_pod(fleet: Fleet) -> None:
    limits = fleet.values("container_memory_limit_bytes")
    for row in limits:
        seen = np.unique(row[~np.isnan(row)])
        assert len(seen) == 1 and seen[0] in (512 * 2**20, 2**30, 2**31)
    ratio = fleet.values("node_disk_usage_ratio")
    assert np.nanmin(ratio) >= 0.0 and np.nanmax(ratio) <= 1.0
    errors = fleet.values("http_error_ratio")
    assert np.nanmin(errors) >= 0.0 and np.nanmax(errors) <= 1.0


def test_events_are_json_lines_with_ids(fleet: Fleet) -> None:
    ids = [e["id"] for e in fleet.events]
    assert len(set(ids)) == len(ids)
    times = [e["time"] for e in fleet.events]
    assert times == sorted(times)
    for e in fleet.events:
        assert set(e) == {"id", "time", "kind", "labels", "summary", "attributes"}
        assert e["kind"] in EVENT_KINDS
        parsed = parse_event(e)  # the project's event schema accepts every line
        assert parsed.id == e["id"] and parsed.time == parse_start(e["time"])
        assert fleet.start <= parse_start(e["time"]) < fleet.end
        canonical_labels({"__name__": "event", **e["labels"]})
        if e["kind"] == "deployment":
            assert e["attributes"]["version"].startswith("v")
    kinds = {e["kind"] for e in fleet.events}
    actions = {e["attributes"].get("action") for e in fleet.events}
    assert kinds == set(EVENT_KINDS)
    assert {"scale_up", "pod_eviction", "container_restart", "disk_cleanup"} <= actions


def test_csv_format(tmp_path: Path) -> None:
    out = tmp_path / "csv"
    simulate_fleet(out, sites=1, services=2, pods=2, days=3, fmt="csv", seed=3)
    files = sorted((out / "samples").glob("*.csv"))
    assert files and not list((out / "samples").glob("*.parquet"))
    table = read_samples(out / "samples", "csv")
    assert table.schema.names == ["timestamp", "metric", "value", *LABEL_COLUMNS]
    assert table.schema.field("timestamp").type == pa.int64()
    df = table.to_pandas()
    node = df[df["metric"] == "node_disk_usage_ratio"]
    assert len(node) and node["pod"].eq("").all() and node["service"].eq("").all()
    pods = df[df["metric"] == "container_cpu_usage_cores"]
    assert pods["pod"].str.len().min() > 0


# --- determinism and size --------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_other_seeds_differ(tmp_path: Path) -> None:
    params: dict[str, Any] = {"sites": 1, "services": 2, "pods": 2, "days": 4}
    simulate_fleet(tmp_path / "a", seed=11, **params)
    simulate_fleet(tmp_path / "b", seed=11, **params)
    simulate_fleet(tmp_path / "c", seed=12, **params)
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert len(a) > 3
    for name in ("truth.json", "events.jsonl", "samples/2025-01-07_pods-000.parquet"):
        assert a[name] != c[name]


def test_default_fleet_has_enough_series() -> None:
    grid = Grid(parse_start(None), 300, 14 * DAY)
    topo = build_topology(grid, 3, 8, DEFAULT_PODS, np.random.default_rng(0))
    assert len(topo.slot_group) * 6 + len(topo.nodes) >= 2000


@pytest.mark.slow
def test_default_fleet_end_to_end(tmp_path: Path) -> None:
    summary = simulate_fleet(tmp_path / "default")
    assert summary.n_series >= 2000
    assert summary.n_samples >= 2000 * 14 * DAY * 0.95
    assert all(summary.incidents[k] >= 2 for k in INCIDENT_KINDS)
    assert summary.skipped_incidents == {}


# --- truth -----------------------------------------------------------------------------------


def test_truth_records_parameters_and_every_incident_kind(fleet: Fleet) -> None:
    t = fleet.truth
    assert t["seed"] == SMALL["seed"] and t["step_s"] == 300
    assert t["params"] == {
        **{k: v for k, v in SMALL.items() if k != "seed"},
        "step_s": 300,
        "fmt": "parquet",
    }
    assert t["start"] == "2025-01-06T00:00:00Z" and t["end"] == "2025-01-20T00:00:00Z"
    assert {i["kind"] for i in t["incidents"]} == set(INCIDENT_KINDS)
    warm = 5 * DAY
    by_group: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    for inc in t["incidents"]:
        a, b = fleet.col(inc["start"]), fleet.col(inc["end"])
        assert warm <= a < b <= 14 * DAY
        for m in inc["metrics"]:
            assert m in METRICS
        exhaustion = inc["kind"] in ("memory_leak", "disk_filling")
        assert (inc["limit_crossing_time"] is not None) == exhaustion
        if exhaustion:
            assert a < fleet.col(inc["limit_crossing_time"]) < b
        key = (inc["labels"]["site"], inc["labels"].get("service", inc["labels"].get("node", "*")))
        by_group.setdefault(key, []).append((a, b))
    for windows in by_group.values():
        windows.sort()
        for (_, b0), (a1, _) in itertools.pairwise(windows):
            assert b0 <= a1  # no overlap within a group


def test_truth_event_references(fleet: Fleet) -> None:
    events = {e["id"]: e for e in fleet.events}
    causes = set()
    for inc in fleet.truth["incidents"]:
        cause = inc["cause_event_id"]
        if inc["kind"] in ("memory_leak", "deployment_regression"):
            ev = events[cause]
            assert ev["kind"] == "deployment"
            assert ev["labels"] == inc["labels"]
            assert parse_start(ev["time"]) <= parse_start(inc["start"])
            assert fleet.col(inc["start"]) - fleet.col(ev["time"]) <= 1
            rollback = events[inc["resolution_event_id"]]
            assert rollback["attributes"]["rollback"] is True
            assert rollback["attributes"]["version"] == ev["attributes"]["previous_version"]
            causes.add(cause)
        else:
            assert cause is None
    noops = fleet.truth["noop_deployments"]
    assert noops and not causes & set(noops)
    assert all(events[i]["kind"] == "deployment" for i in noops)


def test_memory_leak_crosses_its_limit_near_the_crossing_time(fleet: Fleet) -> None:
    leaks = [i for i in fleet.truth["incidents"] if i["kind"] == "memory_leak"]
    assert leaks
    for inc in leaks:
        limit = inc["limit"]
        a = fleet.col(inc["start"])
        assert inc["limit_crossing_time"] == min(p["limit_crossing_time"] for p in inc["pods"])
        for pod in inc["pods"]:
            (row,) = fleet.rows("container_memory_working_set_bytes", pod=pod["pod"])
            mem = fleet.batch.values[row]
            c = fleet.col(pod["limit_crossing_time"])
            assert np.nanmax(mem) <= limit
            assert np.nanmax(mem[: a - 1]) < 0.85 * limit  # healthy before the deployment
            assert np.nanmax(mem[c - 1 : c + 2]) >= 0.97 * limit  # at the limit when crossing
            assert np.nanmean(mem[c - 12 : c]) > np.nanmean(mem[a : a + 12]) + 0.2 * limit
            assert np.nanmin(mem[c + 2 : c + 6]) < 0.7 * limit  # OOM-killed, restarted


def test_stuck_pod_is_pinned_at_its_cpu_limit_while_replicas_are_not(fleet: Fleet) -> None:
    stuck = [i for i in fleet.truth["incidents"] if i["kind"] == "pod_cpu_stuck"]
    assert stuck
    for inc in stuck:
        a, b = fleet.col(inc["start"]), fleet.col(inc["end"])
        labels = inc["labels"]
        cpu = fleet.values(
            "container_cpu_usage_cores", site=labels["site"], service=labels["service"]
        )
        rows = fleet.rows(
            "container_cpu_usage_cores", site=labels["site"], service=labels["service"]
        )
        mine = np.array([fleet.labels[r]["pod"] == labels["pod"] for r in rows])
        assert mine.sum() == 1
        window = cpu[mine][0, a:b]
        assert np.nanmin(window) >= 0.97 * inc["limit"]
        assert np.nanmax(window) <= inc["limit"]
        assert np.nanmax(cpu[~mine, a:b]) < 0.9 * inc["limit"]
        assert np.nanmean(cpu[mine][0, a - DAY : a]) < 0.8 * inc["limit"]


def _total(values: np.ndarray) -> np.ndarray:
    """Per-step sum over series, short scrape gaps filled with each series' last value."""
    filled = pd.DataFrame(values).ffill(axis=1, limit=8).to_numpy()
    return np.nansum(filled, axis=0)


def _reference(a: int) -> tuple[int, float]:
    """The same window a week earlier when the run has it, else a day earlier (with the
    weakest ratio a weekday/weekend difference could cause)."""
    return (a - WEEK, 1.0) if a >= WEEK else (a - DAY, 1.0 / 0.55)


def test_traffic_surge_and_drop_change_rps(fleet: Fleet) -> None:
    seen = set()
    for inc in fleet.truth["incidents"]:
        if inc["kind"] not in ("traffic_surge", "traffic_drop"):
            continue
        seen.add(inc["kind"])
        a, b = fleet.col(inc["start"]), fleet.col(inc["end"])
        flt = {k: v for k, v in inc["labels"].items() if k in ("site", "service")}
        rps = _total(fleet.values("http_requests_per_second", **flt))
        ref, slack = _reference(a)
        ratio = np.nanmean(rps[a:b]) / np.nanmean(rps[ref : ref + b - a])
        factor = inc["magnitude"]["rps_factor"]
        if inc["kind"] == "traffic_surge":
            assert ratio > 1.5 / slack and factor >= 2.0
        else:
            assert ratio < 0.4 * slack and factor <= 0.35
    assert seen == {"traffic_surge", "traffic_drop"}


def test_deployment_regression_raises_latency_and_errors(fleet: Fleet) -> None:
    regs = [i for i in fleet.truth["incidents"] if i["kind"] == "deployment_regression"]
    assert regs
    for inc in regs:
        a, b = fleet.col(inc["start"]), fleet.col(inc["end"])
        flt = {k: inc["labels"][k] for k in ("site", "service")}
        p99 = fleet.values("http_request_duration_p99_seconds", **flt)
        err = fleet.values("http_error_ratio", **flt)
        assert np.nanmean(p99[:, a:b]) > 1.5 * np.nanmean(p99[:, a - DAY : b - DAY])
        assert np.nanmean(err[:, a:b]) > np.nanmean(err[:, a - DAY : b - DAY]) + 0.015
        assert np.nanmean(p99[:, b + 2 : b + 14]) < 1.3 * np.nanmean(
            p99[:, b + 2 - DAY : b + 14 - DAY]
        )


def test_disk_filling_reaches_one_at_the_crossing_time(fleet: Fleet) -> None:
    disks = [i for i in fleet.truth["incidents"] if i["kind"] == "disk_filling"]
    assert disks
    for inc in disks:
        assert inc["limit"] == 1.0
        (ratio,) = fleet.values("node_disk_usage_ratio", node=inc["labels"]["node"])
        a, b = fleet.col(inc["start"]), fleet.col(inc["end"])
        c = fleet.col(inc["limit_crossing_time"])
        assert np.nanmax(ratio[:a]) < 0.9
        assert np.nanmax(ratio[c - 1 : c + 2]) >= 0.995
        assert np.nanmax(ratio[a : c - 6]) < 0.999
        assert np.nanmax(ratio[b + 1 : b + 12]) < 0.9  # cleaned up


# --- realism ---------------------------------------------------------------------------------


def test_daily_and_weekly_seasonality(fleet: Fleet) -> None:
    rps = _total(fleet.values("http_requests_per_second", site="site-1"))[: 5 * DAY]
    days = rps.reshape(5, DAY)  # Mon..Fri before incidents: a clear daily cycle
    assert np.nanmax(days, axis=1).min() > 1.8 * np.nanmin(days, axis=1).max()
    both = ~np.isnan(days[0]) & ~np.isnan(days[1])
    assert np.corrcoef(days[0][both], days[1][both])[0, 1] > 0.9
    week = _total(fleet.values("http_requests_per_second"))[:WEEK].reshape(7, DAY)
    assert np.nanmean(week[5:]) < 0.9 * np.nanmean(week[:5])  # weekend dip


def test_scrape_gaps_and_mid_run_pods(fleet: Fleet) -> None:
    vals = fleet.batch.values
    present = ~np.isnan(vals)
    first = np.argmax(present, axis=1)
    last = vals.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)
    inside = (np.arange(vals.shape[1]) >= first[:, None]) & (
        np.arange(vals.shape[1]) <= last[:, None]
    )
    holes = inside & ~present
    assert holes.sum() > 0.0005 * present.sum()  # missing scrapes inside series' lives
    assert (holes.sum(axis=1) > 0).mean() > 0.3
    assert fleet.truth["counts"]["mid_run_pods"] > 0
    late = {fleet.labels[i].get("pod") for i in np.flatnonzero(first > 12)} - {None}
    assert len(late) == fleet.truth["counts"]["mid_run_pods"]
    evicted = [e for e in fleet.events if e["attributes"].get("action") == "pod_eviction"]
    assert {e["attributes"]["replacement_pod"] for e in evicted} <= late


def test_heteroscedastic_rps_noise(fleet: Fleet) -> None:
    rps = fleet.values("http_requests_per_second", site="site-1")[:, : 5 * DAY]
    rps = rps[np.isnan(rps).mean(axis=1) < 0.1]  # pods alive over the first five days
    diff = np.abs(np.diff(rps, axis=1))
    level = rps[:, 1:]
    busy = level > np.nanquantile(level, 0.8, axis=1, keepdims=True)
    quiet = level < np.nanquantile(level, 0.2, axis=1, keepdims=True)
    assert np.nanmean(np.where(busy, diff, np.nan)) > np.nanmean(np.where(quiet, diff, np.nan))


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"sites": 0}, ValueError, "sites=0 is invalid: expected an integer >= 1"),
        ({"pods": True}, TypeError, "pods=True is invalid: expected an integer >= 1"),
        ({"services": 2.5}, TypeError, "services=2.5 is invalid"),
        ({"days": 1}, ValueError, "days=1 is invalid: expected an integer >= 2"),
        ({"seed": -1}, ValueError, "seed=-1 is invalid: expected an integer >= 0"),
        ({"days": 2, "step_s": 3600}, ValueError, "gives 48 steps: expected at least 96"),
        ({"fmt": "json"}, ValueError, "fmt='json' is not supported"),
        ({"start": "yesterday"}, ValueError, "start='yesterday' is not RFC 3339"),
        ({"start": datetime(2025, 1, 1)}, ValueError, "has no timezone"),
        ({"start": 1.5}, TypeError, "start=1.5 is invalid"),
        ({"start": False}, TypeError, "start=False is invalid"),
    ],
)
def test_invalid_arguments(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        simulate_fleet(tmp_path / "x", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


def test_refuses_a_non_empty_output(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not an empty directory"):
        simulate_fleet(tmp_path, sites=1, services=1, pods=1, days=2)


def test_start_forms_and_single_replica(tmp_path: Path) -> None:
    aware = datetime(2025, 3, 3, 12, tzinfo=UTC)
    assert parse_start(aware) == parse_start("2025-03-03T12:00:00Z") == 1741003200000
    assert parse_start(1741003200000) == 1741003200000
    s = simulate_fleet(tmp_path / "one", sites=1, services=1, pods=1, days=3, start=aware)
    assert s.start_ms == 1741003200000
    assert s.skipped_incidents.get("pod_cpu_stuck") == 1  # needs 2+ replicas
    truth = json.loads(s.truth_path.read_text())
    assert truth["start"] == "2025-03-03T12:00:00Z"
    assert "pod_cpu_stuck" not in {i["kind"] for i in truth["incidents"]}


def test_internal_guards() -> None:
    with pytest.raises(RuntimeError, match="never reaches its limit"):
        _crossing(np.array([[0.1, 0.2, 0.3]]), np.ones(1))
    event = Event(0, "deployment", {"site": "site-1"}, "x", {"version": "v1"})
    with pytest.raises(RuntimeError, match="same id"):
        write_events(Path("/nonexistent/never-written.jsonl"), [event, event])
    grid = Grid(0, 300, 200)
    with pytest.raises(ValueError, match="fmt='xml' is not supported"):
        SampleWriter(Path("."), "xml", grid, 0, ["s"], ["n"], ["v"], ["d"])


# --- building blocks (hypothesis) ------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 5),
    t=st.integers(1, 200),
    rate=st.floats(0.0, 0.2),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_runs_stay_inside_the_grid(n: int, t: int, rate: float, seed: int) -> None:
    runs = random_runs(np.random.default_rng(seed), (n, t), rate, 2.0, 5)
    assert np.all((runs.first >= 0) & (runs.first < runs.stop) & (runs.stop <= t))
    assert np.all(runs.stop - runs.first <= 5)
    mask = runs.mask((n, t))
    expected = np.zeros((n, t), dtype=bool)
    for r, a, b in zip(runs.rows, runs.first, runs.stop, strict=True):
        expected[r, a:b] = True
    assert np.array_equal(mask, expected)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 4_000_000_000))
def test_rfc3339_round_trip(seconds: int) -> None:
    text = rfc3339(seconds * 1000)
    assert text.endswith("Z") and len(text) == 20
    assert parse_start(text) == seconds * 1000


def test_grid_day_bounds_cover_every_column() -> None:
    grid = Grid(parse_start("2025-01-06T18:00:00Z"), 300, 600)
    bounds = grid.day_bounds()
    assert [b[0] for b in bounds] == ["2025-01-06", "2025-01-07", "2025-01-08"]
    assert bounds[0][1] == 0 and bounds[-1][2] == 600
    assert all(b[2] == n[1] for b, n in itertools.pairwise(bounds))
    assert bounds[0][2] == 72  # 6 hours of 5-minute steps
