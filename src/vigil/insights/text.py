"""Plain-words pieces of insight summaries: metric names, scopes, limits and times."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

FRIENDLY_METRICS: dict[str, str] = {
    "container_cpu_usage_cores": "CPU",
    "http_request_duration_p99_seconds": "p99 latency",
    "http_error_ratio": "error ratio",
    "http_requests_per_second": "request rate",
    "container_memory_working_set_bytes": "memory",
    "node_disk_usage_ratio": "disk usage",
    "container_memory_limit_bytes": "memory limit",
}
_SUFFIXES = ("_total", "_seconds", "_bytes", "_ratio", "_cores", "_count", "_per_second")


def friendly_metric(name: str) -> str:
    """A known metric's plain name, else the name without its unit suffix, underscores as
    spaces (``queue_depth_total`` -> ``queue depth``); a derived series ``view(name)`` reads
    ``<name> <view>`` (``rate(orders_total)`` -> ``orders rate``)."""
    if name.endswith(")") and "(" in name:
        view, _, inner = name[:-1].partition("(")
        return f"{friendly_metric(inner)} {view}"
    if name in FRIENDLY_METRICS:
        return FRIENDLY_METRICS[name]
    base = name
    for suffix in _SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("_", " ").replace(":", " ").strip() or name


def join_words(words: Sequence[str], limit: int = 3) -> str:
    items = list(words)
    if len(items) > limit:
        rest = len(items) - (limit - 1)
        items = [*items[: limit - 1], f"{rest} more metrics"]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def scope_phrase(group: Mapping[str, str], series: Sequence[Mapping[str, str]],
                 pods_word: bool = False) -> str:
    """``checkout in site-2``, ``pod cart-x of cart in site-1``, ``node n1 in site-1``."""
    site = group.get("site")
    where = f" in {site}" if site else ""
    pods = {s["pod"] for s in series if "pod" in s}
    if "service" in group:
        svc = group["service"]
        if len(pods) == 1 and len(series) >= 1:
            return f"pod {next(iter(pods))} of {svc}{where}"
        return f"{svc} pods{where}" if pods_word else f"{svc}{where}"
    if "node" in group:
        return f"node {group['node']}{where}"
    if "instance" in group:
        return f"instance {group['instance']}{where}"
    rest = ", ".join(f"{k}={v}" for k, v in sorted(group.items()) if k != "site")
    if rest:
        return f"{rest}{where}"
    return f"site {site}" if site else "the fleet"


def format_limit(metric: str, limit: float) -> str:
    """``1 GiB``, ``100%``, ``2 cores``, else the number."""
    if not math.isfinite(limit):
        return str(limit)
    if metric.endswith("_bytes"):
        value = float(limit)
        for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
            if abs(value) < 1024 or unit == "PiB":
                return f"{value:.3g} {unit}"
            value /= 1024
    if metric.endswith("_ratio"):
        return f"{limit * 100:.3g}%"
    if metric.endswith("_cores"):
        return f"{limit:.3g} cores"
    if metric.endswith("_seconds"):
        return f"{limit:.3g} s"
    return f"{limit:.4g}"


def hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M")


def day_hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def near_time(ms: int, anchor: int) -> str:
    """``HH:MM`` when within a day of ``anchor``, else ``YYYY-MM-DD HH:MM``."""
    return hhmm(ms) if abs(ms - anchor) < 86_400_000 else day_hhmm(ms)


def change_words(ratio: float | None) -> str:
    """``rose 2.7x``, ``fell 79%``, or ``deviated from normal``."""
    if ratio is None or not math.isfinite(ratio) or ratio <= 0:
        return "deviated from normal"
    if ratio >= 1.15:
        return f"rose {ratio:.1f}x"
    if ratio <= 0.87:
        return f"fell {100 * (1 - ratio):.0f}%"
    return "deviated from normal"
