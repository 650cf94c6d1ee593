"""The series catalog: an append-only log of sightings, aggregated on read.

Stored columns: ``series_id int64 | labels string | first_seen int64 | last_seen int64 |
seq int64``.  Each append adds one row per series whose seen-range it extends (``labels``
is set the first time a series appears and null afterwards).  Reading aggregates per
series: its labels, ``min(first_seen)``, ``max(last_seen)``.  Compaction folds the log to
one row per series.  The catalog is committed in the same store operation as the samples
(see ``txn.py``), so it always describes exactly the committed samples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from vigil.selector import LabelColumns, Selector, match_mask, to_arrow
from vigil.series import (
    METRIC_LABEL,
    LabelError,
    canonical_labels,
    labels_json,
    parse_labels_json,
    series_id,
    validate_label_name,
    validate_metric_name,
)
from vigil.store.samples import cast_column, check_columns
from vigil.store.txn import dataset

CATALOG_SCHEMA = pa.schema(
    [
        ("series_id", pa.int64()),
        ("labels", pa.string()),
        ("first_seen", pa.int64()),
        ("last_seen", pa.int64()),
    ]
)


@dataclass
class CatalogSnapshot:
    """The aggregated catalog at one Delta version: one row per series, sorted by id."""

    table: pa.Table
    stored_rows: int = 0
    _columns: LabelColumns | None = field(default=None, repr=False)

    @property
    def ids(self) -> np.ndarray:
        return self.table.column("series_id").to_numpy()

    def columns(self) -> LabelColumns:
        if self._columns is None:
            self._columns = LabelColumns(self.table.column("labels"))
        return self._columns

    def select(self, selector: Selector | str | None) -> pa.Table:
        if selector is None:
            return self.table
        mask = match_mask(selector, self.columns())
        return self.table.filter(pa.array(mask))

    def positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row of each id in the snapshot and whether it is there at all."""
        known_ids = self.ids
        if len(known_ids) == 0:
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        pos = np.clip(np.searchsorted(known_ids, ids), 0, len(known_ids) - 1)
        return pos, known_ids[pos] == ids


def empty_snapshot() -> CatalogSnapshot:
    return CatalogSnapshot(CATALOG_SCHEMA.empty_table())


def load_snapshot(dt: DeltaTable | None, con: duckdb.DuckDBPyConnection) -> CatalogSnapshot:
    if dt is None:
        return empty_snapshot()
    ds = dataset(dt)
    con.register("catalog_log", ds)
    try:
        table = to_arrow(
            con.sql(
                "SELECT series_id, max(labels) AS labels, min(first_seen) AS first_seen, "
                "max(last_seen) AS last_seen, count(*) AS n FROM catalog_log "
                "GROUP BY series_id ORDER BY series_id"
            )
        )
    finally:
        con.unregister("catalog_log")
    stored = int(pc.sum(table.column("n")).as_py() or 0)
    table = table.drop_columns(["n"]).cast(CATALOG_SCHEMA)
    return CatalogSnapshot(table.combine_chunks(), stored)


def validate_catalog(table: object) -> tuple[np.ndarray, pa.Array]:
    """Check an append's catalog; returns ids (sorted, unique) and their labels JSON."""
    what = "catalog"
    t = check_columns(table, ("series_id", "labels"), what)
    for name in t.column_names:
        if t.column(name).null_count:
            raise ValueError(
                f"catalog column {name!r} has {t.column(name).null_count} null(s): "
                "every row needs a series_id and its labels JSON"
            )
    ids = cast_column(t.column("series_id").combine_chunks(), "series_id", pa.int64(), what)
    labels = t.column("labels").combine_chunks()
    if not (pa.types.is_string(labels.type) or pa.types.is_large_string(labels.type)):
        raise ValueError(f"catalog column 'labels' has type {labels.type}: expected string")
    labels = labels.cast(pa.string())
    ids_np = ids.to_numpy(zero_copy_only=False)
    order = np.argsort(ids_np, kind="stable")
    ids_np = ids_np[order]
    labels = labels.take(pa.array(order))
    if len(ids_np) > 1:
        same = np.flatnonzero(ids_np[1:] == ids_np[:-1])
        if len(same):
            a = labels.take(pa.array(same)).to_numpy(zero_copy_only=False)
            b = labels.take(pa.array(same + 1)).to_numpy(zero_copy_only=False)
            differ = np.flatnonzero(a != b)
            if len(differ):
                i = int(same[differ[0]])
                raise LabelError(
                    f"catalog gives series_id {int(ids_np[i])} two label sets "
                    f"{a[differ[0]]!r} and {b[differ[0]]!r}: ids come from series.series_id; "
                    "recompute them"
                )
            keep = np.r_[True, ids_np[1:] != ids_np[:-1]]
            ids_np = ids_np[keep]
            labels = labels.filter(pa.array(keep))
    return ids_np, labels


