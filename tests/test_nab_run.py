"""The NAB runner on real NAB files, with a TEST FIXTURE detector (not the product).

``EwmZScore`` below is a deliberately simple exponentially-weighted z-score that implements the
Model interface so the harness can be exercised without the real models.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.batch import SeriesBatch
from vigil.benchmarks.nab import NabConfig, load_corpus, run_nab, unit_scores
from vigil.benchmarks.nab_score import probation_length
from vigil.models.base import Model, Scores
from vigil.models.postprocess import PostProcess

NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
FILES = ["realKnownCause/rogue_agent_key_hold.csv", "artificialWithAnomaly/art_daily_jumpsup.csv"]
pytestmark = pytest.mark.skipif(not NAB.is_dir(), reason="NAB data (../shared/data/nab) absent")


class EwmZScore(Model):
    """Test fixture: |value - EW mean| / (3 EW std), one step ahead, causal; a missing value
    (NaN, e.g. a point the replay masked before a refit) scores 0 and is not learnt."""

    name = "ewm_zscore_fixture"

    def __init__(self, alpha: float = 0.05) -> None:
        self.alpha = alpha

    def _run(self, batch: SeriesBatch, out: bool) -> np.ndarray:
        score = np.zeros_like(batch.values)
        for t in range(batch.n_steps):
            x = batch.values[:, t]
            sd = np.sqrt(self.var_) + 1e-9
            score[:, t] = np.nan_to_num(np.abs(x - self.mean_) / (3.0 * sd)) if out else 0.0
            d = np.nan_to_num(x - self.mean_)
            self.mean_ = self.mean_ + self.alpha * d
            self.var_ = (1 - self.alpha) * (self.var_ + self.alpha * d * d)
        self.end_ = batch.end
        return score

    def fit(self, batch: SeriesBatch) -> Self:
        self.step_ = batch.step
        self.mean_ = np.nan_to_num(np.nanmedian(batch.values, axis=1))
        self.var_ = np.nan_to_num(np.nanvar(batch.values, axis=1))
        self._run(batch, out=False)
        return self

    def score(self, batch: SeriesBatch) -> Scores:
        self.check_continues(batch, self.end_, self.step_)
        s = self._run(batch, out=True)
        nan = np.full_like(s, np.nan)
        return Scores(nan, nan, nan, nan, s, np.zeros(s.shape, dtype=bool))

    def forecast(self, horizon: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
        return np.repeat(self.mean_[:, None, None], horizon * len(quantiles)).reshape(
            len(self.mean_), horizon, len(quantiles)
        )

    def params(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def state(self) -> dict[str, np.ndarray]:
        return {"mean_": self.mean_, "var_": self.var_}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.mean_, self.var_ = state["mean_"], state["var_"]


def test_run_writes_the_nab_layout_and_scores(tmp_path: Path) -> None:
    summary = run_nab(NAB, tmp_path, EwmZScore, detector_name="zfix", only=FILES)
    for key in FILES:
        category, stem = key.split("/")
        path = tmp_path / "zfix" / category / f"zfix_{stem}"
        out = pd.read_csv(path)
        src = pd.read_csv(NAB / "data" / key)
        assert list(out.columns) == ["timestamp", "value", "anomaly_score", "label"]
        assert len(out) == len(src)
        assert (out["timestamp"] == src["timestamp"]).all()
        np.testing.assert_allclose(out["value"], src["value"])
        s = out["anomaly_score"].to_numpy()
        assert ((s >= 0) & (s <= 1)).all()
        p = probation_length(len(src))
        assert (s[:p] == 0).all() and s[p:].max() > 0.5
        # label column marks exactly the rows inside the labelled windows
        windows = json.loads((NAB / "labels" / "combined_windows.json").read_text())[key]
        ts = pd.to_datetime(src["timestamp"])
        inside = np.zeros(len(src), dtype=bool)
        for a, b in windows:
            inside |= (ts >= pd.Timestamp(a)) & (ts <= pd.Timestamp(b))
        assert (out["label"].to_numpy() == inside.astype(int)).all()
    assert summary["files"] == 2 and summary["windows"] == 3
    assert summary["unscored_rows"] == 0
    for profile in ("standard", "reward_low_FP", "reward_low_FN"):
        scores = pd.read_csv(tmp_path / "zfix" / f"zfix_{profile}_scores.csv")
        assert list(scores["File"]) == [*FILES, "Totals"]
        total = scores["Score"].iloc[-1]
        res = summary["profiles"][profile]
        assert total == pytest.approx(res["score"])
        assert total == pytest.approx(scores["Score"].iloc[:-1].sum())
        assert res["normalized"] == pytest.approx(
            100 * (res["score"] - res["null"]) / (res["perfect"] - res["null"])
        )
        assert res["null"] == -3 * (2 if profile == "reward_low_FN" else 1)
        assert res["windows_detected"] + res["windows_missed"] == 3
        assert -100 < res["normalized"] <= 100
    on_disk = json.loads((tmp_path / "zfix" / "zfix_summary.json").read_text())
    assert on_disk["scores"] == summary["scores"]


class WarmingUp(EwmZScore):
    """Test fixture: the first 10 rows of each score call are withheld (NaN), as a model
    warming up."""

    def score(self, batch: SeriesBatch) -> Scores:
        out = super().score(batch)
        out.anomaly_score[:, :10] = np.nan
        return out


def test_unscored_rows_are_counted_not_hidden(tmp_path: Path) -> None:
    once = NabConfig(refit_every=None)  # one fit, one score call
    summary = run_nab(NAB, tmp_path, WarmingUp, detector_name="warm", only=FILES[:1], config=once)
    assert summary["unscored_rows"] == 10
    key = FILES[0]
    out = pd.read_csv(tmp_path / "warm" / key.split("/")[0] / f"warm_{key.split('/')[1]}")
    p = probation_length(len(out))
    assert (out["anomaly_score"].to_numpy()[p : p + 10] == 0).all()
    # the engine's replay scores chunk by chunk between refits: 10 withheld rows per chunk
    (f,) = load_corpus(NAB, FILES[:1])
    replay = NabConfig().replay(f)
    assert replay is not None and replay.warmup_steps == p
    chunks = -(-(len(f.values) - p) // replay.refit_every_steps)
    assert chunks > 1
    summary = run_nab(NAB, tmp_path, WarmingUp, detector_name="warm2", only=FILES[:1])
    assert summary["unscored_rows"] == 10 * chunks


def test_run_is_causal_per_file(tmp_path: Path) -> None:
    """Scores of the first k rows do not change when the rest of the file is cut off."""
    from vigil.benchmarks.nab import detect_file

    # 5315 rows: probation = min(floor(797.25), 750) = 750, also for the first 5000 rows
    (f,) = load_corpus(NAB, ["realKnownCause/rogue_agent_key_updown.csv"])
    full = detect_file(EwmZScore, f).anomaly_score[0]
    cut = type(f)(f.key, f.timestamp_text[:5000], f.timestamps[:5000], f.values[:5000], [])
    assert cut.probation == f.probation == 750
    part = detect_file(EwmZScore, cut).anomaly_score[0]
    np.testing.assert_allclose(part, full[: len(part)])


def test_postprocess_by_hand() -> None:
    # decay 0.5, floor 1, novelty weight 10; history [1, 3] seeds the range lo=1, hi=3
    pp = PostProcess(decay=0.5, floor=1.0, initial_peak=1.0, novelty_weight=10.0)
    s = np.array([[0.5, 2.0, 1.0, 3.0]])
    v = np.array([[1.0, 2.0, 5.0, 0.0]])
    out = pp.apply(s, v, np.array([[1.0, 3.0]]))
    # t0: peak 1 -> r = 0.5; 1 in [1, 3] -> y = 0.5; peak = max(0.5, 0.5, 1) = 1
    # t1: r = 2 / 1 = 2; 2 in range -> y = 2; peak = max(0.5, 2, 1) = 2
    # t2: r = 1 / 2 = 0.5; 5 leaves [1, 3] by 2 = 1 range -> y = 0.5 + 10 * 1 = 10.5; hi = 5
    #     peak = max(1, 1, 1) = 1
    # t3: r = 3 / 1 = 3; 0 leaves [1, 5] by 1 = 0.25 range -> y = 3 + 2.5 = 5.5
    y = np.array([[0.5, 2.0, 10.5, 5.5]])
    np.testing.assert_allclose(out, y / (1 + y))
    # a change after a constant history takes the cap; NaN scores and values count as 0
    flat = PostProcess(novelty_cap=10.0).apply(
        np.array([[np.nan, 0.0, 0.0]]), np.array([[7.0, np.nan, 8.0]]), np.array([[7.0, 7.0]])
    )
    np.testing.assert_allclose(flat, [[0.0, 0.0, 1000.0 / 1001.0]])
    # without history the first value seeds the range; the peak starts at initial_peak = 2
    # and decays by 0.5 per column to the floor 1: r = 3/2, then 3/max(1, 3) = 1
    first = PostProcess(decay=0.5).apply(np.array([[3.0, 3.0]]), np.array([[4.0, 4.0]]))
    np.testing.assert_allclose(first, [[1.5 / 2.5, 0.5]])


@given(
    st.lists(st.floats(0, 50), min_size=6, max_size=30),
    st.lists(st.floats(-1e3, 1e3), min_size=30, max_size=30),
    st.integers(1, 5),
)
def test_postprocess_is_causal_and_bounded(scores: list[float], vals: list[float], k: int) -> None:
    s = np.array([scores])
    v = np.array([vals[: len(scores)]])
    out = PostProcess().apply(s, v, np.array([[0.0, 1.0]]))
    assert ((out >= 0) & (out < 1)).all()
    changed_s, changed_v = s.copy(), v.copy()
    changed_s[0, k:] = 99.0
    changed_v[0, k:] = -5e3
    out2 = PostProcess().apply(changed_s, changed_v, np.array([[0.0, 1.0]]))
    np.testing.assert_array_equal(out[:, :k], out2[:, :k])


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"labels/combined_windows\.json"):
        run_nab(tmp_path, tmp_path / "out", EwmZScore)
    with pytest.raises(ValueError, match=r"'nope/x\.csv' has no entry"):
        load_corpus(NAB, ["nope/x.csv"])
    with pytest.raises(ValueError, match="detector name 'a/b' is invalid"):
        run_nab(NAB, tmp_path, EwmZScore, detector_name="a/b")
    fake = tmp_path / "nab"
    (fake / "labels").mkdir(parents=True)
    (fake / "labels" / "combined_windows.json").write_text('{"c/x.csv": []}')
    with pytest.raises(FileNotFoundError, match=r"lists 'c/x\.csv'"):
        load_corpus(fake)
    (fake / "data" / "c").mkdir(parents=True)
    (fake / "data" / "c" / "x.csv").write_text("time,v\n2014-01-01 00:00:00,1\n")
    with pytest.raises(ValueError, match="expected timestamp,value"):
        load_corpus(fake)
    (fake / "data" / "c" / "x.csv").write_text("timestamp,value\n2014-01-01 00:00:00,\n")
    with pytest.raises(ValueError, match="value nan at row 0 is not a finite number"):
        load_corpus(fake)
    (fake / "data" / "c" / "x.csv").write_text("timestamp,value\n2014-01-01 00:00:00,1\n")
    with pytest.raises(ValueError, match=r"c/x\.csv has no two distinct timestamps"):
        run_nab(fake, tmp_path / "out", EwmZScore)
    for kwargs, msg in [
        ({"decay": 0.0}, "decay=0.0 is invalid"),
        ({"floor": 0.0}, "floor=0.0 is invalid"),
        ({"initial_peak": -1.0}, "initial_peak=-1.0 is invalid"),
        ({"novelty_weight": -1.0}, "novelty_weight=-1.0 is invalid"),
        ({"novelty_cap": 0.0}, "novelty_cap=0.0 is invalid"),
    ]:
        with pytest.raises(ValueError, match=msg):
            NabConfig(PostProcess(**kwargs))
    with pytest.raises(ValueError, match=r"anomaly_score \(1, 3\) and values \(1, 2\) differ"):
        PostProcess().apply(np.zeros((1, 3)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"history has shape \(2, 2\): expected \[1, "):
        PostProcess().apply(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((2, 2)))
    (f,) = load_corpus(NAB, FILES[:1])
    short = Scores(*(np.zeros((1, 5)),) * 5, np.zeros((1, 5), dtype=bool))
    with pytest.raises(ValueError, match=r"returned anomaly_score of shape \(1, 5\)"):
        unit_scores(f, short, NabConfig())


def test_default_detector_is_the_engine_default(tmp_path: Path) -> None:
    """``vigil bench nab`` runs FleetDetector; on a single series its peer model has no peers,
    gives no opinion and never leaves a row unscored, so the scores are the ensemble's."""
    from vigil.benchmarks.nab import default_detector_factory, detect_file
    from vigil.models.defaults import FLEET_DEFAULTS, FleetDetector
    from vigil.models.ensemble import Ensemble

    factory = default_detector_factory()
    assert isinstance(factory(), FleetDetector)
    (f,) = load_corpus(NAB, FILES[:1])
    fleet = detect_file(factory, f)
    own = detect_file(lambda: Ensemble(**FLEET_DEFAULTS["ensemble"]), f)
    assert not np.isnan(fleet.anomaly_score).any()
    np.testing.assert_array_equal(fleet.anomaly_score, np.nan_to_num(own.anomaly_score))
    summary = run_nab(NAB, tmp_path, only=FILES[:1])
    assert summary["model"]["name"] == "fleet" and summary["unscored_rows"] == 0
