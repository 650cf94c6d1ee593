"""Keeping insights, feedback and suppression rules in a tenant's store tables.

* ``insights``: one row per insight (overwritten by each run): id, kind, severity, status,
  start, end, opened_at, group_key and ``json`` (the full contract object);
* ``insight_feedback``: appended feedback records (:mod:`vigil.insights.feedback`);
* ``suppressions``: the suppression rules as given (overwritten on every change).

:func:`refresh_insights` runs the pipeline over what ``vigil detect`` keeps (tables
``anomalies`` and ``exhaustion``), the tenant's change events, feedback and suppressions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from vigil.insights.build import InsightConfig
from vigil.insights.feedback import FEEDBACK_SCHEMA, feedback, feedback_table
from vigil.insights.inputs import ValuesFn
from vigil.insights.model import Insight, insight_from_json, insight_to_json
from vigil.insights.pipeline import PipelineResult, run_pipeline
from vigil.insights.suppress import Suppression, parse_suppressions

INSIGHTS = "insights"
FEEDBACK = "insight_feedback"
SUPPRESSIONS = "suppressions"
INSIGHT_SCHEMA = pa.schema([
    ("id", pa.string()), ("kind", pa.string()), ("severity", pa.string()),
    ("status", pa.string()), ("start", pa.int64()), ("end", pa.int64()),
    ("opened_at", pa.int64()), ("group_key", pa.string()), ("json", pa.string()),
])


def save_insights(store: Any, tenant: str, insights: Sequence[Insight]) -> None:
    rows = [{"id": i.id, "kind": i.kind, "severity": i.severity, "status": i.status,
             "start": i.start, "end": i.end, "opened_at": i.opened_at,
             "group_key": i.group_key,
             "json": json.dumps(insight_to_json(i), ensure_ascii=False, allow_nan=False)}
            for i in insights]
    store.write_table(tenant, INSIGHTS, pa.Table.from_pylist(rows, schema=INSIGHT_SCHEMA),
                      mode="overwrite")


def load_insights(store: Any, tenant: str) -> list[Insight]:
    table = store.read_table(tenant, INSIGHTS)
    if table is None:
        return []
    out = [insight_from_json(json.loads(t)) for t in table.column("json").to_pylist()]
    return sorted(out, key=lambda i: (i.opened_at, i.id))


def find_insight(store: Any, tenant: str, insight_id: str) -> Insight:
    """The stored insight with this id (a unique prefix also works)."""
    insights = load_insights(store, tenant)
    hits = [i for i in insights if i.id == insight_id] or [
        i for i in insights if i.id.startswith(insight_id)]
    if not hits:
        raise ValueError(f"no insight {insight_id!r} in tenant {tenant!r}: list them with "
                         "'vigil insights'")
    if len(hits) > 1:
        raise ValueError(f"{insight_id!r} matches {len(hits)} insights: give more of the id")
    return hits[0]


def read_feedback(store: Any, tenant: str) -> list[dict[str, Any]]:
    table = store.read_table(tenant, FEEDBACK)
    return [] if table is None else table.to_pylist()


def add_feedback(store: Any, tenant: str, insight_id: str, label: str, note: str, *,
                 time_ms: int, user: str = "") -> dict[str, Any]:
    """Validate and append one feedback record on a stored insight."""
    ins = find_insight(store, tenant, insight_id)
    rec = feedback(ins, label, note, time_ms=time_ms, user=user)
    table = feedback_table([rec])
    assert table.schema.equals(FEEDBACK_SCHEMA)
    store.write_table(tenant, FEEDBACK, table)
    from vigil.ledger.record import record_feedback

    record_feedback(store, tenant, rec)
    return rec


def read_suppressions(store: Any, tenant: str) -> list[Suppression]:
    table = store.read_table(tenant, SUPPRESSIONS)
    if table is None or table.num_rows == 0:
        return []
    return parse_suppressions([json.loads(t) for t in table.column("rule").to_pylist()],
                              f"tenant {tenant} suppressions")


def write_suppressions(store: Any, tenant: str, rules: Sequence[dict[str, Any]]) -> None:
    """Replace the tenant's rules (validated first: a bad rule writes nothing)."""
    parse_suppressions(list(rules), "suppressions")
    before = raw_suppressions(store, tenant)
    texts = [json.dumps(r, sort_keys=True, default=str) for r in rules]
    store.write_table(tenant, SUPPRESSIONS,
                      pa.table({"rule": pa.array(texts, pa.string())}), mode="overwrite")
    from vigil.ledger.record import record_suppressions

    record_suppressions(store, tenant, before, [json.loads(t) for t in texts])


def raw_suppressions(store: Any, tenant: str) -> list[dict[str, Any]]:
    table = store.read_table(tenant, SUPPRESSIONS)
    return [] if table is None else [json.loads(t) for t in table.column("rule").to_pylist()]


def refresh_insights(store: Any, tenant: str, *, config: InsightConfig | None = None,
                     values: ValuesFn | None = None, now: int | None = None,
                     anomalies: Sequence[dict[str, Any]] | None = None,
                     exhaustion: Sequence[dict[str, Any]] | None = None) -> PipelineResult:
    """Rebuild the tenant's insights from its stored results and keep them (``insights``).

    ``anomalies``/``exhaustion`` default to the tables ``vigil detect`` writes."""
    if anomalies is None:
        table = store.read_table(tenant, "anomalies")
        anomalies = [] if table is None else table.to_pylist()
    if exhaustion is None:
        table = store.read_table(tenant, "exhaustion")
        exhaustion = [] if table is None else table.to_pylist()
    previous = load_insights(store, tenant)
    cfg = config or InsightConfig(tenant=tenant)
    result = run_pipeline(anomalies, store.events(tenant), exhaustion, now=now,
                          previous=previous, suppressions=read_suppressions(store, tenant),
                          feedback=read_feedback(store, tenant), config=cfg, values=values)
    save_insights(store, tenant, result.insights)
    return result
