"""Change correlation: rank change events as candidate causes of an insight.

An event is a candidate when it comes within ``lookback_ms`` before the insight's onset (default
2 h; proactive insights look back ``proactive_lookback_ms``, default 72 h, since a leak grows
for days) or at most ``after_tolerance_ms`` after it (a change logged a little late), and its
labels do not contradict the insight's (another site is never a cause).  Its score is the
product of four terms in [0, 1]:

* **label overlap**: same service (or same node for a node insight) 1.0; same service but
  another pod 0.8; a pod's node 0.6; same site 0.4; no site label (global) 0.2;
* **kind**: ``kind_weights`` (deployments and config changes 1.0 ... other 0.5);
* **precedence**: ``0.25 + 0.75 * (1 - lead / lookback)`` for an event ``lead`` ms before the
  onset, 0.5 for one logged after it;
* **effect**: ``0.5 + 0.5 * z / (z + 2)`` where ``z`` is the median over the insight's series of
  ``|median after - median before| / (1.4826 * MAD before)`` over ``effect_window_ms`` each side
  of the event (a robust before/after shift); 0.75 when no values are given.

Events are ranked by score (ties: the later event first, then id); the top ``top`` are kept.
An event that precedes no insight is never attached to anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vigil.insights.inputs import ValuesFn
from vigil.insights.model import Anomaly, Cause, ChangeEvent

MINUTE = 60_000
HOUR = 60 * MINUTE
DEFAULT_KIND_WEIGHTS: dict[str, float] = {
    "deployment": 1.0,
    "config_change": 1.0,
    "feature_flag": 0.9,
    "security_change": 0.8,
    "scaling": 0.7,
    "scale": 0.7,
    "infrastructure": 0.7,
    "maintenance": 0.7,
    "pod_restart": 0.6,
    "pod_evicted": 0.6,
    "other": 0.5,
}
MAX_EFFECT_SERIES = 25


@dataclass(frozen=True)
class CauseConfig:
    lookback_ms: int = 2 * HOUR
    proactive_lookback_ms: int = 72 * HOUR
    after_tolerance_ms: int = 5 * MINUTE
    effect_window_ms: int = HOUR
    proactive_effect_window_ms: int = 12 * HOUR
    top: int = 3
    kind_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_KIND_WEIGHTS))
    default_kind_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in ("lookback_ms", "proactive_lookback_ms", "effect_window_ms",
                     "proactive_effect_window_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} is invalid: expected > 0 ms")
        if self.after_tolerance_ms < 0:
            raise ValueError(f"after_tolerance_ms={self.after_tolerance_ms} must be >= 0")
        if self.top < 1:
            raise ValueError(f"top={self.top} is invalid: expected at least 1 candidate")


def scope_labels(group: Mapping[str, str], series: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The insight's group labels plus every label all member series share (but the metric)."""
    out = dict(group)
    if series:
        common = set(series[0].items())
        for s in series[1:]:
            common &= set(s.items())
        out.update({k: v for k, v in common if k != "__name__"})
    return out


def label_overlap(event: Mapping[str, str], scope: Mapping[str, str],
                  nodes: set[str] | None = None) -> tuple[float, str] | None:
    """(weight, phrase) of how an event's labels relate to an insight's; None when they
    contradict it (another site, or another namespace of the same service name)."""
    for key in ("site", "namespace"):
        if key in event and key in scope and event[key] != scope[key]:
            return None
    site = "site" in event
    if "service" in event:
        if event["service"] == scope.get("service"):
            if "pod" in event and "pod" in scope and event["pod"] != scope["pod"]:
                return 0.8, "same service, another pod"
            return 1.0, "same service"
        return (0.4, "same site, another service") if site else (0.2, "another service")
    if "node" in event:
        if event["node"] == scope.get("node"):
            return 1.0, "same node"
        if nodes and event["node"] in nodes:
            return 0.6, "node of some of its pods"
        return (0.4, "same site") if site else (0.2, "global")
    return (0.4, "same site") if site else (0.2, "global")