def check_new_labels(ids: np.ndarray, texts: list[str]) -> None:
    """Labels of series new to the catalog must be valid, canonical and hash to their id.

    Per series only JSON decoding, re-encoding and hashing run; label names and metric
    names are validated once per distinct value.
    """
    names: set[str] = set()
    metrics: dict[str, int] = {}
    for i, (sid, text) in enumerate(zip(ids.tolist(), texts, strict=True)):
        try:
            labels = json.loads(text)
        except ValueError as exc:
            raise LabelError(f"catalog labels {text!r} of series_id {sid}: {exc}") from None
        if type(labels) is not dict or not all(type(v) is str and v for v in labels.values()):
            _full_check(sid, text)
            raise LabelError(
                f"catalog labels {text!r} of series_id {sid}: expected a JSON object of "
                "non-empty strings (use series.labels_json(series.canonical_labels(...)))"
            )
        if labels_json(labels) != text:
            raise LabelError(
                f"catalog labels {text!r} of series_id {sid} are not canonical: expected "
                f"{labels_json(labels)!r} (use series.labels_json)"
            )
        if series_id(labels) != sid:
            raise LabelError(
                f"catalog series_id {sid} does not belong to labels {text!r}: expected "
                f"{series_id(labels)} (use series.series_id)"
            )
        names.update(labels)
        metrics.setdefault(labels.get(METRIC_LABEL, ""), i)
    try:
        for name in names:
            validate_label_name(name)
        for metric in metrics:
            if metric:
                validate_metric_name(metric)
    except LabelError as exc:
        raise LabelError(f"catalog labels of a new series: {exc}") from None
    if "" in metrics:
        _full_check(int(ids[metrics[""]]), texts[metrics[""]])  # raises: no metric name
    for i, text in enumerate(texts):
        if "\ufffd" in text:
            _full_check(int(ids[i]), text)  # raises: U+FFFD


def _full_check(sid: int, text: str) -> None:
    try:
        canonical_labels(parse_labels_json(text))
    except ValueError as exc:
        raise LabelError(f"catalog labels {text!r} of series_id {sid}: {exc}") from None


def sightings(seen: pa.Table, given: pa.Table, known: CatalogSnapshot, seq: int) -> pa.Table:
    """Catalog log rows of one append (``seen``: series_id, first_seen, last_seen)."""
    sid = seen.column("series_id").to_numpy()
    first = seen.column("first_seen").to_numpy()
    last = seen.column("last_seen").to_numpy()
    g_ids, g_labels = validate_catalog(given)
    pos, is_known = known.positions(sid)
    # given labels must agree with what the catalog already holds
    gpos, g_known = known.positions(g_ids)
    if g_known.any():
        stored = known.table.column("labels").combine_chunks().take(pa.array(gpos[g_known]))
        mismatch = pc.not_equal(stored, g_labels.filter(pa.array(g_known))).to_numpy(
            zero_copy_only=False
        )
        if mismatch.any():
            i = int(np.flatnonzero(mismatch)[0])
            raise LabelError(
                f"catalog labels {g_labels.filter(pa.array(g_known))[i].as_py()!r} of series_id "
                f"{int(g_ids[g_known][i])} differ from the stored {stored[i].as_py()!r}: "
                "series ids come from series.series_id; recompute them"
            )
    labels = pa.nulls(len(sid), pa.string())
    new = ~is_known
    if new.any():
        new_ids = sid[new]
        lpos = np.clip(np.searchsorted(g_ids, new_ids), 0, max(len(g_ids) - 1, 0))
        found = (g_ids[lpos] == new_ids) if len(g_ids) else np.zeros(len(new_ids), dtype=bool)
        if not found.all():
            missing = new_ids[~found]
            raise LabelError(
                f"{len(missing)} series in the samples have no labels (series_id "
                f"{', '.join(str(int(x)) for x in missing[:5])}"
                f"{', ...' if len(missing) > 5 else ''}): add them to the catalog table"
            )
        new_labels = g_labels.take(pa.array(lpos))
        check_new_labels(new_ids, new_labels.to_pylist())
        idx = np.full(len(sid), -1)
        idx[new] = np.arange(len(new_ids))
        labels = pc.if_else(pa.array(new), new_labels.take(pa.array(np.maximum(idx, 0))), labels)
    # known series: a row only when this append widens their seen range
    widens = new.copy()
    if is_known.any():
        k_first = known.table.column("first_seen").to_numpy()[pos]
        k_last = known.table.column("last_seen").to_numpy()[pos]
        widens |= is_known & ((first < k_first) | (last > k_last))
    keep = pa.array(widens)
    return pa.table(
        {
            "series_id": pa.array(sid, pa.int64()).filter(keep),
            "labels": labels.filter(keep),
            "first_seen": pa.array(first, pa.int64()).filter(keep),
            "last_seen": pa.array(last, pa.int64()).filter(keep),
            "seq": pa.array(np.full(len(sid), seq, dtype=np.int64)).filter(keep),
        }
    )


def merged(snap: CatalogSnapshot, log: pa.Table) -> CatalogSnapshot:
    """The snapshot after appending ``log`` (rows of ``sightings``), without a reload."""
    if log.num_rows == 0:
        return snap
    lid = log.column("series_id").to_numpy()
    lfirst = log.column("first_seen").to_numpy()
    llast = log.column("last_seen").to_numpy()
    pos, known = snap.positions(lid)
    first = snap.table.column("first_seen").to_numpy().copy()
    last = snap.table.column("last_seen").to_numpy().copy()
    kp = pos[known]
    first[kp] = np.minimum(first[kp], lfirst[known])
    last[kp] = np.maximum(last[kp], llast[known])
    new = pa.array(~known)
    table = pa.concat_tables(
        [
            pa.table(
                [snap.table.column("series_id"), snap.table.column("labels"), first, last],
                schema=CATALOG_SCHEMA,
            ),
            log.filter(new).select(CATALOG_SCHEMA.names).cast(CATALOG_SCHEMA),
        ]
    )
    if (~known).any():
        table = table.take(pa.array(np.argsort(table.column("series_id").to_numpy())))
    return CatalogSnapshot(table.combine_chunks(), snap.stored_rows + log.num_rows)


def folded(snapshot: CatalogSnapshot, seq: int) -> pa.Table:
    """The catalog log folded to one row per series (for compaction)."""
    t = snapshot.table
    return t.append_column("seq", pa.array(np.full(t.num_rows, seq, dtype=np.int64)))
