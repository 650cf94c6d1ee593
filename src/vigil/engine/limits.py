"""Limits of series: explicit per metric, a table of stock exporters' pairs, or a twin series.

Rules, in order (the first that gives a series a limit at a column wins):

1. **Explicit**: ``explicit`` maps a metric name to a constant limit (default
   ``node_disk_usage_ratio: 1.0``).  Usage ratios in general (``*_usage_ratio``) are *not*
   bounded by 1 by default: measured on the independent scenario generator, a CPU usage ratio
   with a daily cycle then opened 19 false proactive insights in 1,110 series-days (the
   day's climb read as a run towards 100%); add such a bound explicitly where it is wanted;
2. **Pairs** (:class:`LimitPair`, :data:`DEFAULT_PAIRS`, extendable by the user): a usage metric
   (its ``__name__``, or ``view(name)`` for a derived series of :mod:`vigil.metrictypes`) is
   limited by the series of a limit metric that carries the given label values (e.g.
   ``resource="memory"``) and the same values of the join labels ``on`` (all other labels when
   ``on`` is empty).  Defaults, from the stock exporters:

   * cAdvisor ``container_memory_working_set_bytes`` by kube-state-metrics
     ``kube_pod_container_resource_limits{resource="memory"}`` on namespace, pod, container;
     then by cAdvisor's ``container_spec_memory_limit_bytes`` (0 there means "no limit");
   * ``rate(container_cpu_usage_seconds_total)`` (cores) by
     ``kube_pod_container_resource_limits{resource="cpu"}`` on namespace, pod, container;
   * node-exporter's filesystem, ``used(node_filesystem_size_bytes)`` (size - avail, a derived
     series) by ``node_filesystem_size_bytes`` of the same device and mountpoint;
3. **Twin series**: a metric named ``<prefix>_limit_<unit>`` (e.g.
   ``container_memory_limit_bytes``) limits every metric ``<prefix>_<anything>_<unit>`` (e.g.
   ``container_memory_working_set_bytes``) that carries exactly the same other labels.

Pairs join series of different scrape jobs (kube-state-metrics and the kubelet), so the engine
places a usage series and its limit series in one partition
(:func:`vigil.engine.partition.placement_ids`).

The result is a causal matrix ``[n, T]``: at column t a series' limit is the paired series'
last observed value at or before t (forward fill), so a replay never uses a later limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.metrictypes import VIEW_LABEL, metric_key

DEFAULT_EXPLICIT: dict[str, float] = {"node_disk_usage_ratio": 1.0}
_LIMIT_TOKEN = "_limit_"


@dataclass(frozen=True)
class LimitPair:
    """A usage metric limited by the series of a limit metric (see the module doc)."""

    usage: str  # __name__, or view(name) for a derived series: rate(container_cpu_..._total)
    limit: str  # __name__ of the limit series
    on: tuple[str, ...] = ()  # join labels; empty: every label but __name__ and vigil_view
    match: tuple[tuple[str, str], ...] = ()  # label values the limit series must carry
    zero_is_none: bool = False  # a limit of 0 means "unlimited" (cAdvisor's spec limits)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LimitPair:
        """``{"usage", "limit", "on": [...], "match": {...}, "zero_is_none"}`` (config files)."""
        unknown = set(data) - {"usage", "limit", "on", "match", "zero_is_none"}
        if unknown or not data.get("usage") or not data.get("limit"):
            raise ValueError(
                f"limit pair {dict(data)} is invalid: expected keys usage and limit (metric "
                "names; usage may be view(name), e.g. rate(x_total)), optional on (label "
                f"names), match (label -> value), zero_is_none{'; unknown ' if unknown else ''}"
                f"{sorted(unknown) if unknown else ''}")
        match = data.get("match") or {}
        if not isinstance(match, Mapping):
            raise ValueError(f"limit pair match {match!r} is invalid: expected a mapping")
        return cls(str(data["usage"]), str(data["limit"]),
                   tuple(str(x) for x in data.get("on") or ()),
                   tuple(sorted((str(k), str(v)) for k, v in match.items())),
                   bool(data.get("zero_is_none", False)))

    def as_dict(self) -> dict[str, Any]:
        return {"usage": self.usage, "limit": self.limit, "on": list(self.on),
                "match": dict(self.match), "zero_is_none": self.zero_is_none}


_CONTAINER = ("namespace", "pod", "container")
DEFAULT_PAIRS: tuple[LimitPair, ...] = (
    LimitPair("container_memory_working_set_bytes", "kube_pod_container_resource_limits",
              _CONTAINER, (("resource", "memory"),)),
    LimitPair("container_memory_working_set_bytes", "container_spec_memory_limit_bytes",
              _CONTAINER, zero_is_none=True),
    LimitPair("rate(container_cpu_usage_seconds_total)", "kube_pod_container_resource_limits",
              _CONTAINER, (("resource", "cpu"),)),
    LimitPair("used(node_filesystem_size_bytes)", "node_filesystem_size_bytes"),
)


def _join(labels: Mapping[str, str], on: tuple[str, ...]) -> tuple[tuple[str, str], ...] | None:
    if on:
        if any(k not in labels for k in on):
            return None
        return tuple((k, labels[k]) for k in on)
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ("__name__", VIEW_LABEL)))


def pair_rows(labels: Sequence[Mapping[str, str]],
              pairs: Sequence[LimitPair] = DEFAULT_PAIRS) -> list[tuple[int, int, LimitPair]]:
    """``(usage row, limit row, pair)`` of every pairing found in ``labels``, in the order of
    ``pairs`` (earlier pairs take precedence)."""
    if not pairs:
        return []
    by_limit: dict[str, list[LimitPair]] = {}
    by_usage: dict[str, list[LimitPair]] = {}
    for pair in pairs:
        by_limit.setdefault(pair.limit, []).append(pair)
        by_usage.setdefault(pair.usage, []).append(pair)
    index: dict[tuple[int, tuple[tuple[str, str], ...]], int] = {}
    for row, ls in enumerate(labels):
        if VIEW_LABEL in ls:
            continue
        for pair in by_limit.get(ls.get("__name__", ""), ()):
            if all(ls.get(k) == v for k, v in pair.match):
                key = _join(ls, pair.on)
                if key is not None:
                    index.setdefault((id(pair), key), row)
    out = []
    for row, ls in enumerate(labels):
        for pair in by_usage.get(metric_key(ls), ()):
            key = _join(ls, pair.on)
            hit = index.get((id(pair), key)) if key is not None else None
            if hit is not None and hit != row:
                out.append((row, hit, pair))
    order = {id(p): i for i, p in enumerate(pairs)}
    return sorted(out, key=lambda x: (x[0], order[id(x[2])]))


def _split_limit(metric: str) -> tuple[str, str] | None:
    if _LIMIT_TOKEN not in metric:
        return None
    prefix, _, unit = metric.rpartition(_LIMIT_TOKEN)
    return (prefix, unit) if prefix and unit and "_" not in unit else None


def _others(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))


def limit_rows(labels: Sequence[Mapping[str, str]]) -> np.ndarray:
    """Row index of each series' paired limit series, -1 where it has none."""
    limits: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}
    for row, ls in enumerate(labels):
        split = _split_limit(ls.get("__name__", ""))
        if split:
            limits[(*split, _others(ls))] = row
    out = np.full(len(labels), -1, dtype=np.int64)
    if not limits:
        return out
    for row, ls in enumerate(labels):
        metric = ls.get("__name__", "")
        if _split_limit(metric):
            continue
        head, _, unit = metric.rpartition("_")
        others = _others(ls)
        # try every prefix of the metric name: container_memory_working_set -> container_memory...
        parts = head.split("_")
        for cut in range(len(parts) - 1, 0, -1):
            match = limits.get(("_".join(parts[:cut]), unit, others))
            if match is not None:
                out[row] = match
                break
    return out


