"""One conformance suite that every model passes (import it from a model's test module).

Usage::

    from model_conformance import ModelCase, check_all
    check_all(ModelCase(make=lambda: MyModel()))

``ModelCase.fit`` fits a model on rows ``rows`` of the standard batch (override it to pass
extra arguments, e.g. peer groups); ``ModelCase.partitions`` gives the row partitions the
row-split check uses (override when rows are coupled, e.g. keep peer groups whole).

Checks (each one a function, so a failure names the property):

* ``check_persist_roundtrip`` — save/load through :mod:`vigil.models.persist`, then both copies
  score the next batch bit-identically;
* ``check_inputs_unchanged`` — fit and score leave the batch's values untouched;
* ``check_causal`` — changing future values leaves earlier outputs bit-identical;
* ``check_deterministic`` — two fresh fits give bit-identical scores and states;
* ``check_degenerate_rows`` — gaps, constant, all-NaN and one-point rows (and a one-column
  batch) give finite-or-NaN outputs without any warning, and the model's p-values lie in [0, 1];
* ``check_row_split`` — fitting and scoring any partition of rows gives bit-identical outputs;
* ``check_column_split`` — scoring in two chunks equals scoring at once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from vigil.batch import SeriesBatch
from vigil.models.base import Model, Scores
from vigil.models.persist import load_model, save_model

STEP = 3_600_000  # hourly
START = 1_700_006_400_000  # a midnight UTC (ms)
N_FIT = 24 * 12
N_SCORE = 24 * 4
GROUPS = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2], dtype=np.int64)


def standard_values(seed: int = 7) -> np.ndarray:
    """``[16, N_FIT + N_SCORE]``: rows 0-9 seasonal noise (two replica groups), 10 gaps,
    11 constant, 12 all NaN, 13 a single point, 14 spikes, 15 a level shift."""
    rng = np.random.default_rng(seed)
    t = np.arange(N_FIT + N_SCORE)
    n = len(GROUPS)
    base = np.where(np.arange(n) < 5, 40.0, 200.0)[:, None]
    season = 10.0 * np.sin(2 * np.pi * t / 24)[None, :]
    x = base + season + rng.normal(0, 2.0, (n, len(t)))
    x[10, rng.random(len(t)) < 0.2] = np.nan
    x[10, 100:130] = np.nan
    x[11] = 5.0
    x[12] = np.nan
    x[13] = np.nan
    x[13, N_FIT - 1] = 3.0
    x[14, [50, 200, N_FIT + 10, N_FIT + 40]] += 60.0
    x[15, N_FIT + 30 :] += 40.0
    return x


def standard_batch(rows: np.ndarray | None = None, first: int = 0, stop: int | None = None,
                   values: np.ndarray | None = None) -> SeriesBatch:  # fmt: skip
    x = standard_values() if values is None else values
    idx = np.arange(x.shape[0]) if rows is None else np.asarray(rows)
    stop = x.shape[1] if stop is None else stop
    labels = [{"__name__": f"m{GROUPS[i]}", "pod": f"p{i}"} for i in idx]
    return SeriesBatch(
        (1000 + idx).astype(np.int64), START + first * STEP, STEP,
        np.ascontiguousarray(x[idx, first:stop]), labels,
    )  # fmt: skip


@dataclass
class ModelCase:
    make: Callable[[], Model]

    def fit(self, model: Model, batch: SeriesBatch, rows: np.ndarray) -> Model:
        return model.fit(batch)

    def partitions(self, n: int, parts: int) -> list[np.ndarray]:
        return [np.asarray(p) for p in np.array_split(np.arange(n), parts)]


def _fit_score(case: ModelCase, rows: np.ndarray, values: np.ndarray | None = None) -> tuple:
    model = case.fit(case.make(), standard_batch(rows, 0, N_FIT, values), rows)
    scores = model.score(standard_batch(rows, N_FIT, None, values))
    return model, scores


def assert_scores_identical(a: Scores, b: Scores, cols: slice = slice(None)) -> None:
    for f in fields(Scores):
        x, y = getattr(a, f.name)[:, cols], getattr(b, f.name)[:, cols]
        assert x.shape == y.shape, f.name
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f"{f.name} differs"


def _all_rows() -> np.ndarray:
    return np.arange(len(GROUPS))


def check_persist_roundtrip(case: ModelCase, tmp: Path) -> None:
    model = case.fit(case.make(), standard_batch(None, 0, N_FIT), _all_rows())
    path = tmp / f"{model.name}.npz"
    save_model(model, path)
    loaded = load_model(path, expected_name=model.name)
    assert type(loaded) is type(model) and loaded.params() == model.params()
    s1, s2 = model.score(standard_batch(None, N_FIT)), loaded.score(standard_batch(None, N_FIT))
    assert_scores_identical(s1, s2)
    st1, st2 = model.state(), loaded.state()
    assert st1.keys() == st2.keys()
    for k in st1:
        assert np.array_equal(st1[k], st2[k], equal_nan=st1[k].dtype.kind == "f"), k


def check_inputs_unchanged(case: ModelCase) -> None:
    fit_b, score_b = standard_batch(None, 0, N_FIT), standard_batch(None, N_FIT)
    before = fit_b.values.copy(), score_b.values.copy()
    model = case.fit(case.make(), fit_b, _all_rows())
    model.score(score_b)
    assert np.array_equal(fit_b.values, before[0], equal_nan=True)
    assert np.array_equal(score_b.values, before[1], equal_nan=True)


def check_causal(case: ModelCase, cut: int = 37) -> None:
    _, ref = _fit_score(case, _all_rows())
    x = standard_values()
    x[:, N_FIT + cut :] = np.random.default_rng(1).normal(500, 100, x[:, N_FIT + cut :].shape)
    _, alt = _fit_score(case, _all_rows(), x)
    assert_scores_identical(ref, alt, slice(0, cut))
    assert not np.array_equal(ref.expected, alt.expected, equal_nan=True)


def check_deterministic(case: ModelCase) -> None:
    m1, s1 = _fit_score(case, _all_rows())
    m2, s2 = _fit_score(case, _all_rows())
    assert_scores_identical(s1, s2)
    for k, v in m1.state().items():
        assert np.array_equal(v, m2.state()[k], equal_nan=v.dtype.kind == "f"), k


def check_degenerate_rows(case: ModelCase) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, s = _fit_score(case, _all_rows())
        one = case.fit(case.make(), standard_batch(None, N_FIT - 1, N_FIT), _all_rows())
        s1 = one.score(standard_batch(None, N_FIT, N_FIT + 1))
        fc = model.forecast(5)
    for sc in (s, s1):
        for f in fields(Scores):
            a = getattr(sc, f.name)
            if a.dtype.kind == "f":
                assert not np.isinf(a).any(), f"{f.name} has infinities"
        p = sc.p_value[~np.isnan(sc.p_value)]
        assert ((p >= 0) & (p <= 1)).all()
        assert sc.warming_up.dtype == np.bool_
    assert np.isnan(s.p_value[12]).all() and s.warming_up[12].all()  # all-NaN row
    assert np.isnan(s.anomaly_score[12]).all()
    assert not np.isinf(fc).any()


def check_row_split(case: ModelCase, parts: tuple[int, ...] = (2, 3, 5)) -> None:
    _, full = _fit_score(case, _all_rows())
    n = len(GROUPS)
    for k in parts:
        pieces = [_fit_score(case, rows)[1] for rows in case.partitions(n, k)]
        order = np.concatenate(case.partitions(n, k))
        joined = Scores.concat(pieces, axis=0)
        inv = np.empty(n, dtype=np.int64)
        inv[order] = np.arange(n)
        assert_scores_identical(full, joined.rows(inv))


def check_column_split(case: ModelCase, cut: int = 29) -> None:
    _, full = _fit_score(case, _all_rows())
    model = case.fit(case.make(), standard_batch(None, 0, N_FIT), _all_rows())
    a = model.score(standard_batch(None, N_FIT, N_FIT + cut))
    b = model.score(standard_batch(None, N_FIT + cut))
    assert_scores_identical(full, Scores.concat([a, b], axis=1))


def check_all(case: ModelCase, tmp: Path, **_: Any) -> None:
    check_persist_roundtrip(case, tmp)
    check_inputs_unchanged(case)
    check_causal(case)
    check_deterministic(case)
    check_degenerate_rows(case)
    check_row_split(case)
    check_column_split(case)
