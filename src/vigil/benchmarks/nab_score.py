"""The NAB score, implemented from the benchmark's published rules (no NAB code reused).

Rules (Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms - the Numenta
Anomaly Benchmark", 2015, and the NAB v1.1 scorer documentation):

* **Probationary period**: the first ``min(floor(0.15 * n_rows), floor(0.15 * 5000))`` rows of
  every file (at most 750) are not scored at all (neither detections nor windows there count).
* **Windows** come from ``labels/combined_windows.json``; a window ``[start, end]`` covers the
  rows from ``left`` = the first row with timestamp >= start to ``right`` = the first row after
  it with timestamp == end (or the row before the first one > end), in file order, as NAB walks
  the rows; ``width = right - left + 1`` rows.
* **Scaled sigmoid** ``sigma(y) = 2 / (1 + exp(5 y)) - 1``, and ``-1`` for ``y >= 3``.
* **Row weights.**  A row ``i`` inside a window has ``y = -(right - i + 1) / width`` (``-1`` at the
  left edge, ``-1/width`` at the right edge) and is worth ``A_TP * sigma(y) / sigma(-1)`` when
  detected: the earliest possible detection earns exactly ``A_TP``.  A row outside every window
  costs ``A_FP * sigma(y)`` (negative) with ``y = (i - right_prev) / (width_prev - 1)`` measured
  from the end of the preceding window (cheap right after a window, ``-A_FP`` from 3 widths on);
  before the first window it costs the full ``-A_FP``.  (A one-row window would divide by zero
  there; this implementation uses ``max(width_prev - 1, 1)``.)
* **Per window only the best detection counts** (the earliest, since the weight decreases along
  the window); a window without any detection costs ``-A_FN``.
* **Detections** are the scored rows whose ``anomaly_score >= threshold``; ONE threshold per
  profile for the whole corpus, the one maximising the corpus score over an exhaustive sweep of
  every distinct score (plus ``1.1``, "never fires"; ties go to the highest threshold).
* **Normalised score** ``100 * (S - S_null) / (S_perfect - S_null)`` with
  ``S_null = -A_FN * n_windows`` (never fires) and ``S_perfect = A_TP * n_windows`` (every window
  detected at its first row), counting the windows that have scored rows.

Profiles ``(A_TP, A_FN, A_FP)``: standard ``(1, 1, 0.11)``, reward_low_FP ``(1, 1, 0.22)``,
reward_low_FN ``(1, 2, 0.11)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NEVER_FIRES = 1.1  # a threshold above every score in [0, 1]
_WINDOW_OFFSET = 10.0  # > the weight range (0, 1]: separates windows in one cumulative max


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fn: float
    fp: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 1.0, 0.11),
    "reward_low_FP": Profile("reward_low_FP", 1.0, 1.0, 0.22),
    "reward_low_FN": Profile("reward_low_FN", 1.0, 2.0, 0.11),
}


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """``2 / (1 + exp(5 y)) - 1``, and exactly ``-1`` where ``y >= 3``."""
    y = np.asarray(y, dtype=np.float64)
    out = 2.0 / (1.0 + np.exp(np.minimum(5.0 * y, 700.0))) - 1.0
    return np.where(y >= 3.0, -1.0, out)


MAX_TP = float(scaled_sigmoid(-1.0))  # 0.98661...


def probation_length(n_rows: int, percent: float = 0.15) -> int:
    """Rows at the start of a file that are not scored: ``min(floor(p n), floor(p 5000))``."""
    return int(min(math.floor(percent * n_rows), math.floor(percent * 5000)))


@dataclass(frozen=True)
class ScoringFrame:
    """One file's rows as the scorer sees them (independent of the detector and the profile).

    ``window[i]`` is the window index of row ``i`` within the file (-1 outside every window);
    ``weight[i]`` is ``sigma(y)/sigma(-1)`` in ``(0, 1]`` inside a window and ``sigma(y)`` in
    ``[-1, 0)`` outside (see the module doc); rows ``< probation`` are not scored.
    """

    name: str
    n_rows: int
    probation: int
    window: np.ndarray  # int64 [n]
    weight: np.ndarray  # float64 [n]
    n_windows: int  # windows with at least one scored row

    @property
    def in_window(self) -> np.ndarray:
        return self.window >= 0


def prepare_file(
    name: str,
    timestamps: np.ndarray,
    windows: Sequence[tuple[int, int]],
    *,
    probation_percent: float = 0.15,
) -> ScoringFrame:
    """Locate the ``windows`` (pairs of timestamps, same unit as ``timestamps``) in a file."""
    ts = np.asarray(timestamps, dtype=np.int64)
    n = len(ts)
    if n == 0:
        raise ValueError(f"{name}: the file has no rows: expected at least one timestamped row")
    window = np.full(n, -1, dtype=np.int64)
    weight = np.full(n, -1.0)  # before the first window: the full FP cost
    idx = np.arange(n)
    prev_right = -1
    kept = 0
    for k, (start, end) in enumerate(windows):
        if end < start:
            raise ValueError(f"{name}: window {k} ends ({end}) before it starts ({start})")
        # positions, as NAB walks the rows in file order (a few NAB files step back in time)
        first = np.flatnonzero(ts >= start)
        stop = first[0] + np.flatnonzero(ts[first[0] :] >= end) if len(first) else first
        left = int(first[0]) if len(first) else n
        right = n - 1 if not len(stop) else int(stop[0]) - int(ts[stop[0]] != end)
        if right < left:
            raise ValueError(
                f"{name}: window {k} [{start}, {end}] contains no row: expected windows that "
                "cover at least one timestamp of the file"
            )
        if left <= prev_right:
            raise ValueError(
                f"{name}: window {k} [{start}, {end}] overlaps the previous window: expected "
                "sorted, disjoint windows"
            )
        width = right - left + 1
        inside = idx[left : right + 1]
        window[left : right + 1] = k
        weight[left : right + 1] = scaled_sigmoid(-(right - inside + 1) / width) / MAX_TP
        after = idx[right + 1 :]  # overwritten by the next window's own "after" part
        weight[right + 1 :] = scaled_sigmoid((after - right) / max(width - 1, 1))
        prev_right = right
        kept += int(right >= probation_length(n, probation_percent))
    return ScoringFrame(
        name=name,
        n_rows=n,
        probation=probation_length(n, probation_percent),
        window=window,
        weight=weight,
        n_windows=kept,
    )


@dataclass(frozen=True)
class Sweep:
    """Corpus score for every candidate threshold, thresholds in decreasing order."""

    thresholds: np.ndarray
    scores: np.ndarray

    @property
    def best(self) -> tuple[float, float]:
        k = int(np.argmax(self.scores))  # first maximum: the highest threshold among ties
        return float(self.thresholds[k]), float(self.scores[k])


def _check_scores(frame: ScoringFrame, score: np.ndarray) -> np.ndarray:
    s = np.asarray(score, dtype=np.float64)
    if s.shape != (frame.n_rows,):
        raise ValueError(
            f"{frame.name}: {s.shape} anomaly scores for {frame.n_rows} rows: expected one per row"
        )
    bad = ~((s >= 0.0) & (s <= 1.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{frame.name}: anomaly_score {float(s[i])!r} at row {i} is outside [0, 1]: map the "
            "detector's output into [0, 1] (NaN is not allowed) before scoring"
        )
    return s


def sweep(frames: Sequence[ScoringFrame], scores: Sequence[np.ndarray], profile: Profile) -> Sweep:
    """Exhaustive threshold sweep of the corpus score (vectorised over all scored rows)."""
    if len(frames) != len(scores):
        raise ValueError(f"{len(scores)} score arrays for {len(frames)} files: expected one each")
    a_parts, w_parts, g_parts = [], [], []
    offset = 0
    for frame, score in zip(frames, scores, strict=True):
        s = _check_scores(frame, score)
        p = frame.probation
        a_parts.append(s[p:])
        w_parts.append(frame.weight[p:])
        win = frame.window[p:]
        g_parts.append(np.where(win >= 0, win + offset, -1))
        offset += int(frame.window.max(initial=-1)) + 1
    n_windows = sum(f.n_windows for f in frames)
    base = -profile.fn * n_windows
    a = np.concatenate(a_parts) if a_parts else np.zeros(0)
    w = np.concatenate(w_parts) if w_parts else np.zeros(0)
    g = np.concatenate(g_parts) if g_parts else np.zeros(0, dtype=np.int64)
    order = np.argsort(-a, kind="stable")
    a, w, g = a[order], w[order], g[order]
    delta = np.where(g < 0, profile.fp * w, 0.0)
    tp_pos = np.flatnonzero(g >= 0)
    if len(tp_pos):
        # running best weight of each window as the threshold goes down
        by_window = tp_pos[np.lexsort((tp_pos, g[tp_pos]))]
        gw = g[by_window].astype(np.float64)
        best = np.maximum.accumulate(w[by_window] + _WINDOW_OFFSET * gw) - _WINDOW_OFFSET * gw
        first = np.ones(len(by_window), dtype=bool)
        first[1:] = g[by_window][1:] != g[by_window][:-1]
        prev = np.empty_like(best)
        prev[1:] = best[:-1]
        gain = np.where(first, profile.tp * best + profile.fn, profile.tp * (best - prev))
        delta[by_window] = gain
    total = base + np.cumsum(delta)
    last = np.ones(len(a), dtype=bool)
    last[:-1] = a[1:] != a[:-1]
    thresholds = np.concatenate([[NEVER_FIRES], a[last]])
    values = np.concatenate([[base], total[last]])
    return Sweep(thresholds, values)


@dataclass(frozen=True)
class FileScore:
    """A file's score at a threshold; ``tp/fn/fp/tn`` count scored ROWS as NAB's reports do."""

    name: str
    score: float
    tp: int  # detected rows inside windows
    fn: int  # undetected rows inside windows
    fp: int  # detected rows outside windows
    tn: int  # undetected rows outside windows
    windows_detected: int
    windows_missed: int


def score_file(
    frame: ScoringFrame, score: np.ndarray, threshold: float, profile: Profile
) -> FileScore:
    """The file's score when every scored row with ``score >= threshold`` is a detection."""
    s = _check_scores(frame, score)
    scored = np.arange(frame.n_rows) >= frame.probation
    detected = scored & (s >= threshold)
    outside = frame.window < 0
    fp_rows = detected & outside
    hit = detected & ~outside
    n_win = int(frame.window.max(initial=-1)) + 1
    best = np.full(n_win, -np.inf)
    np.maximum.at(best, frame.window[hit], frame.weight[hit])
    counted = np.zeros(n_win, dtype=bool)
    counted[frame.window[scored & ~outside]] = True
    found = counted & np.isfinite(best)
    missed = int((counted & ~found).sum())
    total = (
        profile.fp * float(frame.weight[fp_rows].sum())
        + profile.tp * float(best[found].sum())
        - profile.fn * missed
    )
    return FileScore(
        name=frame.name,
        score=total,
        tp=int(hit.sum()),
        fn=int((scored & ~outside & ~detected).sum()),
        fp=int(fp_rows.sum()),
        tn=int((scored & outside & ~detected).sum()),
        windows_detected=int(found.sum()),
        windows_missed=missed,
    )


