"""Insight records and their JSON contract (see docs/insights.md).

Internally every time is epoch milliseconds UTC; the JSON form writes RFC 3339 UTC text and
series ids as decimal strings (an int64 does not fit a JavaScript number).  ``insight_to_json``
and ``insight_from_json`` are exact inverses (a round trip gives an equal object).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from vigil.timeparse import format_ms, parse_time

Kind = Literal["reactive", "proactive"]
Severity = Literal["low", "medium", "high"]
Status = Literal["ongoing", "closed"]
KINDS: tuple[str, ...] = ("reactive", "proactive")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
STATUSES: tuple[str, ...] = ("ongoing", "closed")
CONTRACT_VERSION = 1


@dataclass(frozen=True)
class Anomaly:
    """One anomaly interval of one series (``end`` is the start of its last flagged step)."""

    series_id: int
    labels: dict[str, str]
    start: int
    end: int
    peak_score: float


@dataclass(frozen=True)
class ChangeEvent:
    event_id: str
    time: int
    kind: str
    labels: dict[str, str]
    summary: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cause:
    """A change event ranked as a candidate cause of an insight (rank 1 = most likely)."""

    event_id: str
    time: int
    kind: str
    summary: str
    labels: dict[str, str]
    attributes: dict[str, Any]
    rank: int
    score: float
    reason: str


@dataclass(frozen=True)
class Recommendation:
    rule_id: str
    rule_version: int
    action: str
    evidence: list[str]


@dataclass(frozen=True)
class Forecast:
    """An exhaustion forecast of one series: when it reaches its limit."""

    labels: dict[str, str]
    series_id: int
    evaluated_at: int
    limit: float
    probability: float
    crossing_time_p50: int | None
    crossing_time_lo: int | None
    crossing_time_hi: int | None


@dataclass(frozen=True)
class Insight:
    id: str
    kind: Kind
    severity: Severity
    status: Status
    start: int
    end: int | None  # None while ongoing
    last_seen: int  # last anomaly end (reactive) or last at-risk evaluation (proactive)
    opened_at: int  # when the evidence first sufficed: the time a live run notifies it
    onset: int  # when the change began (reactive: see build._onset); causes are ranked from it
    summary: str
    group: dict[str, str]  # the grouping labels' values shared by the members
    series: list[dict[str, str]]
    anomalies: list[Anomaly]
    metrics: list[str]
    events: list[Cause] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)
    forecast: Forecast | None = None
    first_forecast: Forecast | None = None  # proactive: the forecast when it opened
    updates: list[Forecast] = field(default_factory=list)  # proactive: material moves
    effect: dict[str, float] = field(default_factory=dict)  # metric -> during / before
    evidence: dict[str, float] = field(default_factory=dict)
    sensitivity: float = 1.0  # threshold multiplier from false-positive feedback
    related: list[str] = field(default_factory=list)  # overlapping insights of the same group
    muted_by: list[str] = field(default_factory=list)
    do_not_learn_by: list[str] = field(default_factory=list)
    tenant: str = "default"

    @property
    def group_key(self) -> str:
        return group_key_text(self.group)

    @property
    def muted(self) -> bool:
        return bool(self.muted_by)


def group_key_text(group: Mapping[str, str]) -> str:
    """``site=site-1,namespace=shop,service=cart`` (sorted by label name); ``*`` when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted(group.items())) or "*"


def insight_id(tenant: str, kind: str, group: Mapping[str, str], first: int) -> str:
    """Stable id: BLAKE2b-64 of tenant, kind, group key and first start (``ins-`` + 16 hex)."""
    body = json.dumps([tenant, kind, group_key_text(group), int(first)], separators=(",", ":"))
    return "ins-" + hashlib.blake2b(body.encode("utf-8"), digest_size=8).hexdigest()


# ----------------------------------------------------------------------------------- JSON


def _t(ms: int | None) -> str | None:
    return None if ms is None else format_ms(ms)


def _ms(text: object, what: str) -> int:
    if not isinstance(text, str | int | float) or isinstance(text, bool):
        raise ValueError(f"{what}={text!r} is invalid: expected RFC 3339 text")
    return parse_time(text)


def _opt_ms(text: object, what: str) -> int | None:
    return None if text is None else _ms(text, what)


def anomaly_to_json(a: Anomaly) -> dict[str, Any]:
    return {
        "series_id": str(a.series_id),
        "labels": dict(a.labels),
        "start": _t(a.start),
        "end": _t(a.end),
        "peak_score": a.peak_score,
    }


def forecast_to_json(f: Forecast) -> dict[str, Any]:
    return {
        "series_id": str(f.series_id),
        "labels": dict(f.labels),
        "evaluated_at": _t(f.evaluated_at),
        "limit": f.limit,
        "probability": f.probability,
        "crossing_time_p50": _t(f.crossing_time_p50),
        "crossing_time_lo": _t(f.crossing_time_lo),
        "crossing_time_hi": _t(f.crossing_time_hi),
    }


def cause_to_json(c: Cause) -> dict[str, Any]:
    return {
        "event_id": c.event_id,
        "time": _t(c.time),
        "kind": c.kind,
        "summary": c.summary,
        "labels": dict(c.labels),
        "attributes": dict(c.attributes),
        "rank": c.rank,
        "score": c.score,
        "reason": c.reason,
    }


