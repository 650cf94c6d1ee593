"""``Store``: Vigil's embedded, per-tenant time-series store (Delta Lake + DuckDB).

Reading rules:

* a tenant that was never written (but has a valid id) reads as empty: ``select`` gives an
  empty long table, ``catalog``/``events`` empty tables, ``stats`` zero counts,
  ``load_batch`` a batch of zero series, ``read_table`` None.  An invalid tenant id raises
  ``LabelError`` naming the rule;
* every read sees the tenant as of its last *completed* operation (see ``txn.py``).

Writes to one tenant are serialised by a file lock (several processes may share a root).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake.exceptions import DeltaError

from vigil import metrictypes as mt
from vigil.batch import SeriesBatch
from vigil.selector import Selector, duckdb_cursor, parse_selector
from vigil.series import labels_json, parse_labels_json, validate_tenant
from vigil.store import catalog as cat
from vigil.store import events as ev
from vigil.store import samples as sm
from vigil.store.layout import CATALOG, EVENTS, SAMPLES, Head, Layout, table_key
from vigil.store.txn import Txn, dataset, log_entry, open_table, transaction

CATALOG_CACHE_TENANTS = 8
STALE_TABLE = "staleness"
STALE_SCHEMA = pa.schema([("series_id", pa.int64()), ("at", pa.int64())])
METRIC_TYPES_TABLE = "metric_types"
METRIC_TYPES_SCHEMA = pa.schema([("name", pa.string()), ("type", pa.string()),
                                 ("source", pa.string()), ("at", pa.int64())])


class Store:
    """Embedded store rooted at a directory (created on the first write)."""

    def __init__(self, root: str | Path) -> None:
        self.layout = Layout(root)
        self._lock = threading.Lock()
        self._catalogs: OrderedDict[str, tuple[tuple[int, int], cat.CatalogSnapshot]] = (
            OrderedDict()
        )
        self._plans: OrderedDict[str, tuple[tuple[Any, ...], mt.ViewPlan]] = OrderedDict()

    @property
    def root(self) -> Path:
        return self.layout.root

    def tenants(self) -> list[str]:
        """Tenants with at least one completed write, sorted."""
        return self.layout.tenants()

    # ------------------------------------------------------------------ writes

    def append(self, tenant: str, samples: pa.Table, catalog: pa.Table) -> int:
        """Append samples (one atomic operation with their catalog update).

        ``samples``: ``series_id int64 | timestamp int64 ms | value float64`` (NaN and
        +-Inf are stored as given; nulls are rejected).  ``catalog``: ``series_id |
        labels`` (canonical JSON) for at least every series the store does not know yet;
        extra rows are only looked up.  Returns the rows stored: rows repeating a
        ``(series_id, timestamp)`` of the same append count once (the last one wins).
        """
        validate_tenant(tenant)
        sid, ts, val = sm.validate_samples(samples)
        if len(sid) == 0:
            cat.validate_catalog(catalog)
            return 0
        with transaction(self.layout, tenant) as txn:
            seq = txn.next_seq()
            rows, seen = sm.prepare_append(sid, ts, val, seq)
            known = self._snapshot(tenant, txn.head)
            log = cat.sightings(seen, catalog, known, seq)
            txn.write(SAMPLES, rows, partition_by=["day"], row_group_rows=sm.ROW_GROUP_ROWS)
            if log.num_rows:
                txn.write(CATALOG, log)
            txn.commit()
            if log.num_rows:  # keep the cached catalog current without reloading it
                self._cache_put(tenant, txn.head, cat.merged(known, log))
        return rows.num_rows

    def append_events(self, tenant: str, events: pa.Table) -> int:
        """Append change events (see ``events.py``); returns the events stored."""
        validate_tenant(tenant)
        rows = ev.validate_events(events)
        if rows.num_rows == 0:
            return 0
        with transaction(self.layout, tenant) as txn:
            txn.write(EVENTS, ev.with_seq(rows, txn.next_seq()))
        return rows.num_rows

    def write_table(
        self,
        tenant: str,
        name: str,
        table: pa.Table,
        mode: str = "append",
        partition_by: list[str] | None = None,
    ) -> None:
        """Keep a result table (scores, anomalies, insights, ...) as a Delta table.

        ``mode="append"`` adds rows (same schema as before); ``"overwrite"`` replaces the
        table, schema and partitioning included.
        """
        validate_tenant(tenant)
        key = table_key(name)
        if mode not in ("append", "overwrite"):
            raise ValueError(f"mode {mode!r} is invalid: expected 'append' or 'overwrite'")
        if not isinstance(table, pa.Table):
            raise TypeError(f"table must be a pyarrow.Table, got {type(table).__name__}")
        missing = [c for c in partition_by or [] if c not in table.column_names]
        if missing:
            raise ValueError(
                f"partition_by {partition_by} names columns {missing} that table {name!r} "
                f"does not have (it has {table.column_names})"
            )
        with transaction(self.layout, tenant) as txn:
            try:
                if mode == "overwrite":
                    txn.write(
                        key,
                        table,
                        mode="overwrite",
                        partition_by=partition_by or [],
                        schema_mode="overwrite",
                    )
                else:
                    txn.write(key, table, mode="append", partition_by=partition_by)
            except DeltaError as exc:
                raise ValueError(
                    f"cannot {'append to' if mode == 'append' else 'overwrite'} table "
                    f"{name!r} of tenant {tenant!r}: {exc}; when appending keep the table's "
                    "schema and partitioning, or write it with mode='overwrite'"
                ) from None

    def compact(self, tenant: str, *, retention_hours: int = 0) -> dict[str, Any]:
        """Merge small files, fold superseded samples and the catalog log; then vacuum.

        Query results are unchanged.  Files no longer referenced and older than
        ``retention_hours`` are deleted, so a reader in *another* process still scanning
        an older snapshot may fail: compact when no such reader runs, or keep a retention.
        """
        validate_tenant(tenant)
        report: dict[str, Any] = {"tenant": tenant}
        if not self.layout.read_head(tenant).versions:
            return report
        with transaction(self.layout, tenant) as txn:
            report["samples"] = self._compact_samples(txn)
            snap = self._snapshot(tenant, txn.head)
            report["catalog"] = {"rows_before": snap.stored_rows, "rows_after": snap.stored_rows}
            if snap.stored_rows > snap.table.num_rows:
                txn.write(CATALOG, cat.folded(snap, txn.head.seq), mode="overwrite")
                report["catalog"]["rows_after"] = snap.table.num_rows
            for key in sorted(txn.head.versions):
                if key.startswith("tables/") or key == EVENTS:
                    report[key] = self._optimize(txn, key)
            txn.commit()
            removed = 0
            for key in sorted(txn.head.versions):
                dt = txn.table(key)
                assert dt is not None
                removed += len(
                    dt.vacuum(
                        retention_hours=retention_hours,
                        dry_run=False,
                        enforce_retention_duration=False,
                        full=True,
                    )
                )
                txn.refresh(key)
            report["vacuumed_files"] = removed
        return report

    def _compact_samples(self, txn: Txn) -> dict[str, int]:
        dt = txn.table(SAMPLES)
        if dt is None:
            return {"partitions": 0, "files_before": 0, "files_after": 0}
        counts = sm.file_counts(dt)
        days = sorted(d for d, (files, _) in counts.items() if files > 1)
        rows_before = sum(counts[d][1] for d in days)
        rows_after = 0
        for day in days:
            part = sm.read_partition(dt, day)
            rows_after += part.num_rows
            txn.write(
                SAMPLES,
                part,
                mode="overwrite",
                predicate=f"day = '{day}'",
                partition_by=["day"],
                row_group_rows=sm.ROW_GROUP_ROWS,
            )
        after = txn.table(SAMPLES)
        assert after is not None
        return {
            "partitions": len(days),
            "files_before": sum(f for f, _ in counts.values()),
            "files_after": len(after.file_uris()),
            "rows_before": rows_before,
            "rows_after": rows_after,
        }

    def _optimize(self, txn: Txn, key: str) -> dict[str, int]:
        dt = txn.table(key)
        assert dt is not None
        before = len(dt.file_uris())
        if before > 1:
            dt.optimize.compact()
            txn.refresh(key)
            dt = txn.table(key)
            assert dt is not None
        return {"files_before": before, "files_after": len(dt.file_uris())}

    # ------------------------------------------------------------------- reads

    def catalog(self, tenant: str, selector: str | Selector | None = None) -> pa.Table:
        """``series_id | labels | first_seen | last_seen`` of the matching series, by id."""
        sel = _parse(selector)
        return self._snapshot(tenant, self._head(tenant)).select(sel)

    def select(
        self,
        tenant: str,
        selector: str | Selector | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> pa.Table:
        """Samples of the matching series in ``[start, end)``: one row per (series_id,
        timestamp) (last write wins), sorted by series_id then timestamp."""
        sid, ts, val, _ = self._scan(tenant, _parse(selector), start, end)
        return sm.long_table(sid, ts, val)

    def load_batch(
        self, tenant: str, selector: str | Selector | None, start: int, end: int, step: int,
        *, series_ids: np.ndarray | None = None,
    ) -> SeriesBatch:
        """Dense batch over ``[start, end)`` (see ``batch.py``): one row per matching series
        with at least one sample in the range, ordered by series_id; NaN where a step has
        no sample.  ``series_ids`` narrows the selection to those series (an engine
        partition); an id of a derived series (:meth:`view_plan`: a counter's rate, a
        histogram's quantile) gives that series, computed on this grid from its raw
        sources."""
        for name, value in (("start", start), ("end", end), ("step", step)):
            if not isinstance(value, int | np.integer):
                raise TypeError(f"{name}={value!r} must be an int (ms)")
        if step <= 0:
            raise ValueError(f"step={step} ms is invalid: expected a positive step")
        views = np.zeros(0, dtype=np.int64)
        plan = None
        if series_ids is not None:
            wanted = np.unique(np.asarray(series_ids, dtype=np.int64))
            _, raw = self._snapshot(tenant, self._head(tenant)).positions(wanted)
            # the view plan (a parse of the whole catalog) only when some id is not raw
            plan = self.view_plan(tenant) if not raw.all() else None
            pos, is_view = (plan.view_index(wanted) if plan is not None
                            else (raw, np.zeros(len(wanted), dtype=bool)))
            if plan is not None and is_view.any():
                views = pos[is_view]
                sources = np.concatenate([plan.view_sources[p] for p in views])
                series_ids = np.union1d(wanted[~is_view], sources)
                raw_wanted = wanted[~is_view]
        sid, ts, val, snap = self._scan(tenant, _parse(selector), int(start), int(end),
                                        series_ids)
        ids, values = sm.dense_from_sorted(sid, ts, val, start=start, end=end, step=step)
        pos, _ = snap.positions(ids)
        texts = snap.table.column("labels").combine_chunks().take(pa.array(pos)).to_pylist()
        labels = [parse_labels_json(t) for t in texts] if len(ids) else []
        if len(views) and plan is not None:
            derived = mt.view_values(plan, views, ids, values, int(step))
            keep_raw = np.isin(ids, raw_wanted)
            has = ~np.isnan(derived).all(axis=1)
            all_ids = np.concatenate([ids[keep_raw], plan.view_ids[views][has]])
            all_values = np.concatenate([values[keep_raw], derived[has]])
            all_labels = [lab for lab, k in zip(labels, keep_raw, strict=True) if k] + [
                plan.view_labels[p] for p, h in zip(views, has, strict=True) if h]
            order = np.argsort(all_ids, kind="stable")
            return SeriesBatch(all_ids[order], int(start), int(step), all_values[order],
                               [all_labels[i] for i in order])
        return SeriesBatch(ids, int(start), int(step), values, labels)

    def time_range(self, tenant: str) -> tuple[int, int] | None:
        """``(first, last)`` sample timestamp (ms) of the tenant, None when it holds none: read
        from the Delta log's per-file statistics, not from the samples (``stats`` scans them;
        a service tick must not read the whole history)."""
        if tenant not in self.tenants():
            return None
        dt = open_table(self.layout, tenant, self._head(tenant), SAMPLES)
        if dt is None:
            return None
        actions = pa.table(dt.get_add_actions(flatten=True))
        if actions.num_rows == 0 or "min.timestamp" not in actions.column_names:
            stats = self.stats(tenant)  # no statistics: count the samples
            if not stats["samples"]:
                return None
            return int(stats["min_timestamp"]), int(stats["max_timestamp"])
        rows = actions.column("num_records").to_numpy(zero_copy_only=False)
        keep = rows > 0
        if not keep.any():
            return None
        lo = actions.column("min.timestamp").cast(pa.int64()).to_numpy(zero_copy_only=False)
        hi = actions.column("max.timestamp").cast(pa.int64()).to_numpy(zero_copy_only=False)
        return int(lo[keep].min()), int(hi[keep].max())

    # ------------------------------------------------------------- series churn

    def mark_stale(self, tenant: str, stale: pa.Table) -> int:
        """Keep staleness markers (``series_id, at`` ms): a series whose newest marker is at or
        after its last sample has ended (a pod went away; Prometheus wrote the marker)."""
        table = stale.select(["series_id", "at"]).cast(STALE_SCHEMA)
        if table.num_rows:
            self.write_table(tenant, STALE_TABLE, table)
        return table.num_rows

    def active_ids(self, tenant: str, now_ms: int, ttl_ms: int) -> np.ndarray:
        """Sorted ids of the tenant's active series: a sample within ``ttl_ms`` before
        ``now_ms`` and no staleness marker since that sample."""
        if tenant not in self.tenants():
            return np.zeros(0, dtype=np.int64)
        snap = self._snapshot(tenant, self._head(tenant))
        ids = snap.ids
        last = snap.table.column("last_seen").to_numpy(zero_copy_only=False)
        active = last >= now_ms - ttl_ms
        marks = self.read_table(tenant, STALE_TABLE)
        if marks is not None and marks.num_rows:
            m_ids = marks.column("series_id").to_numpy()
            m_at = marks.column("at").to_numpy()
            order = np.lexsort((m_at, m_ids))
            m_ids, m_at = m_ids[order], m_at[order]
            newest = np.r_[m_ids[1:] != m_ids[:-1], True]
            m_ids, m_at = m_ids[newest], m_at[newest]
            pos, hit = snap.positions(m_ids)
            ended = np.zeros(len(ids), dtype=bool)
            ended[pos[hit]] = m_at[hit] >= last[pos[hit]]
            active &= ~ended
        return np.sort(ids[active])

    def modelled_active_ids(self, tenant: str, now_ms: int, ttl_ms: int) -> np.ndarray:
        """Sorted ids of the active series the engine models: active raw series scored as
        they are, and derived series with at least one active source."""
        active = self.active_ids(tenant, now_ms, ttl_ms)
        plan = self.view_plan(tenant)
        raw = np.intersect1d(active, plan.scored_raw_ids)
        if not len(plan.view_ids):
            return raw
        sizes = np.array([len(src) for src in plan.view_sources], dtype=np.int64)
        hit = np.isin(np.concatenate(plan.view_sources), active).astype(np.int64)
        live = np.add.reduceat(hit, np.r_[0, np.cumsum(sizes)[:-1]]) > 0  # one isin in all
        return np.union1d(raw, plan.view_ids[live])

    # ------------------------------------------------------- metric types and views

    def metric_types(self, tenant: str) -> dict[str, str]:
        """Declared metric types (metric or family name -> type): remote-write metadata,
        ``# TYPE`` lines and the user's overrides (``vigil types set``); an override wins over
        metadata, and the latest declaration of a source wins."""
        table = self.read_table(tenant, METRIC_TYPES_TABLE)
        if table is None or table.num_rows == 0:
            return {}
        rank = {"metadata": 0, "file": 0, "config": 1}
        rows = sorted(table.to_pylist(), key=lambda r: (rank.get(r["source"], 0), r["at"]))
        return {r["name"]: r["type"] for r in rows}

    def declare_types(self, tenant: str, types: dict[str, str], source: str, at: int) -> int:
        """Keep declared types (see :meth:`metric_types`); only changes are written."""
        current = self.metric_types(tenant)
        new = {k: mt.check_type(k, v) for k, v in types.items()}
        new = {k: v for k, v in new.items() if current.get(k) != v or source == "config"}
        if not new:
            return 0
        self.write_table(tenant, METRIC_TYPES_TABLE, pa.table({
            "name": list(new), "type": list(new.values()), "source": [source] * len(new),
            "at": [int(at)] * len(new)}, schema=METRIC_TYPES_SCHEMA))
        return len(new)

    def view_plan(self, tenant: str) -> mt.ViewPlan:
        """The tenant's metric types and derived series (:mod:`vigil.metrictypes`), cached
        per catalog and declared-types version."""
        head = self._head(tenant)
        key = (self._cache_key(tenant, head),
               head.versions.get(table_key(METRIC_TYPES_TABLE)))
        with self._lock:
            hit = self._plans.get(tenant)
            if hit is not None and hit[0] == key:
                return hit[1]
        snap = self._snapshot(tenant, head)
        labels = [parse_labels_json(t) for t in snap.table.column("labels").to_pylist()]
        plan = mt.plan_views(snap.ids, labels, self.metric_types(tenant))
        with self._lock:
            self._plans[tenant] = (key, plan)
            while len(self._plans) > CATALOG_CACHE_TENANTS:
                self._plans.popitem(last=False)
        return plan

    def modelled_catalog(self, tenant: str) -> pa.Table:
        """``series_id, labels`` of the series the engine models, sorted by id: raw series
        whose role is ``scored`` (gauges, summary quantiles) and every derived series."""
        plan = self.view_plan(tenant)
        snap = self._snapshot(tenant, self._head(tenant))
        raw = snap.table.filter(pa.array(plan.role == mt.ROLE_SCORED)) if len(plan.role) \
            else snap.table
        views = pa.table({"series_id": pa.array(plan.view_ids, pa.int64()),
                          "labels": pa.array([labels_json(v) for v in plan.view_labels],
                                             pa.string())})
        both = pa.concat_tables([raw.select(["series_id", "labels"]), views])
        return both.sort_by("series_id")

    def events(self, tenant: str, start: int | None = None, end: int | None = None) -> pa.Table:
        """Events with ``start <= time < end`` (None: unbounded), sorted by time, event_id."""
        head = self._head(tenant)
        return ev.read_events(
            open_table(self.layout, tenant, head, EVENTS), duckdb_cursor(), start, end
        )

    def read_table(self, tenant: str, name: str) -> pa.Table | None:
        """A table written with ``write_table``, or None if it was never written."""
        key = table_key(name)
        dt = open_table(self.layout, tenant, self._head(tenant), key)
        return None if dt is None else dataset(dt).to_table()

    def stats(self, tenant: str) -> dict[str, Any]:
        """Counts of the committed state: series, samples (distinct series x timestamp),
        rows (stored, superseded ones included until compaction), files, days, time range."""
        head = self._head(tenant)
        snap = self._snapshot(tenant, head)
        out: dict[str, Any] = {
            "tenant": tenant,
            "series": snap.table.num_rows,
            "samples": 0,
            "rows": 0,
            "files": 0,
            "days": 0,
            "min_timestamp": None,
            "max_timestamp": None,
            "catalog_rows": snap.stored_rows,
            "events": 0,
            "seq": head.seq,
        }
        dt = open_table(self.layout, tenant, head, SAMPLES)
        if dt is not None:
            counts = sm.file_counts(dt)
            con = duckdb_cursor()
            con.register("samples_all", dataset(dt))
            rows, lo, hi = con.sql(
                "SELECT count(*), min(timestamp), max(timestamp) FROM samples_all"
            ).fetchall()[0]
            if all(files == 1 for files, _ in counts.values()):
                distinct = rows  # one file per day: each file holds unique keys
            else:
                distinct = con.sql(
                    "SELECT count(*) FROM (SELECT DISTINCT series_id, timestamp FROM samples_all)"
                ).fetchall()[0][0]
            out.update(
                samples=int(distinct),
                rows=int(rows),
                files=sum(f for f, _ in counts.values()),
                days=len(counts),
                min_timestamp=None if lo is None else int(lo),
                max_timestamp=None if hi is None else int(hi),
            )
        out["events"] = self.events(tenant).num_rows
        return out

    # ----------------------------------------------------------------- helpers

    def _head(self, tenant: str) -> Head:
        return self.layout.read_head(validate_tenant(tenant))

    def _scan(
        self, tenant: str, selector: Selector | None, start: int | None, end: int | None,
        series_ids: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, cat.CatalogSnapshot]:
        if start is not None and end is not None and end <= start:
            raise ValueError(f"time range [{start}, {end}) is empty: expected end > start")
        head = self._head(tenant)
        snap = self._snapshot(tenant, head)
        dt = open_table(self.layout, tenant, head, SAMPLES)
        empty = np.array([], dtype=np.int64)
        if dt is None:
            return empty, empty, np.array([], dtype=np.float64), snap
        ids = None
        if selector is not None:
            ids = snap.select(selector).column("series_id").to_numpy()
            if len(ids) == 0:
                return empty, empty, np.array([], dtype=np.float64), snap
            if len(ids) == snap.table.num_rows:
                ids = None  # every series: no id filter needed
        if series_ids is not None:
            wanted = np.unique(np.asarray(series_ids, dtype=np.int64))
            ids = wanted if ids is None else np.intersect1d(ids, wanted)
            if len(ids) == 0:
                return empty, empty, np.array([], dtype=np.float64), snap
        sid, ts, val = sm.scan(dt, start=start, end=end, ids=ids, universe=snap.ids)
        return sid, ts, val, snap

    def _snapshot(self, tenant: str, head: Head) -> cat.CatalogSnapshot:
        key = self._cache_key(tenant, head)
        if key is None:
            return cat.empty_snapshot()
        with self._lock:
            hit = self._catalogs.get(tenant)
            if hit is not None and hit[0] == key:
                self._catalogs.move_to_end(tenant)
                return hit[1]
        dt = open_table(self.layout, tenant, head, CATALOG)
        snap = cat.load_snapshot(dt, duckdb_cursor())
        self._cache_put(tenant, head, snap)
        return snap

    def _cache_key(self, tenant: str, head: Head) -> tuple[int, int] | None:
        """Catalog version plus its log entry's mtime (a re-created table differs)."""
        version = head.versions.get(CATALOG)
        if version is None:
            return None
        entry = log_entry(self.layout.table_path(tenant, CATALOG), version)
        try:
            return (version, entry.stat().st_mtime_ns)
        except FileNotFoundError:  # folded into a checkpoint and cleaned up
            return (version, -1)

    def _cache_put(self, tenant: str, head: Head, snap: cat.CatalogSnapshot) -> None:
        key = self._cache_key(tenant, head)
        if key is None:
            return
        with self._lock:
            self._catalogs[tenant] = (key, snap)
            self._catalogs.move_to_end(tenant)
            while len(self._catalogs) > CATALOG_CACHE_TENANTS:
                self._catalogs.popitem(last=False)


def _parse(selector: str | Selector | None) -> Selector | None:
    if selector is None or isinstance(selector, Selector):
        return selector
    return parse_selector(selector)
