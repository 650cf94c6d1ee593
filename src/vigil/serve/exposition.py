"""``GET /metrics``: Vigil's own health and, per scored series, its latest score and band.

Per series (the newest scored step of each series of the requesting tenant), with the series'
original labels kept and its metric name moved to the label ``for`` (``__name__`` is taken by
the output name)::

    vigil_anomaly_score{for="http_requests_total", service="cart", pod="cart-1"} 0.42
    vigil_yhat / vigil_yhat_lower / vigil_yhat_upper{...}   expected value and band

The meaning follows vmanomaly's ``anomaly_score``/``yhat``/``yhat_lower``/``yhat_upper``:
a score above 1 is an anomaly, so ``vigil_anomaly_score > 1`` is the alert rule.  Scrape with
``honor_labels: true`` so the series' own ``job``/``instance`` labels are kept.

Health (labelled by ``tenant``, only the requesting tenant's): ``vigil_samples_ingested_total``,
``vigil_requests_total{handler,code}``, ``vigil_wal_lag_seconds``, ``vigil_wal_pending_samples``,
``vigil_fit_duration_seconds``, ``vigil_score_duration_seconds``, ``vigil_active_series``,
``vigil_warming_up_series``, ``vigil_scored_series``, ``vigil_open_insights``,
``vigil_last_scored_timestamp_seconds``.
"""

from __future__ import annotations

import json
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric

SERIES_OUTPUTS = (("vigil_anomaly_score", "anomaly_score",
                   "Anomaly score of the newest scored step (above 1: anomalous)."),
                  ("vigil_yhat", "expected", "Expected value of the newest scored step."),
                  ("vigil_yhat_lower", "lower", "Lower edge of the expected band."),
                  ("vigil_yhat_upper", "upper", "Upper edge of the expected band."))


def latest_rows(table: pa.Table) -> pa.Table:
    """The newest row of each series of a scores table sorted by (series, timestamp)."""
    if table.num_rows == 0:
        return table
    sid = table.column("series_id").to_numpy()
    last = np.flatnonzero(np.r_[sid[1:] != sid[:-1], True])
    return table.take(pa.array(last))


def label_block(labels_json: str) -> str:
    """``{k="v",...,for="<metric>"}`` of one series, escaped as the text format requires."""
    labels = json.loads(labels_json)
    out = {k: v for k, v in labels.items() if k != "__name__"}
    out["for"] = labels.get("__name__", "")
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in out.items()) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


# the newest outputs of a series: its label block, the SERIES_OUTPUTS values, warming up
Latest = tuple[str, tuple[float | None, ...], bool]


@dataclass
class TenantState:
    samples: int = 0
    series: dict[int, Latest] = field(default_factory=dict)  # id -> newest outputs
    fit_seconds: float = math.nan
    score_seconds: float = math.nan
    active_series: int = 0
    open_insights: int = 0
    last_scored: float = math.nan


