"""KPI (AIOps 2018 challenge) runner: detect causally, write the scores, score point-adjusted F1.

Data read (``data_dir``, e.g. ``../shared/data/kpi``): ``*.csv`` files with columns
``timestamp`` (integer epoch seconds), ``value`` and ``label`` (1 = anomalous).  The label
column is only read by the scorer (:func:`load_labels`), after detection.

How a file is run (one configuration for the whole corpus):

* **On a regular grid.**  The file's step is its median positive gap.  Every row goes to the
  grid column ``round((timestamp - first) / step)``; columns without a row are gaps (NaN, which
  the models accept), so the time of day stays right after a gap.  Rows the grid does not
  expect are handled, counted in the summary, never dropped: a timestamp off the grid is put
  in the nearest column (``off_grid_rows``); rows sharing a column (repeated timestamps, or
  off-grid rows snapped together) give the column the value of the last of them in file order,
  and each of them gets that column's score (``merged_rows``); rows out of time order are placed
  by their timestamp like any other (``rows_out_of_order``).  Every input row gets the score of
  its column, in input order.
* **Causal, as the engine replays.**  The series goes through the engine's own causal replay,
  :func:`vigil.engine.replay.replay_partition`, with the engine's default backtest schedule
  (:class:`vigil.engine.backtest.BacktestConfig`: fit on the first 3 days, refit every day on
  the trailing 14 days with the points it flagged masked), durations turned into steps of the
  file's step, as ``vigil backtest`` does.  Rows in the warm-up columns get score 0.
* **[0, 1] scores.**  The detector's ``anomaly_score`` (0 normal, 1 boundary, > 1 anomalous)
  is mapped by the fixed monotone ``y / (1 + y)``; no post-processing.  Rows it leaves unscored
  (NaN) count as 0 and are counted (``unscored_rows``).
* **Baseline** (``zscore``): per row, ``|x - mean| / std`` of the previous 288 rows in time
  order (population std), through the same map; a constant window scores 0 for the same value
  and 1 for any other.  It is zeroed on the same warm-up rows, so both detectors are scored on
  the same rows.

Results: ``out_dir/<detector>/kpi/<detector>_<file>.csv`` with columns
``timestamp,value,anomaly_score`` (one row per input row, input order),
``out_dir/<detector>/<detector>_scores.csv`` (per-file counts at the corpus threshold, plus a
Totals row) and ``out_dir/kpi_summary.json`` (both detectors, the data notes, the config).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vigil.batch import SeriesBatch
from vigil.benchmarks import median_step
from vigil.benchmarks.kpi_score import DELAY, BestF1, Counts, best_f1, counts_at, segments
from vigil.engine.backtest import BacktestConfig, parse_duration
from vigil.engine.replay import ReplayConfig, replay_partition
from vigil.models.base import Model
from vigil.series import series_id

DetectorFactory = Callable[[], Model]
Z_WINDOW = 288
DETECTORS = ("vigil", "zscore")
COLUMNS = ("timestamp", "value", "label")


@dataclass(frozen=True)
class KpiFile:
    name: str  # the file name, e.g. "0efb375b-b902-3661-ab23-9a0bb799f4e3.csv"
    timestamps: np.ndarray  # int64 epoch seconds [n], file order
    values: np.ndarray  # float64 [n]

    @property
    def stem(self) -> str:
        return self.name.removesuffix(".csv")

    def step(self) -> int:
        """The median of the positive gaps between consecutive rows in time order (seconds)."""
        return median_step(self.timestamps, self.name)

    def columns(self) -> np.ndarray:
        """The grid column of every row (int64 [n])."""
        offset = self.timestamps - self.timestamps.min()
        return np.rint(offset / self.step()).astype(np.int64)

    def grid(self) -> np.ndarray:
        """The values on the grid (float64 [T]); a column without a row is NaN, a column with
        several rows holds the last of them in file order."""
        col = self.columns()
        out = np.full(int(col.max()) + 1, np.nan)
        out[col] = self.values  # numpy assigns repeated indices in order: the last one stays
        return out

    def batch(self) -> SeriesBatch:
        labels = {"__name__": "kpi_value", "file": self.name}
        return SeriesBatch(
            np.array([series_id(labels)], dtype=np.int64),
            int(self.timestamps.min()) * 1000,
            self.step() * 1000,
            self.grid()[None, :],
            [labels],
        )

    def notes(self) -> dict[str, int]:
        """How the rows sit on the grid (all counts; nothing is dropped)."""
        col = self.columns()
        offset = self.timestamps - self.timestamps.min()
        step = self.step()
        distinct = len(np.unique(col))
        return {
            "rows": len(self.values),
            "step_s": step,
            "columns": int(col.max()) + 1,
            "gap_columns": int(col.max()) + 1 - distinct,
            "off_grid_rows": int((offset % step != 0).sum()),
            "merged_rows": len(col) - distinct,
            "rows_out_of_order": int((np.diff(self.timestamps) < 0).sum()),
        }


def list_files(data_dir: Path, only: Sequence[str] | None = None) -> list[Path]:
    """The corpus files (sorted by name), or the ``only`` ones (names with or without .csv)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"--data {data_dir} is not a directory: expected the folder of the KPI CSV files "
            "(timestamp,value,label), e.g. ../shared/data/kpi"
        )
    paths = sorted(data_dir.glob("*.csv"))
    if not paths:
        raise FileNotFoundError(
            f"--data {data_dir} holds no .csv file: expected the KPI CSV files "
            "(timestamp,value,label), e.g. ../shared/data/kpi"
        )
    if only is None:
        return paths
    by_name = {p.name: p for p in paths} | {p.stem: p for p in paths}
    unknown = [name for name in only if name not in by_name]
    if unknown:
        raise ValueError(
            f"--only {unknown[0]!r} is not a file of {data_dir}: expected a name like "
            f"{paths[0].name!r}"
        )
    return list(dict.fromkeys(by_name[name] for name in only))


