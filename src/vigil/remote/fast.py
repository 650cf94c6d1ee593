"""A WriteRequest decoder of Vigil's own: a numba walker over the protobuf bytes.

It understands exactly the shape Prometheus sends for float samples -- ``WriteRequest``
field 1 (TimeSeries), ``TimeSeries`` fields 1 (Label) and 2 (Sample), ``Label`` fields 1/2,
``Sample`` fields 1/2, every tag, length and value varint in canonical (shortest) form --
and gives up on anything else (metadata, exemplars, histograms, unknown fields, groups,
non-canonical varints, truncation...).  Giving up is not an error: the caller then decodes
the request with protobuf's own parser (``proto.parse_reference``), which decides.  So the
result is the reference's by construction whenever this walker declines, and the property
tests (tests/test_remote_fast.py) check that it equals the reference whenever it accepts.

Two passes: the first counts series, labels and samples (no allocation, so the request
limits are checked before anything proportional to the request is allocated), the second
fills exactly-sized arrays.  Output per series: the byte span of its label fields (the key
of the label cache: one dict lookup instead of a validation and a hash per series) and each
label's name/value offsets; per sample: series index, timestamp, value bits.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from vigil.remote.proto import Parsed, TooLarge

OK, DECLINE = 0, 1
_U7F = np.uint64(0x7F)


@nb.njit(cache=True, inline="always")
def _varint(buf: np.ndarray, pos: int, end: int) -> tuple[np.uint64, int]:
    """Canonical varint at ``pos``: (value, next position), or next position -1."""
    if pos < end and buf[pos] < 0x80:  # one byte: the common case
        return np.uint64(buf[pos]), pos + 1
    result = np.uint64(0)
    shift = np.uint64(0)
    start = pos
    while pos < end:
        b = buf[pos]
        pos += 1
        if pos - start == 10 and b > 1:
            return np.uint64(0), -1
        result |= (np.uint64(b) & _U7F) << shift
        if b < 0x80:
            if b == 0 and pos - start > 1:
                return np.uint64(0), -1  # non-canonical (padded) encoding
            return result, pos
        shift += np.uint64(7)
        if pos - start >= 10:
            return np.uint64(0), -1
    return np.uint64(0), -1


@nb.njit(cache=True, inline="always")
def _len(buf: np.ndarray, pos: int, end: int) -> tuple[int, int]:
    """A length prefix: (start of the payload, its end), or (-1, -1)."""
    n, pos = _varint(buf, pos, end)
    if pos < 0 or n > np.uint64(end - pos):
        return -1, -1
    return pos, pos + int(n)


@nb.njit(cache=True, nogil=True)
def _walk(
    buf: np.ndarray,
    fill: bool,
    ser_lab: np.ndarray,  # int64 [n_series + 1]: first label of each series
    ser_key: np.ndarray,  # int64 [n_series, 2]: byte span of the label fields
    lab: np.ndarray,  # int64 [n_labels, 4]: name start, name end, value start, value end
    smp_series: np.ndarray,  # int32 [n_samples]
    smp_ts: np.ndarray,  # uint64 [n_samples]
    smp_val: np.ndarray,  # uint64 [n_samples]
) -> tuple[int, int, int, int]:
    """(status, series, labels, samples).

    Every field this walker knows has a number below 16, so its canonical tag is one byte:
    tags are compared as bytes (a longer tag is some other field: decline).  One-byte
    lengths are read inline; helpers are called only for longer varints (a call costs
    reference-count traffic on ``buf``).
    """
    end = len(buf)
    pos = 0
    n_ser = n_lab = n_smp = 0
    while pos < end:
        if buf[pos] != 0x0A:  # WriteRequest.timeseries, wire type 2
            return DECLINE, n_ser, n_lab, n_smp
        ts_start, ts_end = _len(buf, pos + 1, end)
        if ts_start < 0:
            return DECLINE, n_ser, n_lab, n_smp
        pos = ts_end
        if fill:
            ser_lab[n_ser] = n_lab
            ser_key[n_ser, 0] = -1
            ser_key[n_ser, 1] = -1
        p = ts_start
        contiguous = True
        seen_label = False
        after_labels = False  # a sample came after the first label
        while p < ts_end:
            field_at = p
            key = buf[p]
            p += 1
            if p < ts_end and buf[p] < 0x80:
                sub_start = p + 1
                sub_end = sub_start + int(buf[p])
                if sub_end > ts_end:
                    return DECLINE, n_ser, n_lab, n_smp
            else:
                sub_start, sub_end = _len(buf, p, ts_end)
                if sub_start < 0:
                    return DECLINE, n_ser, n_lab, n_smp
            if key == 0x0A:  # TimeSeries.labels
                if after_labels:
                    contiguous = False
                q = sub_start
                ns = ne = vs = ve = 0
                while q < sub_end:
                    k2 = buf[q]
                    q += 1
                    if k2 != 0x0A and k2 != 0x12:
                        return DECLINE, n_ser, n_lab, n_smp
                    if q < sub_end and buf[q] < 0x80:
                        s = q + 1
                        e = s + int(buf[q])
                        if e > sub_end:
                            return DECLINE, n_ser, n_lab, n_smp
                    else:
                        s, e = _len(buf, q, sub_end)
                        if s < 0:
                            return DECLINE, n_ser, n_lab, n_smp
                    if k2 == 0x0A:
                        ns, ne = s, e
                    else:
                        vs, ve = s, e
                    q = e
                if fill:
                    lab[n_lab, 0] = ns
                    lab[n_lab, 1] = ne
                    lab[n_lab, 2] = vs
                    lab[n_lab, 3] = ve
                    if not seen_label:
                        ser_key[n_ser, 0] = field_at
                    ser_key[n_ser, 1] = sub_end
                seen_label = True
                n_lab += 1
            elif key == 0x12:  # TimeSeries.samples
                if seen_label:
                    after_labels = True
                q = sub_start
                value = np.uint64(0)
                stamp = np.uint64(0)
                while q < sub_end:
                    k2 = buf[q]
                    q += 1
                    if k2 == 0x09:  # value, fixed64
                        if sub_end - q < 8:
                            return DECLINE, n_ser, n_lab, n_smp
                        value = np.uint64(0)
                        for j in range(8):
                            value |= np.uint64(buf[q + j]) << np.uint64(8 * j)
                        q += 8
                    elif k2 == 0x10:  # timestamp, varint (inline: nearly always 6 bytes)
                        stamp = np.uint64(0)
                        shift = np.uint64(0)
                        start = q
                        while True:
                            if q >= sub_end or q - start >= 10:
                                return DECLINE, n_ser, n_lab, n_smp
                            b = buf[q]
                            q += 1
                            stamp |= (np.uint64(b) & _U7F) << shift
                            shift += np.uint64(7)
                            if b < 0x80:
                                break
                        n_bytes = q - start
                        if (n_bytes > 1 and buf[q - 1] == 0) or (n_bytes == 10 and buf[q - 1] > 1):
                            return DECLINE, n_ser, n_lab, n_smp
                    else:
                        return DECLINE, n_ser, n_lab, n_smp
                if fill:
                    smp_series[n_smp] = n_ser
                    smp_ts[n_smp] = stamp
                    smp_val[n_smp] = value
                n_smp += 1
            else:
                return DECLINE, n_ser, n_lab, n_smp
            p = sub_end
        if fill and not contiguous:
            ser_key[n_ser, 0] = -2  # labels interleaved with samples: key built by the caller
        n_ser += 1
    if fill:
        ser_lab[n_ser] = n_lab
    return OK, n_ser, n_lab, n_smp


def parse_fast(data: bytes | memoryview, max_series: int, max_samples: int) -> Parsed | None:
    """Decode like ``proto.parse_reference`` or return None (declined: use the reference)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    dummy_i64 = np.empty((0, 4), dtype=np.int64)
    dummy_u64 = np.empty(0, dtype=np.uint64)
    status, n_ser, n_lab, n_smp = _walk(
        buf,
        False,
        dummy_i64[:, 0],
        dummy_i64[:, :2],
        dummy_i64,
        np.empty(0, dtype=np.int32),
        dummy_u64,
        dummy_u64,
    )
    if status != OK:
        return None
    if n_ser > max_series:
        raise TooLarge("series", n_ser, max_series)
    if n_smp > max_samples:
        raise TooLarge("samples", n_smp, max_samples)
    ser_lab = np.empty(n_ser + 1, dtype=np.int64)
    ser_key = np.empty((n_ser, 2), dtype=np.int64)
    lab = np.empty((n_lab, 4), dtype=np.int64)
    series = np.empty(n_smp, dtype=np.int32)
    stamps = np.empty(n_smp, dtype=np.uint64)
    bits = np.empty(n_smp, dtype=np.uint64)
    status, *_ = _walk(buf, True, ser_lab, ser_key, lab, series, stamps, bits)
    assert status == OK  # same bytes, same walk
    raw = bytes(data)
    if n_ser and ser_key[:, 0].min() >= 0:  # the usual case: every series has its span
        keys = [raw[a:b] for a, b in ser_key.tolist()]
        return Parsed(None, keys, series, stamps.view(np.int64), bits)
    keys = []
    for k, (start, stop) in enumerate(ser_key.tolist()):
        if start >= 0:
            keys.append(raw[start:stop])
        elif start == -1:
            keys.append(b"")  # no labels at all
        else:  # labels interleaved with samples: a key of the label fields only
            rows = lab[ser_lab[k] : ser_lab[k + 1]].tolist()
            keys.append(_encode_labels([(raw[a:b], raw[c:d]) for a, b, c, d in rows]))
    return Parsed(
        labels=None,
        keys=keys,
        series=series,
        timestamps=stamps.view(np.int64),
        value_bits=bits,
    )


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _encode_labels(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """The canonical wire form of TimeSeries.labels (the label cache's key)."""
    parts = []
    for name, value in pairs:
        body = b"\x0a" + _uvarint(len(name)) + name + b"\x12" + _uvarint(len(value)) + value
        parts.append(b"\x0a" + _uvarint(len(body)) + body)
    return b"".join(parts)


def decode_key(key: bytes) -> list[tuple[bytes, bytes]]:
    """The label pairs of a cache key (label fields as on the wire; last name/value wins)."""
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(key):
        pos += 1  # tag 0x0A
        n, pos = _read_uvarint(key, pos)
        end = pos + n
        name = value = b""
        while pos < end:
            tag = key[pos]
            pos += 1
            m, pos = _read_uvarint(key, pos)
            if tag == 0x0A:
                name = key[pos : pos + m]
            else:
                value = key[pos : pos + m]
            pos += m
        out.append((name, value))
    return out


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
