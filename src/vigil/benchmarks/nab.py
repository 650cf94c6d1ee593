"""NAB (Numenta Anomaly Benchmark) runner: detect causally, write NAB's layout, score.

Data layout read (``data_dir``, e.g. ``../shared/data/nab``): ``data/<category>/<file>.csv``
with columns ``timestamp,value`` and ``labels/combined_windows.json``.

How a file is run (ONE configuration for the whole corpus, as NAB requires):

* **Regular series.**  NAB files have mostly regular steps, but some have gaps, repeated
  timestamps and jitter (realTraffic).  The values are fed **in file order as a regular series**
  whose step is the file's median step, starting at the first timestamp: every row gets exactly
  one score and nothing is dropped or merged; the price is that a gap shifts the time of day the
  model sees for the rows after it.  (Aligning on a grid would merge repeated timestamps into one
  column and leave rows without a score.)
* **Causal, as the engine replays.**  The file goes through the engine's own causal replay,
  :func:`vigil.engine.replay.replay_partition` (what ``vigil backtest`` runs): a fresh detector
  is fitted on the probationary prefix (the rows NAB does not score:
  ``min(floor(0.15 n), 750)``), scores the following rows causally (each column is predicted
  from the state before it) and is refitted every ``refit_every`` on the trailing
  ``fit_window`` with the points it flagged masked, the engine's default schedule (1 day,
  14 days; durations are turned into rows with the file's step).  ``refit_every=None`` fits
  once on the prefix and scores the rest in one call.  Probationary rows get anomaly_score 0
  in the results files.
* **[0, 1] scores.**  The detector's ``anomaly_score`` (0 normal, 1 boundary, > 1 anomalous)
  goes through the fixed post-processing stage of :class:`NabConfig`
  (:class:`vigil.models.postprocess.PostProcess`: peak ratio + range novelty, then the
  monotone ``y / (1 + y)``).  Rows the detector leaves unscored (NaN while warming up) count
  as 0 and are counted (``unscored_rows`` in the summary), never hidden.

Results, in NAB's layout: ``out_dir/<detector>/<category>/<detector>_<file>.csv`` with columns
``timestamp,value,anomaly_score,label`` (label 1 inside a window), one
``out_dir/<detector>/<detector>_<profile>_scores.csv`` per profile (per-file score and counts at
the corpus threshold, plus a Totals row) and ``out_dir/<detector>/<detector>_summary.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from vigil.batch import SeriesBatch
from vigil.benchmarks import median_step
from vigil.benchmarks.nab_score import (
    ProfileResult,
    ScoringFrame,
    prepare_file,
    probation_length,
    score_corpus,
)
from vigil.engine.backtest import BacktestConfig, parse_duration
from vigil.engine.replay import ReplayConfig, replay_partition
from vigil.models.base import Model, Scores
from vigil.models.postprocess import PostProcess
from vigil.series import series_id

DetectorFactory = Callable[[], Model]
WINDOWS_FILE = Path("labels") / "combined_windows.json"


@dataclass(frozen=True)
class NabFile:
    key: str  # "<category>/<file>.csv", the key of combined_windows.json
    timestamp_text: np.ndarray  # object [n]: the file's timestamp strings, written back as is
    timestamps: np.ndarray  # int64 ms [n]
    values: np.ndarray  # float64 [n]
    windows: list[tuple[int, int]]  # ms, inclusive

    @property
    def category(self) -> str:
        return self.key.split("/")[0]

    @property
    def stem(self) -> str:
        return self.key.split("/")[1]

    @property
    def probation(self) -> int:
        return probation_length(len(self.values))

    def step(self) -> int:
        """The median of the positive gaps between consecutive rows in time order (ms)."""
        return median_step(self.timestamps, self.key)

    def batch(self) -> SeriesBatch:
        labels = {"__name__": "nab_value", "file": self.key}
        return SeriesBatch(
            np.array([series_id(labels)], dtype=np.int64),
            int(self.timestamps[0]),
            self.step(),
            self.values[None, :].copy(),
            [labels],
        )

    def frame(self) -> ScoringFrame:
        return prepare_file(self.key, self.timestamps, self.windows)


def _to_ms(texts: Any) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.to_datetime(pd.Series(texts)).astype("datetime64[ms]").astype(np.int64))


def load_corpus(data_dir: Path, only: Sequence[str] | None = None) -> list[NabFile]:
    """Read the NAB files (all of them, or the ``only`` keys) and their windows."""
    import pandas as pd

    data_dir = Path(data_dir)
    labels_path = data_dir / WINDOWS_FILE
    if not labels_path.is_file():
        raise FileNotFoundError(
            f"{labels_path} not found: expected the NAB layout data/<category>/<file>.csv and "
            "labels/combined_windows.json under the --data directory (e.g. ../shared/data/nab)"
        )
    windows = json.loads(labels_path.read_text())
    keys = sorted(windows) if only is None else list(only)
    unknown = [k for k in keys if k not in windows]
    if unknown:
        raise ValueError(
            f"{unknown[0]!r} has no entry in {labels_path}: expected keys like "
            "'realKnownCause/nyc_taxi.csv'"
        )
    files = []
    for key in keys:
        path = data_dir / "data" / key
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {labels_path} lists {key!r}")
        table = pd.read_csv(path)
        if list(table.columns[:2]) != ["timestamp", "value"]:
            raise ValueError(f"{path} has columns {list(table.columns)}: expected timestamp,value")
        values = table["value"].to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            row = int(np.argmax(~np.isfinite(values)))
            raise ValueError(
                f"{path}: value {float(values[row])!r} at row {row} is not a finite number"
            )
        edges = _to_ms([ts for pair in windows[key] for ts in pair]).reshape(-1, 2)
        pairs = [(int(a), int(b)) for a, b in edges]
        files.append(
            NabFile(
                key=key,
                timestamp_text=table["timestamp"].astype(str).to_numpy(dtype=object),
                timestamps=_to_ms(table["timestamp"]),
                values=values,
                windows=pairs,
            )
        )
    return files


def fit_rows(nab_file: NabFile) -> int:
    """Rows the detector is fitted on: the probationary prefix (at least one row)."""
    return max(nab_file.probation, 1)


@dataclass(frozen=True)
class NabConfig:
    """The one configuration used for the whole corpus."""

    postprocess: PostProcess = field(default_factory=PostProcess)
    # the engine's backtest schedule; None: fit once on the probationary prefix
    refit_every: str | None = BacktestConfig.refit_every
    fit_window: str = BacktestConfig.fit_window

    def __post_init__(self) -> None:
        if self.refit_every is not None:
            parse_duration(self.refit_every)
        parse_duration(self.fit_window)

    def replay(self, nab_file: NabFile) -> ReplayConfig | None:
        """The replay schedule of one file in its own rows (None: no refits)."""
        if self.refit_every is None:
            return None
        step = nab_file.step()
        return ReplayConfig(
            warmup_steps=fit_rows(nab_file),
            refit_every_steps=max(1, parse_duration(self.refit_every) // step),
            fit_window_steps=max(1, parse_duration(self.fit_window) // step),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "fit": "probationary prefix",
            "refit_every": self.refit_every,
            "fit_window": self.fit_window if self.refit_every is not None else None,
            "postprocess": self.postprocess.to_dict(),
        }


def detect_file(
    factory: DetectorFactory, nab_file: NabFile, config: NabConfig | None = None
) -> Scores:
    """Fit a fresh detector on the probationary prefix and score every later row causally,
    refitting on ``config``'s schedule (the scores cover rows ``fit_rows(nab_file)..n-1``)."""
    batch = nab_file.batch()
    p = fit_rows(nab_file)
    replay = (config or NabConfig()).replay(nab_file)
    if replay is None:
        model = factory().fit(batch.columns(0, p))
        return model.score(batch.columns(p, batch.n_steps))
    scores, _, _ = replay_partition(batch, replay, factory)
    return Scores(**{f.name: getattr(scores, f.name)[:, p:] for f in fields(Scores)})


