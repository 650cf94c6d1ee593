"""The insight builder: anomalies and forecasts in, reactive and proactive insights out.

Pure: no I/O (the recommendation catalog is loaded by the caller, or the packaged one on first
use per call).  ``now`` is the evaluation time; only evidence up to it is used, so rerunning on
the same data gives the same insights and ids.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import median
from typing import Any

import numpy as np
import pyarrow as pa

from vigil.insights.causes import CauseConfig, rank_causes, series_by_weight
from vigil.insights.grouping import (
    Cluster,
    EvidenceConfig,
    GroupingConfig,
    cluster_anomalies,
    evidence,
    infer_step,
)
from vigil.insights.inputs import (
    ExhaustionRecord,
    ValuesFn,
    to_anomalies,
    to_events,
    to_exhaustion,
)
from vigil.insights.model import (
    Anomaly,
    Cause,
    ChangeEvent,
    Insight,
    Severity,
    group_key_text,
    insight_id,
)
from vigil.insights.proactive import Episode, ProactiveConfig, episodes
from vigil.insights.recommend import Rule, load_catalog, recommend
from vigil.insights.text import (
    change_words,
    day_hhmm,
    format_limit,
    friendly_metric,
    hhmm,
    join_words,
    near_time,
    scope_phrase,
)
from vigil.metrictypes import metric_key

MINUTE = 60_000
HOUR = 60 * MINUTE
DEFAULT_STEP_MS = 60_000


@dataclass(frozen=True)
class InsightConfig:
    tenant: str = "default"
    grouping: GroupingConfig = field(default_factory=GroupingConfig)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    causes: CauseConfig = field(default_factory=CauseConfig)
    proactive: ProactiveConfig = field(default_factory=ProactiveConfig)
    quiet_ms: int = HOUR  # a reactive insight closes after this long without anomalies
    step_ms: int | None = None  # None: inferred from the intervals (gcd of their offsets)
    baseline_ms: int = 2 * HOUR  # the "before" window of effect sizes
    mention_cause_score: float = 0.4  # the summary names the top cause from this score

    def __post_init__(self) -> None:
        if self.quiet_ms < 0 or self.baseline_ms <= 0:
            raise ValueError("quiet_ms must be >= 0 and baseline_ms > 0 (ms)")
        if self.step_ms is not None and self.step_ms <= 0:
            raise ValueError(f"step_ms={self.step_ms} is invalid: expected > 0 ms or None")


@dataclass
class BuildResult:
    insights: list[Insight]
    notes: list[str] = field(default_factory=list)  # fallbacks taken, surfaced
    stats: dict[str, int] = field(default_factory=dict)


def build_insights(
    anomalies: Iterable[Mapping[str, Any] | Anomaly],
    events: pa.Table | Iterable[Mapping[str, Any] | ChangeEvent] | None = None,
    exhaustion: Iterable[Mapping[str, Any] | ExhaustionRecord] | None = None,
    *,
    now: int | None = None,
    config: InsightConfig | None = None,
    values: ValuesFn | None = None,
    rules: Sequence[Rule] | None = None,
    factors: Mapping[str, float] | None = None,
) -> BuildResult:
    """Reactive insights from anomaly intervals and proactive ones from exhaustion forecasts.

    ``factors``: sensitivity per group key text (from :func:`vigil.insights.feedback.
    sensitivity_factors`); ``values``: series values for effect sizes (optional)."""
    cfg = config or InsightConfig()
    anoms = to_anomalies(anomalies)
    evs = to_events(events)
    ex = to_exhaustion(exhaustion)
    if now is None:
        ends = [a.end for a in anoms] + [r.evaluated_at for r in ex]
        now = max(ends) if ends else 0
    anoms = [a for a in anoms if a.start <= now]
    anoms = [a if a.end <= now else Anomaly(a.series_id, a.labels, a.start, now, a.peak_score)
             for a in anoms]
    catalog = list(rules) if rules is not None else load_catalog()
    result = BuildResult([])
    step = cfg.step_ms or infer_step(anoms)
    if step is None:
        step = DEFAULT_STEP_MS
        if anoms:
            result.notes.append(f"step not inferable from the intervals: used {step} ms; pass "
                                "config.step_ms")
    clusters = cluster_anomalies(anoms, cfg.grouping)
    below = 0
    for cl in clusters:
        factor = (factors or {}).get(group_key_text(cl.group), 1.0)
        ins = _reactive(cl, evs, cfg, step, factor, now, values, catalog)
        if ins is None:
            below += 1
        else:
            result.insights.append(ins)
    eps = episodes(ex, cfg.proactive, now, factors)
    for ep in eps:
        result.insights.append(_proactive(ep, evs, cfg, now, values, catalog))
    result.insights.sort(key=lambda i: (i.opened_at, i.id))
    result.stats = {"anomalies": len(anoms), "clusters": len(clusters),
                    "clusters_below_evidence": below, "exhaustion_records": len(ex),
                    "proactive_episodes": len(eps), "insights": len(result.insights),
                    "step_ms": int(step)}
    return result


# ------------------------------------------------------------------------------- reactive


def _onset(cl: Cluster, opened_at: int, cfg: InsightConfig, step: int) -> int:
    """The first step of the opening window where at least half of the window's largest
    number of concurrently anomalous series were anomalous (skips noise that preceded it);
    for an insight opened by one long interval, that interval's start."""
    lo = opened_at - cfg.evidence.burst_window_ms + step
    live = [a for a in cl.anomalies if a.start <= opened_at and a.end >= lo]
    if not live:
        return cl.start
    times = np.arange(max(lo, cl.start), opened_at + 1, step)
    counts = np.zeros(len(times), dtype=np.int64)
    for a in live:
        counts += (times >= a.start) & (times <= a.end)
    need = max(1, math.ceil(counts.max() / 2))
    first = int(times[np.argmax(counts >= need)])
    starts = [a.start for a in live if a.start <= first <= a.end]
    return min(starts) if starts else first


