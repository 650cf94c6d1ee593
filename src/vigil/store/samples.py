"""The samples table: validation, layout of an append, scans with last-write-wins.

Stored columns: ``series_id int64 | timestamp int64 (ms UTC) | value float64 | seq int64 |
day string`` partitioned by ``day`` (``YYYY-MM-DD`` of the timestamp, UTC), each file sorted
by ``(series_id, timestamp)`` and ZSTD-compressed.

**Last write wins.**  Every append gets the next ``seq`` of the tenant (kept in HEAD).  When
the same ``(series_id, timestamp)`` is stored more than once, the row with the highest
``seq`` is the sample; within one append the last row given wins (the append keeps only
that row).  Compaction folds the superseded rows away; reads never see them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from vigil.store.txn import dataset

DAY_MS = 86_400_000
MIN_TIMESTAMP = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
ROW_GROUP_ROWS = 131_072
SAMPLE_COLUMNS = ("series_id", "timestamp", "value")
LONG_SCHEMA = pa.schema(
    [("series_id", pa.int64()), ("timestamp", pa.int64()), ("value", pa.float64())]
)


def empty_long() -> pa.Table:
    return LONG_SCHEMA.empty_table()


def long_table(sid: np.ndarray, ts: np.ndarray, val: np.ndarray) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(sid, pa.int64()), pa.array(ts, pa.int64()), pa.array(val, pa.float64())],
        schema=LONG_SCHEMA,
    )


def _column(table: pa.Table, name: str, what: str) -> pa.Array:
    col = table.column(name)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        first = int(pc.index(pc.is_null(arr), True).as_py())
        fix = "use NaN for a missing value" if name == "value" else "drop those rows"
        raise ValueError(
            f"{what} column {name!r} has {arr.null_count} null(s) (first at row {first}): {fix}"
        )
    return arr


def check_columns(table: object, expected: tuple[str, ...], what: str) -> pa.Table:
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"{what} must be a pyarrow.Table, got {type(table).__name__}")
    names = list(table.column_names)
    missing = [c for c in expected if c not in names]
    extra = [c for c in names if c not in expected]
    if missing or extra or len(set(names)) != len(names):
        raise ValueError(
            f"{what} has columns {names}: expected exactly {list(expected)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; drop {extra}" if extra else "")
        )
    return table


def cast_column(arr: pa.Array, name: str, target: pa.DataType, what: str) -> pa.Array:
    if arr.type == target:
        return arr
    if len(arr) == 0:
        return pa.array([], target)  # an empty column may come typed as null
    try:
        if pa.types.is_timestamp(arr.type) and target == pa.int64():
            return pc.cast(arr, pa.timestamp("ms", arr.type.tz)).cast(pa.int64())
        if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
            return pc.cast(arr, target)
    except pa.ArrowInvalid as exc:
        raise ValueError(
            f"{what} column {name!r} of type {arr.type} does not convert to {target} "
            f"exactly ({exc}); convert it before appending"
        ) from None
    raise ValueError(f"{what} column {name!r} has type {arr.type}: expected {target}")


def validate_samples(table: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check an append's samples; returns (series_id, timestamp, value) numpy arrays."""
    what = "samples"
    t = check_columns(table, SAMPLE_COLUMNS, what)
    sid = cast_column(_column(t, "series_id", what), "series_id", pa.int64(), what)
    ts = cast_column(_column(t, "timestamp", what), "timestamp", pa.int64(), what)
    val = cast_column(_column(t, "value", what), "value", pa.float64(), what)
    ts_np = ts.to_numpy(zero_copy_only=False)
    bad = (ts_np < MIN_TIMESTAMP) | (ts_np > MAX_TIMESTAMP)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"samples timestamp {int(ts_np[i])} (row {i}) is outside years 1-9999: expected "
            "milliseconds since 1970-01-01 UTC (seconds or nanoseconds? multiply/divide)"
        )
    return (
        sid.to_numpy(zero_copy_only=False),
        ts_np,
        val.to_numpy(zero_copy_only=False),
    )


