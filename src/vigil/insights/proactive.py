"""Proactive insights: resources forecast to reach their limit.

A *resource* is one metric of one pod group (``group_by`` labels plus ``__name__``, with the
grouping fallback of :mod:`vigil.insights.grouping`), or one series with ``per_series``.  At
each evaluation time the resource is **at risk** when some member series' forecast gives
``probability >= min_probability`` of crossing its limit and (when known) a median crossing
within ``horizon_ms``.  Then:

* not open and at risk: an insight **opens** (its first forecast is kept);
* open and at risk: it is **updated** with the at-risk member whose median crossing comes
  first (a move of the median, against the last recorded forecast, by more than
  ``max(min_move_ms, move_fraction * time left)`` is recorded as an update);
* open and every member below ``close_probability`` (hysteresis: default 0.3): it **closes**
  at that evaluation; between the two thresholds it stays open unchanged;
* open but no evaluation for ``stale_ms`` (the series went away): it closes at its last
  evaluation.

One insight per resource episode, never one per evaluation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vigil.insights.grouping import DEFAULT_FALLBACK_BY, DEFAULT_GROUP_BY, GroupingConfig, group_of
from vigil.insights.inputs import ExhaustionRecord
from vigil.insights.model import Forecast, group_key_text

MINUTE = 60_000
HOUR = 60 * MINUTE


@dataclass(frozen=True)
class ProactiveConfig:
    min_probability: float = 0.5
    close_probability: float = 0.3
    horizon_ms: int = 48 * HOUR
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    fallback_by: tuple[str, ...] = DEFAULT_FALLBACK_BY
    per_series: bool = False
    stale_ms: int = 3 * HOUR
    min_move_ms: int = HOUR
    move_fraction: float = 0.2
    interval_label: str = "80%"

    def __post_init__(self) -> None:
        if not 0.0 < self.min_probability <= 1.0:
            raise ValueError(f"min_probability={self.min_probability} must be in (0, 1]")
        if not 0.0 <= self.close_probability <= self.min_probability:
            raise ValueError(
                f"close_probability={self.close_probability} must be in [0, min_probability="
                f"{self.min_probability}]"
            )
        if self.horizon_ms <= 0 or self.stale_ms <= 0:
            raise ValueError("horizon_ms and stale_ms must be positive durations in ms")


@dataclass
class Episode:
    """One open-to-close stretch of risk of one resource."""

    group: dict[str, str]
    start: int
    first: Forecast
    latest: Forecast
    last_seen: int  # last at-risk evaluation
    last_eval: int
    members: dict[int, dict[str, str]] = field(default_factory=dict)
    end: int | None = None  # closing evaluation; None while open
    factor: float = 1.0  # sensitivity factor applied
    updates: list[Forecast] = field(default_factory=list)  # material moves after opening


def resource_of(rec: ExhaustionRecord, cfg: ProactiveConfig) -> dict[str, str]:
    if cfg.per_series:
        return dict(rec.labels)
    g = group_of(rec.labels, GroupingConfig(cfg.group_by, cfg.fallback_by))
    g["__name__"] = rec.labels.get("__name__", "")
    return g


def effective_probability(cfg: ProactiveConfig, factor: float) -> float:
    """The opening probability after false-positive feedback: ``1 - (1 - p) / factor``."""
    return 1.0 - (1.0 - cfg.min_probability) / max(factor, 1.0)


def _forecast(rec: ExhaustionRecord) -> Forecast:
    return Forecast(rec.labels, rec.series_id, rec.evaluated_at, rec.limit, rec.probability,
                    rec.crossing_p50, rec.crossing_lo, rec.crossing_hi)


def _first_crossing(recs: list[ExhaustionRecord]) -> ExhaustionRecord:
    far = 2**62
    return min(recs, key=lambda r: (r.crossing_p50 if r.crossing_p50 is not None else far,
                                    -r.probability, r.series_id))


def _moved(old: Forecast, new: Forecast, cfg: ProactiveConfig) -> bool:
    if (old.crossing_time_p50 is None) != (new.crossing_time_p50 is None):
        return True
    if old.crossing_time_p50 is None or new.crossing_time_p50 is None:
        return False
    left = max(old.crossing_time_p50 - new.evaluated_at, 0)
    return abs(new.crossing_time_p50 - old.crossing_time_p50) > max(
        cfg.min_move_ms, cfg.move_fraction * left)


def episodes(records: Iterable[ExhaustionRecord], cfg: ProactiveConfig, now: int,
             factors: Mapping[str, float] | None = None) -> list[Episode]:
    """Risk episodes per resource from forecasts evaluated up to ``now``.

    ``factors`` maps a resource's group key text to its sensitivity factor (feedback)."""
    by_resource: dict[tuple[tuple[str, str], ...], dict[int, list[ExhaustionRecord]]] = (
        defaultdict(lambda: defaultdict(list)))
    for rec in records:
        if rec.evaluated_at <= now:
            key = tuple(sorted(resource_of(rec, cfg).items()))
            by_resource[key][rec.evaluated_at].append(rec)
    out: list[Episode] = []
    for key, by_time in by_resource.items():
        group = dict(key)
        factor = (factors or {}).get(group_key_text(group), 1.0)
        p_open = effective_probability(cfg, factor)
        current: Episode | None = None
        for t in sorted(by_time):
            recs = by_time[t]
            if current is not None and t - current.last_eval > cfg.stale_ms:
                current.end = current.last_eval
                out.append(current)
                current = None
            risky = [r for r in recs if r.probability >= p_open and (
                r.crossing_p50 is None or r.crossing_p50 - t <= cfg.horizon_ms)]
            if risky:
                best = _forecast(_first_crossing(risky))
                if current is None:
                    current = Episode(group, t, best, best, t, t, factor=factor)
                else:
                    reported = current.updates[-1] if current.updates else current.first
                    if _moved(reported, best, cfg):
                        current.updates.append(best)
                    current.latest = best
                    current.last_seen = t
                current.members.update({r.series_id: r.labels for r in risky})
                current.last_eval = t
            elif current is not None:
                current.last_eval = t
                if max(r.probability for r in recs) < cfg.close_probability:
                    current.end = t
                    out.append(current)
                    current = None
        if current is not None:
            if now - current.last_eval > cfg.stale_ms:
                current.end = current.last_eval
            out.append(current)
    out.sort(key=lambda e: (e.start, sorted(e.group.items())))
    return out
