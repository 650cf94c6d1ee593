"""Limits of series: explicit per metric, or discovered from a paired limit series.

Rules, in order:

1. **Explicit**: ``explicit`` maps a metric name to a constant limit (default
   ``node_disk_usage_ratio: 1.0``).
2. **Paired series**: a metric named ``<prefix>_limit_<unit>`` (e.g.
   ``container_memory_limit_bytes``) limits every metric ``<prefix>_<anything>_<unit>`` (e.g.
   ``container_memory_working_set_bytes``) that carries exactly the same other labels.

The result is a causal matrix ``[n, T]``: at column t a series' limit is the paired series'
last observed value at or before t (forward fill), so a replay never uses a later limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_EXPLICIT: dict[str, float] = {"node_disk_usage_ratio": 1.0}
_LIMIT_TOKEN = "_limit_"


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
) -> np.ndarray:
    """Causal limit of every series at every column (NaN: no limit)."""
    explicit = DEFAULT_EXPLICIT if explicit is None else explicit
    n, t = values.shape
    out = np.full((n, t), np.nan)
    pair = limit_rows(labels)
    has_pair = np.flatnonzero(pair >= 0)
    if len(has_pair):
        out[has_pair] = forward_fill(values[pair[has_pair]])
    for row, ls in enumerate(labels):
        const = explicit.get(ls.get("__name__", ""))
        if const is not None:
            out[row] = const
    return out
