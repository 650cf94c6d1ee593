"""Feedback on insights, and the sensitivity rule it drives.

``feedback(insight, label, note)`` returns a record (the caller persists it, e.g. with
``Store.write_table(tenant, "insight_feedback", feedback_table(records))``).

**Rule** (reversible: it is recomputed from the records, so deleting a record, or labelling
the insight again, undoes it): for each insight only its latest record counts; each insight
of a group whose latest label is ``false_positive`` multiplies that group's evidence thresholds
by ``factor`` (default 1.5), capped at ``cap`` (default 5): ``min(cap, factor ** n)``.
``expected`` and ``true_positive`` leave sensitivity unchanged (``expected`` is the place for a
suppression rule instead).  For a proactive group the factor raises the opening probability
to ``1 - (1 - p) / factor``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from vigil.insights.model import Insight

LABELS = ("false_positive", "expected", "true_positive")
DEFAULT_FACTOR = 1.5
DEFAULT_CAP = 5.0
FEEDBACK_SCHEMA = pa.schema([
    ("insight_id", pa.string()),
    ("group_key", pa.string()),
    ("kind", pa.string()),
    ("label", pa.string()),
    ("note", pa.string()),
    ("time", pa.int64()),
    ("user", pa.string()),
])


def feedback(insight: Insight | str, label: str, note: str = "", *, time_ms: int,
             group_key: str | None = None, kind: str | None = None, user: str = ""
             ) -> dict[str, Any]:
    """A feedback record on an insight (an :class:`Insight`, or its id with ``group_key``)."""
    if label not in LABELS:
        raise ValueError(f"feedback label {label!r} is invalid: expected one of "
                         f"{', '.join(LABELS)}")
    if isinstance(insight, Insight):
        insight_id, group_key, kind = insight.id, insight.group_key, insight.kind
    else:
        insight_id = insight
        if group_key is None:
            raise ValueError(
                f"feedback on insight {insight!r} needs its group_key (e.g. "
                "'namespace=shop,service=cart,site=site-1'): pass the Insight or group_key="
            )
    if not isinstance(time_ms, int) or isinstance(time_ms, bool):
        raise ValueError(f"time_ms={time_ms!r} is invalid: expected epoch milliseconds (int)")
    return {"insight_id": insight_id, "group_key": group_key, "kind": kind or "",
            "label": label, "note": note, "time": time_ms, "user": user}


def feedback_table(records: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = list(records)
    return pa.Table.from_pylist([{f.name: r.get(f.name, "") for f in FEEDBACK_SCHEMA}
                                 for r in rows], schema=FEEDBACK_SCHEMA)


def latest_labels(records: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The latest record per insight id (ties: the later one given)."""
    out: dict[str, Mapping[str, Any]] = {}
    for rec in records:
        prev = out.get(rec["insight_id"])
        if prev is None or int(rec["time"]) >= int(prev["time"]):
            out[rec["insight_id"]] = rec
    return out


def sensitivity_factors(records: Iterable[Mapping[str, Any]] | pa.Table, *,
                        factor: float = DEFAULT_FACTOR, cap: float = DEFAULT_CAP
                        ) -> dict[str, float]:
    """Threshold multiplier per group key text (groups without false positives are absent)."""
    if not (math.isfinite(factor) and factor >= 1.0 and math.isfinite(cap) and cap >= 1.0):
        raise ValueError(f"factor={factor} and cap={cap} must be finite numbers >= 1")
    rows = records.to_pylist() if isinstance(records, pa.Table) else list(records)
    count: dict[str, int] = {}
    for rec in latest_labels(rows).values():
        if rec["label"] == "false_positive":
            count[str(rec["group_key"])] = count.get(str(rec["group_key"]), 0) + 1
    return {g: min(cap, factor**n) for g, n in count.items()}