def unit_scores(nab_file: NabFile, scores: Scores, config: NabConfig) -> tuple[np.ndarray, int]:
    """The [0, 1) score of every row of the file (0 on the fitted rows), and how many rows the
    detector left unscored (NaN anomaly_score: warming up; they count as 0)."""
    p = fit_rows(nab_file)
    values = nab_file.values[None, :]
    raw = np.asarray(scores.anomaly_score, dtype=np.float64)
    if raw.shape != (1, len(nab_file.values) - p):
        raise ValueError(
            f"{nab_file.key}: the detector returned anomaly_score of shape {raw.shape}: "
            f"expected (1, {len(nab_file.values) - p}), one per scored row"
        )
    out = np.zeros(len(nab_file.values))
    out[p:] = config.postprocess.apply(raw, values[:, p:], values[:, :p])[0]
    return out, int(np.isnan(raw).sum())


def write_file_results(out_dir: Path, detector: str, nab_file: NabFile, score: np.ndarray) -> Path:
    import pandas as pd

    path = out_dir / detector / nab_file.category / f"{detector}_{nab_file.stem}"
    path.parent.mkdir(parents=True, exist_ok=True)
    label = (nab_file.frame().window >= 0).astype(np.int64)
    pd.DataFrame(
        {
            "timestamp": nab_file.timestamp_text,
            "value": nab_file.values,
            "anomaly_score": score,
            "label": label,
        }
    ).to_csv(path, index=False)
    return path


