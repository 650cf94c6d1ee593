"""KPI (AIOps 2018) benchmark: the point-adjusted F1 scorer, the z-score baseline, the runner
and its command line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vigil.batch import SeriesBatch
from vigil.benchmarks.kpi import (
    KpiConfig,
    list_files,
    load_file,
    rolling_z,
    run_kpi,
    to_unit,
)
from vigil.benchmarks.kpi_score import best_f1, counts_at, segments
from vigil.cli import app
from vigil.models.base import Model, Scores

KPI = Path(__file__).resolve().parents[2] / "shared" / "data" / "kpi"
A = np.array


# ---------------------------------------------------------------- scorer, hand-computed cases


def test_segment_detected_at_its_first_point() -> None:
    labels = A([0, 0, 1, 1, 1, 0, 0])
    scores = A([0.0, 0.1, 0.9, 0.0, 0.0, 0.0, 0.2])
    c = counts_at(labels, scores, 0.5)
    assert (c.tp, c.fp, c.fn, c.tn) == (3, 0, 0, 4)
    assert (c.segments_detected, c.segments_missed) == (1, 0)
    assert c.f1 == 1.0


def test_segment_detected_at_its_eighth_point() -> None:
    labels = A([0] + [1] * 10 + [0])
    scores = np.zeros(12)
    scores[1 + 7] = 1.0  # the 8th point of the segment: within delay 7
    c = counts_at(labels, scores, 0.5)
    assert (c.tp, c.fp, c.fn, c.tn) == (10, 0, 0, 2)


def test_segment_hit_only_at_its_ninth_point_is_missed() -> None:
    labels = A([0] + [1] * 10 + [0])
    scores = np.zeros(12)
    scores[1 + 8] = 1.0  # the 9th point: too late; a flag inside a segment is never an FP
    c = counts_at(labels, scores, 0.5)
    assert (c.tp, c.fp, c.fn, c.tn) == (0, 0, 10, 2)
    assert (c.segments_detected, c.segments_missed) == (0, 1)
    assert c.f1 == 0.0
    # with a larger delay the same flag detects it
    assert counts_at(labels, scores, 0.5, delay=8).tp == 10


def test_segment_detected_partly_counts_whole() -> None:
    labels = A([0, 1, 1, 1, 1, 1, 0, 0])
    scores = A([0.0, 0.1, 0.7, 0.1, 0.1, 0.1, 0.6, 0.0])
    c = counts_at(labels, scores, 0.5)
    assert (c.tp, c.fp, c.fn, c.tn) == (5, 1, 0, 2)
    assert c.precision == 5 / 6 and c.recall == 1.0
    assert c.f1 == pytest.approx(10 / 11)


def test_several_files_are_pooled() -> None:
    # file a: segment rows 1-2 (key 0.6); outside 0.1, 0.8, 0.3, 0
    # file b: segment rows 2-4 (key 0.4); outside 0.5, 0, 0.7
    la, sa = A([0, 1, 1, 0, 0, 0]), A([0.1, 0.6, 0.2, 0.8, 0.3, 0.0])
    lb, sb = A([0, 0, 1, 1, 1, 0]), A([0.5, 0.0, 0.4, 0.0, 0.0, 0.7])
    # thresholds: 0.8, 0.7 -> F1 0; 0.6 -> 4/9; 0.5 -> 4/10; 0.4 -> 10/13; 0.3 -> 10/14 ...
    best = best_f1([la, lb], [sa, sb])
    assert best.threshold == 0.4
    c = best.counts
    assert (c.tp, c.fp, c.fn, c.tn) == (5, 3, 0, 4)
    assert (c.segments_detected, c.segments_missed) == (2, 0)
    assert c.f1 == pytest.approx(10 / 13)
    assert c.precision == pytest.approx(5 / 8) and c.recall == 1.0
    assert best.thresholds_tried == 8  # 0.8 0.7 0.6 0.5 0.4 0.3 0.1 0
    # the pooled counts are the sum of the per-file counts at that threshold
    assert counts_at(la, sa, 0.4) + counts_at(lb, sb, 0.4) == c
    # each file alone has another optimum: pooling is not averaging
    assert best_f1([la], [sa]).threshold == 0.6


def test_threshold_tie_counts_every_tied_point() -> None:
    # the segment's key and an outside point both score 0.5: at 0.5 both count (score >= th)
    labels = A([0, 1, 1, 0, 0])
    scores = A([0.5, 0.5, 0.0, 0.9, 0.1])
    best = best_f1([labels], [scores])
    assert best.threshold == 0.5
    assert (best.counts.tp, best.counts.fp, best.counts.fn) == (2, 2, 0)
    assert best.counts.f1 == pytest.approx(2 / 3)


def test_equal_f1_at_two_thresholds_reports_the_higher() -> None:
    # 0.9: TP 1, FP 0, FN 1 -> 2/3;  0.7: TP 2, FP 2 -> 4/6 = 2/3
    labels = A([1, 0, 0, 1, 0])
    scores = A([0.9, 0.8, 0.75, 0.7, 0.0])
    best = best_f1([labels], [scores])
    assert best.threshold == 0.9
    assert (best.counts.tp, best.counts.fp, best.counts.fn) == (1, 0, 1)
    assert counts_at(labels, scores, 0.7).f1 == best.counts.f1


def test_no_segments_at_all() -> None:
    labels = A([0, 0, 0])
    scores = A([0.2, 0.5, 0.5])
    best = best_f1([labels], [scores])
    c = best.counts
    assert c.f1 == 0.0 and c.precision == 0.0 and c.recall == 0.0
    assert (c.tp, c.fn, c.segments_detected, c.segments_missed) == (0, 0, 0, 0)
    assert best.threshold == 0.5 and (c.fp, c.tn) == (2, 1)


def test_segments_are_maximal_runs() -> None:
    assert segments(A([1, 1, 0, 1, 0, 0, 1])).tolist() == [[0, 2], [3, 4], [6, 7]]
    assert segments(A([0, 0])).shape == (0, 2)


def test_scorer_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="label 2 at row 1 is invalid: expected 0 or 1"):
        best_f1([A([0, 2])], [A([0.0, 0.0])])
    with pytest.raises(ValueError, match="not a finite number"):
        best_f1([A([0, 1])], [A([0.0, np.nan])])
    with pytest.raises(ValueError, match="same length"):
        best_f1([A([0, 1])], [A([0.0])])
    with pytest.raises(ValueError, match="no rows to score"):
        best_f1([], [])


# ---------------------------------------------------------------- sweep == brute force


def _brute_force(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray],
                 delay: int) -> tuple[float, tuple[int, int, int], float]:
    """Re-score every distinct score as a threshold (highest threshold wins ties)."""
    best: tuple[float, float, tuple[int, int, int]] | None = None
    for th in sorted(set(np.concatenate(scores).tolist()), reverse=True):
        tp = fp = fn = 0
        for lab, sc in zip(labels, scores, strict=True):
            i = 0
            while i < len(lab):
                if lab[i] != 1:
                    fp += int(sc[i] >= th)
                    i += 1
                    continue
                j = i
                while j < len(lab) and lab[j] == 1:
                    j += 1
                hit = any(sc[k] >= th for k in range(i, min(j, i + delay + 1)))
                tp += (j - i) if hit else 0
                fn += 0 if hit else (j - i)
                i = j
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
        if best is None or f1 > best[0]:
            best = (f1, th, (tp, fp, fn))
    assert best is not None
    return best[1], best[2], best[0]


files_strategy = st.lists(
    st.integers(1, 30).flatmap(lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]) | st.floats(0, 1),
                 min_size=n, max_size=n),
    )),
    min_size=1, max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(files=files_strategy, delay=st.integers(0, 9))
def test_sweep_equals_brute_force(files: list[tuple[list[int], list[float]]],
                                  delay: int) -> None:
    labels = [A(lab) for lab, _ in files]
    scores = [A(sc, dtype=np.float64) for _, sc in files]
    th, (tp, fp, fn), f1 = _brute_force(labels, scores, delay)
    best = best_f1(labels, scores, delay=delay)
    assert best.threshold == th
    assert (best.counts.tp, best.counts.fp, best.counts.fn) == (tp, fp, fn)
    assert best.counts.f1 == f1
    total = counts_at(labels[0], scores[0], th, delay)
    for lab, sc in zip(labels[1:], scores[1:], strict=True):
        total = total + counts_at(lab, sc, th, delay)
    assert total == best.counts


# ---------------------------------------------------------------- baseline


def _direct_z(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for i in range(window, len(x)):
        past = x[i - window:i]
        if past.max() == past.min():
            out[i] = 0.0 if x[i] == past[0] else np.inf
        else:
            out[i] = abs(x[i] - past.mean()) / past.std()
    return out


@pytest.mark.parametrize(("window", "chunk"), [(5, 7), (5, 8192), (288, 100)])
def test_rolling_z_equals_direct_computation(window: int, chunk: int) -> None:
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(10, 2, 1200), 1)
    x[300:320] = 7.0  # a constant stretch: windows with std 0
    x[320] = 7.5  # a change right after it
    got = rolling_z(x, window, chunk=chunk)
    want = _direct_z(x, window)
    assert np.isnan(got[:window]).all()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)
    if window == 5:
        assert got[305] == 0.0  # a constant window, the same value
        assert got[320] == np.inf  # a constant window, another value


def test_to_unit_is_the_fixed_monotone_map() -> None:
    np.testing.assert_array_equal(to_unit(A([0.0, 1.0, 3.0, np.nan, np.inf])),
                                  A([0.0, 0.5, 0.75, 0.0, 1.0]))
    with pytest.raises(ValueError, match="expected a score >= 0"):
        to_unit(A([-0.5]))


# ---------------------------------------------------------------- runner


STEP_A, STEP_B = 300, 60


def _write_corpus(root: Path, shuffle_labels: bool = False) -> Path:
    """Two small files: a 5-minute one with a 20-row gap, and a 1-minute one with a repeated
    timestamp and an off-grid timestamp; each with a labelled spike."""
    rng = np.random.default_rng(11)
    data = root / "kpi"
    data.mkdir(parents=True)
    n = 1400
    t = 1_500_000_000 + STEP_A * np.arange(n)
    v = 10 + 3 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 0.3, n)
    lab = np.zeros(n, dtype=np.int64)
    v[1200:1205] += 12
    lab[1200:1205] = 1
    lab[100:102] = 1  # in the warm-up (columns < 864): scores 0, never detected
    lab[860:871] = 1  # starts in the warm-up, its rows 5 to 8 are after it
    keep = np.r_[0:1000, 1020:n]
    a = pd.DataFrame({"timestamp": t[keep], "value": np.round(v[keep], 3),
                      "label": lab[keep]})
    m = 5200
    t = 1_500_000_000 + STEP_B * np.arange(m)
    v = 50 + 5 * np.sin(2 * np.pi * np.arange(m) / 1440) + rng.normal(0, 0.5, m)
    lab = np.zeros(m, dtype=np.int64)
    v[4800:4803] -= 30
    lab[4800:4803] = 1
    b = pd.DataFrame({"timestamp": t, "value": np.round(v, 3), "label": lab})
    b.loc[4500, "timestamp"] += 17  # off the grid: snapped to its own column
    b = pd.concat([b.iloc[:4601], b.iloc[[4600]], b.iloc[4601:]], ignore_index=True)  # repeat
    for name, frame in (("aaa.csv", a), ("bbb.csv", b)):
        if shuffle_labels:
            frame = frame.assign(label=np.random.default_rng(5).permutation(frame["label"]))
        frame.to_csv(data / name, index=False)
    return data


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("kpi")
    data = _write_corpus(root)
    out = root / "out1"
    return data, out, run_kpi(data, out)


def _scores(out: Path) -> dict[str, pd.DataFrame]:
    return {f"{det}/{p.name}": pd.read_csv(p)
            for det in ("vigil", "zscore") for p in sorted((out / det / "kpi").glob("*.csv"))}


def test_runner_writes_the_layout(corpus: tuple[Path, Path, dict[str, Any]]) -> None:
    data, out, summary = corpus
    config = KpiConfig()
    for name in ("aaa.csv", "bbb.csv"):
        src = pd.read_csv(data / name)
        step = STEP_A if name == "aaa.csv" else STEP_B
        warm = config.replay(step).warmup_steps
        col = np.rint((src["timestamp"] - src["timestamp"].min()) / step).to_numpy()
        for det in ("vigil", "zscore"):
            got = pd.read_csv(out / det / "kpi" / f"{det}_{name}")
            assert list(got.columns) == ["timestamp", "value", "anomaly_score"]
            assert len(got) == len(src)
            assert (got["timestamp"] == src["timestamp"]).all()  # input order
            np.testing.assert_allclose(got["value"], src["value"])
            s = got["anomaly_score"].to_numpy()
            assert ((s >= 0) & (s <= 1)).all()
            assert (s[col < warm] == 0).all() and s[col >= warm].max() > 0
        assert (out / "vigil" / "vigil_scores.csv").is_file()
    b = pd.read_csv(out / "vigil" / "kpi" / "vigil_bbb.csv")["anomaly_score"]
    assert b[4600] == b[4601]  # the repeated timestamp: both rows get their column's score
    notes = summary["data"]
    assert notes["aaa.csv"] | {"seconds": None} == {
        "rows": 1380, "step_s": 300, "columns": 1400, "gap_columns": 20, "off_grid_rows": 0,
        "merged_rows": 0, "rows_out_of_order": 0, "seconds": None}
    assert notes["bbb.csv"]["off_grid_rows"] == 1 and notes["bbb.csv"]["merged_rows"] == 1
    assert notes["bbb.csv"]["columns"] == 5200 and notes["bbb.csv"]["gap_columns"] == 0
    assert summary["rows"] == 1380 + 5201 and summary["segments"] == 4
    assert summary["anomalous_rows"] == 21 and summary["segments_starting_in_warmup"] == 2
    assert summary["segments_hidden_by_warmup"] == 1
    assert summary["anomalous_rows_in_warmup"] == 2 + 4
    assert summary["warmup_rows"] == 864 + 4320
    assert summary["model"]["name"] == "fleet"
    for det in ("vigil", "zscore"):
        d = summary["detectors"][det]
        assert 0 < d["f1"] <= 1 and d["tp"] + d["fn"] == 21
        scores = pd.read_csv(out / det / f"{det}_scores.csv")
        assert list(scores["File"]) == ["aaa.csv", "bbb.csv", "Totals"]
        assert scores["tp"].iloc[-1] == d["tp"] and scores["fp"].iloc[-1] == d["fp"]
    assert json.loads((out / "kpi_summary.json").read_text())["detectors"] == \
        summary["detectors"]


def test_runner_score_is_recomputable_from_its_files(
        corpus: tuple[Path, Path, dict[str, Any]]) -> None:
    data, out, summary = corpus
    labels = [pd.read_csv(data / n)["label"].to_numpy() for n in ("aaa.csv", "bbb.csv")]
    for det in ("vigil", "zscore"):
        unit = [pd.read_csv(out / det / "kpi" / f"{det}_{n}")["anomaly_score"].to_numpy()
                for n in ("aaa.csv", "bbb.csv")]
        best = best_f1(labels, unit)
        assert best.counts.f1 == pytest.approx(summary["detectors"][det]["f1"])
        assert best.threshold == pytest.approx(summary["detectors"][det]["threshold"])


def test_the_detector_gets_the_grid_and_never_the_labels(tmp_path: Path) -> None:
    """An echo fixture (score = |value|) shows where every row's score comes from."""
    data = _write_corpus(tmp_path)
    Echo.batches.clear()
    summary = run_kpi(data, tmp_path / "out", Echo, only=["bbb"])
    got = pd.read_csv(tmp_path / "out" / "vigil" / "kpi" / "vigil_bbb.csv")
    src = pd.read_csv(data / "bbb.csv")
    warm = KpiConfig().replay(STEP_B).warmup_steps
    col = np.rint((src["timestamp"] - src["timestamp"].min()) / STEP_B).to_numpy()
    v = src["value"].to_numpy()
    want = np.where(col < warm, 0.0, v / (1 + v))
    np.testing.assert_allclose(got["anomaly_score"], want, rtol=1e-12)
    # one series on the 1-minute grid from the first timestamp to column 5199, fitted on the
    # warm-up, then scored column after column to the end
    t0 = int(src["timestamp"].min()) * 1000
    assert all(step == STEP_B * 1000 and n == 1 for _, step, n, _ in Echo.batches)
    assert Echo.batches[0][0] == t0 and Echo.batches[0][3] == warm
    assert max(start + cols * STEP_B * 1000 for start, _, _, cols in Echo.batches) == \
        t0 + 5200 * STEP_B * 1000
    assert summary["files"] == 1 and summary["detectors"]["vigil"]["unscored_rows"] == 0


