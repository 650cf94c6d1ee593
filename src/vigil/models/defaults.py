"""The engine's default detector: the per-series ensemble beside the peer model.

``FleetDetector`` runs :class:`~vigil.models.ensemble.Ensemble` (each series' own forecasters,
selected by out-of-sample error) and :class:`~vigil.models.peer.PeerModel` (each series against
its replicas) over the same batch and combines them point by point:

* ``anomaly_score`` is the larger of the two, and ``p_value`` is that component's p-value;
* ``expected``/``lower``/``upper`` come from the series' own model, or from the peers where the
  own model is still warming up (a new series is scored from its first point);
* ``warming_up`` is True only where both are warming up.

Forecasts are the ensemble's (peers do not forecast).

Operating point (:data:`FLEET_DEFAULTS`, overridable key by key): each component alarms at
``1e-4`` per point and only when 2 of the last 3 steps do (at 5-minute steps a per-point rate of
``1e-3`` is about 0.3 lone false points per series-day for each component; measured on the
default simulated fleet, the two settings give 403 and 25 false anomaly intervals per 1,000
series-days at the same recall, see docs/models.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Self

import numpy as np

from vigil.batch import SeriesBatch
from vigil.models.base import Model, Scores
from vigil.models.ensemble import Ensemble
from vigil.models.peer import PeerModel


_GUARDS = {"min_duration": 2, "window": 3}
FLEET_DEFAULTS: dict[str, dict[str, Any]] = {
    "ensemble": {"alarm_rate": 1e-4, "guards": _GUARDS},
    "peer": {"alpha": 1e-4, "guards": _GUARDS},
}


class FleetDetector(Model):
    name: ClassVar[str] = "fleet"
    version: ClassVar[str] = "1"

    def __init__(self, ensemble: dict[str, Any] | None = None,
                 peer: dict[str, Any] | None = None) -> None:
        self.ensemble = {**FLEET_DEFAULTS["ensemble"], **(ensemble or {})}
        self.peer = {**FLEET_DEFAULTS["peer"], **(peer or {})}
        self.own_ = Ensemble(**self.ensemble)
        self.peers_ = PeerModel(**self.peer)

    def params(self) -> dict[str, Any]:
        return {"ensemble": self.ensemble, "peer": self.peer}

    def fit(self, batch: SeriesBatch) -> Self:
        self.own_.fit(batch)
        self.peers_.fit(batch)
        return self

    def score(self, batch: SeriesBatch) -> Scores:
        own = self.own_.score(batch)
        peer = self.peers_.score(batch)
        own_score = np.nan_to_num(own.anomaly_score, nan=0.0)
        peer_score = np.nan_to_num(peer.anomaly_score, nan=0.0)
        own_ready = ~own.warming_up & np.isfinite(own.expected)
        use_peer_score = peer_score > own_score
        use_peer_band = ~own_ready & np.isfinite(peer.expected)
        return Scores(
            expected=np.where(use_peer_band, peer.expected, own.expected),
            lower=np.where(use_peer_band, peer.lower, own.lower),
            upper=np.where(use_peer_band, peer.upper, own.upper),
            p_value=np.where(use_peer_score, peer.p_value, own.p_value),
            anomaly_score=np.maximum(own_score, peer_score),
            warming_up=own.warming_up & peer.warming_up,
        )

    def forecast(self, horizon: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
        return self.own_.forecast(horizon, quantiles)

    def state(self) -> dict[str, np.ndarray]:
        out = {f"own.{k}": v for k, v in self.own_.state().items()}
        out.update({f"peer.{k}": v for k, v in self.peers_.state().items()})
        return out

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.own_.set_state({k[4:]: v for k, v in state.items() if k.startswith("own.")})
        self.peers_.set_state({k[5:]: v for k, v in state.items() if k.startswith("peer.")})


def default_factory(**params: Any) -> Callable[[], Model]:
    """A picklable factory of the default detector (for the process pool and Spark)."""
    return functools.partial(FleetDetector, **params)