def robust_shift(before: np.ndarray, after: np.ndarray) -> float | None:
    """|median(after) - median(before)| in robust SDs of ``before`` (None: too few values)."""
    b, a = before[np.isfinite(before)], after[np.isfinite(after)]
    if len(b) < 3 or len(a) < 1:
        return None
    mb = float(np.median(b))
    scale = 1.4826 * float(np.median(np.abs(b - mb)))
    scale = max(scale, 1e-3 * abs(mb), 1e-12)
    return abs(float(np.median(a)) - mb) / scale


def series_by_weight(anomalies: Sequence[Anomaly]) -> list[tuple[int, dict[str, str]]]:
    """Member series, the longest anomalous first (ties by id)."""
    length: dict[int, int] = {}
    labels: dict[int, dict[str, str]] = {}
    for a in anomalies:
        length[a.series_id] = length.get(a.series_id, 0) + a.end - a.start + 1
        labels[a.series_id] = a.labels
    return [(s, labels[s]) for s in sorted(length, key=lambda s: (-length[s], s))]


def effect_z(event_time: int, series_ids: Sequence[int], values: ValuesFn | None,
             window_ms: int, until: int) -> float | None:
    """Median robust before/after shift at ``event_time`` over the first series given."""
    if values is None:
        return None
    chosen = list(series_ids)[:MAX_EFFECT_SERIES]
    zs = []
    after_end = max(min(event_time + window_ms, until), event_time + 1)
    for sid in chosen:
        _, before = values(sid, event_time - window_ms, event_time)
        _, after = values(sid, event_time, after_end)
        z = robust_shift(before, after)
        if z is not None:
            zs.append(z)
    return float(np.median(zs)) if zs else None


def _ago(ms: int) -> str:
    minutes = round(ms / MINUTE)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes / 60:.1f} h"


def rank_causes(
    events: Sequence[ChangeEvent],
    *,
    onset: int,
    group: Mapping[str, str],
    series: Sequence[tuple[int, Mapping[str, str]]],
    until: int,
    proactive: bool = False,
    values: ValuesFn | None = None,
    config: CauseConfig | None = None,
) -> list[Cause]:
    """Candidate causes of an insight with onset ``onset`` whose evidence runs to ``until``.

    ``series``: (series_id, labels) of its members, the most telling first (the effect is
    measured on the first 25); ``events`` sorted by time."""
    cfg = config or CauseConfig()
    lookback = cfg.proactive_lookback_ms if proactive else cfg.lookback_ms
    window = cfg.proactive_effect_window_ms if proactive else cfg.effect_window_ms
    labels = [s for _, s in series]
    scope = scope_labels(group, labels)
    nodes = {s["node"] for s in labels if "node" in s}
    ids = [sid for sid, _ in series]
    end = until
    scored: list[tuple[float, ChangeEvent, str]] = []
    for ev in events:
        if ev.time < onset - lookback or ev.time > onset + cfg.after_tolerance_ms:
            continue
        overlap = label_overlap(ev.labels, scope, nodes)
        if overlap is None:
            continue
        o_weight, o_text = overlap
        k_weight = cfg.kind_weights.get(ev.kind, cfg.default_kind_weight)
        lead = onset - ev.time
        if lead >= 0:
            precedence = 0.25 + 0.75 * (1.0 - lead / lookback)
            when = f"{_ago(lead)} before the onset"
        else:
            precedence = 0.5
            when = f"{_ago(-lead)} after the onset"
        z = effect_z(ev.time, ids, values, window, max(end, ev.time + 1))
        if z is None:
            e_term, e_text = 0.75, "no values to measure its effect"
        else:
            e_term = 0.5 + 0.5 * z / (z + 2.0)
            e_text = f"the series shifted {z:.1f} robust SDs across it"
        score = o_weight * k_weight * precedence * e_term
        reason = f"{ev.kind} {when}; {o_text}; {e_text}"
        scored.append((score, ev, reason))
    scored.sort(key=lambda x: (-x[0], -x[1].time, x[1].event_id))
    return [
        Cause(ev.event_id, ev.time, ev.kind, ev.summary, dict(ev.labels), dict(ev.attributes),
              rank, round(score, 4), reason)
        for rank, (score, ev, reason) in enumerate(scored[: cfg.top], start=1)
    ]
