"""Store API: appends, queries, load_batch alignment, events, tables, stats, compaction, errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from vigil.selector import SelectorError
from vigil.series import LabelError, canonical_labels, labels_json, series_id
from vigil.store import Store, StoreError
from vigil.store.layout import Head
from vigil.store.txn import dataset, transaction

DAY = 86_400_000
T0 = 1_717_200_000_000 - 1_717_200_000_000 % DAY
SERIES = [
    {"__name__": "http_requests_total", "service": "cart", "code": "200"},
    {"__name__": "http_requests_total", "service": "cart", "code": "500"},
    {"__name__": "http_latency_seconds", "service": "auth"},
    {"__name__": "up", "service": "auth", "zone": "eu"},
]
LABELS = [canonical_labels(s) for s in SERIES]
IDS = [series_id(ls) for ls in LABELS]
CATALOG = pa.table({"series_id": IDS, "labels": [labels_json(ls) for ls in LABELS]})


def samples(rows: list[tuple[int, int, float]]) -> pa.Table:
    return pa.table(
        {
            "series_id": pa.array([IDS[i] for i, _, _ in rows], pa.int64()),
            "timestamp": pa.array([t for _, t, _ in rows], pa.int64()),
            "value": pa.array([v for _, _, v in rows], pa.float64()),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def rows_of(table: pa.Table) -> list[tuple[int, int, float]]:
    return list(
        zip(
            table.column("series_id").to_pylist(),
            table.column("timestamp").to_pylist(),
            table.column("value").to_pylist(),
            strict=True,
        )
    )


def test_append_select_with_selector_and_range(store: Store) -> None:
    rows = [(i, T0 + k * 1000, float(10 * i + k)) for i in range(4) for k in range(5)]
    assert store.append("t", samples(rows[::-1]), CATALOG) == 20  # out of order is fine
    got = store.select("t", '{service="cart"}', T0 + 1000, T0 + 3000)
    assert rows_of(got) == sorted(
        (IDS[i], T0 + k * 1000, float(10 * i + k)) for i in (0, 1) for k in (1, 2)
    )
    assert store.select("t", "http_requests_total{code=~'5..'}").num_rows == 5
    assert store.select("t", '{zone=""}').column("series_id").unique().to_pylist() == sorted(
        IDS[:3]
    )
    assert store.select("t", '{service="nope"}').num_rows == 0
    cat = store.catalog("t", '{service="auth"}')
    assert cat.column("series_id").to_pylist() == sorted(IDS[2:])
    assert cat.column("first_seen").to_pylist() == [T0, T0]
    assert cat.column("last_seen").to_pylist() == [T0 + 4000, T0 + 4000]
    assert json.loads(cat.column("labels")[0].as_py())["service"] == "auth"


def test_last_write_wins_within_and_across_appends(store: Store) -> None:
    store.append("t", samples([(0, T0, 1.0), (0, T0, 2.0), (0, T0 + 1, 5.0)]), CATALOG)
    assert rows_of(store.select("t")) == [(IDS[0], T0, 2.0), (IDS[0], T0 + 1, 5.0)]
    store.append("t", samples([(0, T0 + 1, math.nan)]), CATALOG.slice(0, 0))
    got = rows_of(store.select("t"))
    assert got[0] == (IDS[0], T0, 2.0) and math.isnan(got[1][2])
    assert store.stats("t")["rows"] == 3 and store.stats("t")["samples"] == 2


def test_load_batch_alignment(store: Store) -> None:
    step = 60_000
    rows = [
        (0, T0 + 5_000, 1.0),
        (0, T0 + 59_999, 2.0),  # last in step 0 wins
        (0, T0 + 60_000, 3.0),  # first ms of step 1
        (0, T0 + 4 * step + 1, math.inf),  # step 4; steps 2 and 3 are gaps
        (1, T0 - 1, 9.0),  # before start: not in the batch
        (1, T0 + 5 * step, 8.0),  # == end: excluded (half-open)
        (2, T0 + 2 * step, -0.5),
    ]
    store.append("t", samples(rows), CATALOG)
    batch = store.load_batch("t", None, T0, T0 + 5 * step, step)
    assert batch.start == T0 and batch.step == step and batch.n_steps == 5
    assert batch.series_ids.tolist() == sorted([IDS[0], IDS[2]])  # series 1: nothing inside
    by_id = dict(zip(batch.series_ids.tolist(), batch.values, strict=True))
    np.testing.assert_array_equal(by_id[IDS[0]], [2.0, 3.0, np.nan, np.nan, np.inf])
    np.testing.assert_array_equal(by_id[IDS[2]], [np.nan, np.nan, -0.5, np.nan, np.nan])
    assert batch.labels[batch.series_ids.tolist().index(IDS[2])] == LABELS[2]
    # a range that does not divide by the step: the last column is partial
    partial = store.load_batch("t", "http_requests_total", T0, T0 + 90_000, step)
    assert partial.n_steps == 2
    np.testing.assert_array_equal(partial.values, [[2.0, 3.0]])
    empty = store.load_batch("t", '{service="none"}', T0, T0 + step, step)
    assert empty.n_series == 0 and empty.values.shape == (0, 1)
    with pytest.raises(ValueError, match="step=0 ms is invalid"):
        store.load_batch("t", None, T0, T0 + step, 0)
    with pytest.raises(ValueError, match=r"time range \[5, 5\) is empty"):
        store.load_batch("t", None, 5, 5, 1)
    with pytest.raises(TypeError, match=r"start=1.5 must be an int"):
        store.load_batch("t", None, 1.5, 5, 1)  # type: ignore[arg-type]


def test_dense_fast_path_equals_batch_from_long() -> None:
    from vigil.batch import batch_from_long
    from vigil.store.samples import dedup_last, dense_from_sorted

    rng = np.random.default_rng(7)
    n = 5000
    sid = rng.integers(-3, 3, n).astype(np.int64) * 10**17
    ts = rng.integers(0, 10_000, n).astype(np.int64)
    val = rng.normal(size=n)
    s, t, v = dedup_last(sid, ts, val, np.arange(n, dtype=np.int64))
    ids, dense = dense_from_sorted(s, t, v, start=0, end=10_000, step=7)
    ref = batch_from_long(s, t, v, start=0, end=10_000, step=7)
    assert ids.tolist() == ref.series_ids.tolist()
    np.testing.assert_array_equal(dense, ref.values)


def test_tenants_are_isolated_and_listed(store: Store) -> None:
    assert store.tenants() == []
    store.append("b-2", samples([(0, T0, 1.0)]), CATALOG)
    store.append("a.1", samples([(1, T0, 2.0)]), CATALOG)
    (store.root / "tenants" / "not a tenant").mkdir()  # foreign directories are skipped
    assert store.tenants() == ["a.1", "b-2"]
    assert rows_of(store.select("a.1")) == [(IDS[1], T0, 2.0)]
    assert store.catalog("b-2").column("series_id").to_pylist() == [IDS[0]]


def test_missing_tenant_reads_empty(store: Store) -> None:
    assert store.select("ghost").num_rows == 0
    assert store.select("ghost").schema.names == ["series_id", "timestamp", "value"]
    assert store.catalog("ghost").schema.names == ["series_id", "labels", "first_seen", "last_seen"]
    assert store.events("ghost").num_rows == 0
    assert store.read_table("ghost", "scores") is None
    assert store.load_batch("ghost", None, 0, 10, 1).n_series == 0
    stats = store.stats("ghost")
    assert (stats["series"], stats["samples"], stats["min_timestamp"]) == (0, 0, None)
    assert store.compact("ghost") == {"tenant": "ghost"}


@pytest.mark.parametrize("tenant", ["../etc", "a/b", "", ".", "..", "-x", "x" * 65])
def test_bad_tenant_id_raises_label_error(store: Store, tenant: str) -> None:
    with pytest.raises(LabelError, match=r"tenant id .* is invalid: expected 1-64 characters"):
        store.select(tenant)
    with pytest.raises(LabelError, match="tenant id"):
        store.append(tenant, samples([(0, T0, 1.0)]), CATALOG)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"series_id": [1], "timestamp": [1]}), r"missing \['value'\]"),
        (
            pa.table({"series_id": [1], "timestamp": [1], "value": [1.0], "x": [1]}),
            r"drop \['x'\]",
        ),
        (
            pa.table({"series_id": [1], "timestamp": [1], "value": pa.array([None], pa.float64())}),
            "'value' has 1 null.*use NaN for a missing value",
        ),
        (
            pa.table(
                {
                    "series_id": pa.array([None, 1], pa.int64()),
                    "timestamp": [1, 2],
                    "value": [1.0, 2.0],
                }
            ),
            r"'series_id' has 1 null\(s\) \(first at row 0\): drop those rows",
        ),
        (pa.table({"series_id": ["a"], "timestamp": [1], "value": [1.0]}), "type string"),
        (
            pa.table(
                {"series_id": pa.array([2**63], pa.uint64()), "timestamp": [1], "value": [1.0]}
            ),
            "does not convert to int64 exactly",
        ),
        (
            pa.table({"series_id": [1], "timestamp": [10**17], "value": [1.0]}),
            "outside years 1-9999",
        ),
        ({"series_id": [1]}, "must be a pyarrow.Table"),
    ],
)
def test_append_rejects_bad_samples(store: Store, table: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        store.append("t", table, CATALOG)
    assert store.tenants() == []


def test_append_accepts_convertible_types(store: Store) -> None:
    table = pa.table(
        {
            "series_id": pa.array([IDS[0]], pa.int64()),
            "timestamp": pa.array([T0 * 1000], pa.timestamp("us", "UTC")),
            "value": pa.array([3], pa.int32()),
        }
    )
    assert store.append("t", pa.RecordBatch.from_pydict(table.to_pydict()), CATALOG) == 1
    assert rows_of(store.select("t")) == [(IDS[0], T0, 3.0)]
    assert store.append("t", samples([]), CATALOG) == 0


def test_append_checks_the_catalog(store: Store) -> None:
    one = samples([(0, T0, 1.0)])
    with pytest.raises(LabelError, match=r"1 series in the samples have no labels .*add them"):
        store.append("t", one, CATALOG.slice(1))
    bad_id = pa.table({"series_id": [IDS[0]], "labels": [labels_json(LABELS[1])]})
    with pytest.raises(LabelError, match="does not belong to labels"):
        store.append("t", one, bad_id)
    spaced = pa.table({"series_id": [IDS[0]], "labels": [json.dumps(LABELS[0])]})
    with pytest.raises(LabelError, match="not canonical"):
        store.append("t", one, spaced)
    twice = pa.table(
        {"series_id": [IDS[0], IDS[0]], "labels": [labels_json(LABELS[0]), labels_json(LABELS[1])]}
    )
    with pytest.raises(LabelError, match="two label sets"):
        store.append("t", one, twice)
    with pytest.raises(ValueError, match="'labels' has 1 null"):
        store.append(
            "t", one, pa.table({"series_id": [IDS[0]], "labels": pa.nulls(1, pa.string())})
        )
    with pytest.raises(ValueError, match="'labels' has type int64"):
        store.append("t", one, pa.table({"series_id": [IDS[0]], "labels": [1]}))
    assert store.tenants() == []
    store.append("t", one, pa.concat_tables([CATALOG, CATALOG]))  # duplicate rows are fine
    other = pa.table({"series_id": [IDS[0]], "labels": [labels_json(LABELS[0]) + " "]})
    with pytest.raises(LabelError, match="differ from the stored"):
        store.append("t", one, other)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("{oops", "Expecting property name"),
        ("[1]", "is not an object"),
        ('{"__name__":"m","x":1}', "expected a JSON object of non-empty strings"),
        ('{"__name__":"m","x":""}', "expected a JSON object of non-empty strings"),
        ('{"1x":"b","__name__":"m"}', "label name '1x' is invalid"),
        ('{"__name__":"m","__x":"b"}', "label name '__x' is reserved"),
        ('{"__name__":"9m"}', "metric name '9m' is invalid"),
        ('{"job":"a"}', "has no metric name"),
        ('{"__name__":"m","x":"bad \ufffd"}', "holds U\\+FFFD"),
    ],
)
def test_new_series_labels_are_validated(store: Store, labels: str, message: str) -> None:
    try:  # the id the labels would hash to, so that the label checks are reached
        sid = series_id(json.loads(labels))
    except (ValueError, AttributeError, TypeError):
        sid = 1
    one = pa.table({"series_id": [sid], "timestamp": [T0], "value": [1.0]})
    with pytest.raises(LabelError, match=message):
        store.append("t", one, pa.table({"series_id": [sid], "labels": [labels]}))
    assert store.tenants() == []


def test_events_last_write_wins_and_range(store: Store) -> None:
    def events(rows: list[tuple[str, int, str]]) -> pa.Table:
        return pa.table(
            {
                "event_id": [r[0] for r in rows],
                "time": pa.array([r[1] for r in rows], pa.int64()),
                "kind": ["deploy"] * len(rows),
                "labels": ['{"service":"cart"}'] * len(rows),
                "summary": [r[2] for r in rows],
                "attributes": ["{}"] * len(rows),
            }
        )

    assert (
        store.append_events("t", events([("e1", 10, "a"), ("e2", 20, "b"), ("e1", 30, "c")])) == 2
    )
    assert store.append_events("t", events([("e2", 5, "d")])) == 1
    got = store.events("t")
    assert list(zip(got["event_id"].to_pylist(), got["summary"].to_pylist(), strict=True)) == [
        ("e2", "d"),
        ("e1", "c"),
    ]
    assert store.events("t", 6, 31)["event_id"].to_pylist() == ["e1"]
    assert store.events("t", None, 6)["event_id"].to_pylist() == ["e2"]
    assert store.append_events("t", events([])) == 0
    bad = events([("e3", 1, "x")]).set_column(3, "labels", pa.array(["[1]"]))
    with pytest.raises(ValueError, match=r"events labels '\[1\]' \(row 0\) is not a JSON object"):
        store.append_events("t", bad)
    nulls = events([("e3", 1, "x")]).set_column(0, "event_id", pa.nulls(1, pa.string()))
    with pytest.raises(ValueError, match=r"'event_id' has 1 null.*every event needs one"):
        store.append_events("t", nulls)
    with pytest.raises(ValueError, match="expected exactly"):
        store.append_events("t", events([("e3", 1, "x")]).drop_columns(["summary"]))
    with pytest.raises(ValueError, match="'kind' has type int64"):
        store.append_events("t", events([("e3", 1, "x")]).set_column(2, "kind", pa.array([1])))
    with pytest.raises(ValueError, match="outside years 1-9999"):
        store.append_events("t", events([("e3", -(10**15), "x")]))
    assert store.stats("t")["events"] == 2


def test_result_tables(store: Store) -> None:
    store.write_table("t", "scores", pa.table({"series_id": [1, 2], "score": [0.5, 0.7]}))
    store.write_table("t", "scores", pa.table({"series_id": [3], "score": [0.9]}))
    got = store.read_table("t", "scores")
    assert got is not None and sorted(got["series_id"].to_pylist()) == [1, 2, 3]
    assert store.read_table("t", "insights") is None
    with pytest.raises(ValueError, match=r"cannot append to table 'scores'.*mode='overwrite'"):
        store.write_table("t", "scores", pa.table({"other": ["x"]}))
    store.write_table(
        "t", "scores", pa.table({"day": ["d1", "d2"], "n": [1, 2]}), "overwrite", ["day"]
    )
    got = store.read_table("t", "scores")
    assert got is not None and sorted(got["n"].to_pylist()) == [1, 2]
    with pytest.raises(LabelError, match=r"table name '../x' is invalid"):
        store.write_table("t", "../x", pa.table({"a": [1]}))
    with pytest.raises(LabelError, match="table name"):
        store.read_table("t", "Bad-Name")
    with pytest.raises(ValueError, match="mode 'upsert' is invalid"):
        store.write_table("t", "scores", pa.table({"a": [1]}), "upsert")
    with pytest.raises(ValueError, match=r"names columns \['nope'\]"):
        store.write_table("t", "scores", pa.table({"a": [1]}), partition_by=["nope"])
    with pytest.raises(TypeError, match=r"must be a pyarrow.Table"):
        store.write_table("t", "scores", {"a": [1]})


def test_compaction_reduces_files_and_keeps_data(store: Store, tmp_path: Path) -> None:
    for k in range(6):  # six appends over two days, overlapping timestamps
        rows = [
            (i, T0 + DAY // 2 + (k + j) * 3_600_000, float(k)) for i in range(3) for j in range(20)
        ]
        store.append("t", samples(rows), CATALOG)
    store.append_events(
        "t",
        pa.table(
            {
                "event_id": ["a"],
                "time": [1],
                "kind": ["k"],
                "labels": ["{}"],
                "summary": [""],
                "attributes": ["{}"],
            }
        ),
    )
    store.write_table("t", "scores", pa.table({"a": [1]}))
    store.write_table("t", "scores", pa.table({"a": [2]}))
    before_rows = rows_of(store.select("t"))
    before = store.stats("t")
    assert before["files"] > before["days"] == 2
    assert before["rows"] > before["samples"]
    report = store.compact("t")
    after = store.stats("t")
    assert rows_of(store.select("t")) == before_rows
    assert after["files"] == 2 and after["rows"] == after["samples"] == before["samples"]
    assert report["samples"]["files_before"] == before["files"]
    assert report["samples"]["files_after"] == 2
    assert report["catalog"]["rows_after"] == 3 < report["catalog"]["rows_before"]
    assert report["tables/scores"] == {"files_before": 2, "files_after": 1}
    assert report["vacuumed_files"] > 0
    on_disk = list((tmp_path / "store" / "tenants" / "t" / "samples").rglob("*.parquet"))
    assert len(on_disk) == 2  # superseded files deleted
    assert sorted(store.read_table("t", "scores")["a"].to_pylist()) == [1, 2]  # type: ignore[index]
    assert store.compact("t")["samples"]["partitions"] == 0  # nothing left to merge


def test_selector_errors_surface(store: Store) -> None:
    store.append("t", samples([(0, T0, 1.0)]), CATALOG)
    with pytest.raises(SelectorError, match="at position 4"):
        store.select("t", "up{a}")
    with pytest.raises(ValueError, match=r"time range \[5, 1\) is empty"):
        store.select("t", None, 5, 1)


def test_unlocked_writer_is_detected(store: Store, tmp_path: Path) -> None:
    store.append("t", samples([(0, T0, 1.0)]), CATALOG)
    path = tmp_path / "store" / "tenants" / "t" / "samples"
    with pytest.raises(StoreError, match="another process wrote to it without the tenant lock"):
        with transaction(store.layout, "t") as txn:
            rows = dataset(DeltaTable(path)).to_table()
            write_deltalake(DeltaTable(path), rows, mode="append")  # no lock, no HEAD
            txn.write("samples", rows, partition_by=["day"])
    # HEAD was not replaced: readers still see one sample; the next writer rolls back
    assert store.select("t").num_rows == 1
    store.append("t", samples([(1, T0, 2.0)]), CATALOG)
    assert store.stats("t")["rows"] == 2


def test_damaged_store_errors(store: Store, tmp_path: Path) -> None:
    store.append("t", samples([(0, T0, 1.0)]), CATALOG)
    tdir = tmp_path / "store" / "tenants" / "t"
    head = (tdir / "HEAD.json").read_text()
    (tdir / "HEAD.json").write_text("{not json")
    with pytest.raises(StoreError, match="not a valid HEAD manifest"):
        store.select("t")
    (tdir / "HEAD.json").write_text(json.dumps({"format": 99, "seq": 0, "versions": {}}))
    with pytest.raises(StoreError, match="format 99: this Vigil reads format 1"):
        store.select("t")
    versions = Head.from_json(head, tdir).versions
    (tdir / "HEAD.json").write_text(Head(0, {**versions, "samples": 5}).to_json())
    with pytest.raises(StoreError, match="has no such version"):
        store.append("t", samples([(0, T0, 1.0)]), CATALOG)
    (tdir / "HEAD.json").write_text(head)
    store.append("t", samples([(0, T0 + 1, 1.0)]), CATALOG)  # samples now at version 1
    head = (tdir / "HEAD.json").read_text()
    catalog_only = Head(1, {"catalog": Head.from_json(head, tdir).versions["catalog"]})
    (tdir / "HEAD.json").write_text(catalog_only.to_json())  # e.g. an old HEAD put back
    with pytest.raises(StoreError, match="several Delta versions but HEAD does not list it"):
        store.append("t", samples([(0, T0, 1.0)]), CATALOG)
    (tdir / "HEAD.json").unlink()
    with pytest.raises(StoreError, match=r"holds \['samples', 'catalog'\] but no HEAD.json"):
        store.select("t")
    with pytest.raises(StoreError, match=r"no HEAD\.json"):
        store.append("t", samples([(0, T0, 1.0)]), CATALOG)
    (tdir / "HEAD.json").write_text(head)
    assert store.select("t").num_rows == 2  # nothing was deleted on the way
    shutil.rmtree(tdir / "samples")
    with pytest.raises(StoreError, match="is missing: the store was changed outside Vigil"):
        store.select("t")
    with pytest.raises(StoreError, match=r"lists \['samples'\] but .* has no such table"):
        store.append("t", samples([(0, T0, 1.0)]), CATALOG)


@pytest.mark.parametrize("spread", [1_000, 2**61])  # the second forces the lexsort fallback
@pytest.mark.parametrize("universe", ["exact", "missing_ids", "none"])
def test_winners_keep_highest_seq_per_key(spread: int, universe: str) -> None:
    from vigil.store.samples import dedup_last, winners

    rng = np.random.default_rng(spread % 97)
    n = 3000
    sid = rng.choice(np.array([-(2**63), -5, 0, 7, 2**63 - 1], dtype=np.int64), n)
    ts = rng.choice(np.array([0, 1, 2, spread], dtype=np.int64), n) + rng.integers(0, 3, n)
    seq = rng.permutation(n).astype(np.int64)  # unique, in no particular order
    known = {"exact": np.unique(sid), "missing_ids": np.array([0], dtype=np.int64), "none": None}
    rows = winners(sid, ts, seq, known[universe])
    best: dict[tuple[int, int], int] = {}
    for i in range(n):
        key = (int(sid[i]), int(ts[i]))
        if key not in best or seq[i] > seq[best[key]]:
            best[key] = i
    assert rows.tolist() == [best[k] for k in sorted(best)]
    s, t, v = dedup_last(sid, ts, seq.astype(float), seq, universe=known[universe])
    assert list(zip(s.tolist(), t.tolist(), strict=True)) == sorted(best)
    assert v.tolist() == [float(seq[best[k]]) for k in sorted(best)]
    assert winners(sid[:0], ts[:0], seq[:0]).tolist() == []
