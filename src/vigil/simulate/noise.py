"""Vectorised random building blocks over ``[n_rows, n_steps]`` arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], window: int) -> np.ndarray:
    """Unit-variance noise correlated over ``window`` steps (moving sum of white noise)."""
    n, t = shape
    w = max(1, int(window))
    white = rng.standard_normal((n, t + w))
    csum = np.cumsum(white, axis=1)
    out = csum[:, w:] - csum[:, :-w]
    out *= 1.0 / np.sqrt(w)
    return out


@dataclass(frozen=True)
class Runs:
    """Short runs of consecutive columns, one entry per run: row, first column, stop column."""

    rows: np.ndarray
    first: np.ndarray
    stop: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        return self.paint(shape, np.ones(len(self.rows))) > 0

    def paint(self, shape: tuple[int, int], values: np.ndarray) -> np.ndarray:
        """A float array holding ``values[k]`` over run ``k`` (overlapping runs add up)."""
        n, t = shape
        diff = np.zeros((n, t + 1))
        np.add.at(diff, (self.rows, self.first), values)
        np.add.at(diff, (self.rows, self.stop), -values)
        out = np.cumsum(diff, axis=1)[:, :t]
        out[np.abs(out) < 1e-12] = 0.0
        return out


def random_runs(
    rng: np.random.Generator,
    shape: tuple[int, int],
    rate: float,
    mean_len: float,
    max_len: int,
) -> Runs:
    """Runs starting at ``rate`` per row-step, geometric lengths (mean ``mean_len``, capped)."""
    n, t = shape
    counts = rng.poisson(rate * t, n)
    rows = np.repeat(np.arange(n), counts)
    first = rng.integers(0, t, len(rows))
    lengths = np.minimum(rng.geometric(1.0 / max(mean_len, 1.0), len(rows)), max_len)
    return Runs(rows, first, np.minimum(first + lengths, t))