def _effects(series: Sequence[tuple[int, Mapping[str, str]]], onset: int, end: int,
             values: ValuesFn | None, baseline_ms: int, step: int) -> dict[str, float]:
    if values is None:
        return {}
    ratios: dict[str, list[float]] = {}
    for sid, labels in series[:50]:
        _, before = values(sid, onset - baseline_ms, onset)
        _, during = values(sid, onset, end + step)
        b, d = before[np.isfinite(before)], during[np.isfinite(during)]
        if len(b) < 3 or len(d) < 1:
            continue
        mb, md = float(np.median(b)), float(np.median(d))
        if mb > 0 and md >= 0:
            ratios.setdefault(metric_key(labels), []).append(md / mb)
    return {m: round(float(median(r)), 4) for m, r in ratios.items()
            if r and math.isfinite(median(r))}


def _severity_reactive(burst: float, n_series: int, peak: float, duration_ms: int,
                       min_burst: float) -> Severity:
    points = (peak >= 5) + (peak >= 15) + (burst >= 2 * min_burst) + (n_series >= 10)
    points += (duration_ms >= HOUR) + (duration_ms >= 4 * HOUR)
    return "high" if points >= 5 else "medium" if points >= 3 else "low"


def _metrics(anoms: Sequence[Anomaly]) -> list[str]:
    count: dict[str, set[int]] = {}
    for a in anoms:
        count.setdefault(metric_key(a.labels), set()).add(a.series_id)
    return sorted(count, key=lambda m: (-len(count[m]), m))


def _cause_phrase(c: Cause) -> str:
    version = c.attributes.get("version")
    service = c.labels.get("service")
    if version is not None:
        rollback = str(c.attributes.get("rollback", "")).lower() == "true"
        what = "rollback" if rollback else c.kind
        return " ".join(x for x in (what, service, str(version)) if x)
    return f"{c.kind} ({c.summary})" if c.summary else c.kind


def reactive_summary(metrics: Sequence[str], group: Mapping[str, str],
                     series: Sequence[Mapping[str, str]], effect: Mapping[str, float],
                     onset: int, cause: Cause | None) -> str:
    names = join_words([friendly_metric(m) for m in metrics])
    scope = scope_phrase(group, series)
    ratio = next((effect[m] for m in metrics if m in effect), None)
    change = change_words(ratio)
    if cause is not None:
        return f"{names} of {scope} {change} after {_cause_phrase(cause)} ({hhmm(cause.time)})"
    return f"{names} of {scope} {change} at {day_hhmm(onset)} UTC"


