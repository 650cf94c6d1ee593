"""The alert pipeline: anomalies -> insights -> de-duplication -> suppression -> notifications.

Like a detection pipeline in security monitoring, each stage is a pure function over records,
so a run is reproducible and every stage can be inspected:

1. :func:`vigil.insights.build.build_insights` (with the feedback sensitivity factors);
2. :func:`deduplicate`: one insight per id; against the previous run's table (with
   ``carry_over``), the newer version of each id wins and insights that are no longer rebuilt
   (their data aged out) are carried over unchanged;
3. :func:`vigil.insights.suppress.apply_suppressions`: mute / do-not-learn tags;
4. :func:`notifications`: what changed since the previous run, as ``opened``, ``updated`` and
   ``closed`` records; muted insights are never notified.

Lifecycle: a reactive insight is ``ongoing`` while its last anomaly ended within the quiet
period (default 1 h) of ``now`` and ``closed`` after; a proactive one is ongoing while its
forecast keeps the risk and closes when it recedes (see :mod:`vigil.insights.proactive`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from vigil.insights.build import BuildResult, InsightConfig, build_insights
from vigil.insights.feedback import sensitivity_factors
from vigil.insights.inputs import ExhaustionRecord, ValuesFn
from vigil.insights.model import Anomaly, ChangeEvent, Insight
from vigil.insights.recommend import Rule
from vigil.insights.suppress import Suppression, apply_suppressions, learning_exclusions

ACTIONS = ("opened", "updated", "closed")


@dataclass
class PipelineResult:
    insights: list[Insight]
    notifications: list[dict[str, Any]]
    exclusions: list[dict[str, Any]]  # do-not-learn (selector, window) pairs for the engine
    notes: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)


def deduplicate(current: Iterable[Insight], previous: Iterable[Insight] = ()) -> list[Insight]:
    """One insight per id (the current run's version over the previous one; within a run the
    one seen last), each linked to the ``related`` insights of the same group (metric aside)
    whose time spans overlap, e.g. a memory anomaly and the forecast of the same pods."""
    fresh: dict[str, Insight] = {}
    for ins in current:
        old = fresh.get(ins.id)
        if old is None or ins.last_seen >= old.last_seen:
            fresh[ins.id] = ins
    out = {i.id: i for i in previous}
    out.update(fresh)
    by_group: dict[tuple[tuple[str, str], ...], list[Insight]] = {}
    for ins in out.values():
        key = tuple(sorted((k, v) for k, v in ins.group.items() if k != "__name__"))
        by_group.setdefault(key, []).append(ins)
    linked = []
    for members in by_group.values():
        for ins in members:
            end = ins.end if ins.end is not None else ins.last_seen
            rel = sorted(o.id for o in members if o.id != ins.id and o.start <= end
                         and (o.end if o.end is not None else o.last_seen) >= ins.start)
            linked.append(replace(ins, related=rel) if rel != ins.related else ins)
    return sorted(linked, key=lambda i: (i.opened_at, i.id))


def _record(ins: Insight, action: str, time: int, reason: str) -> dict[str, Any]:
    return {"insight_id": ins.id, "action": action, "time": time, "kind": ins.kind,
            "severity": ins.severity, "status": ins.status, "summary": ins.summary,
            "group": dict(ins.group), "reason": reason}


def _changes(old: Insight, new: Insight) -> list[str]:
    out = []
    if old.severity != new.severity:
        out.append(f"severity {old.severity} -> {new.severity}")
    if len(new.updates) > len(old.updates):
        out.append("the forecast moved")
    if len(new.series) > len(old.series):
        out.append(f"{len(new.series) - len(old.series)} more series")
    if old.events[:1] != new.events[:1] and new.events:
        out.append(f"top cause now {new.events[0].event_id}")
    return out


def notifications(previous: Sequence[Insight], current: Sequence[Insight], now: int
                  ) -> list[dict[str, Any]]:
    """Notification records for what changed between two runs (muted insights: none)."""
    before = {i.id: i for i in previous}
    out = []
    for ins in current:
        if ins.muted:
            continue
        old = before.get(ins.id)
        if old is None:
            out.append(_record(ins, "opened", now, "new insight"))
            if ins.status == "closed":
                out.append(_record(ins, "closed", now, "already over"))
            continue
        if old.status == "ongoing" and ins.status == "closed":
            out.append(_record(ins, "closed", now, "quiet period passed" if ins.kind ==
                               "reactive" else "the risk receded"))
            continue
        changes = _changes(old, ins)
        if changes and ins.status == "ongoing":
            out.append(_record(ins, "updated", now, "; ".join(changes)))
    return out


def history_notifications(insights: Sequence[Insight]) -> list[dict[str, Any]]:
    """The notifications a live run would have sent, from one build over a whole replay:
    opened at ``opened_at``, updated at each recorded forecast move, closed at ``end``."""
    out = []
    for ins in insights:
        if ins.muted:
            continue
        out.append(_record(ins, "opened", ins.opened_at, "new insight"))
        for f in ins.updates:
            out.append(_record(ins, "updated", f.evaluated_at, "the forecast moved"))
        if ins.end is not None:
            out.append(_record(ins, "closed", ins.end, "quiet period passed" if ins.kind ==
                               "reactive" else "the risk receded"))
    out.sort(key=lambda r: (r["time"], ACTIONS.index(r["action"]), r["insight_id"]))
    return out


def run_pipeline(
    anomalies: Iterable[Mapping[str, Any] | Anomaly],
    events: pa.Table | Iterable[Mapping[str, Any] | ChangeEvent] | None = None,
    exhaustion: Iterable[Mapping[str, Any] | ExhaustionRecord] | None = None,
    *,
    now: int | None = None,
    previous: Sequence[Insight] = (),
    suppressions: Sequence[Suppression] = (),
    feedback: Iterable[Mapping[str, Any]] | pa.Table = (),
    config: InsightConfig | None = None,
    values: ValuesFn | None = None,
    rules: Sequence[Rule] | None = None,
    carry_over: bool = False,
) -> PipelineResult:
    """One run of the pipeline at ``now`` (default: the latest input time).

    ``previous`` is the last run's table: notifications are what changed since it; with
    ``carry_over`` its insights that are no longer rebuilt (their anomalies aged out of the
    inputs) are kept unchanged.  Without it (the default, for inputs that hold the whole
    history) an insight that no longer qualifies, e.g. after false-positive feedback, goes."""
    factors = sensitivity_factors(feedback)
    built: BuildResult = build_insights(anomalies, events, exhaustion, now=now, config=config,
                                        values=values, rules=rules, factors=factors)
    merged = deduplicate(built.insights, previous if carry_over else ())
    tagged = apply_suppressions(merged, suppressions)
    when = now if now is not None else max((i.last_seen for i in tagged), default=0)
    notes = list(built.notes)
    stats = dict(built.stats)
    stats["muted"] = sum(1 for i in tagged if i.muted)
    stats["groups_desensitised"] = len(factors)
    return PipelineResult(tagged, notifications(previous, tagged, when),
                          learning_exclusions(suppressions), notes, stats)
