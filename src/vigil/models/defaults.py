"""The engine's default detector: the per-series ensemble beside the peer model.

``FleetDetector`` runs :class:`~vigil.models.ensemble.Ensemble` (each series' own forecasters,
selected by out-of-sample error) and :class:`~vigil.models.peer.PeerModel` (each series against
its replicas) over the same batch and combines them point by point:

* ``anomaly_score`` is the larger of the two, and ``p_value`` is that component's p-value;
* ``expected``/``lower``/``upper`` come from the series' own model, or from the peers where the
  own model is still warming up (a new series is scored from its first point);
* ``warming_up`` is True only where both are warming up.

Forecasts are the ensemble's (peers do not forecast).

Speed: batches of more than :data:`BLOCK_SERIES` series are fitted and scored in row blocks of
about that many series made of whole peer groups, so every temporary ``[rows, T]`` array stays
in cache and the memory of a large batch is its inputs and outputs plus one block's work
(measured: 0.35 CPU-ms per series in blocks of 1,000 against 0.47 as one batch of 16,000).
Rows are independent across peer groups, so the results are bit-identical to one batch; the
learnt state is merged into one (a block's seasonal profiles are padded to the widest).

Operating point (:data:`FLEET_DEFAULTS`, overridable key by key): each component alarms at
``1e-4`` per point and only when 2 of the last 3 steps do (at 5-minute steps a per-point rate of
``1e-3`` is about 0.3 lone false points per series-day for each component; measured on the
default simulated fleet, the two settings give 403 and 25 false anomaly intervals per 1,000
series-days at the same recall, see docs/models.md).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, ClassVar, Self

import numpy as np
from numba import njit

from vigil.batch import SeriesBatch
from vigil.models.base import Model, Scores
from vigil.models.ensemble import Ensemble
from vigil.models.peer import PeerModel

BLOCK_SERIES = 1024  # rows fitted / scored at once (whole peer groups)

_GUARDS = {"min_duration": 2, "window": 3}
FLEET_DEFAULTS: dict[str, dict[str, Any]] = {
    "ensemble": {"alarm_rate": 1e-4, "guards": _GUARDS},
    "peer": {"alpha": 1e-4, "guards": _GUARDS},
}


_BIG = float(np.finfo(np.float64).max)


@njit(cache=True)
def _finite(x: float) -> float:  # pragma: no cover - compiled
    """``np.nan_to_num`` of one value."""
    if x != x:
        return 0.0
    if x == np.inf:
        return _BIG
    if x == -np.inf:
        return -_BIG
    return x


@njit(cache=True)
def _combine(
    own: tuple, own_warm: np.ndarray, peer: tuple, peer_warm: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Point-by-point combination (see the module docstring), written over the own model's
    arrays ``own = (expected, lower, upper, p_value, anomaly_score)`` and ``own_warm``."""
    e, lo, hi, p, s = own
    pe, plo, phi, pp, ps = peer
    n, t_len = e.shape
    for i in range(n):
        for t in range(t_len):
            own_score = _finite(s[i, t])
            peer_score = _finite(ps[i, t])
            if peer_score > own_score:
                p[i, t] = pp[i, t]
                s[i, t] = peer_score
            else:
                s[i, t] = own_score
            own_ready = not own_warm[i, t] and np.isfinite(e[i, t])
            if not own_ready and np.isfinite(pe[i, t]):
                e[i, t] = pe[i, t]
                lo[i, t] = plo[i, t]
                hi[i, t] = phi[i, t]
            own_warm[i, t] = own_warm[i, t] and peer_warm[i, t]


