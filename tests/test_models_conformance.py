"""Every model of this package passes the conformance suite (tests/model_conformance.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from model_conformance import (
    GROUPS,
    ModelCase,
    check_causal,
    check_column_split,
    check_degenerate_rows,
    check_deterministic,
    check_inputs_unchanged,
    check_persist_roundtrip,
    check_row_split,
)
from vigil.batch import SeriesBatch
from vigil.models.base import Model, Scores
from vigil.models.peer import PeerModel
from vigil.models.seasonal import SeasonalBaseline


class PeerCase(ModelCase):
    def fit(self, model: Model, batch: SeriesBatch, rows: np.ndarray) -> Model:
        assert isinstance(model, PeerModel)
        return model.fit(batch, group=GROUPS[rows])

    def partitions(self, n: int, parts: int) -> list[np.ndarray]:
        groups = np.unique(GROUPS)
        chunks = np.array_split(groups, min(parts, len(groups)))
        return [np.flatnonzero(np.isin(GROUPS, c)) for c in chunks]


CASES = {
    "seasonal": ModelCase(make=lambda: SeasonalBaseline()),
    "seasonal_guarded": ModelCase(
        make=lambda: SeasonalBaseline(
            alpha=0.01,
            relearn_after=3,
            guards={"direction": "up", "min_abs_dev": 1.0, "min_duration": 2, "window": 3},
        )
    ),
    "peer": PeerCase(make=lambda: PeerModel()),
    "peer_labels": ModelCase(make=lambda: PeerModel(group_by=["__name__"], min_history=5)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_persist_roundtrip(case: str, tmp_path: Path) -> None:
    check_persist_roundtrip(CASES[case], tmp_path)


@pytest.mark.parametrize("case", list(CASES))
def test_inputs_unchanged(case: str) -> None:
    check_inputs_unchanged(CASES[case])


@pytest.mark.parametrize("case", list(CASES))
def test_causal(case: str) -> None:
    check_causal(CASES[case])


@pytest.mark.parametrize("case", list(CASES))
def test_deterministic(case: str) -> None:
    check_deterministic(CASES[case])


@pytest.mark.parametrize("case", list(CASES))
def test_degenerate_rows(case: str) -> None:
    check_degenerate_rows(CASES[case])


@pytest.mark.parametrize("case", ["seasonal", "seasonal_guarded", "peer"])
def test_row_split(case: str) -> None:
    check_row_split(CASES[case])


@pytest.mark.parametrize("case", list(CASES))
def test_column_split(case: str) -> None:
    check_column_split(CASES[case])


@settings(max_examples=25)
@given(
    data=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(2, 60)),
        elements=st.one_of(st.just(np.nan), st.floats(-1e9, 1e9), st.sampled_from([0.0, 1.0])),
    ),
    cut=st.integers(1, 59),
    which=st.sampled_from(["seasonal", "peer"]),
)
def test_random_inputs_are_safe_and_chunk_invariant(data: np.ndarray, cut: int, which: str) -> None:
    n, t_len = data.shape
    fit_len = max(t_len // 2, 1)
    cut = min(cut, t_len - fit_len)
    ids = np.arange(n, dtype=np.int64)

    def make() -> Model:
        m = SeasonalBaseline(min_history=3) if which == "seasonal" else PeerModel(min_history=3)
        fit_b = SeriesBatch(ids, 0, 60_000, data[:, :fit_len])
        if isinstance(m, PeerModel):
            return m.fit(fit_b, group=ids % 2)
        return m.fit(fit_b)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole = make().score(SeriesBatch(ids, fit_len * 60_000, 60_000, data[:, fit_len:]))
        m = make()
        parts = [
            m.score(
                SeriesBatch(ids, (fit_len + a) * 60_000, 60_000, data[:, fit_len + a : fit_len + b])
            )
            for a, b in [(0, cut), (cut, t_len - fit_len)]
        ]
    joined = Scores.concat(parts, axis=1)
    for f in ("expected", "lower", "upper", "p_value", "anomaly_score", "warming_up"):
        a, b = getattr(whole, f), getattr(joined, f)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f
    p = whole.p_value[~np.isnan(whole.p_value)]
    assert ((p > 0) & (p <= 1)).all()
    assert (whole.anomaly_score[~np.isnan(whole.anomaly_score)] >= 0).all()


def test_infinite_values_are_refused() -> None:
    x = np.ones((2, 30))
    x[1, 3] = np.inf
    with pytest.raises(ValueError, match="batch values hold 1 infinite entries"):
        SeasonalBaseline().fit(SeriesBatch(np.arange(2), 0, 60_000, x))
