"""``POST /api/v1/write``: headers, decoding, tenant limits and the WAL, in that order.

Nothing of a rejected request is stored: every check (headers, size, decoding, labels, the
tenant's active-series limit) runs before the WAL append, and the append is all or nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from fastapi import HTTPException

from vigil.engine.backtest import parse_duration
from vigil.remote import RemoteDecoder, RemoteLimits, RemoteWriteError, WriteBatch
from vigil.serve.config import ServeConfig
from vigil.serve.exposition import LiveMetrics

PROTOBUF = "application/x-protobuf"
KNOWN_REFRESH_S = 30.0  # the store's active series are re-read this often


def contains(sorted_ids: np.ndarray, sid: int) -> bool:
    """Whether ``sid`` is in the sorted array."""
    pos = int(np.searchsorted(sorted_ids, sid))
    return pos < len(sorted_ids) and int(sorted_ids[pos]) == sid


class RemoteWriteIngest:
    def __init__(self, config: ServeConfig, store: Any, wal: Any, live: LiveMetrics) -> None:
        lim = config.limits
        self.config, self.store, self.wal, self.live = config, store, wal, live
        self.decoder = RemoteDecoder(RemoteLimits(
            max_body_bytes=lim.max_body_bytes, max_decompressed_bytes=lim.max_decompressed_bytes,
            max_series=lim.max_series_per_request, max_samples=lim.max_samples_per_request,
            max_labels_per_series=lim.max_labels_per_series,
            max_label_name_bytes=lim.max_label_name_length,
            max_label_value_bytes=lim.max_label_value_length))
        self._decode_lock = threading.Lock()  # the decoder's label cache is not thread-safe
        self._known: dict[str, tuple[float, np.ndarray]] = {}  # tenant -> (at, active ids)
        self._acked: dict[str, dict[int, float]] = {}  # tenant -> id -> last acknowledged
        self._known_lock = threading.Lock()
        self.ttl_s = parse_duration(lim.series_ttl) / 1000

    @staticmethod
    def check_headers(headers: Mapping[str, str]) -> None:
        ctype = headers.get("content-type", "")
        base, _, params = ctype.partition(";")
        if base.strip().lower() != PROTOBUF:
            raise HTTPException(415, f"Content-Type {ctype!r}: expected {PROTOBUF} "
                                     "(Prometheus remote-write 1.0)")
        if "proto=" in params and "prometheus.WriteRequest" not in params:
            raise HTTPException(415, f"Content-Type {ctype!r}: only remote-write 1.0 "
                                     "(prometheus.WriteRequest) is accepted; configure the sender "
                                     "with protobuf_message: prometheus.WriteRequest")
        enc = headers.get("content-encoding", "")
        if enc.strip().lower() != "snappy":
            raise HTTPException(415, f"Content-Encoding {enc!r}: expected snappy (block format)")

    def limit_for(self, tenant: str) -> int:
        t = self.config.tenants.get(tenant)
        return (t.max_active_series if t and t.max_active_series
                else self.config.limits.max_active_series)

    def known(self, tenant: str) -> np.ndarray:
        """The tenant's active series: the store's (a sample within ``series_ttl``, no
        staleness marker since; re-read at most every ``KNOWN_REFRESH_S``) plus the new series
        this process acknowledged within ``series_ttl`` (they may still be in the WAL)."""
        now = time.time()
        with self._known_lock:
            hit = self._known.get(tenant)
            if hit is None or now - hit[0] > KNOWN_REFRESH_S:
                stored = self.store.active_ids(tenant, int(now * 1000), int(self.ttl_s * 1000))
                catalog = (np.sort(self.store.catalog(tenant).column("series_id").to_numpy())
                           if tenant in self.store.tenants() else np.zeros(0, np.int64))
                pending = self._acked.setdefault(tenant, {})  # checkpointed: judged by samples
                for sid in [k for k, at in pending.items()
                            if now - at > self.ttl_s or contains(catalog, k)]:
                    del pending[sid]
                ids = np.union1d(stored, np.fromiter(pending, np.int64, len(pending)))
                hit = (now, ids)
                self._known[tenant] = hit
            return hit[1]

    def _acknowledged(self, tenant: str, new: np.ndarray) -> None:
        """New series just made durable: active from now on (before any checkpoint)."""
        now = time.time()
        with self._known_lock:
            pending = self._acked.setdefault(tenant, {})
            for sid in new.tolist():
                pending[sid] = now
            hit = self._known.get(tenant)
            if hit is not None:
                self._known[tenant] = (hit[0], np.union1d(hit[1], new))

    def write(self, tenant: str, body: bytes) -> int:
        """Decode, check and make durable; returns the samples acknowledged (raises
        HTTPException with a 4xx/5xx and a reason otherwise)."""
        try:
            with self._decode_lock:
                batch: WriteBatch = self.decoder.decode(body)
        except RemoteWriteError as exc:
            raise HTTPException(exc.status, exc.reason) from None
        if batch.types:  # metric types (Prometheus sends metadata in requests of their own)
            self.store.declare_types(tenant, batch.types, "metadata", int(time.time() * 1000))
        known = self.known(tenant)
        new = np.setdiff1d(batch.series_ids, known, assume_unique=False)
        limit = self.limit_for(tenant)
        if len(new) and len(known) + len(new) > limit:
            raise HTTPException(429, f"tenant {tenant!r} would have {len(known) + len(new):,} "
                                     f"active series: the limit is {limit:,} (max_active_series); "
                                     "drop series with relabelling or raise the limit")
        from vigil.wal import WalUnavailable

        try:
            self.wal.append(tenant, batch)
        except WalUnavailable as exc:
            raise HTTPException(503, f"cannot make the samples durable now ({exc}); retry later"
                                ) from None
        if len(new):
            self._acknowledged(tenant, new)
        self.live.ingested(tenant, batch.n_samples)
        return batch.n_samples
