"""The model interface every per-series model implements.

A model is a small class over ``SeriesBatch`` arrays with no I/O:

* ``__init__`` stores parameters only;
* ``fit(batch)`` learns per-series state (arrays whose first axis is the series axis,
  attribute names ending in ``_``) and returns ``self``; after it the state stands at
  ``batch.end`` (the model has "seen" every column of the batch);
* ``score(batch)`` is **causal**: for each column it predicts from the state as it was before
  that column (one step ahead), scores the observed value, then advances the state with it
  (points flagged anomalous are not learnt as normal).  ``batch.start`` must equal the state's
  ``end_``.  It returns a :class:`Scores`;
* ``update(batch)`` advances the state like ``score`` without producing outputs;
* ``forecast(horizon, quantiles)`` gives quantile paths ``[n_series, horizon, n_quantiles]``
  starting at ``end_``;
* ``state()`` / ``from_state()`` round-trip the learned state as a flat ``dict`` of arrays, which
  :mod:`vigil.models.persist` saves as npz with name, parameters, code version and a digest.

Row ``i`` of every array is series ``i`` of the batch; rows are independent, so results do not
depend on how series are partitioned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

import numpy as np

from vigil.batch import SeriesBatch


@dataclass(frozen=True)
class Scores:
    """Per-point outputs, every array ``[n_series, n_steps]``.

    ``anomaly_score`` follows vmanomaly's convention: 0 is normal, 1 is the boundary at the
    configured false-alarm rate, above 1 is anomalous (after guards). ``p_value`` is the tail
    probability of the observation under the calibrated predictive distribution.
    ``warming_up`` is True where the series' own model has too little history and the score
    comes from a prior (peers) or is withheld.
    """

    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    p_value: np.ndarray
    anomaly_score: np.ndarray
    warming_up: np.ndarray

    def rows(self, index: np.ndarray | slice) -> Scores:
        return Scores(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: Sequence[Scores], axis: int) -> Scores:
        return Scores(
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in parts], axis=axis)
                for f in fields(Scores)
            }
        )


class Model(ABC):
    """Base class; see the module docstring for the contract."""

    name: ClassVar[str] = "model"
    version: ClassVar[str] = "1"

    @abstractmethod
    def fit(self, batch: SeriesBatch) -> Self: ...

    @abstractmethod
    def score(self, batch: SeriesBatch) -> Scores: ...

    def update(self, batch: SeriesBatch) -> Self:
        self.score(batch)
        return self

    @abstractmethod
    def forecast(self, horizon: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
        ...

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-serialisable)."""

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """Learned state as arrays with a leading series axis (plus 0-d scalars)."""

    @abstractmethod
    def set_state(self, state: dict[str, np.ndarray]) -> None: ...

    @classmethod
    def from_state(cls, params: dict[str, Any], state: dict[str, np.ndarray]) -> Self:
        model = cls(**params)
        model.set_state(state)
        return model

    def check_continues(self, batch: SeriesBatch, end: int, step: int) -> None:
        if batch.step != step:
            raise ValueError(
                f"{self.name}: batch step {batch.step} ms differs from the fitted step {step} ms; "
                "load the batch with the step the model was fitted on"
            )
        if batch.start != end:
            raise ValueError(
                f"{self.name}: batch starts at {batch.start} but the state ends at {end}; "
                "score the columns that follow the state, in order"
            )
