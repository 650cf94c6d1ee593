"""Small synthetic inputs for the insight tests (times in minutes from T0)."""

from __future__ import annotations

from typing import Any

T0 = 1_736_380_800_000  # 2025-01-09T00:00:00Z
MIN = 60_000
STEP = 5 * MIN


def t(minutes: float) -> int:
    return T0 + int(minutes * MIN)


def pod(service: str, i: int, metric: str = "http_request_duration_p99_seconds",
        site: str = "site-1") -> dict[str, str]:
    return {"__name__": metric, "site": site, "namespace": "shop", "service": service,
            "pod": f"{service}-{i}"}


def anomaly(labels: dict[str, str], start: float, end: float, peak: float = 4.0
            ) -> dict[str, Any]:
    sid = abs(hash(tuple(sorted(labels.items())))) % (1 << 62)
    return {"series_id": sid, "labels": labels, "start": t(start), "end": t(end),
            "peak_score": peak}


def burst(service: str, start: float, end: float, pods: int = 6, site: str = "site-1",
          metric: str = "http_request_duration_p99_seconds", peak: float = 5.0
          ) -> list[dict[str, Any]]:
    return [anomaly(pod(service, i, metric, site), start, end, peak) for i in range(pods)]


def deployment(service: str, minutes: float, version: str = "v2", site: str = "site-1",
               event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or f"evt-{service}-{version}-{site}", "time": t(minutes),
            "kind": "deployment",
            "labels": {"site": site, "namespace": "shop", "service": service},
            "summary": f"Deployed {service} {version} to {site}",
            "attributes": {"version": version, "previous_version": "v1"}}


def forecast(labels: dict[str, str], sid: int, at: float, p: float, cross: float | None,
             limit: float = 1e9) -> dict[str, Any]:
    return {"series_id": sid, "labels": labels, "evaluated_at": t(at), "limit": limit,
            "probability": p, "crossing_p50": None if cross is None else t(cross),
            "crossing_lo": None if cross is None else t(cross - 120),
            "crossing_hi": None if cross is None else t(cross + 180)}
