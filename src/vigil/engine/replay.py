"""The pure per-partition function: replay a batch causally through a model.

``replay_partition(batch, config, factory)`` fits a fresh model on the warm-up span, then scores
the following columns chunk by chunk (scoring is causal and advances the state one step at a
time), refitting on the configured schedule on a trailing window from which points already flagged
anomalous are masked, so anomalies never teach the model that they are normal.

It is pure: arrays in, arrays out, no I/O, no globals.  The local pool and Spark both call exactly
this function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vigil.batch import SeriesBatch
from vigil.models.base import Model, Scores


@dataclass(frozen=True)
class ReplayConfig:
    """Schedule of a causal replay, in steps of the batch."""

    warmup_steps: int
    refit_every_steps: int
    fit_window_steps: int

    def __post_init__(self) -> None:
        for name in ("warmup_steps", "refit_every_steps", "fit_window_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} is invalid: expected >= 1 step")


ModelFactory = Callable[[], Model]


def replay_partition(
    batch: SeriesBatch, config: ReplayConfig, factory: ModelFactory
) -> tuple[Scores, Model]:
    """Scores for every column of ``batch`` and the final model.

    Columns of the warm-up span get NaN expectations, ``anomaly_score`` 0 and ``warming_up``
    True: nothing is scored before a model exists.
    """
    n, t_total = batch.values.shape
    warm = min(config.warmup_steps, t_total)
    parts: list[Scores] = [_warming(n, warm)]
    model = factory().fit(batch.columns(0, warm))
    flagged = np.zeros((n, t_total), dtype=bool)
    col = warm
    while col < t_total:
        stop = min(col + config.refit_every_steps, t_total)
        scores = model.score(batch.columns(col, stop))
        parts.append(scores)
        flagged[:, col:stop] = scores.anomaly_score > 1.0
        col = stop
        if col < t_total:
            first = max(0, col - config.fit_window_steps)
            window = batch.columns(first, col)
            clean = np.where(flagged[:, first:col], np.nan, window.values)
            model = factory().fit(
                SeriesBatch(window.series_ids, window.start, window.step, clean, window.labels)
            )
    return Scores.concat(parts, axis=1), model


def _warming(n: int, t: int) -> Scores:
    nan = np.full((n, t), np.nan)
    return Scores(
        expected=nan,
        lower=nan.copy(),
        upper=nan.copy(),
        p_value=np.ones((n, t)),
        anomaly_score=np.zeros((n, t)),
        warming_up=np.ones((n, t), dtype=bool),
    )