def test_shuffled_labels_do_not_change_scores(
        tmp_path: Path, corpus: tuple[Path, Path, dict[str, Any]]) -> None:
    _, out, summary = corpus
    data = _write_corpus(tmp_path, shuffle_labels=True)
    shuffled = run_kpi(data, tmp_path / "out")
    first, second = _scores(out), _scores(tmp_path / "out")
    assert first.keys() == second.keys() and len(first) == 4
    for key in first:
        pd.testing.assert_frame_equal(first[key], second[key])
    assert shuffled["detectors"]["vigil"]["f1"] != summary["detectors"]["vigil"]["f1"]


def test_workers_2_equals_workers_1(tmp_path: Path,
                                    corpus: tuple[Path, Path, dict[str, Any]]) -> None:
    data, out, summary = corpus
    pooled = run_kpi(data, tmp_path / "out", workers=2)
    first, second = _scores(out), _scores(tmp_path / "out")
    assert first.keys() == second.keys()
    for key in first:
        pd.testing.assert_frame_equal(first[key], second[key])
    for det in ("vigil", "zscore"):
        a = {k: v for k, v in summary["detectors"][det].items() if k != "detect_seconds"}
        b = {k: v for k, v in pooled["detectors"][det].items() if k != "detect_seconds"}
        assert a == b
    assert pooled["workers"] == 2


