"""Decode a Prometheus remote-write 1.0 request body into a ``WriteBatch``.

``decode_write_request(body, limits)`` returns a batch or raises ``RemoteWriteError`` with
the HTTP status to answer and a reason; it raises nothing else for any input.  See
docs/remote_write.md for the rules; in short:

* 413: body, declared uncompressed size, series or samples per request above the limits
  (resending the same request cannot help; the sender must send smaller requests);
* 400: not snappy, not a WriteRequest, a label set breaking the label rules or limits, a
  timestamp outside years 1-9999.  The request is refused whole: nothing of it is stored.

Values: NaN and +-Inf are values (as in file ingest and the store); the Prometheus staleness
marker (the NaN with bits ``0x7ff0000000000002``) is not a sample: it is removed from the
samples and reported in ``stale_series``/``stale_timestamps``.  Samples keep the request's
order; a repeated ``(series, timestamp)`` is resolved by the store (the last one given wins)
and out-of-order timestamps are accepted, exactly like file ingest.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from vigil.remote import snappy
from vigil.remote.fast import decode_key, parse_fast
from vigil.remote.labels import LabelCache, LabelLimits, series_entry
from vigil.remote.proto import (
    LabelInput,
    Parsed,
    StructureError,
    TooLarge,
    build_message,
    parse_reference,
)
from vigil.series import parse_labels_json
from vigil.store.samples import MAX_TIMESTAMP, MIN_TIMESTAMP

STALE_NAN_BITS = 0x7FF0000000000002
MiB = 1 << 20
SAMPLES_SCHEMA = pa.schema(
    [("series_id", pa.int64()), ("timestamp", pa.int64()), ("value", pa.float64())]
)
CATALOG_SCHEMA = pa.schema([("series_id", pa.int64()), ("labels", pa.string())])


class RemoteWriteError(Exception):
    """A request that cannot be accepted: ``status`` (4xx) and a human ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class RemoteLimits:
    """Per-request limits.  Size limits answer 413, label limits 400."""

    max_body_bytes: int = 16 * MiB  # compressed body
    max_decompressed_bytes: int = 64 * MiB  # declared in the snappy preamble
    max_series: int = 200_000  # TimeSeries per request
    max_samples: int = 2_000_000  # samples per request (staleness markers included)
    max_labels_per_series: int = 64
    max_label_name_bytes: int = 256
    max_label_value_bytes: int = 4096

    @property
    def labels(self) -> LabelLimits:
        return LabelLimits(
            self.max_labels_per_series, self.max_label_name_bytes, self.max_label_value_bytes
        )


@dataclass(frozen=True, eq=False)
class WriteBatch:
    """One accepted request.

    ``series_ids``/``labels_json``: one entry per TimeSeries of the request, in order
    (two TimeSeries with the same label set share an id); ``series`` indexes them per
    sample.  ``labels`` gives the label dicts (canonical: sorted, empty values dropped).
    """

    series_ids: np.ndarray  # int64 [n_series]
    labels_json: list[str]  # canonical JSON per series (the catalog's form)
    series: np.ndarray  # int32 [n_samples]
    timestamps: np.ndarray  # int64 [n_samples], ms since the epoch
    values: np.ndarray  # float64 [n_samples]
    stale_series: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    stale_timestamps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    exemplars: int = 0  # dropped (counted)
    histograms: int = 0  # dropped (counted)
    metadata: int = 0  # metadata entries (counted)
    types: dict[str, str] = field(default_factory=dict)  # their family name -> metric type

    @property
    def n_series(self) -> int:
        return len(self.series_ids)

    @property
    def n_samples(self) -> int:
        return len(self.series)

    @property
    def labels(self) -> list[dict[str, str]]:
        return [parse_labels_json(t) for t in self.labels_json]

    def samples_table(self) -> pa.Table:
        """``series_id | timestamp | value`` as ``Store.append`` takes it."""
        sid = self.series_ids[self.series] if len(self.series) else np.zeros(0, np.int64)
        return pa.Table.from_arrays(
            [pa.array(sid, pa.int64()), pa.array(self.timestamps), pa.array(self.values)],
            schema=SAMPLES_SCHEMA,
        )

    def catalog_table(self) -> pa.Table:
        """``series_id | labels``: one row per distinct series."""
        ids, first = np.unique(self.series_ids, return_index=True)
        return pa.Table.from_arrays(
            [pa.array(ids, pa.int64()), pa.array([self.labels_json[i] for i in first.tolist()])],
            schema=CATALOG_SCHEMA,
        )


def _describe(pairs: Sequence[tuple[bytes, bytes]]) -> str:
    shown = ", ".join(
        f"{n.decode('utf-8', 'replace')[:40]}={v.decode('utf-8', 'replace')[:40]!r}"
        for n, v in pairs[:6]
    )
    return "{" + shown + (", ..." if len(pairs) > 6 else "") + "}"