class LiveMetrics:
    """Thread-safe counters and the latest scores, read by ``/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, TenantState] = defaultdict(TenantState)
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)  # tenant,handler,code
        self.wal_stats: Callable[[], dict[str, float]] = dict

    def request(self, tenant: str, handler: str, code: int) -> None:
        with self._lock:
            self._requests[(tenant, handler, str(code))] += 1

    def ingested(self, tenant: str, samples: int) -> None:
        with self._lock:
            self._tenants[tenant].samples += samples

    def tick(self, tenant: str, *, seconds: float, refit: bool, active: int,
             open_insights: int) -> None:
        with self._lock:
            st = self._tenants[tenant]
            if refit:
                st.fit_seconds = seconds
            else:
                st.score_seconds = seconds
            st.active_series = active
            st.open_insights = open_insights

    def scores(self, tenant: str, table: pa.Table) -> None:
        t = latest_rows(table)
        if t.num_rows == 0:
            return
        cols = [t.column(c).to_pylist() for c in
                ("series_id", "anomaly_score", "expected", "lower", "upper", "warming_up")]
        labels = t.column("labels").to_pylist()
        newest = t.column("timestamp").cast(pa.int64()).to_numpy().max() / 1000.0
        with self._lock:
            st = self._tenants[tenant]
            for i, (sid, score, exp, lo, hi, warm) in enumerate(zip(*cols, strict=True)):
                old = st.series.get(sid)
                block = old[0] if old is not None else label_block(labels[i])
                st.series[sid] = (block, (score, exp, lo, hi), bool(warm))
            st.last_scored = (newest if math.isnan(st.last_scored)
                              else max(st.last_scored, newest))

    def retire(self, tenant: str, active: np.ndarray) -> int:
        """Drop the per-series outputs of series not in ``active`` (sorted ids): a retired
        series leaves ``/metrics``.  Returns how many left."""
        with self._lock:
            st = self._tenants[tenant]
            if not st.series:
                return 0
            ids = np.fromiter(st.series, dtype=np.int64, count=len(st.series))
            gone = ids[~np.isin(ids, active)]
            for sid in gone.tolist():
                del st.series[sid]
            return len(gone)

    def render(self, tenant: str) -> bytes:
        """Health through prometheus_client, then the per-series outputs written directly
        from each series' cached label block (a scrape of 100k series is lines, not objects)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, tenant))
        with self._lock:
            st = self._tenants.get(tenant)
            latest = list(st.series.values()) if st is not None else []
        parts = [generate_latest(registry).decode()]
        for k, (name, _, doc) in enumerate(SERIES_OUTPUTS):
            parts.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n")
            parts.append("".join(f"{name}{block} {_value(v)}\n" for block, values, _ in latest
                                 if (v := values[k]) is not None and not math.isnan(v)))
        return "".join(parts).encode()

    def _health(self, tenant: str) -> Iterator[Metric]:
        with self._lock:
            st = self._tenants.get(tenant, TenantState())
            requests = {k: v for k, v in self._requests.items() if k[0] == tenant}
            warming = sum(1 for v in st.series.values() if v[2])
            scored = len(st.series)
        wal = self.wal_stats()
        t = {"tenant": tenant}
        yield _one("vigil_samples_ingested_total", "counter",
                   "Samples acknowledged (durable in the WAL or the store).", t, st.samples)
        m = Metric("vigil_requests", "HTTP requests by handler and status code.", "counter")
        for (_, handler, code), n in sorted(requests.items()):
            m.add_sample("vigil_requests_total", {**t, "handler": handler, "code": code}, n)
        yield m
        yield _one("vigil_wal_lag_seconds", "gauge",
                   "Age of the oldest WAL entry not yet checkpointed into the store.", {},
                   float(wal.get("lag_seconds", 0.0)))
        yield _one("vigil_wal_pending_samples", "gauge",
                   "Samples in the WAL not yet checkpointed into the store.", {},
                   float(wal.get("pending_samples", 0.0)))
        yield _one("vigil_fit_duration_seconds", "gauge",
                   "Wall time of the last run that fitted the models.", t, st.fit_seconds)
        yield _one("vigil_score_duration_seconds", "gauge",
                   "Wall time of the last run that continued the models (scoring only).", t,
                   st.score_seconds)
        yield _one("vigil_active_series", "gauge", "Active series the tenant models (a sample "
                   "within series_ttl, no staleness marker since).", t,
                   st.active_series)
        yield _one("vigil_scored_series", "gauge", "Series with a score.", t, scored)
        yield _one("vigil_warming_up_series", "gauge",
                   "Scored series whose newest score comes from no model of their own yet.",
                   t, warming)
        yield _one("vigil_open_insights", "gauge", "Insights with status ongoing.", t,
                   st.open_insights)
        yield _one("vigil_last_scored_timestamp_seconds", "gauge",
                   "Timestamp of the newest scored step.", t, st.last_scored)

class _Collector:
    def __init__(self, live: LiveMetrics, tenant: str) -> None:
        self.live, self.tenant = live, tenant

    def collect(self) -> Iterator[Metric]:
        yield from self.live._health(self.tenant)


def _one(name: str, kind: str, doc: str, labels: dict[str, str], value: float) -> Metric:
    metric_name = name.removesuffix("_total") if kind == "counter" else name
    m = Metric(metric_name, doc, kind)
    m.add_sample(name, labels, float(value))
    return m
