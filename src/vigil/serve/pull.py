"""Pull mode: read series from a Prometheus-compatible HTTP API (``/api/v1/query_range``).

Each reader of the config queries its PromQL expressions every ``every`` over the span since its
last pull (the first pull reaches ``lookback`` back), on a grid of ``step``, and appends the
result to its tenant's store like any other ingest.  The span ends one ``step`` before now so a
column is read once complete.  Works against Prometheus, VictoriaMetrics, Thanos, Mimir.
Metric types come from the server's ``/api/v1/metadata`` at the first pull and hourly after
(:mod:`vigil.metrictypes`: counters are then modelled as rates).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
import numpy as np
import pyarrow as pa

from vigil.engine.backtest import parse_duration
from vigil.metrictypes import METRIC_TYPES
from vigil.series import canonical_labels, labels_json, series_id
from vigil.serve.config import ReaderConfig
from vigil.store.samples import long_table

log = logging.getLogger("vigil.serve.pull")
METADATA_EVERY_S = 3600.0


class PullError(RuntimeError):
    pass


def matrix_to_tables(result: list[dict[str, Any]], query: str) -> tuple[pa.Table, pa.Table]:
    """Samples and catalog of a ``query_range`` matrix result."""
    sids, tss, vals, cat_ids, cat_labels = [], [], [], [], []
    for item in result:
        metric = item.get("metric") or {}
        if "__name__" not in metric:  # an expression without a name: name it after the query
            metric = {**metric, "__name__": _name_of(query)}
        labels = canonical_labels(metric)
        sid = series_id(labels)
        values = item.get("values") or []
        if not values:
            continue
        ts = np.array([round(float(v[0]) * 1000) for v in values], dtype=np.int64)
        val = np.array([float(v[1]) for v in values], dtype=np.float64)
        sids.append(np.full(len(ts), sid, dtype=np.int64))
        tss.append(ts)
        vals.append(val)
        cat_ids.append(sid)
        cat_labels.append(labels_json(labels))
    if not sids:
        empty = np.zeros(0, dtype=np.int64)
        return long_table(empty, empty, np.zeros(0)), pa.table(
            {"series_id": pa.array([], pa.int64()), "labels": pa.array([], pa.string())})
    samples = long_table(np.concatenate(sids), np.concatenate(tss), np.concatenate(vals))
    catalog = pa.table({"series_id": pa.array(cat_ids, pa.int64()),
                        "labels": pa.array(cat_labels, pa.string())})
    return samples, catalog


def _name_of(query: str) -> str:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in query).strip("_")[:100]
    return name if name and not name[0].isdigit() else f"q_{name}"


class Reader:
    def __init__(self, cfg: ReaderConfig, client: httpx.Client | None = None) -> None:
        self.cfg = cfg
        auth = (cfg.basic_auth.username, cfg.basic_auth.password) if cfg.basic_auth else None
        headers = {"Authorization": f"Bearer {cfg.bearer_token}"} if cfg.bearer_token else {}
        self._client = client or httpx.Client(timeout=parse_duration(cfg.timeout) / 1000,
                                              auth=auth, headers=headers)
        self.step_ms = parse_duration(cfg.step)
        self.every_s = parse_duration(cfg.every) / 1000
        self.last_end: int | None = None
        self.next_due = 0.0
        self.next_metadata = 0.0  # monotonic time of the next /api/v1/metadata read

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def pull(self, store: Any, now_ms: int | None = None) -> int:
        """One pull of every query; returns the samples appended."""
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        self.next_due = time.monotonic() + self.every_s
        end = (now_ms - self.step_ms) // self.step_ms * self.step_ms
        start = (self.last_end + self.step_ms if self.last_end is not None
                 else end - parse_duration(self.cfg.lookback))
        if end < start:
            return 0
        if time.monotonic() >= self.next_metadata:
            self.pull_metadata(store, now_ms)
        total = 0
        for query in self.cfg.queries:
            params = {"query": query, "start": f"{start / 1000:.3f}", "end": f"{end / 1000:.3f}",
                      "step": f"{self.step_ms / 1000:g}s"}
            try:
                resp = self._client.get(self.cfg.url.rstrip("/") + "/api/v1/query_range",
                                        params=params)
                body = resp.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise PullError(f"reader {self.cfg.url}: query {query!r} failed: {exc}") from exc
            if resp.status_code != 200 or body.get("status") != "success":
                raise PullError(f"reader {self.cfg.url}: query {query!r} answered "
                                f"{resp.status_code}: {body.get('error', body)}")
            data = body.get("data", {})
            if data.get("resultType") != "matrix":
                raise PullError(f"reader {self.cfg.url}: query {query!r} gave a "
                                f"{data.get('resultType')!r}, expected a range vector (matrix)")
            samples, catalog = matrix_to_tables(data.get("result", []), query)
            total += store.append(self.cfg.tenant, samples, catalog)
        self.last_end = end
        return total

    def pull_metadata(self, store: Any, now_ms: int) -> int:
        """Metric types from ``/api/v1/metadata`` (hourly; best effort: a server without the
        endpoint, or an error, leaves the naming rules in charge and is retried in an hour).
        An empty answer (a server that has not scraped yet) is asked again at the next pull.
        Returns the declarations that changed."""
        self.next_metadata = time.monotonic() + METADATA_EVERY_S
        try:
            resp = self._client.get(self.cfg.url.rstrip("/") + "/api/v1/metadata")
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("reader %s: /api/v1/metadata failed (%s); metric types follow naming "
                        "rules", self.cfg.url, exc)
            return 0
        if resp.status_code != 200 or body.get("status") != "success":
            log.warning("reader %s: /api/v1/metadata answered %s", self.cfg.url,
                        resp.status_code)
            return 0
        types = {}
        for name, entries in (body.get("data") or {}).items():
            kinds = {str(e.get("type", "")).lower() for e in entries if isinstance(e, dict)}
            if len(kinds) == 1 and (kind := kinds.pop()) in METRIC_TYPES:
                types[name] = kind  # several targets disagreeing: no declaration
        if not types:
            self.next_metadata = 0.0
        return store.declare_types(self.cfg.tenant, types, "metadata", now_ms) if types else 0

    def close(self) -> None:
        self._client.close()
