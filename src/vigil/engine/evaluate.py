"""Scoring detections against the simulator's ``truth.json``.

Rules (documented in docs/models.md):

* an incident is **detected** when an anomaly interval of a series that carries all of the
  incident's labels and one of its metrics overlaps ``[start, end + grace]``; its **delay** is
  the first such interval's start minus the incident start (0 if the interval began earlier);
* an anomaly interval is **explained** (a true alert) when it overlaps ``[start - grace, end +
  grace]`` of an incident whose labels its series carries (any metric: a traffic surge also moves
  CPU and latency); otherwise it is a false alert;
* precision = explained intervals / all intervals; alerts per series-day = intervals /
  (series x days).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import Any

from vigil.timeparse import parse_time

GRACE_MS = 60 * 60 * 1000


def load_truth(path: Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if isinstance(data, list):
        data = {"incidents": data}
    if "incidents" not in data:
        raise ValueError(
            f"{path}: expected an object with 'incidents' (a list), got keys {list(data)}"
        )
    return data


def _carries(series: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(series.get(k) == v for k, v in wanted.items())


def evaluate(
    anomalies: Sequence[Mapping[str, Any]],
    truth: Mapping[str, Any],
    *,
    n_series: int,
    days: float,
    grace_ms: int = GRACE_MS,
) -> dict[str, Any]:
    """``anomalies``: dicts with ``labels`` (incl. ``__name__``), ``start``, ``end`` (ms)."""
    incidents = truth["incidents"]
    explained = [False] * len(anomalies)
    per_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"hit": [], "delay": []})
    details = []
    for inc in incidents:
        start, end = parse_time(inc["start"]), parse_time(inc["end"])
        labels, metrics = inc.get("labels", {}), set(inc.get("metrics", []))
        first_hit: int | None = None
        for i, a in enumerate(anomalies):
            if not _carries(a["labels"], labels):
                continue
            if a["start"] <= end + grace_ms and a["end"] >= start - grace_ms:
                explained[i] = True
            on_metric = not metrics or a["labels"].get("__name__") in metrics
            if on_metric and a["start"] <= end + grace_ms and a["end"] >= start:
                first_hit = a["start"] if first_hit is None else min(first_hit, a["start"])
        hit = first_hit is not None
        delay_min = max(0, (first_hit or start) - start) / 60000 if hit else None
        per_kind[inc["kind"]]["hit"].append(1.0 if hit else 0.0)
        if delay_min is not None:
            per_kind[inc["kind"]]["delay"].append(delay_min)
        details.append({"id": inc.get("id"), "kind": inc["kind"], "detected": hit,
                        "delay_minutes": delay_min})
    n_alerts = len(anomalies)
    n_explained = sum(explained)
    kinds = {
        kind: {
            "incidents": len(v["hit"]),
            "recall": sum(v["hit"]) / len(v["hit"]),
            "median_delay_minutes": median(v["delay"]) if v["delay"] else None,
        }
        for kind, v in sorted(per_kind.items())
    }
    all_hits = [h for v in per_kind.values() for h in v["hit"]]
    all_delays = [d for v in per_kind.values() for d in v["delay"]]
    series_days = max(n_series * days, 1e-9)
    return {
        "alerts": n_alerts,
        "alerts_per_series_day": n_alerts / series_days,
        "false_alerts": n_alerts - n_explained,
        "false_alerts_per_1000_series_days": 1000 * (n_alerts - n_explained) / series_days,
        "precision": n_explained / n_alerts if n_alerts else None,
        "recall": sum(all_hits) / len(all_hits) if all_hits else None,
        "median_delay_minutes": median(all_delays) if all_delays else None,
        "per_kind": kinds,
        "incidents": details,
    }
