"""Level-shift (changepoint) detection: a two-sided CUSUM on standardised residuals.

For each series, with ``z`` the one-step residual in calibrated units (``r / (c * s)``, see
:mod:`vigil.models.calibration`) clipped to ``[-clip, clip]`` so that one spike cannot confirm a
shift on its own:

    S+ = max(0, S+ + z - k)        S- = max(0, S- - z - k)

A shift is **confirmed** when ``S+ >= h`` (upward, flag +1) or ``S- >= h`` (downward, flag -1);
both sums then restart at 0.  The per-point ``statistic`` is ``max(S+, S-) / h``: 0 when the
residuals are centred, 1 at the confirmation boundary, so an ensemble can read it like an
anomaly score.  With the defaults (``k = 1``, ``h = 6``, ``clip = 4``) a shift of 3 units is
confirmed after 3 steps, a large one after 2, and an isolated spike never.

:class:`vigil.models.seasonal.SeasonalBaseline` runs this recursion inside its own scoring
kernel (``cusum_update``) and re-learns its level on confirmation as the mean of the
deseasonalised values since the confirming sum last left 0; ``SeasonalBaseline.
score_with_changepoints`` returns the :class:`Changepoints` of every point.  ``cusum_scan`` runs
it on any model's standardised residuals.  Missing residuals (NaN) leave the sums unchanged and
have a NaN statistic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numba import njit


@dataclass(frozen=True)
class CusumParams:
    k: float = 1.0  # allowance: drift per step ignored (half the smallest shift of interest)
    h: float = 6.0  # decision threshold
    clip: float = 4.0  # |z| clip, so a single outlier adds at most clip - k

    def __post_init__(self) -> None:
        if not self.k >= 0:
            raise ValueError(f"cusum k={self.k} is invalid: expected an allowance >= 0")
        if not self.h > 0:
            raise ValueError(f"cusum h={self.h} is invalid: expected a threshold > 0")
        if not self.clip > self.k:
            raise ValueError(
                f"cusum clip={self.clip} is invalid: expected clip > k={self.k}, "
                "otherwise no residual can move the sums"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> CusumParams:
        return cls(**(d or {}))


@dataclass(frozen=True)
class Changepoints:
    """Per-point outputs ``[n_series, n_steps]``."""

    statistic: np.ndarray  # float64, max(S+, S-) / h after the point; NaN where z is NaN
    flag: np.ndarray  # int8: +1 upward shift confirmed at this point, -1 downward, 0 none


@njit(cache=True, inline="always")
def cusum_update(
    z: float, pos: float, neg: float, k: float, clip: float
) -> tuple[float, float]:  # pragma: no cover - compiled
    """One step of both sums for a non-NaN ``z`` (infinite ``z`` is clipped)."""
    zc = min(max(z, -clip), clip)
    return max(0.0, pos + zc - k), max(0.0, neg - zc - k)


@njit(cache=True)
def _scan(
    z: np.ndarray, pos: np.ndarray, neg: np.ndarray, k: float, h: float, clip: float
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    n, t_len = z.shape
    stat = np.full((n, t_len), np.nan)
    flag = np.zeros((n, t_len), np.int8)
    for i in range(n):
        p = pos[i]
        q = neg[i]
        for t in range(t_len):
            x = z[i, t]
            if x != x:
                continue
            p, q = cusum_update(x, p, q, k, clip)
            stat[i, t] = max(p, q) / h
            if p >= h or q >= h:
                flag[i, t] = 1 if p >= h else -1
                p = 0.0
                q = 0.0
        pos[i] = p
        neg[i] = q
    return stat, flag


def cusum_scan(
    z: np.ndarray,
    params: CusumParams | None = None,
    pos: np.ndarray | None = None,
    neg: np.ndarray | None = None,
) -> tuple[Changepoints, np.ndarray, np.ndarray]:
    """CUSUM over ``z`` ``[n, T]`` from the sums ``pos``/``neg`` ``[n]`` (zeros by default).

    Returns the changepoints and the sums after the last column (new arrays; the inputs are
    not modified), so a later call continues the recursion exactly.
    """
    p = params or CusumParams()
    z2 = np.ascontiguousarray(np.asarray(z, dtype=np.float64))
    if z2.ndim != 2:
        raise ValueError(f"z has shape {z2.shape}: expected [n_series, n_steps]")
    n = z2.shape[0]
    pos1 = np.zeros(n) if pos is None else np.array(pos, dtype=np.float64)
    neg1 = np.zeros(n) if neg is None else np.array(neg, dtype=np.float64)
    if pos1.shape != (n,) or neg1.shape != (n,):
        raise ValueError(
            f"CUSUM sums have shapes {pos1.shape} and {neg1.shape}: expected ({n},), "
            "one per row of z"
        )
    stat, flag = _scan(z2, pos1, neg1, p.k, p.h, p.clip)
    return Changepoints(stat, flag), pos1, neg1
