"""Change events (deploys, config changes, incidents) kept per tenant.

Columns: ``event_id string | time int64 (ms UTC) | kind string | labels string (JSON object) |
summary string | attributes string (JSON object)``, stored with the append's ``seq``.  An
``event_id`` written again replaces the earlier event (last write wins, as for samples;
within one append the last row given wins).
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable

from vigil.selector import to_arrow
from vigil.store.samples import MAX_TIMESTAMP, MIN_TIMESTAMP, cast_column, check_columns
from vigil.store.txn import dataset

EVENT_COLUMNS = ("event_id", "time", "kind", "labels", "summary", "attributes")
EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("time", pa.int64()),
        ("kind", pa.string()),
        ("labels", pa.string()),
        ("summary", pa.string()),
        ("attributes", pa.string()),
    ]
)


def empty_events() -> pa.Table:
    return EVENT_SCHEMA.empty_table()


def validate_events(table: object) -> pa.Table:
    """Check an append's events; returns the rows to store (last row per event_id)."""
    what = "events"
    t = check_columns(table, EVENT_COLUMNS, what)
    cols = {}
    for f in EVENT_SCHEMA:
        arr = t.column(f.name).combine_chunks()
        if len(arr) == 0:
            arr = pa.array([], f.type)  # an empty column may come typed as null
        if arr.null_count:
            fix = "use '{}'" if f.name in ("labels", "attributes") else "use ''"
            if f.name in ("event_id", "time", "kind"):
                fix = "every event needs one"
            raise ValueError(f"events column {f.name!r} has {arr.null_count} null(s): {fix}")
        if f.type == pa.string():
            if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                raise ValueError(f"events column {f.name!r} has type {arr.type}: expected string")
            arr = arr.cast(pa.string())
        else:
            arr = cast_column(arr, f.name, f.type, what)
        cols[f.name] = arr
    times = cols["time"].to_numpy(zero_copy_only=False)
    bad = (times < MIN_TIMESTAMP) | (times > MAX_TIMESTAMP)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"events time {int(times[i])} (row {i}) is outside years 1-9999: expected ms since "
            "1970-01-01 UTC"
        )
    for name in ("labels", "attributes"):
        for i, text in enumerate(cols[name].to_pylist()):
            try:
                ok = isinstance(json.loads(text), dict)
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(
                    f"events {name} {text!r} (row {i}) is not a JSON object: "
                    "write a JSON object such as '{}' or '{\"service\":\"cart\"}'"
                )
    ids = cols["event_id"].to_pylist()
    last = {eid: i for i, eid in enumerate(ids)}
    keep = pa.array(sorted(last.values()), pa.int64())
    return pa.table([cols[f.name].take(keep) for f in EVENT_SCHEMA], schema=EVENT_SCHEMA)


def with_seq(rows: pa.Table, seq: int) -> pa.Table:
    return rows.append_column("seq", pa.array(np.full(rows.num_rows, seq, dtype=np.int64)))


def read_events(
    dt: DeltaTable | None, con: duckdb.DuckDBPyConnection, start: int | None, end: int | None
) -> pa.Table:
    if dt is None:
        return empty_events()
    where = ["rn = 1"]
    params: dict[str, int] = {}
    if start is not None:
        where.append("time >= $start")
        params["start"] = int(start)
    if end is not None:
        where.append("time < $end")
        params["end"] = int(end)
    con.register("events_log", dataset(dt))
    try:
        rel = con.sql(
            "SELECT event_id, time, kind, labels, summary, attributes FROM ("
            "  SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY seq DESC) AS rn"
            f"  FROM events_log) WHERE {' AND '.join(where)} ORDER BY time, event_id",
            params=params or None,
        )
        table = to_arrow(rel)
    finally:
        con.unregister("events_log")
    return table.cast(EVENT_SCHEMA)
