"""``POST /api/v1/write``: headers, decoding, tenant limits and the WAL, in that order.

Nothing of a rejected request is stored: every check (headers, size, decoding, labels, the
tenant's active-series limit) runs before the WAL append, and the append is all or nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
from fastapi import HTTPException

from vigil.remote import RemoteDecoder, RemoteLimits, RemoteWriteError, WriteBatch
from vigil.serve.config import ServeConfig
from vigil.serve.exposition import LiveMetrics

PROTOBUF = "application/x-protobuf"


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
        self._known: dict[str, np.ndarray] = {}  # tenant -> sorted series ids (store + WAL)
        self._known_lock = threading.Lock()

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
        """The tenant's series: the store's catalog (the WAL is checkpointed at start) plus every
        series acknowledged by this process since."""
        with self._known_lock:
            ids = self._known.get(tenant)
            if ids is None:
                ids = (np.sort(self.store.catalog(tenant).column("series_id").to_numpy())
                       if tenant in self.store.tenants() else np.zeros(0, np.int64))
                self._known[tenant] = ids
            return ids

    def write(self, tenant: str, body: bytes) -> int:
        """Decode, check and make durable; returns the samples acknowledged (raises
        HTTPException with a 4xx/5xx and a reason otherwise)."""
        try:
            with self._decode_lock:
                batch: WriteBatch = self.decoder.decode(body)
        except RemoteWriteError as exc:
            raise HTTPException(exc.status, exc.reason) from None
        if batch.types:  # metric types (Prometheus sends metadata in requests of their own)
            import time

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
            with self._known_lock:
                self._known[tenant] = np.union1d(self._known.get(tenant, known), new)
        self.live.ingested(tenant, batch.n_samples)
        return batch.n_samples
