"""M4 Hourly benchmark: 414 series, 48 steps ahead, seasonality 24.

Metrics follow the competition's definitions:

* sMAPE of a series = mean over the horizon of ``200 |y - f| / (|y| + |f|)``;
* MASE of a series = mean ``|y - f|`` over the horizon divided by the in-sample MAE of the
  seasonal naive forecast (lag 24);
* OWA = mean of ``sMAPE / sMAPE_Naive2`` and ``MASE / MASE_Naive2`` where each term is the
  corpus-level average over the 414 series.

Naive2 is the naive forecast of the seasonally adjusted series: when the M4 seasonality test
passes (|acf(24)| above ``1.645 / sqrt(n) * sqrt(1 + 2 * sum_{k<24} acf(k)^2)``, series at least
three seasons long), the seasonal indices of a classical multiplicative decomposition (centred
2x24 moving average, per-position mean of the ratios, normalised to mean 1) are divided out,
the last adjusted value is repeated and the indices multiplied back.

M4 series carry no timestamps.  The benchmark builds one :class:`SeriesBatch` with a synthetic
hourly grid starting at the epoch and **right-aligns** every series (shorter series are
NaN-padded at the front), so all series end at the same column and the forecast origin is shared;
models handle leading NaN as "no data yet".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vigil.batch import SeriesBatch

HORIZON = 48
SEASON = 24
HOUR_MS = 3_600_000
TCRIT = 1.645


@dataclass(frozen=True)
class M4Data:
    names: list[str]
    train: np.ndarray  # [n, T] right-aligned, NaN-padded at the front
    test: np.ndarray  # [n, HORIZON]
    lengths: np.ndarray  # int64 [n] observed training length

    def batch(self) -> SeriesBatch:
        ids = np.arange(len(self.names), dtype=np.int64)
        labels = [{"__name__": "m4_hourly", "series": name} for name in self.names]
        return SeriesBatch(ids, 0, HOUR_MS, self.train, labels)


def _read_wide(path: Path) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(
            f"M4 file {path} not found: expected Hourly-train.csv and Hourly-test.csv from the "
            "M4 competition in the data directory"
        )
    frame = pd.read_csv(path)
    names = [str(x) for x in frame.iloc[:, 0]]
    return names, frame.iloc[:, 1:].to_numpy(dtype=np.float64)


def load_m4_hourly(data_dir: Path) -> M4Data:
    """Read the wide, end-padded M4 Hourly CSVs into right-aligned arrays."""
    names, raw = _read_wide(Path(data_dir) / "Hourly-train.csv")
    test_names, test = _read_wide(Path(data_dir) / "Hourly-test.csv")
    if names != test_names:
        raise ValueError("Hourly-train.csv and Hourly-test.csv list different series")
    if test.shape[1] < HORIZON or np.isnan(test[:, :HORIZON]).any():
        raise ValueError(f"Hourly-test.csv must hold {HORIZON} values for every series")
    lengths = (~np.isnan(raw)).sum(axis=1).astype(np.int64)
    width = int(lengths.max())
    train = np.full((raw.shape[0], width), np.nan)
    cols = np.arange(width)
    # value j of series i goes to column width - length_i + j
    src = cols[None, :] - (width - lengths)[:, None]
    valid = src >= 0
    rows = np.broadcast_to(np.arange(raw.shape[0])[:, None], src.shape)
    train[valid] = raw[rows[valid], src[valid]]
    return M4Data(names, train, test[:, :HORIZON], lengths)


def _left_dense(
    train: np.ndarray, lengths: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(lengths == length)
    return rows, train[rows, train.shape[1] - length :]


# ---------------------------------------------------------------- metrics


def smape(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Per-series sMAPE (percent)."""
    denom = np.abs(actual) + np.abs(forecast)
    ratio = np.where(denom > 0, 2.0 * np.abs(actual - forecast) / np.where(denom > 0, denom, 1), 0)
    return 100.0 * ratio.mean(axis=1)


def seasonal_naive_mae(train: np.ndarray, season: int = SEASON) -> np.ndarray:
    """In-sample MAE of the lag-``season`` naive forecast per row (NaN-padded rows allowed)."""
    diff = np.abs(train[:, season:] - train[:, :-season])
    return np.nanmean(diff, axis=1)


def mase(
    actual: np.ndarray, forecast: np.ndarray, train: np.ndarray, season: int = SEASON
) -> np.ndarray:
    return np.abs(actual - forecast).mean(axis=1) / seasonal_naive_mae(train, season)


