"""The simulated time grid and the time formats the simulator writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

DEFAULT_START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday, so weeks line up with the grid
MIN_STEPS = 96


@dataclass(frozen=True)
class Grid:
    """``n_steps`` columns of ``step_s`` seconds from ``start_ms`` (epoch ms, UTC)."""

    start_ms: int
    step_s: int
    n_steps: int

    @property
    def step_ms(self) -> int:
        return self.step_s * 1000

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.n_steps * self.step_ms

    def seconds(self) -> np.ndarray:
        """Epoch seconds (float64) of every column."""
        return self.start_ms / 1000.0 + self.step_s * np.arange(self.n_steps, dtype=np.float64)

    def steps(self, seconds: float) -> int:
        """A duration in whole steps (at least one)."""
        return max(1, round(seconds / self.step_s))

    def ms(self, index: float) -> int:
        """Epoch ms of a (possibly fractional) column index, rounded to whole seconds."""
        return round((self.start_ms + index * self.step_ms) / 1000.0) * 1000

    def day_bounds(self) -> list[tuple[str, int, int]]:
        """``(YYYY-MM-DD, first, stop)`` column ranges of each UTC day the grid touches."""
        day_ms = 86_400_000
        cols = self.start_ms + self.step_ms * np.arange(self.n_steps, dtype=np.int64)
        day = cols // day_ms
        cuts = np.flatnonzero(np.diff(day)) + 1
        starts = np.concatenate(([0], cuts))
        stops = np.concatenate((cuts, [self.n_steps]))
        return [
            (datetime.fromtimestamp(int(day[a]) * 86_400, UTC).strftime("%Y-%m-%d"), int(a), int(b))
            for a, b in zip(starts, stops, strict=True)
        ]


def parse_start(start: datetime | str | int | None) -> int:
    """The simulation start as epoch ms: a timezone-aware datetime, an RFC 3339 text, epoch ms,
    or None for the fixed default (2025-01-06T00:00:00Z)."""
    if start is None:
        start = DEFAULT_START
    if isinstance(start, bool):
        raise TypeError(f"start={start!r} is invalid: expected a datetime, RFC 3339 text or ms")
    if isinstance(start, int):
        return start
    if isinstance(start, str):
        text = start.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(
                f"start={start!r} is not RFC 3339: expected e.g. '2025-01-06T00:00:00Z'"
            ) from None
        start = parsed
    if not isinstance(start, datetime):
        raise TypeError(
            f"start={start!r} is invalid: expected a datetime, RFC 3339 text, epoch ms or None"
        )
    if start.tzinfo is None:
        raise ValueError(
            f"start={start.isoformat()!r} has no timezone: pass an aware datetime "
            "(e.g. tzinfo=datetime.UTC) or text ending in 'Z'"
        )
    return round(start.timestamp() * 1000)


def rfc3339(ms: float) -> str:
    """RFC 3339 UTC text of epoch ms, to the second: ``2025-01-06T00:00:00Z``."""
    return datetime.fromtimestamp(round(ms / 1000.0), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