def day_strings(day_numbers: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(day_numbers.astype("datetime64[D]"), unit="D")


def day_of(ms: int) -> str:
    return str(day_strings(np.array([ms // DAY_MS]))[0])


def last_of_runs(*keys: np.ndarray) -> np.ndarray:
    """Mask of the last row of each run of equal keys (rows already sorted by the keys)."""
    n = len(keys[0])
    last = np.ones(n, dtype=bool)
    if n > 1:
        differs = np.zeros(n - 1, dtype=bool)
        for k in keys:
            differs |= k[1:] != k[:-1]
        last[:-1] = differs
    return last


def prepare_append(
    sid: np.ndarray, ts: np.ndarray, val: np.ndarray, seq: int
) -> tuple[pa.Table, pa.Table]:
    """Stored rows of one append (deduplicated, sorted) and per-series first/last seen."""
    order = np.lexsort((np.arange(len(sid)), ts, sid))  # within a key: row order given
    sid, ts, val = sid[order], ts[order], val[order]
    keep = last_of_runs(sid, ts)  # the last row given wins
    sid, ts, val = sid[keep], ts[keep], val[keep]
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]]) if len(sid) else np.array([], int)
    ends = np.r_[starts[1:], len(sid)] - 1
    seen = pa.table(
        {
            "series_id": pa.array(sid[starts], pa.int64()),
            "first_seen": pa.array(ts[starts], pa.int64()),
            "last_seen": pa.array(ts[ends], pa.int64()),
        }
    )
    day_num = np.floor_divide(ts, DAY_MS)
    by_day = np.argsort(day_num, kind="stable")  # files sorted by (series_id, timestamp)
    sid, ts, val, day_num = sid[by_day], ts[by_day], val[by_day], day_num[by_day]
    days, inverse = np.unique(day_num, return_inverse=True)
    day = pc.take(pa.array(day_strings(days), pa.string()), pa.array(inverse))
    rows = pa.table(
        {
            "series_id": pa.array(sid, pa.int64()),
            "timestamp": pa.array(ts, pa.int64()),
            "value": pa.array(val, pa.float64()),
            "seq": pa.array(np.full(len(sid), seq, dtype=np.int64)),
            "day": day,
        }
    )
    return rows, seen


def pruning_predicate(start: int | None, end: int | None) -> str | None:
    parts = []
    if start is not None:
        parts.append(f"day >= '{day_of(start)}' AND timestamp >= {int(start)}")
    if end is not None:
        parts.append(f"day <= '{day_of(end - 1)}' AND timestamp < {int(end)}")
    return " AND ".join(parts) or None


def scan(
    dt: DeltaTable,
    *,
    start: int | None = None,
    end: int | None = None,
    ids: np.ndarray | None = None,
    universe: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples in ``[start, end)`` of the series ``ids`` (None: all), last write wins,
    sorted by (series_id, timestamp).  ``universe``: sorted ids of every series that can
    occur (the catalog), which makes the sort cheaper."""
    pred = pruning_predicate(start, end)
    ds = dataset(dt, pred)
    filt = None
    if start is not None:
        filt = pc.field("timestamp") >= pa.scalar(int(start), pa.int64())
    if end is not None:
        cond = pc.field("timestamp") < pa.scalar(int(end), pa.int64())
        filt = cond if filt is None else filt & cond
    if ids is not None:
        cond = pc.field("series_id").isin(pa.array(ids, pa.int64()))
        filt = cond if filt is None else filt & cond
    table = ds.to_table(columns=["series_id", "timestamp", "value", "seq"], filter=filt)
    cols = (_np(table.column(c)) for c in ("series_id", "timestamp", "value", "seq"))
    return dedup_last(*cols, universe=ids if ids is not None else universe)


def _np(col: pa.ChunkedArray) -> np.ndarray:
    return (
        col.combine_chunks().to_numpy(zero_copy_only=False)
        if col.num_chunks != 1
        else (col.chunk(0).to_numpy(zero_copy_only=False))
    )


def is_sorted_unique(sid: np.ndarray, ts: np.ndarray) -> bool:
    if len(sid) < 2:
        return True
    d_sid = sid[1:] > sid[:-1]
    return bool(np.all(d_sid | ((sid[1:] == sid[:-1]) & (ts[1:] > ts[:-1]))))


def dedup_last(
    sid: np.ndarray,
    ts: np.ndarray,
    val: np.ndarray,
    seq: np.ndarray,
    *,
    universe: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the highest-``seq`` row of each (series_id, timestamp); sort by that key."""
    if is_sorted_unique(sid, ts):
        return sid, ts, val
    rows = winners(sid, ts, seq, universe)
    return sid[rows], ts[rows], val[rows]


def winners(
    sid: np.ndarray, ts: np.ndarray, seq: np.ndarray, universe: np.ndarray | None = None
) -> np.ndarray:
    """Indices of the highest-``seq`` row of each (series_id, timestamp), in key order."""
    if len(sid) == 0:
        return np.array([], dtype=np.int64)
    order, key = _key_order(sid, ts, seq, universe)
    if key is None:
        return order[last_of_runs(sid[order], ts[order])]
    return order[last_of_runs(key[order])]


def _key_order(
    sid: np.ndarray, ts: np.ndarray, seq: np.ndarray, universe: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Row order by (series_id, timestamp, seq), and the combined int64 key if one fits.

    The combined key ``rank(series_id) * span + (timestamp - min)`` sorts with one stable
    argsort (runs from presorted files are merged cheaply); rows that share a key, which
    only superseded duplicates do, are then put in ``seq`` order.
    """
    ranks = None
    if universe is not None and len(universe):
        ranks = np.clip(np.searchsorted(universe, sid), 0, len(universe) - 1)
        n_ranks = len(universe)
        if not np.array_equal(universe[ranks], sid):
            ranks = None
    if ranks is None:
        uniq, ranks = np.unique(sid, return_inverse=True)
        n_ranks = len(uniq)
    t0 = int(ts.min())
    span = int(ts.max()) - t0 + 1
    if n_ranks * span >= 2**62:
        return np.lexsort((seq, ts, sid)), None
    key = ranks.astype(np.int64) * span + (ts - t0)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    same = sorted_key[1:] == sorted_key[:-1]
    if same.any():
        in_group = np.zeros(len(key), dtype=bool)
        in_group[1:] |= same
        in_group[:-1] |= same
        at = np.flatnonzero(in_group)  # contiguous groups of equal keys
        rows = order[at]
        order[at] = rows[np.lexsort((seq[rows], key[rows]))]
    return order, key


def dense_from_sorted(
    sid: np.ndarray, ts: np.ndarray, val: np.ndarray, *, start: int, end: int, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """(series ids, values[n, T]) of samples sorted by (series_id, timestamp), unique, all in
    ``[start, end)``: cell k of a row holds the last sample in ``[start+k*step, +step)``.

    Same result as ``batch.batch_from_long`` (tests check it) without its O(n log n) sort.
    """
    n_steps = int(-(-(end - start) // step))
    if len(sid) == 0:
        return np.array([], dtype=np.int64), np.full((0, n_steps), np.nan)
    new_row = np.r_[True, sid[1:] != sid[:-1]]
    ids = sid[new_row]
    row = np.cumsum(new_row) - 1
    col = (ts - start) // step
    last = last_of_runs(row, col)  # rows sorted by timestamp within a series: last wins
    out = np.full((len(ids), n_steps), np.nan)
    out.reshape(-1)[row[last] * n_steps + col[last]] = val[last]
    return ids, out


def file_counts(dt: DeltaTable) -> dict[str, tuple[int, int]]:
    """Per day partition: (number of files, number of stored rows)."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    out: dict[str, tuple[int, int]] = {}
    if actions.num_rows == 0:
        return out
    days = actions.column("partition.day").to_pylist()
    records = actions.column("num_records").to_pylist()
    for day, rec in zip(days, records, strict=True):
        files, rows = out.get(day, (0, 0))
        out[day] = (files + 1, rows + int(rec or 0))
    return out


def read_partition(dt: DeltaTable, day: str) -> pa.Table:
    """One day partition folded to one row per key (highest seq), sorted; for compaction."""
    ds = dataset(dt, f"day = '{day}'")
    t = ds.to_table(columns=["series_id", "timestamp", "value", "seq"])
    sid, ts, val, seq = (_np(t.column(c)) for c in ("series_id", "timestamp", "value", "seq"))
    keep = winners(sid, ts, seq)
    n = len(keep)
    return pa.table(
        {
            "series_id": pa.array(sid[keep], pa.int64()),
            "timestamp": pa.array(ts[keep], pa.int64()),
            "value": pa.array(val[keep], pa.float64()),
            "seq": pa.array(seq[keep], pa.int64()),
            "day": pa.repeat(pa.scalar(day, pa.string()), n),
        }
    )
