"""Timestamps of ingested rows: per-file format detection and vectorised parsing to epoch ms.

Accepted forms:

* RFC 3339 ``2024-05-01T12:00:00Z``, ``2024-05-01 12:00:00.25+02:00`` (``T``/``t``/space
  separator, ``Z``/``z`` or a numeric offset, which is required; up to 9 fractional digits),
  converted to UTC.  The shorter ISO 8601 forms that Arrow parses are accepted too, as they
  are unambiguous: no seconds (``2024-05-01T12:00Z``), offsets ``+05`` and ``+0530``.
* epoch seconds or milliseconds, integer or fractional (``1714564800``, ``1714564800.25``,
  ``1714564800250``, ``1.7145648e9``).  The magnitude decides the unit: ``|v| < 1e11`` is
  seconds (1e11 s is the year 5138), ``1e11 <= |v| < 1e14`` milliseconds; larger numbers are
  rejected (microseconds or nanoseconds: convert them to ms first).

Timestamps must fall in years 1 to 9999 (the store's range; RFC 3339 text: 1677 to 2262).
A file uses one format.  It is detected from the first :data:`DETECT_SAMPLE` recognisable
values of its first chunk (the majority wins) and reported; a row in another format, or whose
magnitude says the other unit, is a bad row.  Sub-millisecond precision is rounded to the
nearest millisecond.

Parsing is vectorised with Arrow kernels; on a chunk with bad values the failing rows are found
by bisection with the same kernels (after a regex drops the hopeless ones), so a value is
accepted or rejected the same way whatever chunk it is in.  :func:`explain_timestamp` says why
one value was rejected (for reports only).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MS_THRESHOLD = 1e11  # |epoch| below: seconds; at or above: milliseconds
MAX_EPOCH_MS = 1e14  # |epoch| at or above: not seconds or milliseconds (us? ns?)
MIN_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z: the store keeps years 1-9999
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
DETECT_SAMPLE = 1000

# What Arrow's ISO 8601 cast to a zoned timestamp may accept (after upper-casing): a superset,
# used only to skip hopeless rows before bisecting a chunk that failed to cast.
ISO_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}(:[0-9]{2}(:[0-9]{2}(\.[0-9]*)?)?)?)?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
)
NAIVE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}(:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?)?$"
EPOCH_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ]|$)")
_NAIVE_RE = re.compile(NAIVE_PATTERN)
_EPOCH_RE = re.compile(EPOCH_PATTERN)
_FIELDS_RE = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))$"
)
_BISECT_LEAF = 16


class TsFormat(StrEnum):
    RFC3339 = "rfc3339"
    EPOCH_S = "epoch_s"
    EPOCH_MS = "epoch_ms"


EXAMPLES = {
    TsFormat.RFC3339: "RFC 3339 like 2024-05-01T12:00:00Z",
    TsFormat.EPOCH_S: "epoch seconds like 1714564800",
    TsFormat.EPOCH_MS: "epoch milliseconds like 1714564800000",
}


# --------------------------------------------------------------------------- vectorised kernels


def cast_masked(values: pa.Array, to: pa.DataType, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cast the rows of ``values`` where ``ok`` to ``to`` and return them as numpy.

    Returns ``(out, ok)``: ``out`` holds the cast value (0 where not ok, as int64 for
    timestamps) and ``ok`` is narrowed to the rows whose cast succeeded.  The whole array is
    cast in one call; when that fails, the failing rows are isolated by bisection.
    """
    n = len(values)
    out = np.zeros(n, dtype=np.float64 if pa.types.is_floating(to) else np.int64)
    ok = ok.copy()
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return out, ok
    taken = values.take(pa.array(idx)) if len(idx) < n else values
    _bisect_cast(taken, to, idx, out, ok)
    return out, ok


def _bisect_cast(
    values: pa.Array, to: pa.DataType, idx: np.ndarray, out: np.ndarray, ok: np.ndarray
) -> None:
    try:
        cast = pc.cast(values, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(values) <= _BISECT_LEAF:
            for j in range(len(values)):
                try:
                    one = pc.cast(values.slice(j, 1), to)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    ok[idx[j]] = False
                else:
                    out[idx[j]] = _to_numpy(one, out.dtype)[0]
            return
        half = len(values) // 2
        _bisect_cast(values.slice(0, half), to, idx[:half], out, ok)
        _bisect_cast(values.slice(half), to, idx[half:], out, ok)
        return
    out[idx] = _to_numpy(cast, out.dtype)


def _to_numpy(arr: pa.Array, dtype: np.dtype) -> np.ndarray:
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.int64())
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)


