"""Scalar time parsing and formatting for the CLI and API edges (ms since epoch, UTC).

Vectorised per-file detection for ingest lives in :mod:`vigil.ingest`.
"""

from __future__ import annotations

from datetime import UTC, datetime

# Epoch numbers above this are milliseconds, below it seconds (1e11 s is the year 5138).
_MS_THRESHOLD = 100_000_000_000


def parse_time(text: str | int | float) -> int:
    """RFC 3339 text (``2026-01-09T22:10:00Z``), or epoch seconds/milliseconds, to epoch ms."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        s = text.strip()
        try:
            value = float(s)
        except ValueError:
            try:
                dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise ValueError(
                    f"time {text!r} is invalid: expected RFC 3339 (2026-01-09T22:10:00Z) "
                    "or epoch seconds/milliseconds"
                ) from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            return round(dt.timestamp() * 1000)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"time {text!r} is not a finite number")
    return round(value) if abs(value) >= _MS_THRESHOLD else round(value * 1000)


def format_ms(ms: int | None) -> str:
    """Epoch ms as RFC 3339 UTC with second precision (``2026-01-09T22:10:00Z``)."""
    if ms is None:
        return "-"
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if ms % 1000:
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")
