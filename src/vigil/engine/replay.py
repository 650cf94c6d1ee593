"""The pure per-partition function: replay a batch causally through a model.

``replay_partition(batch, config, factory)`` fits a fresh model on the warm-up span, then scores
the following columns chunk by chunk (scoring is causal and advances the state one step at a
time), refitting on the configured schedule on a trailing window from which points already flagged
anomalous are masked, so anomalies never teach the model that they are normal.

It is pure: arrays in, arrays out, no I/O, no globals.  The local pool and Spark both call exactly
this function.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from vigil.batch import SeriesBatch
from vigil.engine.limits import DEFAULT_PAIRS, LimitPair
from vigil.engine.runway import ExhaustionRecords, RunwayConfig, exhaustion_at, first_seen
from vigil.models.base import Model, Scores


@dataclass(frozen=True)
class ReplayConfig:
    """Schedule of a causal replay, in steps of the batch."""

    warmup_steps: int
    refit_every_steps: int
    fit_window_steps: int
    forecast_every_steps: int = 0  # 0: no exhaustion forecasts
    horizon_steps: int = 0
    trend_window_steps: int = 288
    runway: RunwayConfig | None = None  # exhaustion rules; None: defaults for the horizon
    limit_pairs: tuple[LimitPair, ...] = ()  # the user's usage/limit pairs, before the defaults

    def pairs(self) -> tuple[LimitPair, ...]:
        """The usage/limit pairs in force: the user's, then :data:`DEFAULT_PAIRS`."""
        return (*self.limit_pairs, *DEFAULT_PAIRS)

    def __post_init__(self) -> None:
        for name in ("warmup_steps", "refit_every_steps", "fit_window_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} is invalid: expected >= 1 step")
        if self.forecast_every_steps < 0 or (self.forecast_every_steps and self.horizon_steps < 1):
            raise ValueError(
                f"forecast_every_steps={self.forecast_every_steps}, horizon_steps="
                f"{self.horizon_steps}: expected 0 (off) or a positive schedule and horizon"
            )


ModelFactory = Callable[[], Model]


def replay_partition(
    batch: SeriesBatch,
    config: ReplayConfig,
    factory: ModelFactory,
    limits: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    model: Model | None = None,
    observer: Any = None,
) -> tuple[Scores, Model, ExhaustionRecords]:
    """Scores for every column of ``batch``, the final model and the exhaustion forecasts.

    Columns of the warm-up span get NaN expectations, ``anomaly_score`` 0 and ``warming_up``
    True: nothing is scored before a model exists.  ``limits`` ``[n, T]`` (NaN: none; see
    :mod:`vigil.engine.limits`) turns on time-to-exhaustion forecasts every
    ``forecast_every_steps`` for the rows that have a limit at that moment.

    ``exclude`` ``[n, T]`` bool marks points the model must not learn (do-not-learn
    suppressions, e.g. a maintenance window): they are scored like any point, but every fit
    sees them as missing and the online state advances over them as over a gap (a chunk holding
    such points is scored on a copy of the model for them; the model itself runs over the
    masked chunk and scores every other point).

    ``model``: an already fitted model whose state stands at the first column after the
    warm-up span (``vigil serve`` continuing from its last tick); it is used instead of fitting
    one, and the warm-up columns only serve as history for the exhaustion forecasts.

    ``observer`` (optional, the decision ledger's): ``observer.fitted(col, model)`` after each
    fit or with the given model (scoring resumes at ``col``) and ``observer.scored(col, stop,
    scores)`` after each scored chunk; it only reads.
    """
    n, t_total = batch.values.shape
    warm = min(config.warmup_steps, t_total)
    parts: list[Scores] = [_warming(n, warm)]
    if exclude is not None and exclude.shape != batch.values.shape:
        raise ValueError(f"exclude has shape {exclude.shape}: expected {batch.values.shape}")
    learn = batch if exclude is None or not exclude.any() else batch.with_values(
        np.where(exclude, np.nan, batch.values))
    if model is None:
        model = factory().fit(learn.columns(0, warm))
    if observer is not None:
        observer.fitted(warm, model)
    flagged = np.zeros((n, t_total), dtype=bool)
    forecasting = limits is not None and config.forecast_every_steps > 0 and bool(
        np.isfinite(limits).any())
    exhaustion: list[ExhaustionRecords] = []
    runway = config.runway or RunwayConfig(horizon_steps=max(config.horizon_steps, 1),
                                           window_steps=config.trend_window_steps)
    born = first_seen(batch.values) if forecasting else np.zeros(n, dtype=np.int64)
    col = warm
    next_refit = warm + config.refit_every_steps
    while col < t_total:
        stop = min(next_refit, t_total)
        if forecasting:
            stop = min(stop, col + config.forecast_every_steps)
        if learn is not batch and exclude is not None and exclude[:, col:stop].any():
            seen = copy.deepcopy(model).score(batch.columns(col, stop))
            gap = model.score(learn.columns(col, stop))  # the state never learns them
            scores = _merge(exclude[:, col:stop], seen, gap)
        else:
            scores = model.score(batch.columns(col, stop))
        parts.append(scores)
        if observer is not None:
            observer.scored(col, stop, scores)
        flagged[:, col:stop] = scores.anomaly_score > 1.0
        col = stop
        if forecasting and limits is not None:
            exhaustion.append(exhaustion_at(batch, limits[:, col - 1], born, col, runway))
        if col >= next_refit and col < t_total:
            next_refit = col + config.refit_every_steps
            first = max(0, col - config.fit_window_steps)
            window = learn.columns(first, col)
            clean = np.where(flagged[:, first:col], np.nan, window.values)
            model = factory().fit(window.with_values(clean))
            if observer is not None:
                observer.fitted(col, model)
    return Scores.concat(parts, axis=1), model, ExhaustionRecords.concat(exhaustion)


def _merge(mask: np.ndarray, seen: Scores, gap: Scores) -> Scores:
    """``seen`` where ``mask`` (the excluded points, scored from their values), else ``gap``."""
    return Scores(**{f.name: np.where(mask, getattr(seen, f.name), getattr(gap, f.name))
                     for f in fields(Scores)})


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
