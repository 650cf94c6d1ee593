"""Optional: remote-write the scores and bands to a Prometheus-compatible endpoint.

Every scored step of every series becomes four samples, named and labelled exactly as on
``/metrics`` (``vigil_anomaly_score``, ``vigil_yhat``, ``vigil_yhat_lower``,
``vigil_yhat_upper``; the series' labels with its metric name in ``for``), at the step's own
timestamp, so a long-term store (VictoriaMetrics, Mimir, Prometheus with
``--web.enable-remote-write-receiver``) holds their whole history.  The tenant goes in
``X-Scope-OrgID``.  These are derived outputs: a failed push is logged and the tick goes on.
"""

from __future__ import annotations

import json
import logging

import httpx
import numpy as np
import pyarrow as pa

from vigil.remote import encode_write_request
from vigil.serve.config import RemoteWriteOut
from vigil.serve.exposition import SERIES_OUTPUTS

log = logging.getLogger("vigil.serve.remote_out")


def output_request(table: pa.Table) -> bytes | None:
    """One remote-write body holding the four outputs of every row of a scores table."""
    if table.num_rows == 0:
        return None
    sid = table.column("series_id").to_numpy()
    labels_text = table.column("labels").to_pylist()
    ts = table.column("timestamp").cast(pa.int64()).to_numpy()
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    label_sets: list[dict[str, str]] = []
    index: list[np.ndarray] = []
    times: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for a, b in zip(starts, [*starts[1:], len(sid)], strict=True):
        base = json.loads(labels_text[a])
        base = {**{k: v for k, v in base.items() if k != "__name__"},
                "for": base.get("__name__", "")}
        for name, column, _ in SERIES_OUTPUTS:
            vals = table.column(column).slice(a, b - a).to_numpy(zero_copy_only=False)
            keep = np.isfinite(vals)
            if not keep.any():
                continue
            index.append(np.full(int(keep.sum()), len(label_sets)))
            label_sets.append({"__name__": name, **base})
            times.append(ts[a:b][keep])
            values.append(vals[keep])
    if not label_sets:
        return None
    return encode_write_request(label_sets, np.concatenate(index), np.concatenate(times),
                                np.concatenate(values))


class RemoteWriter:
    def __init__(self, cfg: RemoteWriteOut, timeout: float = 30.0) -> None:
        auth = (cfg.basic_auth.username, cfg.basic_auth.password) if cfg.basic_auth else None
        headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                   "X-Prometheus-Remote-Write-Version": "0.1.0",
                   **({"Authorization": f"Bearer {cfg.bearer_token}"} if cfg.bearer_token
                      else {})}
        self.url = cfg.url
        self._client = httpx.Client(timeout=timeout, auth=auth, headers=headers)
        self.sent = 0
        self.failures = 0

    def push(self, tenant: str, table: pa.Table) -> None:
        body = output_request(table)
        if body is None:
            return
        try:
            resp = self._client.post(self.url, content=body, headers={"X-Scope-OrgID": tenant})
            resp.raise_for_status()
            self.sent += 1
        except httpx.HTTPError as exc:
            self.failures += 1
            log.warning("remote-write of scores to %s failed: %s", self.url, exc)

    def close(self) -> None:
        self._client.close()
