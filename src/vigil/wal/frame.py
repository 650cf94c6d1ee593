"""WAL frames: one accepted write (tenant + ``WriteBatch``) as bytes, and back.

Frame on disk (little-endian)::

    header (20 bytes): u32 body_len | u64 seq | u32 crc32(body) | u32 crc32(first 16 bytes)
    body:              u16 tenant_len | tenant (ASCII) | batch

    batch: u32 n_series | u32 n_samples | u32 n_stale | u32 exemplars | u32 histograms
           | u32 metadata | u64 labels_len
           | series_ids int64[n_series] | series int32[n] | timestamps int64[n]
           | values float64[n] | stale_series int32[n_stale] | stale_timestamps int64[n_stale]
           | labels: the canonical label JSON of each series joined by '\\n' (UTF-8)

The arrays are the batch's own bytes (no per-sample work); JSON never holds a raw newline,
so the join is unambiguous.  The header has its own CRC so a torn or garbage header is told
apart from a valid length; the body CRC is computed outside the WAL's lock.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from vigil.remote.decode import WriteBatch

HEADER = struct.Struct("<IQI")  # body_len, seq, body_crc
HEADER_CRC = struct.Struct("<I")
HEADER_SIZE = HEADER.size + HEADER_CRC.size  # 20
_BATCH = struct.Struct("<IIIIIIQ")
MAX_BODY = (1 << 32) - 1


class FrameError(ValueError):
    """Bytes that are not a complete, intact frame."""


@dataclass(frozen=True)
class Body:
    """A frame's body, encoded; ``crc`` computed once."""

    data: bytes
    crc: int
    samples: int


def encode_body(tenant: str, batch: WriteBatch) -> Body:
    t = tenant.encode("ascii")
    labels = "\n".join(batch.labels_json).encode("utf-8")
    parts = [
        struct.pack("<H", len(t)),
        t,
        _BATCH.pack(
            batch.n_series,
            batch.n_samples,
            len(batch.stale_series),
            batch.exemplars,
            batch.histograms,
            batch.metadata,
            len(labels),
        ),
        np.ascontiguousarray(batch.series_ids, dtype="<i8").tobytes(),
        np.ascontiguousarray(batch.series, dtype="<i4").tobytes(),
        np.ascontiguousarray(batch.timestamps, dtype="<i8").tobytes(),
        np.ascontiguousarray(batch.values, dtype="<f8").tobytes(),
        np.ascontiguousarray(batch.stale_series, dtype="<i4").tobytes(),
        np.ascontiguousarray(batch.stale_timestamps, dtype="<i8").tobytes(),
        labels,
    ]
    data = b"".join(parts)
    if len(data) > MAX_BODY:
        raise ValueError(f"batch of {len(data)} bytes is too large for one WAL frame")
    return Body(data, zlib.crc32(data), batch.n_samples)


def header(body: Body, seq: int) -> bytes:
    head = HEADER.pack(len(body.data), seq, body.crc)
    return head + HEADER_CRC.pack(zlib.crc32(head))


def read_header(data: bytes | memoryview, pos: int) -> tuple[int, int, int]:
    """``(body_len, seq, body_crc)`` of the header at ``pos``; FrameError if torn/garbage."""
    if len(data) - pos < HEADER_SIZE:
        raise FrameError("truncated frame header")
    head = bytes(data[pos : pos + HEADER.size])
    (crc,) = HEADER_CRC.unpack_from(data, pos + HEADER.size)
    if zlib.crc32(head) != crc:
        raise FrameError("frame header checksum mismatch")
    body_len, seq, body_crc = HEADER.unpack(head)
    return body_len, seq, body_crc


def decode_body(data: bytes | memoryview) -> tuple[str, WriteBatch]:
    view = memoryview(data)
    (tlen,) = struct.unpack_from("<H", view, 0)
    pos = 2
    tenant = bytes(view[pos : pos + tlen]).decode("ascii")
    pos += tlen
    n_series, n, n_stale, exemplars, histograms, metadata, labels_len = _BATCH.unpack_from(
        view, pos
    )
    pos += _BATCH.size

    def take(dtype: str, count: int) -> np.ndarray:
        nonlocal pos
        size = np.dtype(dtype).itemsize * count
        if pos + size > len(view):
            raise FrameError("frame body shorter than its counts")
        arr = np.frombuffer(view[pos : pos + size], dtype=dtype).astype(dtype[1:], copy=True)
        pos += size
        return arr

    series_ids = take("<i8", n_series)
    series = take("<i4", n)
    timestamps = take("<i8", n)
    values = take("<f8", n)
    stale_series = take("<i4", n_stale)
    stale_ts = take("<i8", n_stale)
    if pos + labels_len != len(view):
        raise FrameError("frame body length does not match its counts")
    text = bytes(view[pos:]).decode("utf-8")
    labels = text.split("\n") if n_series else []
    if len(labels) != n_series:
        raise FrameError("frame label count does not match its series count")
    batch = WriteBatch(
        series_ids,
        labels,
        series,
        timestamps,
        values,
        stale_series,
        stale_ts,
        exemplars,
        histograms,
        metadata,
    )
    return tenant, batch


def body_samples(data: bytes | memoryview) -> int:
    """The sample count of an encoded body, without decoding it."""
    (tlen,) = struct.unpack_from("<H", data, 0)
    return int(_BATCH.unpack_from(data, 2 + tlen)[1])
