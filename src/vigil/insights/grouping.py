"""Grouping anomaly intervals into clusters, and the evidence a cluster needs to open an insight.

**Grouping.**  Two intervals are related when their series share the grouping labels (default
``site, namespace, service``: the pods of one service in one site) and they come within
``gap_ms`` of each other (default 15 min: the next starts at most ``gap_ms`` after the latest
end so far); relations are merged transitively.  A series that lacks one of the grouping labels
(a node metric has no service) is grouped by the grouping labels it has plus its fallback
labels (default ``node, instance``), so a node's disk does not merge with other nodes'.

**Evidence** (documented in docs/insights.md; every threshold is multiplied by the group's
sensitivity factor, see :mod:`vigil.insights.pipeline`):

* ``burst``: the largest number of anomalous member series averaged over any window of
  ``burst_window_ms`` (default 1 h): series-steps in the densest window / steps per window;
* ``persistence_ms``: the longest single anomaly interval (a series anomalous without a break);
* ``peak``: the largest peak score.

A cluster opens an insight when ``burst >= min_burst`` or its intervals carry enough
*persistence evidence*: summed over the cluster's intervals so far, steps flagged x the
interval's peak score reaches ``persistence_evidence``, over at least ``min_persistence_steps``
flagged series-steps (one series: ``n`` steps with ``n * peak >= persistence_evidence``;
five replicas down together reach it five times as fast).  The evidence is counted in steps
of the series' grid and in units of the anomaly score (which is already the series' own
calibrated surprise, ``log p / log alpha``), never in wall-clock hours: an incident that is
large for its series opens quickly (peak 12: 4 steps), a small one needs longer (peak 2: 18
steps), and the same rule serves 15 s, 1 min and 5 min scrapes.  The defaults (36
score-steps, at least 4 series-steps) are one setting for every fleet; they were chosen by
measuring both the demo fleet and the independent scenario generator (``bench/scenarios.py``)
at 12/3, 24/4 and 36/4 (docs/benchmarks.md): 12/3 opened insights on the 3-step noise bursts
of heavy-tailed latency series (5.7 false insights per 1,000 series-days on the demo).
Re-measured with the models of ``4f57e6a``: 24 score-steps gave 1.27 on the demo (36: 0.70)
and 16 more of 800 scenario incidents as insights, with 23 more false insights; 36 was kept.
:func:`opening_time` says when that first became true, scanning the intervals causally (an
interval counts up to each step as it is flagged; a peak score is credited from the start of
its interval, since the records do not say at which step the peak came, so delays on the
persistence path are a lower bound by at most the time to the peak).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from vigil.insights.model import Anomaly

DEFAULT_GROUP_BY = ("site", "namespace", "service")
DEFAULT_FALLBACK_BY = ("node", "instance")
MINUTE = 60_000
HOUR = 60 * MINUTE


@dataclass(frozen=True)
class GroupingConfig:
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    fallback_by: tuple[str, ...] = DEFAULT_FALLBACK_BY
    gap_ms: int = 15 * MINUTE
    bridge_ms: int | None = HOUR  # None: an interval links others for its whole length

    def __post_init__(self) -> None:
        if self.gap_ms < 0:
            raise ValueError(f"gap_ms={self.gap_ms} is invalid: expected >= 0 ms")
        if self.bridge_ms is not None and self.bridge_ms <= 0:
            raise ValueError(f"bridge_ms={self.bridge_ms} is invalid: expected > 0 ms or None")
        if "__name__" in self.group_by:
            raise ValueError(
                "group_by holds '__name__': group by where series run (site, service...), "
                "not by metric, so the metrics of one service merge"
            )


@dataclass(frozen=True)
class EvidenceConfig:
    min_burst: float = 4.0
    burst_window_ms: int = HOUR
    persistence_evidence: float = 36.0  # score x steps, summed over the cluster
    min_persistence_steps: int = 4

    def __post_init__(self) -> None:
        if self.min_persistence_steps < 1:
            raise ValueError(
                f"min_persistence_steps={self.min_persistence_steps} is invalid: expected >= 1"
            )
        for name in ("min_burst", "persistence_evidence"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value} is invalid: expected a positive number")
        if self.burst_window_ms <= 0:
            raise ValueError(f"burst_window_ms={self.burst_window_ms} is invalid: expected > 0 ms")


@dataclass
class Cluster:
    group: dict[str, str]
    anomalies: list[Anomaly] = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.anomalies[0].start

    @property
    def last_end(self) -> int:
        return max(a.end for a in self.anomalies)


@dataclass(frozen=True)
class Evidence:
    burst: float
    persistence_ms: int
    peak: float
    n_series: int
    span_ms: int
    opened_at: int | None  # None: the evidence never sufficed

    def as_dict(self) -> dict[str, float]:
        return {"burst": round(self.burst, 3), "persistence_minutes": self.persistence_ms / MINUTE,
                "peak_score": round(self.peak, 3), "series": float(self.n_series),
                "span_minutes": self.span_ms / MINUTE}


def group_of(labels: Mapping[str, str], config: GroupingConfig) -> dict[str, str]:
    """The grouping labels of one series (see the module docstring for the fallback)."""
    out = {k: labels[k] for k in config.group_by if k in labels}
    if len(out) < len(config.group_by):
        out.update({k: labels[k] for k in config.fallback_by if k in labels})
    return out


def _reach(a: Anomaly, config: GroupingConfig) -> int:
    """The latest start an interval links to its cluster: its end (at most ``bridge_ms`` after
    its start) plus the gap."""
    end = a.end if config.bridge_ms is None else min(a.end, a.start + config.bridge_ms)
    return end + config.gap_ms


def cluster_anomalies(anomalies: Iterable[Anomaly], config: GroupingConfig) -> list[Cluster]:
    """Clusters of related intervals, ordered by (start, group key)."""
    by_group: dict[tuple[tuple[str, str], ...], list[Anomaly]] = defaultdict(list)
    for a in anomalies:
        by_group[tuple(sorted(group_of(a.labels, config).items()))].append(a)
    out: list[Cluster] = []
    for key, items in by_group.items():
        items.sort(key=lambda a: (a.start, a.end, a.series_id))
        current = Cluster(dict(key), [items[0]])
        reach = _reach(items[0], config)
        for a in items[1:]:
            if a.start <= reach:
                current.anomalies.append(a)
                reach = max(reach, _reach(a, config))
            else:
                out.append(current)
                current = Cluster(dict(key), [a])
                reach = _reach(a, config)
        out.append(current)
    out.sort(key=lambda c: (c.start, sorted(c.group.items())))
    return out


def infer_step(anomalies: Sequence[Anomaly]) -> int | None:
    """The grid step of the intervals: gcd of start offsets and lengths (None if all zero)."""
    if not anomalies:
        return None
    base = min(a.start for a in anomalies)
    g = 0
    for a in anomalies:
        g = math.gcd(g, a.start - base, a.end - a.start)
    return g or None


def evidence(cluster: Cluster, config: EvidenceConfig, step_ms: int, factor: float = 1.0,
             until: int | None = None) -> Evidence:
    """Evidence of a cluster using only what was flagged up to ``until`` (inclusive; None: all).

    ``factor`` multiplies the thresholds (the group's sensitivity)."""
    items = [a for a in cluster.anomalies if until is None or a.start <= until]
    if not items:
        raise ValueError("evidence of an empty cluster: no interval starts before 'until'")
    first = items[0].start
    last = max(a.end if until is None else min(a.end, until) for a in items)
    n = (last - first) // step_ms + 1
    activity = np.zeros(n + 1, dtype=np.int64)
    weight = np.zeros(n + 1)  # the peak scores of the intervals flagged at each step
    for a in items:
        lo = (a.start - first) // step_ms
        hi = (min(a.end, last) - first) // step_ms + 1
        activity[lo] += 1
        activity[hi] -= 1
        weight[lo] += a.peak_score
        weight[hi] -= a.peak_score
    active = np.cumsum(activity[:n])
    # persistence evidence: score x steps summed over the cluster's intervals so far
    mass = np.cumsum(np.cumsum(weight[:n]))
    steps = np.cumsum(active)
    persisted = np.flatnonzero((mass >= config.persistence_evidence * factor - 1e-9)
                               & (steps >= config.min_persistence_steps * factor))
    w = max(1, int(config.burst_window_ms // step_ms))
    csum = np.concatenate([[0], np.cumsum(active)])
    upto = np.arange(1, n + 1)
    burst = (csum[upto] - csum[np.maximum(upto - w, 0)]) / w  # trailing windows of w steps
    times = []
    hit = np.flatnonzero(burst >= config.min_burst * factor)
    if len(hit):
        times.append(int(hit[0]))
    if len(persisted):
        times.append(int(persisted[0]))
    durations = [min(a.end, last) - a.start + step_ms for a in items]
    return Evidence(
        burst=float(burst.max()),
        persistence_ms=int(max(durations)),
        peak=max(a.peak_score for a in items),
        n_series=len({a.series_id for a in items}),
        span_ms=int(last - first + step_ms),
        opened_at=first + min(times) * step_ms if times else None,
    )
