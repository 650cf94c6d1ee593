"""KPI (AIOps 2018) scorer: the best point-adjusted F1 over one corpus-wide threshold.

The rule (the challenge's, with delay 7):

* A **segment** is a maximal run of consecutive ``label == 1`` rows of one file (in row order).
* At a threshold ``th``, a segment counts as **wholly detected** (all its rows true positives)
  when some row among its first ``delay + 1`` rows has ``score >= th``; otherwise it is **wholly
  missed** (all its rows false negatives).
* Rows outside segments count as they are: false positive when ``score >= th``, else true
  negative.
* Counts are pooled over all files; F1 = 2 TP / (2 TP + FP + FN).

So a segment is detected at ``th`` exactly when ``th <= key``, its *key* being the maximum score
of its first ``delay + 1`` rows.  TP and FP only change at the keys and at the scores of rows
outside segments, so the best F1 is found with one sort of those values and cumulative sums
(:func:`best_f1`), not by re-scoring every threshold.  Where several thresholds reach the best
F1, the highest one is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DELAY = 7  # the challenge's: a segment must be hit within its first 8 rows


@dataclass(frozen=True)
class Counts:
    """Point-adjusted confusion counts (rows) and segment counts at one threshold."""

    tp: int
    fp: int
    fn: int
    tn: int
    segments_detected: int
    segments_missed: int

    @property
    def precision(self) -> float:
        flagged = self.tp + self.fp
        return self.tp / flagged if flagged else 0.0

    @property
    def recall(self) -> float:
        positives = self.tp + self.fn
        return self.tp / positives if positives else 0.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(_values(self), _values(other), strict=True)))


def _values(counts: Counts) -> tuple[int, ...]:
    return (counts.tp, counts.fp, counts.fn, counts.tn, counts.segments_detected,
            counts.segments_missed)


@dataclass(frozen=True)
class BestF1:
    """The best F1 over all thresholds and the counts at that threshold."""

    threshold: float
    counts: Counts
    thresholds_tried: int

    def summary(self) -> dict[str, Any]:
        c = self.counts
        return {
            "f1": c.f1,
            "precision": c.precision,
            "recall": c.recall,
            "threshold": self.threshold,
            **asdict(c),
            "thresholds_tried": self.thresholds_tried,
        }


def check_file(name: str, labels: np.ndarray, scores: np.ndarray) -> None:
    """Validate one file's labels (0/1) and scores (finite, same length)."""
    if labels.ndim != 1 or scores.ndim != 1 or len(labels) != len(scores):
        raise ValueError(
            f"{name}: labels of shape {labels.shape} and scores of shape {scores.shape}: expected "
            "two 1-D arrays of the same length, one entry per row"
        )
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"{name}: label {labels[row].item()!r} at row {row} is invalid: expected 0 or 1"
        )
    if not np.isfinite(scores).all():
        row = int(np.argmax(~np.isfinite(scores)))
        raise ValueError(
            f"{name}: score {float(scores[row])!r} at row {row} is not a finite number: map "
            "unscored rows to 0 before scoring"
        )


def segments(labels: np.ndarray) -> np.ndarray:
    """``[k, 2]`` int64: start and stop (exclusive) rows of the maximal runs of ``labels == 1``."""
    on = np.concatenate(([0], (np.asarray(labels) == 1).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(on))
    return edges.reshape(-1, 2).astype(np.int64)


def segment_keys(labels: np.ndarray, scores: np.ndarray, delay: int = DELAY
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each segment's key (the max score of its first ``delay + 1`` rows) and length."""
    seg = segments(labels)
    if not len(seg):
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    heads = np.minimum(seg[:, 0] + delay + 1, seg[:, 1])
    keys = np.array([scores[a:b].max() for a, b in zip(seg[:, 0], heads, strict=True)])
    return keys, seg[:, 1] - seg[:, 0]


def _check_delay(delay: int) -> None:
    if delay < 0:
        raise ValueError(f"delay={delay} is invalid: expected >= 0 rows")


def counts_at(labels: np.ndarray, scores: np.ndarray, threshold: float,
              delay: int = DELAY) -> Counts:
    """Point-adjusted counts of one file at ``threshold``."""
    _check_delay(delay)
    keys, lengths = segment_keys(labels, scores, delay)
    hit = keys >= threshold
    outside = np.asarray(labels) != 1
    fp = int((scores[outside] >= threshold).sum())
    return Counts(
        tp=int(lengths[hit].sum()),
        fp=fp,
        fn=int(lengths[~hit].sum()),
        tn=int(outside.sum()) - fp,
        segments_detected=int(hit.sum()),
        segments_missed=int((~hit).sum()),
    )


def best_f1(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray], *,
            names: Sequence[str] | None = None, delay: int = DELAY) -> BestF1:
    """The best pooled point-adjusted F1 over every threshold that changes the counts."""
    _check_delay(delay)
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} label arrays for {len(scores)} score arrays: expected "
                         "one of each per file")
    names = list(names) if names is not None else [f"file {i}" for i in range(len(labels))]
    key_parts, length_parts, normal_parts = [], [], []
    for name, lab, sc in zip(names, labels, scores, strict=True):
        lab, sc = np.asarray(lab), np.asarray(sc, dtype=np.float64)
        check_file(name, lab, sc)
        keys, lengths = segment_keys(lab, sc, delay)
        key_parts.append(keys)
        length_parts.append(lengths)
        normal_parts.append(sc[lab != 1])
    keys = np.concatenate(key_parts) if key_parts else np.zeros(0)
    lengths = np.concatenate(length_parts) if length_parts else np.zeros(0, dtype=np.int64)
    normal = np.concatenate(normal_parts) if normal_parts else np.zeros(0)
    if not len(keys) and not len(normal):
        raise ValueError("no rows to score: expected at least one file with rows")
    positives = int(lengths.sum())
    # every item is a threshold candidate: a segment (weight: its rows as TP) or an outside row
    # (weight: one FP); at threshold v every item with value >= v is counted
    value = np.concatenate((keys, normal))
    tp_w = np.concatenate((lengths, np.zeros(len(normal), dtype=np.int64)))
    fp_w = np.concatenate((np.zeros(len(keys), dtype=np.int64), np.ones(len(normal), np.int64)))
    seg_w = np.concatenate((np.ones(len(keys), np.int64), np.zeros(len(normal), np.int64)))
    order = np.argsort(-value, kind="stable")
    value = value[order]
    tp, fp, hits = (np.cumsum(w[order]) for w in (tp_w, fp_w, seg_w))
    last = np.flatnonzero(np.append(value[1:] != value[:-1], True))  # end of each tie group
    tp, fp, hits, candidates = tp[last], fp[last], hits[last], value[last]
    denominator = tp + fp + positives  # 2 TP + FP + FN, as FN = positives - TP
    f1 = np.divide(2 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
    best = int(np.argmax(f1))  # the first maximum in descending order: the highest threshold
    n_outside = len(normal)
    counts = Counts(
        tp=int(tp[best]),
        fp=int(fp[best]),
        fn=positives - int(tp[best]),
        tn=n_outside - int(fp[best]),
        segments_detected=int(hits[best]),
        segments_missed=len(keys) - int(hits[best]),
    )
    return BestF1(threshold=float(candidates[best]), counts=counts,
                  thresholds_tried=len(candidates))