def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations 1..max_lag of each row (dense rows) -> [n, max_lag]."""
    xc = x - x.mean(axis=1, keepdims=True)
    denom = (xc * xc).sum(axis=1)
    out = np.empty((x.shape[0], max_lag))
    for k in range(1, max_lag + 1):
        out[:, k - 1] = (xc[:, k:] * xc[:, :-k]).sum(axis=1)
    return out / np.where(denom > 0, denom, 1.0)[:, None]


def seasonality_test(x: np.ndarray, season: int = SEASON) -> np.ndarray:
    """The M4 90% autocorrelation test on dense rows ``x`` [n, L] -> bool [n]."""
    n, length = x.shape
    if length < 3 * season:
        return np.zeros(n, dtype=bool)
    acf = _acf(x, season)
    var = 1.0 + 2.0 * (acf[:, : season - 1] ** 2).sum(axis=1)
    limit = TCRIT / np.sqrt(length) * np.sqrt(var)
    return np.abs(acf[:, season - 1]) > limit


def seasonal_indices(x: np.ndarray, season: int = SEASON) -> np.ndarray:
    """Classical multiplicative decomposition indices [n, season] of dense rows ``x``.

    Index ``k`` belongs to the positions ``t`` with ``t % season == k`` (0-based from the row's
    first value); indices have mean 1.
    """
    n, length = x.shape
    if season % 2 == 0:
        w = np.r_[0.5, np.ones(season - 1), 0.5] / season
    else:
        w = np.ones(season) / season
    half = len(w) // 2
    trend = np.full((n, length), np.nan)
    acc = np.zeros((n, length - 2 * half))
    for j, wj in enumerate(w):
        acc += wj * x[:, j : length - 2 * half + j]
    trend[:, half : length - half] = acc
    ratio = x / trend
    pos = np.arange(length) % season
    sums = np.zeros((n, season))
    counts = np.zeros(season)
    ok = ~np.isnan(ratio[0])
    for k in range(season):
        cols = (pos == k) & ok
        sums[:, k] = ratio[:, cols].sum(axis=1)
        counts[k] = cols.sum()
    figure = sums / counts
    return figure / figure.mean(axis=1, keepdims=True)


def naive2(train: np.ndarray, lengths: np.ndarray, horizon: int = HORIZON) -> np.ndarray:
    """Naive2 forecasts [n, horizon] for right-aligned rows (grouped by length)."""
    out = np.empty((train.shape[0], horizon))
    for length in np.unique(lengths):
        rows, x = _left_dense(train, lengths, int(length))
        seasonal = seasonality_test(x)
        si = np.ones((len(rows), SEASON))
        if seasonal.any():
            si[seasonal] = seasonal_indices(x[seasonal])
        last_pos = (int(length) - 1) % SEASON
        last = x[:, -1] / si[:, last_pos]
        future_pos = (int(length) + np.arange(horizon)) % SEASON
        out[rows] = last[:, None] * si[:, future_pos]
    return out


def seasonal_naive(train: np.ndarray, horizon: int = HORIZON) -> np.ndarray:
    """Repeat the last season of right-aligned rows."""
    last = train[:, -SEASON:]
    return last[:, np.arange(horizon) % SEASON]


# ---------------------------------------------------------------- evaluation


def evaluate(data: M4Data, forecast: np.ndarray) -> dict[str, float]:
    """sMAPE, MASE and OWA of ``forecast`` [n, HORIZON] against the test set."""
    if forecast.shape != data.test.shape:
        raise ValueError(f"forecast has shape {forecast.shape}: expected {data.test.shape}")
    if not np.isfinite(forecast).all():
        raise ValueError(
            f"forecast holds {int((~np.isfinite(forecast)).sum())} non-finite values: "
            "every series needs a finite forecast"
        )
    ref = naive2(data.train, data.lengths)
    s_ref = float(smape(data.test, ref).mean())
    m_ref = float(mase(data.test, ref, data.train).mean())
    s = float(smape(data.test, forecast).mean())
    m = float(mase(data.test, forecast, data.train).mean())
    return {
        "smape": s,
        "mase": m,
        "owa": 0.5 * (s / s_ref + m / m_ref),
        "smape_naive2": s_ref,
        "mase_naive2": m_ref,
    }


def default_forecaster(batch: SeriesBatch, horizon: int) -> np.ndarray:
    """Median forecast [n, horizon] of the engine's default model,
    :class:`vigil.models.defaults.FleetDetector` (its forecasts are its per-series ensemble's;
    the peer model does not forecast)."""
    from vigil.models.defaults import default_factory

    return default_factory()().fit(batch).forecast(horizon, (0.5,))[:, :, 0]


def run_m4(
    data_dir: Path,
    forecaster: Callable[[SeriesBatch, int], np.ndarray] | None = None,
    *,
    verbose: bool = True,
) -> dict[str, float]:
    """Forecast M4 Hourly with ``forecaster`` (default: the engine's default model) and score it.

    Returns ``smape``, ``mase``, ``owa``, the Naive2 references, ``n_series`` and ``seconds``
    (wall time of fit + forecast).
    """
    data = load_m4_hourly(Path(data_dir))
    fn = default_forecaster if forecaster is None else forecaster
    t0 = time.perf_counter()
    fc = np.asarray(fn(data.batch(), HORIZON), dtype=np.float64)
    seconds = time.perf_counter() - t0
    result = evaluate(data, fc)
    result["n_series"] = float(len(data.names))
    result["seconds"] = seconds
    if verbose:
        print(
            f"M4 Hourly ({len(data.names)} series, h={HORIZON}): sMAPE {result['smape']:.3f}  "
            f"MASE {result['mase']:.3f}  OWA {result['owa']:.3f}  "
            f"(Naive2 sMAPE {result['smape_naive2']:.3f}, MASE {result['mase_naive2']:.3f}; "
            f"{seconds:.2f} s)"
        )
    return result
