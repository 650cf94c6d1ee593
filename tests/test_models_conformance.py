"""Every model of this package passes the conformance suite (tests/model_conformance.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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
from vigil.models.base import Model
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
