"""The NAB scorer against scores computed by hand on small crafted files.

Common layout: a file of 40 rows with timestamps 0..39, so the probationary period is
floor(0.15 * 40) = 6 rows (rows 0..5 are not scored), and one window [20, 29]
(width 10 rows).  Scaled sigmoid s(y) = 2 / (1 + e^(5y)) - 1; s(-1) = 0.986614298.
A detection at row i inside the window has y = -(29 - i + 1) / 10 and earns
A_TP * s(y) / s(-1); a detection at row i after the window has y = (i - 29) / (10 - 1).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.benchmarks.nab_score import (
    MAX_TP,
    NEVER_FIRES,
    PROFILES,
    normalize,
    prepare_file,
    probation_length,
    scaled_sigmoid,
    score_corpus,
    score_file,
    sweep,
)

STD = PROFILES["standard"]
LOW_FP = PROFILES["reward_low_FP"]
LOW_FN = PROFILES["reward_low_FN"]
TS = np.arange(40, dtype=np.int64)
WINDOW = [(20, 29)]


def sig(y: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def detections(*rows: int, n: int = 40) -> np.ndarray:
    s = np.zeros(n)
    s[list(rows)] = 1.0
    return s


def std_score(*rows: int) -> float:
    frame = prepare_file("f", TS, WINDOW)
    return score_file(frame, detections(*rows), 0.5, STD).score


def test_constants_and_probation() -> None:
    assert MAX_TP == pytest.approx(0.9866142981514305)  # 2/(1+e^-5) - 1
    assert float(scaled_sigmoid(0.0)) == 0.0  # right edge of a window
    assert float(scaled_sigmoid(3.0)) == -1.0  # 3 widths past a window: full FP cost
    assert float(scaled_sigmoid(2.9)) == pytest.approx(2 / (1 + math.exp(14.5)) - 1)
    assert probation_length(40) == 6  # floor(6.0)
    assert probation_length(4032) == 604  # floor(604.8)
    assert probation_length(22695) == 750  # capped at 0.15 * 5000
    assert probation_length(5000) == 750


def test_one_window_early_late_and_missed() -> None:
    # earliest row of the window: y = -(29-20+1)/10 = -1 -> s(-1)/s(-1) = 1 -> +1.0
    assert std_score(20) == pytest.approx(1.0)
    # middle: y = -(29-25+1)/10 = -0.5 -> 0.848284 / 0.986614 = 0.859793
    assert std_score(25) == pytest.approx(0.8597925669)
    # last row: y = -(29-29+1)/10 = -0.1 -> 0.244919 / 0.986614 = 0.248242
    assert std_score(29) == pytest.approx(0.2482415498)
    # no detection: the window costs -A_FN = -1
    assert std_score() == pytest.approx(-1.0)
    # several detections in one window: only the best (earliest, row 22) counts, no FP cost;
    # y = -(29-22+1)/10 = -0.8 -> s(-0.8) / s(-1)
    assert std_score(22, 25, 29) == pytest.approx(sig(-0.8) / sig(-1.0))


def test_false_positives_before_and_after_a_window() -> None:
    # FP before any window costs the full -0.11; the window is missed: -1 - 0.11 = -1.11
    assert std_score(10) == pytest.approx(-1.11)
    # FP 2 rows after the window: y = 2/9 -> s = -0.504672 -> 0.11 * -0.504672 = -0.055514
    # (window missed: -1) -> total -1.055514
    assert std_score(31) == pytest.approx(-1.0 - 0.11 * 0.5046723977)
    # FP 10 rows after: y = 10/9 -> s = -0.992298 -> -0.109153
    assert std_score(39) == pytest.approx(-1.0 - 0.11 * 0.9922979353)
    # early TP + FP before + FP after: 1 - 0.11 - 0.055514 = 0.834486
    assert std_score(20, 10, 31) == pytest.approx(1.0 - 0.11 - 0.11 * 0.5046723977)
    # reward_low_FP doubles the FP weight: 1 - 0.22 = 0.78
    frame = prepare_file("f", TS, WINDOW)
    assert score_file(frame, detections(20, 10), 0.5, LOW_FP).score == pytest.approx(0.78)
    # reward_low_FN doubles the miss: -2 - 0.11 = -2.11
    assert score_file(frame, detections(10), 0.5, LOW_FN).score == pytest.approx(-2.11)


def test_fp_between_two_windows_is_measured_from_the_preceding_window() -> None:
    frame = prepare_file("f", TS, [(10, 14), (30, 34)])  # widths 5 and 5
    # row 16: 2 rows after the first window, y = 2/(5-1) = 0.5 -> s(0.5) = -0.848284
    # both windows missed: -2; FP: 0.11 * -0.848284 = -0.093311
    res = score_file(frame, detections(16), 0.5, STD)
    assert res.score == pytest.approx(-2.0 + 0.11 * sig(0.5))
    # row 27: y = 13/4 = 3.25 >= 3 -> -1 (full FP cost)
    assert score_file(frame, detections(27), 0.5, STD).score == pytest.approx(-2.11)
    assert (res.windows_detected, res.windows_missed, res.fp) == (0, 2, 1)
    # NAB's row counts: 10 window rows undetected, 1 FP row, 40 - 6 - 10 - 1 = 23 TN rows
    assert (res.tp, res.fn, res.tn) == (0, 10, 23)


def test_windows_are_located_by_row_position() -> None:
    # rows in file order; the clock steps back after row 4 (as in a few NAB files)
    ts = np.array([0, 10, 20, 30, 40, 35, 45, 50, 60, 70])
    frame = prepare_file("f", ts, [(30, 45)])
    # left = first row >= 30 (row 3), right = first row from there == 45 (row 6): width 4
    np.testing.assert_array_equal(frame.window, [-1, -1, -1, 0, 0, 0, 0, -1, -1, -1])
    # end not present: the window stops before the first row past it (row 7 > 48)
    frame = prepare_file("f", ts, [(30, 48)])
    np.testing.assert_array_equal(frame.window >= 0, frame.window == 0)
    assert list(np.flatnonzero(frame.window == 0)) == [3, 4, 5, 6]
    # a repeated end timestamp: the window ends at its first occurrence
    frame = prepare_file("f", np.array([0, 1, 2, 3, 3, 3, 4]), [(1, 3)])
    assert list(np.flatnonzero(frame.window == 0)) == [1, 2, 3]


def test_probationary_rows_are_not_scored() -> None:
    frame = prepare_file("f", TS, WINDOW)
    # a detection at row 3 (< 6) is ignored: the score equals "no detection"
    res = score_file(frame, detections(3), 0.5, STD)
    assert res.score == pytest.approx(-1.0)
    assert res.fp == 0
    assert res.tn == 40 - 6 - 10  # scored rows outside the window, none detected
    # a window that lies entirely in the probationary period does not count at all
    frame2 = prepare_file("g", TS, [(1, 4)])
    assert frame2.n_windows == 0
    assert score_file(frame2, detections(2), 0.5, STD).score == 0.0
    # a row at 7 is 3 rows after that window (width 4): y = 3/3 = 1 -> s(1) = -0.986614
    assert score_file(frame2, detections(7), 0.5, STD).score == pytest.approx(0.11 * sig(1.0))


def test_threshold_sweep_by_hand() -> None:
    frame = prepare_file("f", TS, WINDOW)
    s = np.zeros(40)
    s[20] = 0.5  # window start
    s[10] = 0.7  # before the window
    s[3] = 0.9  # probationary: never a candidate threshold
    sw = sweep([frame], [s], STD)
    # thresholds: 1.1 (nothing), 0.7, 0.5, 0.0 (everything)
    np.testing.assert_allclose(sw.thresholds, [NEVER_FIRES, 0.7, 0.5, 0.0])
    # at 0.0 every scored row fires: window best = row 20 (+1); 14 FPs before the window
    # (rows 6..19) at -0.11; rows 30..39 after it at 0.11 * s((i-29)/9)
    after = sum(0.11 * sig((i - 29) / 9) for i in range(30, 40))
    expected = [-1.0, -1.0 - 0.11, 1.0 - 0.11, 1.0 - 14 * 0.11 + after]
    np.testing.assert_allclose(sw.scores, expected)
    assert sw.best == pytest.approx((0.5, 0.89))


def test_normalisation_two_files() -> None:
    f1 = prepare_file("a", TS, WINDOW)
    f2 = prepare_file("b", TS, [(30, 35)])
    s1 = np.zeros(40)
    s1[20], s1[10] = 0.5, 0.7  # as above: best threshold 0.5 -> 0.89 on file a
    s2 = np.zeros(40)  # file b: window missed -> -1
    res = score_corpus([f1, f2], [s1, s2])
    std = res["standard"]
    # sweep over both files: 1.1 -> -2; 0.7 -> -2.11; 0.5 -> 0.89 - 1 = -0.11; 0.0 -> worse
    assert std.threshold == 0.5
    assert std.score == pytest.approx(-0.11)
    # S_null = -2 (two windows missed), S_perfect = +2
    assert (std.null, std.perfect) == (-2.0, 2.0)
    # 100 * (-0.11 + 2) / (2 + 2) = 47.25
    assert std.normalized == pytest.approx(47.25)
    # reward_low_FN: null = -4, perfect = 2, S = 1 - 0.11 - 2 = -1.11 -> 100 * 2.89 / 6
    assert res["reward_low_FN"].normalized == pytest.approx(100 * 2.89 / 6)
    # reward_low_FP: FP 0.22: S(0.5) = 1 - 0.22 - 1 = -0.22 -> 100 * 1.78 / 4 = 44.5
    assert res["reward_low_FP"].normalized == pytest.approx(44.5)
    summary = std.summary()
    assert (summary["windows_detected"], summary["windows_missed"], summary["fp_rows"]) == (1, 1, 1)


def test_null_and_perfect_detectors_score_0_and_100() -> None:
    # 200 rows (probation 30), three windows of 5-10 rows: firing everywhere costs ~150 FPs
    # (~ -16), far below never firing (-3 with A_FN = 1), so the sweep keeps 1.1 for the null
    ts = np.arange(200, dtype=np.int64)
    frames = [prepare_file("a", ts, [(60, 69)]), prepare_file("b", ts, [(50, 54), (120, 129)])]
    null = [np.zeros(200), np.zeros(200)]
    perfect = [detections(60, n=200), detections(50, 120, n=200)]  # every window's first row
    for profile in PROFILES:
        res = score_corpus(frames, null)[profile]
        assert res.threshold == NEVER_FIRES
        assert res.score == pytest.approx(res.null)  # S_null = -A_FN * 3
        assert res.normalized == pytest.approx(0.0)
        best = score_corpus(frames, perfect)[profile]
        assert best.score == pytest.approx(best.perfect)  # S_perfect = A_TP * 3
        assert best.normalized == pytest.approx(100.0)


def test_errors_name_the_problem() -> None:
    frame = prepare_file("f", TS, WINDOW)
    with pytest.raises(ValueError, match=r"anomaly_score 1\.5 at row 2 is outside \[0, 1\]"):
        score_file(frame, np.where(np.arange(40) == 2, 1.5, 0.0), 0.5, STD)
    with pytest.raises(ValueError, match=r"anomaly_score nan at row 0"):
        score_file(frame, np.full(40, np.nan), 0.5, STD)
    with pytest.raises(ValueError, match=r"\(39,\) anomaly scores for 40 rows"):
        score_file(frame, np.zeros(39), 0.5, STD)
    with pytest.raises(ValueError, match="1 score arrays for 2 files"):
        sweep([frame, frame], [np.zeros(40)], STD)
    with pytest.raises(ValueError, match="no rows"):
        prepare_file("e", np.zeros(0, dtype=np.int64), [])
    with pytest.raises(ValueError, match=r"window 0 ends \(3\) before it starts \(5\)"):
        prepare_file("w", TS, [(5, 3)])
    with pytest.raises(ValueError, match="contains no row"):
        prepare_file("w", TS, [(100, 200)])
    with pytest.raises(ValueError, match="overlaps the previous window"):
        prepare_file("w", TS, [(10, 20), (15, 25)])
    with pytest.raises(ValueError, match="normalised NAB score is undefined"):
        normalize(0.0, 0.0, 0.0)


@given(
    st.lists(st.integers(0, 5), min_size=40, max_size=40),
    st.sampled_from(list(PROFILES.values())),
)
def test_sweep_matches_direct_scoring_at_every_threshold(levels: list[int], profile) -> None:
    frames = [prepare_file("a", TS, [(8, 12), (25, 31)]), prepare_file("b", TS, [])]
    a = np.array(levels, dtype=float) / 5.0
    scores = [a, a[::-1].copy()]
    sw = sweep(frames, scores, profile)
    assert np.all(np.diff(sw.thresholds) < 0)
    for t, value in zip(sw.thresholds, sw.scores, strict=True):
        direct = sum(
            score_file(f, s, t, profile).score for f, s in zip(frames, scores, strict=True)
        )
        assert value == pytest.approx(direct, abs=1e-9)
    best_t, best_v = sw.best
    assert best_v == pytest.approx(max(sw.scores))
    assert score_corpus(frames, scores, [profile])[profile.name].threshold == best_t


NAB_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"


@pytest.mark.skipif(not NAB_DATA.is_dir(), reason="NAB data (../shared/data/nab) absent")
def test_matches_a_published_nab_per_file_score() -> None:
    """NAB's own report for its "numenta" detector (NAB repo, results/numenta/
    numenta_standard_scores.csv) gives realTraffic/speed_7578.csv a standard score of
    1.23649741556 at threshold 0.5126953125, with TN = 839, FP = 3, TP = 4, FN = 112 rows.
    The 7 rows of that detector's results file with anomaly_score above the threshold are
    below (facts from the published results file); the other rows are below it."""
    from vigil.benchmarks.nab import load_corpus

    (f,) = load_corpus(NAB_DATA, ["realTraffic/speed_7578.csv"])
    above = {
        "2015-09-12 00:16:00": 0.544952187004,  # FP 1.1 widths after window 1
        "2015-09-14 17:45:00": 0.52465055532,  # FP, full cost
        "2015-09-15 06:05:00": 0.58679383224,  # FP, full cost
        "2015-09-15 14:34:00": 0.565666370505,  # window 2
        "2015-09-16 14:19:00": 0.544952187004,  # window 3
        "2015-09-16 17:15:00": 0.544952187004,  # window 4 (earliest detection)
        "2015-09-16 17:45:00": 0.608335100359,  # window 4 (does not count)
    }
    s = np.zeros(len(f.values))
    for ts, value in above.items():
        s[f.timestamp_text == ts] = value
    res = score_file(f.frame(), s, 0.5126953125, STD)
    assert res.score == pytest.approx(1.23649741556, abs=1e-10)
    assert (res.tn, res.fp, res.tp, res.fn) == (839, 3, 4, 112)
    # the same rows under the other two profiles (NAB's per-row S(t) columns summed)
    assert score_file(f.frame(), s, 0.5126953125, LOW_FP).score == pytest.approx(0.90722070107)
    assert score_file(f.frame(), s, 0.5126953125, LOW_FN).score == pytest.approx(0.23649741556)