def write_profile_scores(out_dir: Path, detector: str, result: ProfileResult) -> Path:
    import pandas as pd

    rows: list[dict[str, Any]] = [
        {
            "Detector": detector,
            "Profile": result.profile.name,
            "File": f.name,
            "Threshold": result.threshold,
            "Score": f.score,
            "TP": f.tp,
            "TN": f.tn,
            "FP": f.fp,
            "FN": f.fn,
            "Windows_detected": f.windows_detected,
            "Windows_missed": f.windows_missed,
        }
        for f in result.files
    ]
    keys = ("Score", "TP", "TN", "FP", "FN", "Windows_detected", "Windows_missed")
    totals = {k: sum(r[k] for r in rows) for k in keys}
    rows.append(
        {
            "Detector": detector,
            "Profile": result.profile.name,
            "File": "Totals",
            "Threshold": result.threshold,
            **totals,
        }
    )
    path = out_dir / detector / f"{detector}_{result.profile.name}_scores.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def default_detector_factory() -> DetectorFactory:
    """The engine's default detector, :class:`vigil.models.defaults.FleetDetector`, at its
    default operating point (the same one ``vigil backtest`` and ``vigil detect`` use).

    NAB files are single series, so its peer model never has peers: it gives no opinion
    (NaN, counted as 0) and the scores are the per-series ensemble's."""
    from vigil.models.defaults import default_factory

    return default_factory()


def score_unit(files: Sequence[NabFile], unit: Sequence[np.ndarray]) -> dict[str, ProfileResult]:
    return score_corpus([f.frame() for f in files], unit)


def run_nab(
    data_dir: Path,
    out_dir: Path,
    detector_factory: DetectorFactory | None = None,
    *,
    detector_name: str = "vigil",
    config: NabConfig | None = None,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the detector over the corpus, write NAB's results layout, return the scores.

    ``only`` restricts the run to some files (keys of combined_windows.json); NAB scores are
    only comparable with published ones on the full corpus of 58 files.
    """
    if not detector_name or any(c in detector_name for c in "/\\ "):
        raise ValueError(
            f"detector name {detector_name!r} is invalid: expected a non-empty name without "
            "'/', '\\' or spaces (it names a results folder)"
        )
    factory = detector_factory or default_detector_factory()
    config = config or NabConfig()
    out_dir = Path(out_dir)
    files = load_corpus(data_dir, only)
    t0 = time.perf_counter()
    unit, unscored = [], 0
    for f in files:
        u, missing = unit_scores(f, detect_file(factory, f, config), config)
        unit.append(u)
        unscored += missing
        write_file_results(out_dir, detector_name, f, u)
        if progress:
            progress(f.key)
    seconds = time.perf_counter() - t0
    results = score_unit(files, unit)
    for res in results.values():
        write_profile_scores(out_dir, detector_name, res)
    probe = factory()
    summary: dict[str, Any] = {
        "detector": detector_name,
        "model": {"name": probe.name, "params": probe.params()},
        "files": len(files),
        "rows": int(sum(len(f.values) for f in files)),
        "windows": int(sum(len(f.windows) for f in files)),
        "detect_seconds": round(seconds, 3),
        "unscored_rows": unscored,
        "config": config.to_dict(),
        "profiles": {name: res.summary() for name, res in results.items()},
        "scores": {name: round(res.normalized, 2) for name, res in results.items()},
    }
    path = out_dir / detector_name / f"{detector_name}_summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