def _check_header(path: Path) -> None:
    import pandas as pd

    header = list(pd.read_csv(path, nrows=0).columns)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"{path} has columns {header}: expected timestamp,value,label (missing {missing})"
        )


def load_file(path: Path) -> KpiFile:
    """Timestamps and values of one file (never its labels)."""
    import pandas as pd

    path = Path(path)
    _check_header(path)
    table = pd.read_csv(path, usecols=["timestamp", "value"])
    if not len(table):
        raise ValueError(f"{path} has no rows: expected at least two")
    if not pd.api.types.is_integer_dtype(table["timestamp"]):
        raise ValueError(
            f"{path}: timestamp column has type {table['timestamp'].dtype}: expected integer "
            "epoch seconds on every row"
        )
    values = pd.to_numeric(table["value"], errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row = int(np.argmax(~np.isfinite(values)))
        raise ValueError(
            f"{path}: value {str(table['value'].iloc[row])!r} at row {row} is not a finite number"
        )
    return KpiFile(path.name, table["timestamp"].to_numpy(dtype=np.int64), values)


def load_labels(path: Path, rows: int) -> np.ndarray:
    """The label column of one file (int64 0/1 [rows]); only the scorer reads it."""
    import pandas as pd

    labels = pd.read_csv(path, usecols=["label"])["label"]
    if len(labels) != rows or not pd.api.types.is_integer_dtype(labels):
        raise ValueError(
            f"{path}: label column has {len(labels)} rows of type {labels.dtype}: expected "
            f"{rows} integers 0 or 1"
        )
    return labels.to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class KpiConfig:
    """The one configuration of the corpus: the engine's backtest schedule."""

    warmup: str = BacktestConfig.warmup
    refit_every: str = BacktestConfig.refit_every
    fit_window: str = BacktestConfig.fit_window
    z_window: int = Z_WINDOW
    delay: int = DELAY

    def __post_init__(self) -> None:
        for name in ("warmup", "refit_every", "fit_window"):
            parse_duration(getattr(self, name))
        if self.z_window < 2:
            raise ValueError(f"z_window={self.z_window} is invalid: expected >= 2 rows")
        if self.delay < 0:
            raise ValueError(f"delay={self.delay} is invalid: expected >= 0 rows")

    def replay(self, step_s: int) -> ReplayConfig:
        """The schedule in steps of the file's step, as ``vigil backtest`` converts it."""
        step = step_s * 1000
        return ReplayConfig(
            warmup_steps=max(1, parse_duration(self.warmup) // step),
            refit_every_steps=max(1, parse_duration(self.refit_every) // step),
            fit_window_steps=max(1, parse_duration(self.fit_window) // step),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_unit(raw: np.ndarray) -> np.ndarray:
    """``y / (1 + y)`` of scores ``>= 0`` (NaN: 0; +inf: 1)."""
    y = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0.0, posinf=np.inf)
    if (y < 0).any():
        bad = float(y[np.argmax(y < 0)])
        raise ValueError(f"anomaly_score {bad!r} is invalid: expected a score >= 0 (or NaN)")
    out = np.ones_like(y)
    finite = np.isfinite(y)
    out[finite] = y[finite] / (1.0 + y[finite])
    return out


def rolling_z(values: np.ndarray, window: int = Z_WINDOW, chunk: int = 8192) -> np.ndarray:
    """``|x[i] - mean| / std`` over ``x[i - window:i]`` (population std), NaN for the first
    ``window`` rows; a constant window gives 0 for the same value and +inf for any other."""
    x = np.asarray(values, dtype=np.float64)
    out = np.full(len(x), np.nan)
    for lo in range(window, len(x), chunk):
        hi = min(lo + chunk, len(x))
        past = np.lib.stride_tricks.sliding_window_view(x[lo - window:hi - 1], window)
        mean = past.mean(axis=1)
        std = past.std(axis=1)
        constant = past.max(axis=1) == past.min(axis=1)
        mean[constant] = past[constant, 0]
        dev = np.abs(x[lo:hi] - mean)
        safe = np.where(constant, 1.0, std)
        out[lo:hi] = np.where(constant, np.where(dev == 0, 0.0, np.inf), dev / safe)
    return out


@dataclass(frozen=True)
class FileRun:
    name: str
    notes: dict[str, int]
    warmup: np.ndarray  # bool [n]: the row lies in the warm-up columns (scores 0)
    unit: dict[str, np.ndarray]  # detector -> [0, 1] score of every row, input order
    unscored_rows: dict[str, int]
    seconds: dict[str, float]


def _write(out_dir: Path, detector: str, f: KpiFile, unit: np.ndarray) -> None:
    import pandas as pd

    path = out_dir / detector / "kpi" / f"{detector}_{f.name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"timestamp": f.timestamps, "value": f.values, "anomaly_score": unit}
    ).to_csv(path, index=False)


def detect_vigil(factory: DetectorFactory, f: KpiFile, config: KpiConfig
                 ) -> tuple[np.ndarray, int, int]:
    """The [0, 1] score of every row, the unscored rows (NaN, counted as 0), the warm-up
    columns (rows there score 0)."""
    replay = config.replay(f.step())
    scores, _, _ = replay_partition(f.batch(), replay, factory)
    raw = np.asarray(scores.anomaly_score, dtype=np.float64)
    col = f.columns()
    n_cols = int(col.max()) + 1
    if raw.shape != (1, n_cols):
        raise ValueError(
            f"{f.name}: the replay returned anomaly_score of shape {raw.shape}: expected "
            f"(1, {n_cols}), one per grid column"
        )
    row_raw = raw[0, col]
    row_raw[col < replay.warmup_steps] = 0.0
    return to_unit(row_raw), int(np.isnan(row_raw).sum()), replay.warmup_steps


def detect_zscore(f: KpiFile, warmup_steps: int, window: int = Z_WINDOW) -> np.ndarray:
    """The baseline's [0, 1] score of every row (0 in the first ``window`` rows in time order
    and in the warm-up columns)."""
    order = np.argsort(f.timestamps, kind="stable")
    z = np.empty(len(order))
    z[order] = np.nan_to_num(rolling_z(f.values[order], window), nan=0.0)
    z[f.columns() < warmup_steps] = 0.0
    return to_unit(z)


def run_file(path: Path, out_dir: Path, factory: DetectorFactory, config: KpiConfig) -> FileRun:
    """Both detectors over one file; writes their result files."""
    f = load_file(path)
    t0 = time.perf_counter()
    vigil_unit, unscored, warm = detect_vigil(factory, f, config)
    t1 = time.perf_counter()
    z_unit = detect_zscore(f, warm, config.z_window)
    t2 = time.perf_counter()
    _write(out_dir, "vigil", f, vigil_unit)
    _write(out_dir, "zscore", f, z_unit)
    return FileRun(
        name=f.name,
        notes=f.notes(),
        warmup=f.columns() < warm,
        unit={"vigil": vigil_unit, "zscore": z_unit},
        unscored_rows={"vigil": unscored, "zscore": 0},
        seconds={"vigil": t1 - t0, "zscore": t2 - t1},
    )


def _init_worker() -> None:
    from vigil.engine.pool import init_worker

    init_worker()


def _write_scores(out_dir: Path, detector: str, names: Sequence[str],
                  per_file: Sequence[Counts], threshold: float) -> Path:
    import pandas as pd

    rows: list[dict[str, Any]] = [
        {"File": name, "Threshold": threshold, **asdict(c), "F1": c.f1}
        for name, c in zip(names, per_file, strict=True)
    ]
    total = per_file[0]
    for c in per_file[1:]:
        total = total + c
    rows.append({"File": "Totals", "Threshold": threshold, **asdict(total), "F1": total.f1})
    path = out_dir / detector / f"{detector}_scores.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def run_kpi(
    data_dir: Path,
    out_dir: Path,
    detector_factory: DetectorFactory | None = None,
    *,
    only: Sequence[str] | None = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    config: KpiConfig | None = None,
) -> dict[str, Any]:
    """Run the detector and the z-score baseline over the corpus, write the results, return the
    summary (also written to ``out_dir/kpi_summary.json``).

    ``detector_factory`` defaults to the engine's (:func:`vigil.models.defaults.default_factory`);
    with ``workers > 1`` it must be picklable.  Results do not depend on ``workers``."""
    if workers < 1:
        raise ValueError(f"--workers {workers} is invalid: expected 1 or more processes")
    if detector_factory is None:
        from vigil.models.defaults import default_factory

        detector_factory = default_factory()
    config = config or KpiConfig()
    out_dir = Path(out_dir)
    paths = list_files(data_dir, only)
    for path in paths:
        _check_header(path)
    t0 = time.perf_counter()
    runs: list[FileRun] = []
    if workers == 1 or len(paths) == 1:
        for path in paths:
            runs.append(run_file(path, out_dir, detector_factory, config))
            if progress:
                progress(path.name)
    else:
        # spawn, not fork, as the engine's pool: numba may already run threads here
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(paths)),
                                 initializer=_init_worker, mp_context=ctx) as ex:
            futures = [ex.submit(run_file, p, out_dir, detector_factory, config) for p in paths]
            for path, fut in zip(paths, futures, strict=True):
                runs.append(fut.result())
                if progress:
                    progress(path.name)
    wall = time.perf_counter() - t0

    # the scorer: the labels are read only now
    labels = [load_labels(p, run.notes["rows"]) for p, run in zip(paths, runs, strict=True)]
    names = [run.name for run in runs]
    segs = [segments(lab) for lab in labels]
    starting = undetectable = anomalous_in_warmup = 0
    for run, lab, seg in zip(runs, labels, segs, strict=True):
        starting += int(run.warmup[seg[:, 0]].sum())
        # all of its first delay + 1 rows score 0: only a threshold of 0 detects it
        undetectable += sum(bool(run.warmup[a:min(a + config.delay + 1, b)].all())
                            for a, b in seg)
        anomalous_in_warmup += int(lab[run.warmup].sum())

    detectors: dict[str, Any] = {}
    for det in DETECTORS:
        unit = [run.unit[det] for run in runs]
        best: BestF1 = best_f1(labels, unit, names=names, delay=config.delay)
        per_file = [counts_at(lab, u, best.threshold, config.delay)
                    for lab, u in zip(labels, unit, strict=True)]
        _write_scores(out_dir, det, names, per_file, best.threshold)
        th = best.threshold
        detectors[det] = {
            **best.summary(),
            "raw_threshold": th / (1.0 - th) if th < 1.0 else None,  # None: infinite
            "detect_seconds": round(sum(run.seconds[det] for run in runs), 3),
            "unscored_rows": sum(run.unscored_rows[det] for run in runs),
        }
    probe = detector_factory()
    summary: dict[str, Any] = {
        "files": len(runs),
        "rows": sum(run.notes["rows"] for run in runs),
        "anomalous_rows": int(sum(int(lab.sum()) for lab in labels)),
        "segments": int(sum(len(s) for s in segs)),
        "segments_starting_in_warmup": starting,
        "segments_hidden_by_warmup": undetectable,
        "anomalous_rows_in_warmup": anomalous_in_warmup,
        "warmup_rows": sum(int(run.warmup.sum()) for run in runs),
        "wall_seconds": round(wall, 3),
        "workers": workers,
        "model": {"name": probe.name, "params": probe.params()},
        "config": config.to_dict(),
        "detectors": detectors,
        "data": {run.name: {**run.notes, "seconds": {k: round(v, 3) for k, v in
                                                      run.seconds.items()}} for run in runs},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "kpi_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