@dataclass(frozen=True)
class ProfileResult:
    profile: Profile
    threshold: float
    score: float  # raw corpus score S at the threshold
    null: float  # S_null
    perfect: float  # S_perfect
    normalized: float
    files: list[FileScore]

    def summary(self) -> dict[str, float | int]:
        return {
            "threshold": self.threshold,
            "score": self.score,
            "null": self.null,
            "perfect": self.perfect,
            "normalized": self.normalized,
            "windows_detected": sum(f.windows_detected for f in self.files),
            "windows_missed": sum(f.windows_missed for f in self.files),
            "fp_rows": sum(f.fp for f in self.files),
        }


def normalize(score: float, null: float, perfect: float) -> float:
    if perfect == null:
        raise ValueError(
            "the corpus has no scored window (perfect score == null score): the normalised "
            "NAB score is undefined; include files with labelled windows"
        )
    return 100.0 * (score - null) / (perfect - null)


def score_corpus(
    frames: Sequence[ScoringFrame],
    scores: Sequence[np.ndarray],
    profiles: Sequence[Profile] = tuple(PROFILES.values()),
) -> dict[str, ProfileResult]:
    """Sweep, pick the corpus threshold, score every file at it and normalise, per profile."""
    n_windows = sum(f.n_windows for f in frames)
    out: dict[str, ProfileResult] = {}
    for profile in profiles:
        threshold, _ = sweep(frames, scores, profile).best
        files = [score_file(f, s, threshold, profile) for f, s in zip(frames, scores, strict=True)]
        total = sum(f.score for f in files)
        null, perfect = -profile.fn * n_windows, profile.tp * n_windows
        out[profile.name] = ProfileResult(
            profile, threshold, total, null, perfect, normalize(total, null, perfect), files
        )
    return out