class RemoteDecoder:
    """Decoder with its limits and label cache; ``fast=False`` uses only protobuf's parser."""

    def __init__(
        self, limits: RemoteLimits | None = None, *, fast: bool = True, cache_entries: int = 200_000
    ) -> None:
        self.limits = limits or RemoteLimits()
        self.fast = fast
        self.cache = LabelCache(self.limits.labels, cache_entries)
        self.declined = 0  # requests the fast walker handed to protobuf

    def decode(self, body: bytes | memoryview, *, compressed: bool = True) -> WriteBatch:
        try:
            return self._decode(body, compressed)
        except RemoteWriteError:
            raise
        except (MemoryError, RecursionError) as exc:  # pragma: no cover - defensive
            raise RemoteWriteError(
                413, f"request too large to decode ({type(exc).__name__})"
            ) from None

    def _decode(self, body: bytes | memoryview, compressed: bool) -> WriteBatch:
        lim = self.limits
        if len(body) > lim.max_body_bytes:
            raise RemoteWriteError(
                413, f"body of {len(body)} bytes is above the limit of {lim.max_body_bytes}"
            )
        if compressed:
            try:
                data: bytes | memoryview = snappy.decompress(body, lim.max_decompressed_bytes)
            except snappy.SnappyError as exc:
                raise RemoteWriteError(413 if exc.too_large else 400, exc.reason) from None
        else:
            data = body
            if len(data) > lim.max_decompressed_bytes:
                raise RemoteWriteError(
                    413,
                    f"body of {len(data)} bytes is above the limit of {lim.max_decompressed_bytes}",
                )
        try:
            parsed = parse_fast(data, lim.max_series, lim.max_samples) if self.fast else None
            if parsed is None:
                self.declined += self.fast
                parsed = parse_reference(bytes(data), lim.max_series, lim.max_samples)
        except StructureError as exc:
            raise RemoteWriteError(400, f"body is not a remote-write WriteRequest: {exc}") from None
        except TooLarge as exc:
            limit = "max_series" if exc.what == "series" else "max_samples"
            raise RemoteWriteError(
                413,
                f"request holds {exc.count} {exc.what}, above the limit of {exc.limit} "
                f"({limit}); send smaller requests",
            ) from None
        return self._finish(parsed)

    def _refuse(self, parsed: Parsed, k: int, reason: str) -> RemoteWriteError:
        if parsed.labels is not None:
            pairs = parsed.labels[k]
        else:
            assert parsed.keys is not None
            pairs = decode_key(parsed.keys[k])
        return RemoteWriteError(400, f"series {k} {_describe(pairs)}: {reason}")

    def _entries(self, parsed: Parsed) -> list[tuple[int, str]]:
        """(series id, labels JSON) per series; raises on the first refused label set."""
        limits = self.cache.limits
        keys: list[Hashable]
        if parsed.keys is None:  # protobuf path: the label pairs are the key
            assert parsed.labels is not None
            keys = [tuple(pairs) for pairs in parsed.labels]
        else:
            keys = list(parsed.keys)
        cache = self.cache
        cache.clear_if_full(len(keys))
        table = cache.entries
        get = table.get
        out = [get(key) for key in keys]
        if None in out:  # (tuples never equal None)
            misses = 0
            for k, key in enumerate(keys):
                if out[k] is None:
                    pairs = decode_key(key) if isinstance(key, bytes) else list(key)  # type: ignore[call-overload]
                    entry = series_entry(pairs, limits)
                    if isinstance(entry, str):
                        raise self._refuse(parsed, k, entry)
                    table[key] = out[k] = entry
                    misses += 1
            cache.misses += misses
            cache.hits += len(out) - misses
        else:
            cache.hits += len(out)
        return out  # type: ignore[return-value]

    def _finish(self, parsed: Parsed) -> WriteBatch:
        entries = self._entries(parsed)
        n = len(entries)
        sids = np.fromiter((e[0] for e in entries), dtype=np.int64, count=n)
        texts = [e[1] for e in entries]
        ts = parsed.timestamps
        if len(ts):
            bad = (ts < MIN_TIMESTAMP) | (ts > MAX_TIMESTAMP)
            if bad.any():
                i = int(np.argmax(bad))
                raise RemoteWriteError(
                    400,
                    f"sample timestamp {int(ts[i])} of series {int(parsed.series[i])} is outside "
                    "years 1-9999: expected milliseconds since 1970-01-01 UTC",
                )
        stale = parsed.value_bits == np.uint64(STALE_NAN_BITS)
        if stale.any():
            keep = ~stale
            return WriteBatch(
                sids,
                texts,
                parsed.series[keep],
                ts[keep],
                parsed.value_bits[keep].view(np.float64),
                parsed.series[stale],
                ts[stale],
                parsed.exemplars,
                parsed.histograms,
                parsed.metadata,
                parsed.types,
            )
        return WriteBatch(
            sids,
            texts,
            parsed.series,
            ts,
            parsed.value_bits.view(np.float64),
            exemplars=parsed.exemplars,
            histograms=parsed.histograms,
            metadata=parsed.metadata,
            types=parsed.types,
        )


@functools.lru_cache(maxsize=8)
def _decoder(limits: RemoteLimits) -> RemoteDecoder:
    return RemoteDecoder(limits)


def decode_write_request(
    body: bytes | memoryview, limits: RemoteLimits | None = None, *, compressed: bool = True
) -> WriteBatch:
    """Decode a snappy-compressed WriteRequest (see the module doc); thread-safe.

    Uses one shared ``RemoteDecoder`` (and label cache) per distinct ``limits``."""
    return _decoder(limits or RemoteLimits()).decode(body, compressed=compressed)


def encode_write_request(
    labels: Sequence[LabelInput],
    series: np.ndarray | Sequence[int],
    timestamps: np.ndarray | Sequence[int],
    values: np.ndarray | Sequence[float],
    *,
    compress: bool = True,
) -> bytes:
    """A remote-write body: ``labels[k]`` is series k's label set (a dict, or (name, value)
    pairs of str or bytes, order kept); sample i belongs to series ``series[i]``.  Samples
    of one series keep their array order.  Snappy-compressed unless ``compress=False``."""
    msg = build_message(labels, np.asarray(series), np.asarray(timestamps), np.asarray(values))
    raw = msg.SerializeToString()
    return snappy.compress(raw) if compress else bytes(raw)


def warm_up() -> None:
    """Compile the numba walker now (seconds on a cold cache) rather than on the first
    request; call it once at service start."""
    body = encode_write_request([{"__name__": "vigil_warm_up"}], [0], [0], [0.0])
    RemoteDecoder().decode(body)
