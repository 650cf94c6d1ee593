"""Guards: rules that keep statistically unusual but operationally irrelevant points quiet.

Applied to a model's raw ``anomaly_score`` (``> 1`` means ``p < alpha``), per point, in order:

1. **direction** — ``up`` keeps only ``y > expected``, ``down`` only ``y < expected``,
   ``both`` keeps both.  Per series, from the metric name (label ``__name__``): the first
   pattern of ``directions`` (``fnmatch`` shell patterns, e.g. ``{"*_errors_total": "up"}``)
   that matches, else ``direction``;
2. **minimum absolute deviation** — ``|y - expected| >= min_abs_dev``;
3. **minimum relative deviation** — ``|y - expected| / max(|expected|, rel_eps) >= min_rel_dev``
   (the default 1% keeps flat series and tiny wiggles quiet whatever their noise estimate);
4. **minimum duration** — a point that passed 1-3 with a raw score above 1 alarms only when at
   least ``min_duration`` of the last ``window`` steps (itself included) did too.  Steps count
   whether observed or not (a missing step is a step without a flag).  The last ``window - 1``
   flags are carried across batches as a bit mask per series (``hist``: bit 0 is the latest).

A point that fails a guard gets **``anomaly_score = min(raw, GUARD_CAP)`` with
``GUARD_CAP = 0.99``**: below the boundary, still ordered among quiet points.  Points at or
below 1 and NaN scores are unchanged.  ``p_value``, ``expected`` and the band are never changed.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

GUARD_CAP = 0.99
DIRECTION_CODES = {"both": 0, "up": 1, "down": -1}
MAX_WINDOW = 63


def _check_direction(value: str, where: str) -> int:
    if value not in DIRECTION_CODES:
        raise ValueError(f"{where}={value!r} is invalid: expected one of {sorted(DIRECTION_CODES)}")
    return DIRECTION_CODES[value]


@dataclass(frozen=True)
class Guards:
    direction: str = "both"
    directions: Mapping[str, str] = field(default_factory=dict)  # metric-name pattern -> dir
    min_abs_dev: float = 0.0
    min_rel_dev: float = 0.01
    rel_eps: float = 1e-9
    min_duration: int = 1
    window: int = 1

    def __post_init__(self) -> None:
        _check_direction(self.direction, "direction")
        for pattern, d in self.directions.items():
            _check_direction(d, f"directions[{pattern!r}]")
        for name in ("min_abs_dev", "min_rel_dev"):
            v = getattr(self, name)
            if not v >= 0:
                raise ValueError(f"{name}={v} is invalid: expected a deviation >= 0")
        if not self.rel_eps > 0:
            raise ValueError(f"rel_eps={self.rel_eps} is invalid: expected a value > 0")
        if not 1 <= self.window <= MAX_WINDOW:
            raise ValueError(f"window={self.window} is invalid: expected 1..{MAX_WINDOW} steps")
        if not 1 <= self.min_duration <= self.window:
            raise ValueError(
                f"min_duration={self.min_duration} is invalid: expected 1..window "
                f"(window={self.window})"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "directions": dict(self.directions),
            "min_abs_dev": self.min_abs_dev,
            "min_rel_dev": self.min_rel_dev,
            "rel_eps": self.rel_eps,
            "min_duration": self.min_duration,
            "window": self.window,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Guards:
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown guard settings {sorted(unknown)}: expected some of "
                f"{sorted(cls.__dataclass_fields__)}"
            )
        if "directions" in d:
            d["directions"] = dict(d["directions"])
        return cls(**d)

    def direction_codes(self, labels: Sequence[Mapping[str, str]], n: int) -> np.ndarray:
        """int8 ``[n]``: +1 up, -1 down, 0 both, from each series' ``__name__``.

        ``labels`` may be empty (every series gets ``direction``); otherwise one per series.
        """
        default = DIRECTION_CODES[self.direction]
        if not labels:
            return np.full(n, default, dtype=np.int8)
        if len(labels) != n:
            raise ValueError(f"{len(labels)} label sets for {n} series: expected one per series")
        names = np.array([lab.get("__name__", "") for lab in labels], dtype=object)
        uniq, inv = np.unique(names.astype(str), return_inverse=True)
        codes = np.full(len(uniq), default, dtype=np.int8)
        for j, name in enumerate(uniq):  # once per distinct metric name
            for pattern, d in self.directions.items():
                if fnmatch.fnmatchcase(str(name), pattern):
                    codes[j] = DIRECTION_CODES[d]
                    break
        return codes[inv.ravel()]


@njit(cache=True)
def _guard(
    values: np.ndarray,
    expected: np.ndarray,
    score: np.ndarray,
    direction: np.ndarray,
    hist: np.ndarray,
    min_abs: float,
    min_rel: float,
    rel_eps: float,
    need: int,
    window: int,
    cap: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    n, t_len = score.shape
    keep_mask = (np.int64(1) << (window - 1)) - 1  # previous window - 1 flags
    for i in range(n):
        h = hist[i] & keep_mask
        for t in range(t_len):
            s = score[i, t]
            flag = 0
            if s > 1.0:
                dev = values[i, t] - expected[i, t]
                ok = not (direction[i] > 0 and dev <= 0) and not (direction[i] < 0 and dev >= 0)
                ad = abs(dev)
                ok = ok and ad >= min_abs and ad >= min_rel * max(abs(expected[i, t]), rel_eps)
                if ok:
                    flag = 1
                    cnt = 1
                    x = h
                    while x:
                        cnt += x & 1
                        x >>= 1
                    if cnt < need:
                        out[i, t] = min(s, cap)
                else:
                    out[i, t] = min(s, cap)
            h = ((h << 1) | flag) & keep_mask
        hist[i] = h


def apply_guards(
    values: np.ndarray,
    expected: np.ndarray,
    score: np.ndarray,
    direction: np.ndarray,
    guards: Guards,
    hist: np.ndarray,
    inplace: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Guarded scores ``[n, T]`` and the new duration history ``[n]`` (inputs unchanged,
    except ``score`` with ``inplace=True`` when it is a C-contiguous float64 array: the
    guarded scores are then written over it and returned)."""
    h = np.array(hist, dtype=np.int64)
    raw = np.ascontiguousarray(score, dtype=np.float64)
    out = raw if inplace else raw.copy()
    _guard(
        np.ascontiguousarray(values, dtype=np.float64),
        np.ascontiguousarray(expected, dtype=np.float64),
        raw,
        np.ascontiguousarray(direction, dtype=np.int8),
        h,
        float(guards.min_abs_dev),
        float(guards.min_rel_dev),
        float(guards.rel_eps),
        int(guards.min_duration),
        int(guards.window),
        GUARD_CAP,
        out,
    )
    return out, h