class Echo(Model):
    """Test fixture: anomaly_score = |value| of each column (NaN in a gap); it records the
    (start ms, step ms, series, columns) of every batch it is given."""

    name = "echo_fixture"
    batches: ClassVar[list[tuple[int, int, int, int]]] = []

    def _see(self, batch: SeriesBatch) -> None:
        Echo.batches.append((batch.start, batch.step, batch.n_series, batch.n_steps))

    def fit(self, batch: SeriesBatch) -> Self:
        self._see(batch)
        self.end_, self.step_ = batch.end, batch.step
        return self

    def score(self, batch: SeriesBatch) -> Scores:
        self._see(batch)
        self.check_continues(batch, self.end_, self.step_)
        self.end_ = batch.end
        s = np.abs(batch.values)
        nan = np.full_like(s, np.nan)
        return Scores(nan, nan, nan, nan, s, np.zeros(s.shape, dtype=bool))

    def forecast(self, horizon: int, quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> np.ndarray:
        return np.zeros((1, horizon, len(quantiles)))

    def params(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        pass


# ---------------------------------------------------------------- inputs and the CLI


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("timestamp,value\n1,2\n")
    with pytest.raises(ValueError, match="expected timestamp,value,label"):
        load_file(bad)
    bad.write_text("timestamp,value,label\n1.5,2,0\n2.5,3,0\n")
    with pytest.raises(ValueError, match="expected integer epoch seconds"):
        load_file(bad)
    bad.write_text("timestamp,value,label\n60,2,0\n120,inf,0\n")
    with pytest.raises(ValueError, match="value 'inf' at row 1 is not a finite number"):
        load_file(bad)
    bad.write_text("timestamp,value,label\n60,2,0\n60,3,0\n")
    with pytest.raises(ValueError, match="no two distinct timestamps"):
        load_file(bad).step()
    with pytest.raises(ValueError, match="--only 'nope' is not a file"):
        list_files(tmp_path, ["nope"])


def _text(output: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(output.split())


def test_cli_missing_data_dir_exits_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "kpi", "--data", str(tmp_path / "missing"),
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "is not a directory" in _text(res.output) and "../shared/data/kpi" in _text(res.output)
    assert "Traceback" not in _text(res.output) and isinstance(res.exception, SystemExit)


def test_cli_bad_data_dir_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(app, ["bench", "kpi", "--data", str(empty)])
    assert res.exit_code == 2 and "holds no .csv file" in _text(res.output)
    (empty / "a.csv").write_text("time,value\n1,2\n")
    res = CliRunner().invoke(app, ["bench", "kpi", "--data", str(empty),
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "expected timestamp,value,label" in _text(res.output)
    assert "Traceback" not in _text(res.output) and isinstance(res.exception, SystemExit)
    res = CliRunner().invoke(app, ["bench", "kpi", "--data", str(empty), "--workers", "0"])
    assert res.exit_code == 2 and "--workers 0 is invalid" in _text(res.output)
    assert not (tmp_path / "out").exists()


def test_cli_prints_both_detectors(tmp_path: Path) -> None:
    data = _write_corpus(tmp_path)
    res = CliRunner().invoke(app, ["bench", "kpi", "--data", str(data), "--out",
                                   str(tmp_path / "out"), "--only", "aaa.csv"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any(line.startswith("vigil ") for line in lines)
    assert any(line.startswith("zscore ") for line in lines)
    assert (tmp_path / "out" / "kpi_summary.json").is_file()


# ---------------------------------------------------------------- the real corpus


needs_kpi = pytest.mark.skipif(not KPI.is_dir(), reason="KPI data (../shared/data/kpi) absent")


@needs_kpi
def test_real_corpus_facts() -> None:
    """The facts the docs state about the data (no detection)."""
    paths = list_files(KPI)
    assert len(paths) == 29
    rows = anomalous = segs = 0
    steps: dict[int, int] = {}
    for p in paths:
        f = load_file(p)
        notes = f.notes()
        assert notes["off_grid_rows"] == notes["merged_rows"] == 0
        assert notes["rows_out_of_order"] == 0
        steps[notes["step_s"]] = steps.get(notes["step_s"], 0) + 1
        lab = pd.read_csv(p, usecols=["label"])["label"].to_numpy()
        rows += len(lab)
        anomalous += int(lab.sum())
        segs += len(segments(lab))
    assert (rows, anomalous, segs) == (3_004_066, 79_554, 1_228)
    assert steps == {60: 22, 300: 7}


@needs_kpi
def test_real_file_runs(tmp_path: Path) -> None:
    name = "c02607e8-7399-3dde-9d28-8a8da5e5d251.csv"
    summary = run_kpi(KPI, tmp_path, only=[name])
    got = pd.read_csv(tmp_path / "vigil" / "kpi" / f"vigil_{name}")
    src = pd.read_csv(KPI / name)
    assert len(got) == len(src) == summary["rows"] == 8784
    assert (got["timestamp"] == src["timestamp"]).all()
    assert summary["segments"] == 2 and summary["anomalous_rows"] == 6
    assert summary["detectors"]["vigil"]["unscored_rows"] == 0
    assert summary["data"][name]["step_s"] == 300