class FleetDetector(Model):
    name: ClassVar[str] = "fleet"
    version: ClassVar[str] = "4"  # 2: recalibration, scale floors; 3: window test; 4: ETS gap_

    def __init__(self, ensemble: dict[str, Any] | None = None,
                 peer: dict[str, Any] | None = None) -> None:
        self.ensemble = {**FLEET_DEFAULTS["ensemble"], **(ensemble or {})}
        self.peer = {**FLEET_DEFAULTS["peer"], **(peer or {})}
        self.own_ = Ensemble(**self.ensemble)
        self.peers_ = PeerModel(**self.peer)

    def params(self) -> dict[str, Any]:
        return {"ensemble": self.ensemble, "peer": self.peer}

    def fit(self, batch: SeriesBatch) -> Self:
        blocks = self._row_blocks(batch)
        if blocks is None:
            self.own_.fit(batch)
            self.peers_.fit(batch)
            return self
        group = self.peers_._groups(batch, None)
        states = []
        for idx in blocks:  # a loop over blocks of rows (each vectorised)
            part = FleetDetector(**self.params())
            part.own_.fit(batch.rows(idx))
            part.peers_.fit(batch.rows(idx), group=group[idx])
            states.append(part.state())
        self.set_state(_merge_states(states, blocks, batch.n_series))
        return self

    def score(self, batch: SeriesBatch) -> Scores:
        blocks = self._row_blocks(batch)
        if blocks is None:
            return self._score(batch)
        state = self.state()
        parts, states = [], []
        for idx in blocks:
            part = FleetDetector(**self.params())
            part.set_state({k: v[idx] if v.ndim else v for k, v in state.items()})
            parts.append(part._score(batch.rows(idx)))
            states.append(part.state())
        self.set_state(_merge_states(states, blocks, batch.n_series))
        out = {}
        for f in fields(Scores):
            first = getattr(parts[0], f.name)
            arr = np.empty((batch.n_series, batch.n_steps), dtype=first.dtype)
            for idx, sc in zip(blocks, parts, strict=True):
                arr[idx] = getattr(sc, f.name)
            out[f.name] = arr
        return Scores(**out)

    def _row_blocks(self, batch: SeriesBatch) -> list[np.ndarray] | None:
        """Row index blocks of whole peer groups, about ``BLOCK_SERIES`` rows each (sorted
        indices); None when the batch is one block."""
        if batch.n_series <= BLOCK_SERIES:
            return None
        group = self.peers_._groups(batch, None)
        order = np.argsort(group, kind="stable")
        starts = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1]])
        cuts, last = [0], 0
        for s in starts[1:]:  # a loop over groups (cheap: only positions)
            if s - last >= BLOCK_SERIES:
                cuts.append(int(s))
                last = int(s)
        cuts.append(batch.n_series)
        if len(cuts) == 2:
            return None
        return [np.sort(order[a:b]) for a, b in itertools.pairwise(cuts)]

    def _score(self, batch: SeriesBatch) -> Scores:
        own = self.own_.score(batch)
        peer = self.peers_.score(batch)
        # one pass over the points, in place: the own scores' arrays are this call's own
        planes = (own.expected, own.lower, own.upper, own.p_value, own.anomaly_score)
        _combine(planes, own.warming_up, (peer.expected, peer.lower, peer.upper,
                 peer.p_value, peer.anomaly_score), peer.warming_up)  # fmt: skip
        return own

    def forecast(self, horizon: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
        return self.own_.forecast(horizon, quantiles)

    def state(self) -> dict[str, np.ndarray]:
        out = {f"own.{k}": v for k, v in self.own_.state().items()}
        out.update({f"peer.{k}": v for k, v in self.peers_.state().items()})
        return out

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.own_.set_state({k[4:]: v for k, v in state.items() if k.startswith("own.")})
        self.peers_.set_state({k[5:]: v for k, v in state.items() if k.startswith("peer.")})


def _merge_states(
    states: list[dict[str, np.ndarray]], blocks: list[np.ndarray], n: int
) -> dict[str, np.ndarray]:
    """One state from the states of row blocks (rows back in batch order); 0-d entries must
    agree, per-row tables of different widths (seasonal profiles) are padded: profile with 0,
    relative MAD with 1 (columns past a row's period are never read)."""
    inverse = np.empty(n, dtype=np.int64)
    inverse[np.concatenate(blocks)] = np.arange(n)
    out: dict[str, np.ndarray] = {}
    for key, first in states[0].items():
        arrays = [np.asarray(s[key]) for s in states]
        if first.ndim == 0:
            if any(not np.array_equal(a, first) for a in arrays):
                raise ValueError(f"state {key!r} differs between row blocks")
            out[key] = first
            continue
        width = max(a.shape[1] for a in arrays) if first.ndim == 2 else 0
        if first.ndim == 2 and any(a.shape[1] != width for a in arrays):
            if not key.endswith(("prof_", "madrel_")):
                raise ValueError(f"state {key!r} has different widths in different row blocks")
            fill = 1.0 if key.endswith("madrel_") else 0.0
            arrays = [np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill)
                      for a in arrays]  # fmt: skip
        out[key] = np.concatenate(arrays)[inverse]
    return out


def default_factory(**params: Any) -> Callable[[], Model]:
    """A picklable factory of the default detector (for the process pool and Spark)."""
    return functools.partial(FleetDetector, **params)
