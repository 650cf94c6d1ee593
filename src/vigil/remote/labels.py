"""Validation of a remote-write label set under Vigil's (Prometheus') label rules.

One label set -> ``(series_id, canonical labels JSON)`` or the reason it is refused.  The
rules are those of ``vigil.series`` (used by file ingest too), plus the request limits:

* at most ``max_labels_per_series`` labels, names of at most ``max_label_name_bytes`` and
  values of at most ``max_label_value_bytes`` bytes;
* names and values valid UTF-8 (and no U+FFFD), names ``[a-zA-Z_][a-zA-Z0-9_]*`` and not
  starting with ``__`` except ``__name__``; no name twice;
* ``__name__`` present, non-empty and a valid metric name;
* labels with an empty value are dropped (Prometheus treats them as absent), order does not
  matter (the id is that of the sorted set).

``LabelCache`` remembers accepted label sets per raw label bytes, so a series seen before
costs one dict lookup (refused ones are validated again: they end the request anyway).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from vigil.series import (
    METRIC_LABEL,
    LabelError,
    labels_json,
    series_id,
    validate_label_name,
    validate_label_value,
    validate_metric_name,
)

Entry = tuple[int, str] | str  # (series id, labels JSON) or the reason for refusing


@dataclass(frozen=True)
class LabelLimits:
    max_labels_per_series: int = 64
    max_label_name_bytes: int = 256
    max_label_value_bytes: int = 4096


def _show(raw: bytes, limit: int = 60) -> str:
    text = raw.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")


def series_entry(pairs: Sequence[tuple[bytes, bytes]], limits: LabelLimits) -> Entry:
    """Validate one label set (see the module doc)."""
    if len(pairs) > limits.max_labels_per_series:
        return f"series has {len(pairs)} labels, above the limit of {limits.max_labels_per_series}"
    labels: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        if len(raw_name) > limits.max_label_name_bytes:
            return (
                f"label name {_show(raw_name)} is {len(raw_name)} bytes long, above the limit "
                f"of {limits.max_label_name_bytes}"
            )
        if len(raw_value) > limits.max_label_value_bytes:
            return (
                f"label {_show(raw_name)} has a value of {len(raw_value)} bytes, above the "
                f"limit of {limits.max_label_value_bytes}"
            )
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"label name {_show(raw_name)} is not valid UTF-8 (byte {exc.start})"
        try:
            validate_label_name(name)
            value = validate_label_value(name, raw_value)
        except LabelError as exc:
            return str(exc)
        if name in labels:
            return f"label name {name!r} occurs twice in one series"
        labels[name] = value
    metric = labels.get(METRIC_LABEL)
    if metric is None:
        names = sorted(labels)[:8]
        return f"series without a metric name: no '__name__' label (labels {names})"
    if metric == "":
        return "series with an empty metric name ('__name__' is '')"
    try:
        validate_metric_name(metric)
    except LabelError as exc:
        return str(exc)
    canon = {k: labels[k] for k in sorted(labels) if labels[k] != ""}
    return series_id(canon), labels_json(canon)


class LabelCache:
    """Raw label bytes -> (series id, labels JSON), for one set of limits.

    Bounded: cleared when full (cheaper than an LRU; a steady set of series refills it)."""

    def __init__(self, limits: LabelLimits, max_entries: int = 200_000) -> None:
        self.limits = limits
        self.max_entries = max_entries
        self.entries: dict[Hashable, tuple[int, str]] = {}
        self.hits = 0
        self.misses = 0

    def clear_if_full(self, incoming: int) -> None:
        if len(self.entries) + incoming > self.max_entries:
            self.entries.clear()