def insight_to_json(ins: Insight) -> dict[str, Any]:
    """The JSON object of one insight (the contract in docs/insights.md)."""
    return {
        "contract": CONTRACT_VERSION,
        "id": ins.id,
        "tenant": ins.tenant,
        "kind": ins.kind,
        "severity": ins.severity,
        "status": ins.status,
        "start": _t(ins.start),
        "end": _t(ins.end),
        "last_seen": _t(ins.last_seen),
        "opened_at": _t(ins.opened_at),
        "onset": _t(ins.onset),
        "summary": ins.summary,
        "group": dict(ins.group),
        "metrics": list(ins.metrics),
        "series": [dict(s) for s in ins.series],
        "anomalies": [anomaly_to_json(a) for a in ins.anomalies],
        "events": [cause_to_json(c) for c in ins.events],
        "recommendations": [
            {"rule_id": r.rule_id, "rule_version": r.rule_version, "action": r.action,
             "evidence": list(r.evidence)}
            for r in ins.recommendations
        ],
        "forecast": None if ins.forecast is None else forecast_to_json(ins.forecast),
        "first_forecast": (
            None if ins.first_forecast is None else forecast_to_json(ins.first_forecast)
        ),
        "forecast_updates": [forecast_to_json(f) for f in ins.updates],
        "effect": dict(ins.effect),
        "evidence": dict(ins.evidence),
        "sensitivity": ins.sensitivity,
        "related": list(ins.related),
        "muted": ins.muted,
        "muted_by": list(ins.muted_by),
        "do_not_learn_by": list(ins.do_not_learn_by),
    }


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _labels(value: object, what: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in _obj(value, what).items()}


def _choice(value: object, allowed: Sequence[str], what: str) -> Any:
    if value not in allowed:
        raise ValueError(f"{what}={value!r} is invalid: expected one of {', '.join(allowed)}")
    return value


def _forecast(obj: object, what: str) -> Forecast | None:
    if obj is None:
        return None
    d = _obj(obj, what)
    return Forecast(
        labels=_labels(d["labels"], f"{what}.labels"),
        series_id=int(d["series_id"]),
        evaluated_at=_ms(d["evaluated_at"], f"{what}.evaluated_at"),
        limit=float(d["limit"]),
        probability=float(d["probability"]),
        crossing_time_p50=_opt_ms(d["crossing_time_p50"], f"{what}.crossing_time_p50"),
        crossing_time_lo=_opt_ms(d["crossing_time_lo"], f"{what}.crossing_time_lo"),
        crossing_time_hi=_opt_ms(d["crossing_time_hi"], f"{what}.crossing_time_hi"),
    )


def insight_from_json(obj: object) -> Insight:
    """Parse one insight object; raises ``ValueError`` naming the field at fault."""
    d = _obj(obj, "insight")
    try:
        if d.get("contract", CONTRACT_VERSION) != CONTRACT_VERSION:
            raise ValueError(
                f"contract={d.get('contract')!r} is not supported: expected {CONTRACT_VERSION}"
            )
        return Insight(
            id=str(d["id"]),
            tenant=str(d.get("tenant", "default")),
            kind=_choice(d["kind"], KINDS, "kind"),
            severity=_choice(d["severity"], SEVERITIES, "severity"),
            status=_choice(d["status"], STATUSES, "status"),
            start=_ms(d["start"], "start"),
            end=_opt_ms(d["end"], "end"),
            last_seen=_ms(d["last_seen"], "last_seen"),
            opened_at=_ms(d["opened_at"], "opened_at"),
            onset=_ms(d["onset"], "onset"),
            summary=str(d["summary"]),
            group=_labels(d["group"], "group"),
            metrics=[str(m) for m in d["metrics"]],
            series=[_labels(s, "series[]") for s in d["series"]],
            anomalies=[
                Anomaly(int(a["series_id"]), _labels(a["labels"], "anomalies[].labels"),
                        _ms(a["start"], "anomalies[].start"), _ms(a["end"], "anomalies[].end"),
                        float(a["peak_score"]))
                for a in d["anomalies"]
            ],
            events=[
                Cause(str(c["event_id"]), _ms(c["time"], "events[].time"), str(c["kind"]),
                      str(c["summary"]), _labels(c["labels"], "events[].labels"),
                      dict(_obj(c["attributes"], "events[].attributes")), int(c["rank"]),
                      float(c["score"]), str(c["reason"]))
                for c in d["events"]
            ],
            recommendations=[
                Recommendation(str(r["rule_id"]), int(r["rule_version"]), str(r["action"]),
                               [str(e) for e in r["evidence"]])
                for r in d["recommendations"]
            ],
            forecast=_forecast(d.get("forecast"), "forecast"),
            first_forecast=_forecast(d.get("first_forecast"), "first_forecast"),
            updates=[f for f in (_forecast(x, "forecast_updates[]")
                                 for x in d.get("forecast_updates", [])) if f is not None],
            effect={str(k): float(v) for k, v in _obj(d.get("effect", {}), "effect").items()},
            evidence={str(k): float(v) for k, v in _obj(d.get("evidence", {}), "evidence").items()},
            sensitivity=float(d.get("sensitivity", 1.0)),
            related=[str(x) for x in d.get("related", [])],
            muted_by=[str(x) for x in d.get("muted_by", [])],
            do_not_learn_by=[str(x) for x in d.get("do_not_learn_by", [])],
        )
    except KeyError as exc:
        raise ValueError(f"insight {d.get('id', '?')!r} lacks the field {exc.args[0]!r}") from None


def insights_to_json(insights: Sequence[Insight], indent: int | None = 1) -> str:
    return json.dumps([insight_to_json(i) for i in insights], indent=indent, ensure_ascii=False,
                      allow_nan=False)


def insights_from_json(text: str) -> list[Insight]:
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError(f"insights JSON must be a list of objects, got {type(data).__name__}")
    return [insight_from_json(d) for d in data]