def _match(values: pa.Array, pattern: str) -> np.ndarray:
    mask = pc.match_substring_regex(values, pattern)
    return np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def parse_timestamp_strings(values: pa.Array, fmt: TsFormat) -> tuple[np.ndarray, np.ndarray]:
    """Parse UTF-8 strings in format ``fmt`` to epoch ms: ``(ms int64, ok bool)``.

    Surrounding whitespace is ignored; empty and null values are not ok.
    """
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    if values.null_count == 0:
        fast = _parse_clean(values, fmt)
        if fast is not None:
            return fast
    values = pc.utf8_trim_whitespace(values)
    nonempty = np.asarray(
        pc.fill_null(pc.greater(pc.binary_length(values), 0), False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    if fmt is TsFormat.RFC3339:
        upper = pc.ascii_upper(values)
        try:  # fast path: every row casts
            ns = pc.cast(upper, pa.timestamp("ns", tz="UTC")).cast(pa.int64())
            ok = np.ones(len(values), dtype=bool)
            raw = np.asarray(ns.to_numpy(zero_copy_only=False), dtype=np.int64)
        except pa.ArrowInvalid:
            ok = nonempty & _match(upper, ISO_PATTERN)
            raw, ok = cast_masked(upper, pa.timestamp("ns", tz="UTC"), ok)
        return in_range((raw + 500_000) // 1_000_000, ok)
    filled = pc.if_else(pa.array(nonempty), values, "0")
    try:
        ints = np.asarray(pc.cast(filled, pa.int64()).to_numpy(), dtype=np.int64)
    except pa.ArrowInvalid:
        try:
            floats = np.asarray(pc.cast(filled, pa.float64()).to_numpy(), dtype=np.float64)
        except pa.ArrowInvalid:
            ok = nonempty & _match(values, EPOCH_PATTERN)
            floats, ok = cast_masked(values, pa.float64(), ok)
            return epoch_to_ms(floats, ok, fmt)
        return epoch_to_ms(floats, nonempty, fmt)
    return epoch_to_ms(ints, nonempty, fmt)


def _parse_clean(values: pa.Array, fmt: TsFormat) -> tuple[np.ndarray, np.ndarray] | None:
    """Fast path: the whole chunk casts in one call (None: some value does not)."""
    every = np.ones(len(values), dtype=bool)
    try:
        if fmt is TsFormat.RFC3339:
            ns = pc.cast(pc.ascii_upper(values), pa.timestamp("ns", tz="UTC")).cast(pa.int64())
            raw = np.asarray(ns.to_numpy(zero_copy_only=False), dtype=np.int64)
            return in_range((raw + 500_000) // 1_000_000, every)
        try:
            ints = np.asarray(pc.cast(values, pa.int64()).to_numpy(), dtype=np.int64)
        except pa.ArrowInvalid:
            floats = np.asarray(pc.cast(values, pa.float64()).to_numpy(), dtype=np.float64)
            return epoch_to_ms(floats, every, fmt)
        return epoch_to_ms(ints, every, fmt)
    except pa.ArrowInvalid:
        return None


def epoch_to_ms(values: np.ndarray, ok: np.ndarray, fmt: TsFormat) -> tuple[np.ndarray, np.ndarray]:
    """Epoch numbers (int or float) in unit ``fmt`` to ms; rows of the wrong magnitude fail."""
    ok = ok.copy()
    if values.dtype.kind == "f":
        ok &= np.isfinite(values)
        mag = np.abs(np.where(ok, values, 0.0))
    else:
        mag = np.abs(values).astype(np.float64)
    if fmt is TsFormat.EPOCH_S:
        ok &= mag < MS_THRESHOLD
        scale = 1000
    else:
        ok &= (mag >= MS_THRESHOLD) & (mag < MAX_EPOCH_MS)
        scale = 1
    if values.dtype.kind == "f":
        ms = np.floor(np.where(ok, values, 0.0) * scale + 0.5).astype(np.int64)
    else:
        ms = np.where(ok, values, 0).astype(np.int64) * scale
    return in_range(ms, ok)


def in_range(ms: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Narrow ``ok`` to the timestamps the store accepts (years 1 to 9999)."""
    ok = ok & (ms >= MIN_MS) & (ms <= MAX_MS)
    return np.where(ok, ms, 0), ok


def detect_numeric(values: np.ndarray) -> TsFormat | None:
    """The unit of a numeric timestamp column: the majority of the first sample decides."""
    sample = values[: DETECT_SAMPLE * 4]
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    sample = sample[:DETECT_SAMPLE]
    if len(sample) == 0:
        return None
    mag = np.abs(sample.astype(np.float64))
    n_s = int(np.count_nonzero(mag < MS_THRESHOLD))
    n_ms = int(np.count_nonzero((mag >= MS_THRESHOLD) & (mag < MAX_EPOCH_MS)))
    if n_s == 0 and n_ms == 0:
        return None
    return TsFormat.EPOCH_S if n_s > n_ms else TsFormat.EPOCH_MS


# ----------------------------------------------------------------------------- scalar helpers


def classify_timestamp(text: str) -> TsFormat | None:
    """The format one (trimmed) timestamp string is written in, or None."""
    if _DATE_RE.match(text):
        return TsFormat.RFC3339
    if _EPOCH_RE.match(text):
        mag = abs(float(text))
        if mag < MS_THRESHOLD:
            return TsFormat.EPOCH_S
        if mag < MAX_EPOCH_MS:
            return TsFormat.EPOCH_MS
    return None


def detect_strings(values: Iterable[str]) -> TsFormat | None:
    """The format of a file's timestamps: the majority of its first recognisable values."""
    counts: Counter[TsFormat] = Counter()
    for text in values:
        kind = classify_timestamp(text.strip()) if text else None
        if kind is not None:
            counts[kind] += 1
            if counts.total() >= DETECT_SAMPLE:
                break
    if not counts:
        return None
    return max(counts, key=lambda k: (counts[k], k is TsFormat.RFC3339))


def explain_timestamp(raw: object, fmt: TsFormat | None) -> str:
    """Why ``raw`` is not a valid timestamp of a file in format ``fmt`` (for reports)."""
    if raw is None:
        return "missing timestamp"
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8"
    if isinstance(raw, float) and not math.isfinite(raw):
        return "not a finite number"
    text = str(raw).strip()
    if not text:
        return "empty timestamp; every row needs a timestamp"
    if fmt is None:
        if text[:4].isdigit() and text[4:5] == "-":
            return _explain_rfc3339(text)
        return (
            "not a timestamp: expected RFC 3339 (2024-05-01T12:00:00Z) or epoch seconds or "
            "milliseconds"
        )
    kind = classify_timestamp(text)
    expected = f"this file's timestamps were detected as {EXAMPLES[fmt]}"
    if kind is not None and kind is not fmt:
        return f"written as {EXAMPLES[kind]}, but {expected}; use one format per file"
    if fmt is TsFormat.RFC3339:
        return _explain_rfc3339(text)
    if _EPOCH_RE.match(text):
        mag = abs(float(text))
        if not math.isfinite(mag):
            return "not a finite number"
        if mag >= MAX_EPOCH_MS:
            return (
                "too large for epoch seconds or milliseconds (microseconds or nanoseconds?); "
                "convert to milliseconds"
            )
        return "outside years 1 to 9999"
    return f"not a number; {expected}"


def _explain_rfc3339(text: str) -> str:
    if _NAIVE_RE.match(text):
        return (
            "has no UTC offset: append 'Z' for UTC or '+hh:mm' (RFC 3339 also needs the "
            "seconds), e.g. 2024-05-01T12:00:00Z"
        )
    m = _FIELDS_RE.match(text)
    if m is None:
        return "not an RFC 3339 timestamp; expected e.g. 2024-05-01T12:00:00Z or ...+02:00"
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        datetime(y, mo, d, h, mi, s)
    except ValueError as exc:
        return f"invalid date or time ({exc}); fix the value"
    if m.group(9) is not None and (int(m.group(9)) > 23 or int(m.group(10)) > 59):
        return "invalid UTC offset; expected +hh:mm with hh <= 23 and mm <= 59"
    if m.group(7) is not None and len(m.group(7)) > 9:
        return "more than 9 fractional digits (nanoseconds); shorten the fraction"
    return "outside the supported range (years 1677 to 2262)"


def parse_timestamp(value: object) -> int:
    """One timestamp (RFC 3339 text, or epoch seconds/milliseconds as number or text) to ms.

    Same rules as files, with the unit decided by this value alone.  Raises ``ValueError``
    with the reason.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(
            f"timestamp {value!r} has type {type(value).__name__}: expected RFC 3339 text or "
            "epoch seconds/milliseconds"
        )
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"timestamp {value!r} is not a finite number")
        fmt = classify_timestamp(repr(float(value)) if isinstance(value, float) else str(value))
        if fmt is None:
            raise ValueError(f"timestamp {value!r}: {explain_timestamp(str(value), None)}")
        arr = np.array([value], dtype=np.float64 if isinstance(value, float) else np.int64)
        ms, ok = epoch_to_ms(arr, np.ones(1, dtype=bool), fmt)
    else:
        text = value.strip()
        fmt = classify_timestamp(text)
        if fmt is None:
            raise ValueError(f"timestamp {value!r}: {explain_timestamp(text, None)}")
        ms, ok = parse_timestamp_strings(pa.array([text], pa.string()), fmt)
    if not ok[0]:
        raise ValueError(f"timestamp {value!r}: {explain_timestamp(value, fmt)}")
    return int(ms[0])
