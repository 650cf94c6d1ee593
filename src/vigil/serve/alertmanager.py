"""Alertmanager sink: insights as alerts on Alertmanager's v2 API (``POST /api/v2/alerts``).

One alert per insight, identified by its labels ``alertname="VigilInsight"``,
``vigil_insight_id``, ``vigil_tenant``, ``kind``, ``severity`` and the insight's grouping labels
(``site``, ``namespace``, ``service``...).  Annotations: ``summary``, ``recommendation`` (the first
one, with its rule id), ``top_cause`` and ``link`` (this server's ``/api/v1/insights/{id}``).

Alertmanager forgets an alert that is not re-sent within its ``resolve_timeout``, so every open
insight is re-sent on each sync at most ``resend_every`` apart; an insight that closes is sent
once more with ``endsAt`` = its end, which resolves it.  A failed post is retried on the next
sync (closed insights wait in a queue), so a restart of Alertmanager loses nothing that is
still open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx

from vigil.insights.model import Insight
from vigil.timeparse import format_ms

log = logging.getLogger("vigil.serve.alertmanager")


def alert_of(ins: Insight, tenant: str, external_url: str) -> dict[str, Any]:
    labels = {"alertname": "VigilInsight", "vigil_insight_id": ins.id, "vigil_tenant": tenant,
              "kind": ins.kind, "severity": ins.severity,
              **{k: v for k, v in ins.group.items() if k not in {"alertname"}}}
    annotations = {"summary": ins.summary,
                   "link": f"{external_url.rstrip('/')}/api/v1/insights/{ins.id}"}
    if ins.recommendations:
        r = ins.recommendations[0]
        annotations["recommendation"] = f"{r.action} [{r.rule_id}]"
    if ins.events:
        annotations["top_cause"] = f"{ins.events[0].summary} ({ins.events[0].reason})"
    alert: dict[str, Any] = {"labels": labels, "annotations": annotations,
                             "startsAt": format_ms(ins.opened_at),
                             "generatorURL": annotations["link"]}
    if ins.end is not None:
        alert["endsAt"] = format_ms(ins.end)
    return alert


class AlertmanagerSink:
    def __init__(self, url: str, external_url: str, timeout: float, resend_every: float,
                 client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.external_url = external_url
        self.resend_every = resend_every
        self._client = client or httpx.Client(timeout=timeout)
        self._closing: dict[tuple[str, str], dict[str, Any]] = {}  # to send once (resolved)
        self._sent: dict[tuple[str, str], tuple[str, str, float]] = {}  # last sent state
        self.posted = 0
        self.failures = 0

    def sync(self, tenant: str, insights: Sequence[Insight]) -> int:
        """Post what is new, changed, closed or due for a resend; returns alerts posted."""
        now = time.monotonic()
        batch = []
        for ins in insights:
            if ins.muted:
                continue
            key = (tenant, ins.id)
            alert = alert_of(ins, tenant, self.external_url)
            state = (ins.status, ins.severity + ins.summary)
            prev = self._sent.get(key)
            if ins.status == "closed":
                if prev is not None and prev[0] != "closed":
                    self._closing[key] = alert
                continue
            if prev is None or prev[:2] != state or now - prev[2] >= self.resend_every:
                batch.append((key, alert, state))
        closing = list(self._closing.items())
        alerts = [a for _, a, _ in batch] + [a for _, a in closing]
        if not alerts:
            return 0
        try:
            resp = self._client.post(self.url, json=alerts)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            self.failures += 1
            log.warning("alertmanager post to %s failed (%s); retrying on the next sync",
                        self.url, exc)
            return 0
        for key, _, state in batch:
            self._sent[key] = (*state, now)
        for key, _ in closing:
            self._closing.pop(key, None)
            self._sent[key] = ("closed", "", now)
        self.posted += len(alerts)
        return len(alerts)

    def close(self) -> None:
        self._client.close()
