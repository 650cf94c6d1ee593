"""Canonical encodings: the JSON of a record and the bytes behind every digest.

* **JSON**: UTF-8, keys sorted, no whitespace (``separators=(",", ":")``), non-ASCII kept as
  is.  A finite float is written by Python's ``repr`` (the shortest text that reads back to
  the same IEEE-754 double, so a parsed record compares bit for bit); NaN and the infinities,
  which JSON cannot hold, are the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
  ``-0.0`` stays ``-0.0``.  Integers are integers; int64 series ids are decimal *strings*.
* **Float arrays** (``f64``): little-endian IEEE-754 doubles, C order, every NaN replaced by
  the one quiet NaN ``0x7ff8000000000000`` (NaN payloads are not data); ``-0.0`` and the
  infinities are kept as they are.
* **Input digest** (``input_digest``): SHA-256 over ``b"vigil-input-v1\\0"``, then
  ``n, T, start, step`` as int64 LE, the ``n`` series ids as int64 LE, then the ``[n, T]``
  values as ``f64`` rows in the given (series-id) order.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

INPUT_ENCODING = "vigil-input-v1"
_QNAN = np.uint64(0x7FF8000000000000)


def _prepare(obj: Any) -> Any:
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        x = float(obj)
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        return x
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"canonical JSON keys must be text, got {k!r}")
            out[k] = _prepare(v)
        return out
    if isinstance(obj, Sequence | np.ndarray):
        return [_prepare(v) for v in obj]
    raise TypeError(f"cannot encode {type(obj).__name__} in a ledger record: {obj!r}")


def canonical_json(obj: Any) -> bytes:
    """The canonical UTF-8 bytes of ``obj`` (see the module doc)."""
    return json.dumps(_prepare(obj), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode("utf-8")


def read_float(value: Any) -> float:
    """Inverse of the float encoding: a JSON number or one of the three strings."""
    if isinstance(value, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
    return float(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def f64_bytes(values: np.ndarray) -> bytes:
    """Canonical bytes of a float array (NaNs canonical, little-endian, C order)."""
    arr = np.ascontiguousarray(values, dtype="<f8")
    bits = arr.view("<u8")
    nan = np.isnan(arr)
    if nan.any():
        bits = bits.copy()
        bits[nan] = _QNAN
    return bits.tobytes()


def input_digest(series_ids: np.ndarray, start: int, step: int, values: np.ndarray) -> str:
    """SHA-256 of a dense input window (see the module doc)."""
    ids = np.ascontiguousarray(series_ids, dtype="<i8")
    n, t = values.shape
    h = hashlib.sha256(INPUT_ENCODING.encode() + b"\0")
    h.update(np.array([n, t, start, step], dtype="<i8").tobytes())
    h.update(ids.tobytes())
    h.update(f64_bytes(values))
    return h.hexdigest()


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over named arrays in key order: ``key NUL kind NUL shape NUL`` then the bytes
    (floats as ``f64``, booleans as uint8, integers as int64 LE)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.asarray(arrays[key])
        if arr.dtype.kind == "f":
            kind, data = "f64", f64_bytes(arr)
        elif arr.dtype.kind == "b":
            kind, data = "u8", np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
        elif arr.dtype.kind in "iu":
            kind, data = "i64", np.ascontiguousarray(arr, dtype="<i8").tobytes()
        else:
            kind, data = arr.dtype.str, np.ascontiguousarray(arr).tobytes()
        h.update(f"{key}\0{kind}\0{arr.shape}\0".encode())
        h.update(data)
    return h.hexdigest()