def forward_fill(values: np.ndarray) -> np.ndarray:
    """Each row's last finite value at or before each column (NaN before the first)."""
    n, t = values.shape
    idx = np.where(np.isfinite(values), np.arange(t), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    filled = values[np.arange(n)[:, None], idx]
    seen = np.maximum.accumulate(np.isfinite(values), axis=1)
    return np.where(seen, filled, np.nan)


def limit_matrix(
    labels: Sequence[Mapping[str, str]],
    values: np.ndarray,
    explicit: Mapping[str, float] | None = None,
    pairs: Sequence[LimitPair] = DEFAULT_PAIRS,
) -> np.ndarray:
    """Causal limit of every series at every column (NaN: no limit)."""
    explicit = DEFAULT_EXPLICIT if explicit is None else explicit
    n, t = values.shape
    out = np.full((n, t), np.nan)
    pair = limit_rows(labels)
    has_pair = np.flatnonzero(pair >= 0)
    if len(has_pair):
        out[has_pair] = forward_fill(values[pair[has_pair]])
    # the pairs table: an earlier pair wins over a later one and over the twin rule, column by
    # column (a limit not yet seen, or a cAdvisor 0, leaves the next rule in charge)
    for usage, limit, p in reversed(pair_rows(labels, pairs)):
        lim = values[limit]
        if p.zero_is_none:  # "unlimited" is a value too: it must not forward-fill an old limit
            lim = np.where(lim <= 0, np.inf, lim)
        idx = np.where(np.isnan(lim), -1, np.arange(t))
        np.maximum.accumulate(idx, out=idx)
        filled = np.where(idx >= 0, lim[np.maximum(idx, 0)], np.nan)
        out[usage] = np.where(np.isfinite(filled), filled, out[usage])
    for row, ls in enumerate(labels):
        const = explicit.get(ls.get("__name__", ""))
        if const is not None and VIEW_LABEL not in ls:
            out[row] = const
    return out
