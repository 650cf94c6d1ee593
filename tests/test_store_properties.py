"""Property: append -> store -> query gives back exactly the samples (last write wins)."""

from __future__ import annotations

import math
import tempfile

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.batch import batch_from_long
from vigil.series import canonical_labels, labels_json, series_id
from vigil.store import Store

DAY = 86_400_000
BASE = 1_717_200_000_000 - 1_717_200_000_000 % DAY  # a UTC midnight
LABELS = [
    canonical_labels({"__name__": name, "pod": pod})
    for name in ("cpu", "mem")
    for pod in ("a", "b", 'ü "q"\n')
]
IDS = np.array([series_id(ls) for ls in LABELS], dtype=np.int64)
CATALOG = pa.table({"series_id": IDS, "labels": [labels_json(ls) for ls in LABELS]})
TENANTS = ("acme", "beta", "c-3")

TIMESTAMPS = st.sampled_from([BASE + k * DAY // 2 for k in range(-4, 5)]) | st.integers(
    BASE - 3 * DAY, BASE + 3 * DAY
)
VALUES = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0]
)
ROWS = st.lists(st.tuples(st.integers(0, len(IDS) - 1), TIMESTAMPS, VALUES), max_size=25)
APPENDS = st.lists(st.tuples(st.sampled_from(TENANTS), ROWS), min_size=1, max_size=4)


def samples_table(rows: list[tuple[int, int, float]]) -> pa.Table:
    return pa.table(
        {
            "series_id": pa.array([int(IDS[i]) for i, _, _ in rows], pa.int64()),
            "timestamp": pa.array([t for _, t, _ in rows], pa.int64()),
            "value": pa.array([v for _, _, v in rows], pa.float64()),
        }
    )


def apply(model: dict[tuple[int, int], float], rows: list[tuple[int, int, float]]) -> None:
    for i, t, v in rows:
        model[(int(IDS[i]), t)] = v  # the later row wins, within an append and across


def assert_exact(table: pa.Table, model: dict[tuple[int, int], float], lo: int, hi: int) -> None:
    want = sorted((k, v) for k, v in model.items() if lo <= k[1] < hi)
    sid = table.column("series_id").to_numpy()
    ts = table.column("timestamp").to_numpy()
    val = table.column("value").to_numpy()
    assert sid.tolist() == [k[0] for k, _ in want]
    assert ts.tolist() == [k[1] for k, _ in want]
    # bitwise: NaN payloads and signs, -0.0 and infinities survive the round trip
    expected_bits = np.array([v for _, v in want], dtype=np.float64).view(np.int64)
    assert val.view(np.int64).tolist() == expected_bits.tolist()


def assert_catalog(store: Store, tenant: str, model: dict[tuple[int, int], float]) -> None:
    cat = store.catalog(tenant)
    ids = sorted({k[0] for k in model})
    assert cat.column("series_id").to_pylist() == ids
    for row in cat.to_pylist():
        times = [t for (s, t) in model if s == row["series_id"]]
        assert (row["first_seen"], row["last_seen"]) == (min(times), max(times))
        assert row["labels"] == labels_json(LABELS[int(np.flatnonzero(IDS == row["series_id"])[0])])


@settings(max_examples=40, deadline=None)
@given(APPENDS, st.integers(-3, 3), st.integers(1, 6 * 24), st.sampled_from([60_000, 3_600_000]))
def test_append_query_round_trip(
    appends: list[tuple[str, list[tuple[int, int, float]]]], lo_day: int, hours: int, step: int
) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        models: dict[str, dict[tuple[int, int], float]] = {t: {} for t in TENANTS}
        for tenant, rows in appends:
            order = list(rows)
            written = store.append(tenant, samples_table(order), CATALOG)
            assert written == len({(i, t) for i, t, _ in rows})
            apply(models[tenant], rows)
        assert store.tenants() == sorted(t for t in TENANTS if models[t])
        lo = BASE + lo_day * DAY
        hi = lo + hours * 3_600_000
        for tenant, model in models.items():  # tenants never see each other's samples
            assert_exact(store.select(tenant), model, -(2**62), 2**62)
            assert_exact(store.select(tenant, None, lo, hi), model, lo, hi)
            assert_catalog(store, tenant, model)
            stats = store.stats(tenant)
            assert stats["samples"] == len(model)
            assert stats["series"] == len({k[0] for k in model})
            if model:
                assert stats["min_timestamp"] == min(t for _, t in model)
                assert stats["max_timestamp"] == max(t for _, t in model)
            # the dense batch equals batch_from_long on the model's samples
            batch = store.load_batch(tenant, None, lo, hi, step)
            inside = sorted((k, v) for k, v in model.items() if lo <= k[1] < hi)
            ref = batch_from_long(
                np.array([k[0] for k, _ in inside], dtype=np.int64),
                np.array([k[1] for k, _ in inside], dtype=np.int64),
                np.array([v for _, v in inside], dtype=np.float64),
                start=lo,
                end=hi,
                step=step,
            )
            assert batch.series_ids.tolist() == ref.series_ids.tolist()
            assert batch.values.shape == ref.values.shape
            np.testing.assert_array_equal(batch.values, ref.values)
            assert [labels_json(ls) for ls in batch.labels] == [
                labels_json(LABELS[int(np.flatnonzero(IDS == s)[0])]) for s in batch.series_ids
            ]


@settings(max_examples=15, deadline=None)
@given(st.lists(ROWS, min_size=2, max_size=4))
def test_compaction_keeps_data_identical(appends: list[list[tuple[int, int, float]]]) -> None:
    with tempfile.TemporaryDirectory() as root:
        store = Store(root)
        model: dict[tuple[int, int], float] = {}
        for rows in appends:
            store.append("acme", samples_table(rows), CATALOG)
            apply(model, rows)
        before = store.stats("acme")
        report = store.compact("acme")
        after = store.stats("acme")
        assert_exact(store.select("acme"), model, -(2**62), 2**62)
        assert_catalog(store, "acme", model)
        assert after["samples"] == before["samples"] == len(model)
        assert after["rows"] == len(model)  # superseded rows folded away
        assert after["files"] <= before["files"]
        assert after["files"] == after["days"]  # one file per day partition
        if before["files"] > before["days"]:
            assert report["samples"]["files_after"] < report["samples"]["files_before"]
