"""Causal post-processing of anomaly scores into alert-ready [0, 1) scores.

Input: a model's ``Scores.anomaly_score`` ``[n_series, n_steps]`` (0 normal, 1 the boundary,
> 1 anomalous, unbounded), the observed values of the same columns, and optionally the values
observed before them (the fit window).  Output ``[n_series, n_steps]`` in ``[0, 1)``; every
value depends only on columns up to and including its own (causal); rows are independent.
Nothing is learnt per series beyond two running statistics; all parameters are fixed.

For each column ``t`` of a series:

* **peak ratio** ``r_t = s_t / M_{t-1}``, where ``M`` is a decaying peak of the series' own past
  scores: ``M_t = max(decay * M_{t-1}, s_t, floor)`` starting at ``max(initial_peak, floor)``
  (a series just fitted needs a clearer signal to alert).  A score counts by how much it
  exceeds what this series has recently produced, so a series that the model fits poorly
  (scores often above 1) does not alert all the time, and once an episode has alerted its
  continuation scores about 1 instead of alerting again.  ``decay`` 0.9995 is a half-life of
  ~1386 columns;
* **range novelty** ``x_t = max(v_t - hi, lo - v_t, 0) / (hi - lo)``: how far the value leaves
  the range ``[lo, hi]`` of every value seen before it (the history included), in units of that
  range, capped at ``novelty_cap`` (a change after a constant history has an empty range and
  takes the cap).  A new all-time high of a latency or error rate is what an operator wants
  to hear about even when the model's noise estimate is wide;
* ``y_t = r_t + novelty_weight * x_t``, mapped into [0, 1) by the monotone ``y / (1 + y)``.

A NaN score (model warming up) counts as 0 and does not move the peak; a NaN value is not
novel and does not move the range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numba import njit


@njit(cache=True)
def _kernel(
    s: np.ndarray,
    v: np.ndarray,
    lo0: np.ndarray,
    hi0: np.ndarray,
    decay: float,
    floor: float,
    initial_peak: float,
    weight: float,
    cap: float,
) -> np.ndarray:  # pragma: no cover - compiled
    n, t_len = s.shape
    out = np.zeros((n, t_len))
    tiny = 1e-300
    for i in range(n):
        peak = max(initial_peak, floor)
        lo = lo0[i]
        hi = hi0[i]
        for t in range(t_len):
            x = s[i, t]
            r = 0.0
            if not np.isnan(x):
                r = max(x, 0.0) / peak
            peak = max(peak * decay, floor)
            if not np.isnan(x):
                peak = max(peak, x)
            val = v[i, t]
            nov = 0.0
            if not np.isnan(val):
                if np.isnan(lo):
                    lo = val
                    hi = val
                else:
                    dev = max(val - hi, lo - val, 0.0)
                    if dev > 0.0:
                        nov = min(dev / max(hi - lo, tiny), cap)
                    lo = min(lo, val)
                    hi = max(hi, val)
            y = r + weight * nov
            out[i, t] = y / (1.0 + y)
    return out


@dataclass(frozen=True)
class PostProcess:
    decay: float = 0.9995  # per-column decay of the reference peak
    floor: float = 1.0  # the reference peak never drops below the model's boundary
    initial_peak: float = 2.0  # a fresh series needs a clearer signal; decays to ``floor``
    novelty_weight: float = 100.0  # weight of the range novelty (0: off)
    novelty_cap: float = 10.0  # range novelty is capped at this many ranges

    def __post_init__(self) -> None:
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"decay={self.decay} is invalid: expected a factor in (0, 1]")
        if not self.floor > 0.0:
            raise ValueError(f"floor={self.floor} is invalid: expected an anomaly_score > 0")
        if not self.initial_peak > 0.0:
            raise ValueError(
                f"initial_peak={self.initial_peak} is invalid: expected an anomaly_score > 0"
            )
        if not self.novelty_weight >= 0.0:
            raise ValueError(
                f"novelty_weight={self.novelty_weight} is invalid: expected >= 0 (0: off)"
            )
        if not self.novelty_cap > 0.0:
            raise ValueError(f"novelty_cap={self.novelty_cap} is invalid: expected > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def apply(
        self, anomaly_score: np.ndarray, values: np.ndarray, history: np.ndarray | None = None
    ) -> np.ndarray:
        """Scores in [0, 1) for ``anomaly_score`` ``[n, T]`` observed as ``values`` ``[n, T]``;
        ``history`` ``[n, H]`` are the values before them (they only seed the range)."""
        s = np.ascontiguousarray(anomaly_score, dtype=np.float64)
        v = np.ascontiguousarray(values, dtype=np.float64)
        if s.ndim != 2 or s.shape != v.shape:
            raise ValueError(
                f"anomaly_score {s.shape} and values {v.shape} differ: expected both "
                "[n_series, n_steps] for the same columns"
            )
        n = s.shape[0]
        lo = np.full(n, np.nan)
        hi = np.full(n, np.nan)
        if history is not None and history.size:
            h = np.asarray(history, dtype=np.float64)
            if h.ndim != 2 or h.shape[0] != n:
                raise ValueError(f"history has shape {h.shape}: expected [{n}, n_history_steps]")
            seen = ~np.isnan(h).all(axis=1)
            lo[seen] = np.nanmin(h[seen], axis=1)
            hi[seen] = np.nanmax(h[seen], axis=1)
        return _kernel(
            s,
            v,
            lo,
            hi,
            self.decay,
            self.floor,
            self.initial_peak,
            self.novelty_weight,
            self.novelty_cap,
        )
