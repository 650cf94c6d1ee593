"""Scoring insights against the simulator's ``truth.json`` (rules in docs/insights.md).

* An incident is **found** by an insight whose onset is no earlier than the incident's start
  minus ``grace_ms``, that was opened (``opened_at``) within ``[start - grace, end + grace]``
  and that holds evidence on a series carrying every label of the incident and one of its
  metrics: a reactive insight an anomaly interval overlapping the incident, a proactive one a
  forecast member still at risk (``last_seen``) at or after the start.  (An insight that
  opened long before the incident and merely lasted into it does not count.)  Its **delay**
  is the first such insight's ``opened_at`` minus the incident start (0 if earlier).
* An insight is **false** when no incident overlaps ``[start, last_seen]`` (widened by
  ``grace_ms`` on the incident's side) with labels some member series carries (any metric: a
  traffic surge also moves CPU and latency).  Rate: per 1,000 series-days.
* **Cause ranked first**: for incidents with a ``cause_event_id``, whether the earliest found
  insight that lists candidate causes ranks that event first (``cause_first``), and whether
  any found insight does (``cause_first_any``).
* **Exhaustion** (``memory_leak``, ``disk_filling``): whether a proactive insight was opened
  before the true ``limit_crossing_time``, its lead (true crossing - opened), and the relative
  error of its median crossing time when it opened: ``|p50 - true| / (true - opened)``
  (``crossing_error``); ``crossing_error_over_life`` is the median of the same ratio over the
  forecasts it carried before the crossing (opening, recorded moves, latest).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from statistics import median
from typing import Any

from vigil.insights.model import Insight
from vigil.timeparse import parse_time

GRACE_MS = 60 * 60 * 1000
EXHAUSTION_KINDS = ("memory_leak", "disk_filling")


def _carries(series: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(series.get(k) == v for k, v in wanted.items())


def _members(ins: Insight) -> list[Mapping[str, str]]:
    out: list[Mapping[str, str]] = list(ins.series)
    if ins.forecast is not None:
        out.append(ins.forecast.labels)
    return out


def _finds(ins: Insight, inc: Mapping[str, Any], start: int, end: int, grace: int) -> bool:
    """Whether ``ins`` detects the incident: evidence on one of its series and metrics inside
    the incident, and the insight began around it (not days before, then merely lasting)."""
    metrics = set(inc.get("metrics") or [])
    labels = inc.get("labels") or {}

    def wanted(s: Mapping[str, str]) -> bool:
        return _carries(s, labels) and (not metrics or s.get("__name__") in metrics)

    if ins.kind == "proactive":
        on = any(wanted(s) for s in _members(ins)) and ins.last_seen >= start
    else:
        on = any(wanted(a.labels) and a.start <= end + grace and a.end >= start
                 for a in ins.anomalies)
    return on and start - grace <= ins.opened_at <= end + grace and ins.onset >= start - grace


def _explains(ins: Insight, inc: Mapping[str, Any], start: int, end: int, grace: int) -> bool:
    labels = inc.get("labels") or {}
    return (any(_carries(s, labels) for s in _members(ins))
            and ins.start <= end + grace and ins.last_seen >= start - grace)


def evaluate_insights(
    insights: Sequence[Insight],
    truth: Mapping[str, Any],
    *,
    n_series: int,
    days: float,
    grace_ms: int = GRACE_MS,
) -> dict[str, Any]:
    incidents = list(truth["incidents"])
    explained = [False] * len(insights)
    per_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"hit": [], "delay": []})
    details = []
    cause_first: list[bool] = []
    cause_any: list[bool] = []
    exhaustion = []
    for inc in incidents:
        start, end = parse_time(inc["start"]), parse_time(inc["end"])
        for i, ins in enumerate(insights):
            if _explains(ins, inc, start, end, grace_ms):
                explained[i] = True
        found = sorted((ins for ins in insights if _finds(ins, inc, start, end, grace_ms)),
                       key=lambda x: (x.opened_at, x.id))
        delay = max(0, found[0].opened_at - start) / 60_000 if found else None
        per_kind[inc["kind"]]["hit"].append(1.0 if found else 0.0)
        if delay is not None:
            per_kind[inc["kind"]]["delay"].append(delay)
        row: dict[str, Any] = {"id": inc.get("id"), "kind": inc["kind"], "found": bool(found),
                               "delay_minutes": delay, "insights": [x.id for x in found]}
        cause = inc.get("cause_event_id")
        if cause:
            with_events = [x for x in found if x.events]
            first = bool(with_events) and with_events[0].events[0].event_id == cause
            anyone = any(x.events[0].event_id == cause for x in with_events)
            cause_first.append(first)
            cause_any.append(anyone)
            row["cause_first"], row["cause_first_any"] = first, anyone
        if inc["kind"] in EXHAUSTION_KINDS and inc.get("limit_crossing_time"):
            exhaustion.append(_exhaustion_row(inc, found, row))
        details.append(row)
    n_false = len(insights) - sum(explained)
    series_days = max(n_series * days, 1e-9)
    kinds = {
        kind: {"incidents": len(v["hit"]), "recall": sum(v["hit"]) / len(v["hit"]),
               "median_delay_minutes": median(v["delay"]) if v["delay"] else None}
        for kind, v in sorted(per_kind.items())
    }
    hits = [h for v in per_kind.values() for h in v["hit"]]
    delays = [d for v in per_kind.values() for d in v["delay"]]
    errors = [r["crossing_error"] for r in exhaustion if r["crossing_error"] is not None]
    life = [r["crossing_error_over_life"] for r in exhaustion
            if r["crossing_error_over_life"] is not None]
    leads = [r["lead_minutes"] for r in exhaustion if r["lead_minutes"] is not None]
    return {
        "insights": len(insights),
        "reactive": sum(1 for i in insights if i.kind == "reactive"),
        "proactive": sum(1 for i in insights if i.kind == "proactive"),
        "false_insights": n_false,
        "false_insights_per_1000_series_days": 1000 * n_false / series_days,
        "false_insight_ids": [ins.id for ins, ok in zip(insights, explained, strict=True)
                              if not ok],
        "recall": sum(hits) / len(hits) if hits else None,
        "every_kind_found": all(any(v["hit"]) for v in per_kind.values()),
        "median_delay_minutes": median(delays) if delays else None,
        "per_kind": kinds,
        "cause_ranked_first": sum(cause_first) / len(cause_first) if cause_first else None,
        "cause_ranked_first_any": sum(cause_any) / len(cause_any) if cause_any else None,
        "proactive_before_crossing": (sum(r["proactive_before_crossing"] for r in exhaustion)
                                      / len(exhaustion) if exhaustion else None),
        "median_crossing_error": median(errors) if errors else None,
        "median_crossing_error_over_life": median(life) if life else None,
        "median_lead_minutes": median(leads) if leads else None,
        "exhaustion": exhaustion,
        "incidents": details,
    }


def _exhaustion_row(inc: Mapping[str, Any], found: Sequence[Insight],
                    row: dict[str, Any]) -> dict[str, Any]:
    true = parse_time(inc["limit_crossing_time"])
    pro = [x for x in found if x.kind == "proactive" and x.opened_at < true]
    out: dict[str, Any] = {"id": inc.get("id"), "kind": inc["kind"],
                           "proactive_before_crossing": bool(pro), "lead_minutes": None,
                           "crossing_error": None, "crossing_error_over_life": None}
    if pro:
        first = pro[0]
        out["lead_minutes"] = (true - first.opened_at) / 60_000
        f = first.first_forecast or first.forecast
        if f is not None and f.crossing_time_p50 is not None:
            out["crossing_error"] = abs(f.crossing_time_p50 - true) / max(
                true - first.opened_at, 1)
        life = [g for g in (first.first_forecast, *first.updates, first.forecast)
                if g is not None and g.crossing_time_p50 is not None and g.evaluated_at < true]
        errors = {g.evaluated_at: abs(g.crossing_time_p50 - true) / max(true - g.evaluated_at, 1)
                  for g in life if g.crossing_time_p50 is not None}
        if errors:
            out["crossing_error_over_life"] = median(errors.values())
    row["proactive_before_crossing"] = out["proactive_before_crossing"]
    return out