def _reactive(cl: Cluster, evs: Sequence[ChangeEvent], cfg: InsightConfig, step: int,
              factor: float, now: int, values: ValuesFn | None,
              catalog: Sequence[Rule]) -> Insight | None:
    e = evidence(cl, cfg.evidence, step, factor)
    if e.opened_at is None:
        return None
    last = cl.last_end
    onset = _onset(cl, e.opened_at, cfg, step)
    ranked = series_by_weight(cl.anomalies)
    series = sorted((dict(s) for _, s in ranked), key=lambda s: sorted(s.items()))
    causes = rank_causes(evs, onset=onset, group=cl.group, series=ranked, until=last,
                         values=values, config=cfg.causes)
    effect = _effects(ranked, onset, last, values, cfg.baseline_ms, step)
    metrics = _metrics(cl.anomalies)
    top = causes[0] if causes and causes[0].score >= cfg.mention_cause_score else None
    ongoing = now - last <= cfg.quiet_ms
    ins = Insight(
        id=insight_id(cfg.tenant, "reactive", cl.group, cl.start),
        kind="reactive",
        severity=_severity_reactive(e.burst, e.n_series, e.peak, last - onset + step,
                                    cfg.evidence.min_burst),
        status="ongoing" if ongoing else "closed",
        start=cl.start,
        end=None if ongoing else last,
        last_seen=last,
        opened_at=e.opened_at,
        onset=onset,
        summary=reactive_summary(metrics, cl.group, series, effect, onset, top),
        group=dict(cl.group),
        series=series,
        anomalies=list(cl.anomalies),
        metrics=metrics,
        events=causes,
        effect=effect,
        evidence=e.as_dict(),
        sensitivity=factor,
        tenant=cfg.tenant,
    )
    return _with_recommendations(ins, catalog)


def _with_recommendations(ins: Insight, catalog: Sequence[Rule]) -> Insight:
    return replace(ins, recommendations=recommend(ins, catalog))


# ------------------------------------------------------------------------------ proactive


def proactive_summary(ep: Episode, cfg: ProactiveConfig) -> str:
    f = ep.latest
    metric = f.labels.get("__name__", ep.group.get("__name__", ""))
    group = {k: v for k, v in ep.group.items() if k != "__name__"}
    scope = scope_phrase(group, list(ep.members.values()), pods_word=True)
    limit = format_limit(metric, f.limit)
    head = f"{friendly_metric(metric)} of {scope}"
    if f.crossing_time_p50 is None:
        return (f"{head} may reach the {limit} limit within {cfg.horizon_ms / HOUR:g} h "
                f"(probability {100 * f.probability:.0f}%)")
    text = f"{head} reaches the {limit} limit at {day_hhmm(f.crossing_time_p50)} UTC"
    if f.crossing_time_lo is not None and f.crossing_time_hi is not None:
        lo = near_time(f.crossing_time_lo, f.crossing_time_p50)
        hi = near_time(f.crossing_time_hi, f.crossing_time_p50)
        text += f" ({cfg.interval_label} interval {lo} to {hi})"
    return text


def _severity_proactive(ep: Episode) -> Severity:
    f = ep.latest
    if f.crossing_time_p50 is None:
        return "low"
    left = f.crossing_time_p50 - f.evaluated_at
    return "high" if left <= 6 * HOUR else "medium" if left <= 24 * HOUR else "low"


def _proactive(ep: Episode, evs: Sequence[ChangeEvent], cfg: InsightConfig, now: int,
               values: ValuesFn | None, catalog: Sequence[Rule]) -> Insight:
    group = dict(ep.group)
    members = sorted(ep.members.items(), key=lambda kv: sorted(kv[1].items()))
    first_member = [(ep.latest.series_id, ep.latest.labels)]
    ranked = first_member + [(s, ls) for s, ls in members if s != ep.latest.series_id]
    causes = rank_causes(evs, onset=ep.start, group=group, series=ranked, until=ep.last_seen,
                         proactive=True, values=values, config=cfg.causes)
    metric = group.get("__name__", "")
    ins = Insight(
        id=insight_id(cfg.tenant, "proactive", group, ep.start),
        kind="proactive",
        severity=_severity_proactive(ep),
        status="ongoing" if ep.end is None else "closed",
        start=ep.start,
        end=ep.end,
        last_seen=ep.last_seen,
        opened_at=ep.start,
        onset=ep.start,
        summary=proactive_summary(ep, cfg.proactive),
        group=group,
        series=[dict(ls) for _, ls in members],
        anomalies=[],
        metrics=[metric] if metric else [],
        events=causes,
        forecast=ep.latest,
        first_forecast=ep.first,
        updates=list(ep.updates),
        evidence={"probability": ep.latest.probability, "updates": float(len(ep.updates))},
        sensitivity=ep.factor,
        tenant=cfg.tenant,
    )
    return _with_recommendations(ins, catalog)
