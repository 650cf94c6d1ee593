"""End to end with the real store: ingest -> Store -> select/catalog/events."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.events import import_events
from vigil.ingest import Status, ingest_files
from vigil.series import canonical_labels, labels_json, series_id
from vigil.store import Store

SERIES = [
    {"__name__": "cpu", "host": "a"},
    {"__name__": "cpu", "host": "b", "region": "eu"},
    {"__name__": "mem", "host": "a", "region": "us"},
    {"__name__": "up", "region": 'ünï,cödé "q"'},
]
LABEL_COLUMNS = ["host", "region"]
T0 = 1_714_564_800_000

ROW = st.tuples(
    st.integers(0, len(SERIES) - 1),
    st.integers(0, 50) | st.integers(0, 5_000_000_000),  # ms offsets: collisions and spread
    st.floats(allow_nan=True, allow_infinity=True, width=64)
    | st.sampled_from([math.nan, math.inf, -math.inf]),
)


def csv_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def write_file(path: Path, rows: list[tuple[int, int, float]], ts_form: str) -> None:
    if path.suffix == ".parquet":
        pq.write_table(
            pa.table(
                {
                    "timestamp": pa.array(
                        [T0 + dt for _, dt, _ in rows], pa.timestamp("ms", "UTC")
                    ),
                    "value": pa.array([v for _, _, v in rows], pa.float64()),
                    "metric": [SERIES[s]["__name__"] for s, _, _ in rows],
                    **{c: [SERIES[s].get(c) for s, _, _ in rows] for c in LABEL_COLUMNS},
                }
            ),
            path,
        )
        return
    lines = ["timestamp,value,metric," + ",".join(LABEL_COLUMNS)]
    for s, dt, v in rows:
        ms = T0 + dt
        if ts_form == "rfc3339":
            ts = np.datetime_as_string(np.datetime64(ms, "ms"), unit="ms") + "Z"
        elif ts_form == "s" and ms % 1000 == 0:
            ts = str(ms // 1000)
        elif ts_form == "s":
            ts = f"{ms // 1000}.{ms % 1000:03d}"
        else:
            ts = str(ms)
        labels = [csv_field(SERIES[s].get(c, "")) for c in LABEL_COLUMNS]
        lines.append(",".join([ts, csv_value(v), SERIES[s]["__name__"], *labels]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(ROW, min_size=1, max_size=60),
    st.sampled_from(["rfc3339", "s", "ms", "parquet"]),
    st.integers(1, 40),
)
def test_ingest_then_select_returns_exactly_the_rows(
    tmp_path_factory: object, rows: list[tuple[int, int, float]], form: str, chunk_rows: int
) -> None:
    d: Path = tmp_path_factory.mktemp("e2e")  # type: ignore[attr-defined]
    path = d / ("in.parquet" if form == "parquet" else "in.csv")
    write_file(path, rows, form)
    store = Store(d / "store")
    report = ingest_files(store, "t1", [path], chunk_rows=chunk_rows)
    assert report.ok and report.files[0].rows_skipped == 0, report.summary()
    expected: dict[tuple[int, int], float] = {}
    for s, dt, v in rows:  # last row wins
        expected[(series_id(canonical_labels(SERIES[s])), T0 + dt)] = v
    got = store.select("t1").to_pylist()
    assert len(got) == len(expected)
    for r in got:
        want = expected[(r["series_id"], r["timestamp"])]
        assert (math.isnan(want) and math.isnan(r["value"])) or r["value"] == want
    catalog = {r["series_id"]: r["labels"] for r in store.catalog("t1").to_pylist()}
    used = {series_id(canonical_labels(SERIES[s])): SERIES[s] for s, _, _ in rows}
    assert catalog == {k: labels_json(canonical_labels(v)) for k, v in used.items()}


def test_strict_with_a_bad_row_leaves_the_store_untouched(tmp_path: Path) -> None:
    rows = "".join(f"{T0 + i},1,m\n" for i in range(20))
    p = tmp_path / "s.csv"
    p.write_text("timestamp,value,metric\n" + rows + f"{T0},bad,m\n")
    store = Store(tmp_path / "store")
    report = ingest_files(store, "t1", [p], strict=True, chunk_rows=5)
    assert report.files[0].status is Status.REJECTED
    assert store.select("t1").num_rows == 0 and store.tenants() == []
    report = ingest_files(store, "t1", [p], chunk_rows=5)  # lenient: the 20 good rows
    assert report.files[0].status is Status.PARTIAL and store.select("t1").num_rows == 20


def test_selector_finds_ingested_series(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text(f"timestamp,value,metric,host\n{T0},1,cpu,a\n{T0},2,cpu,b\n{T0},3,mem,a\n")
    store = Store(tmp_path / "store")
    ingest_files(store, "t1", [p])
    got = store.select("t1", 'cpu{host="b"}').to_pylist()
    assert [r["value"] for r in got] == [2.0]


def test_event_import_is_idempotent(tmp_path: Path) -> None:
    p = tmp_path / "ev.jsonl"
    events = [
        {
            "time": "2024-05-01T12:00:00Z",
            "kind": "deployment",
            "labels": {"service": "cart"},
            "summary": "cart 1.2",
        },
        {
            "time": 1714568400,
            "kind": "scaling",
            "labels": {},
            "summary": "3 -> 5 pods",
            "attributes": {"from": 3, "to": 5},
        },
    ]
    p.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    store = Store(tmp_path / "store")
    for _ in range(2):
        report = import_events(store, "t1", p)
        assert report.status is Status.OK and report.events_written == 2
    stored = store.events("t1").to_pylist()
    assert [e["time"] for e in stored] == [T0, T0 + 3_600_000]
    assert [e["kind"] for e in stored] == ["deployment", "scaling"]
    assert json.loads(stored[1]["attributes"]) == {"from": 3, "to": 5}
