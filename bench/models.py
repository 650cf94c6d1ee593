"""Model speed and accuracy benchmark: the default detector beside its peers.

Synthetic hourly series x 720 points (a realistic fleet mix, deterministic seed; series ``i`` is
the same whatever the chunking).  Every model is **fitted on the first 672 points, forecasts the
last 48** (median, for sMAPE/MASE) and then **scores the last 48 causally**; "fit+score" CPU and
wall exclude the forecast and the data generation, which are reported apart.

* ``vigil``: the engine default :class:`vigil.models.defaults.FleetDetector` (Ensemble +
  PeerModel), chunks of ``--chunk`` series on a pool of ``--workers`` processes (numba at one
  thread each), so memory is bounded by ``workers x chunk``;
* ``baseline``: a plain numpy seasonal median (hour-of-day median of the last 7 days, MAD scale),
  the same chunked pool;
* ``mstl`` / ``autoets``: statsforecast ``MSTL(season_length=[24, 168])`` and
  ``AutoETS(season_length=24)``, ``n_jobs=2``, timed as ``forecast(h=48, level=[95])`` (fit +
  48-step bands) on the first ``--peer-n`` series only (NaN gaps linearly interpolated: they take
  no NaN); their per-series figures are **extrapolated** to larger N.

CPU: ``resource.getrusage`` user+system (the fit+score phase per chunk in each worker; the whole
run as self + children).  Peak RSS: ``ru_maxrss`` self + children (the children figure is the
largest single child, as the kernel keeps it) and the process tree sampled every 50 ms.

    python bench/models.py                              # 1k and 10k, all peers
    python bench/models.py --n 1000000 --no-peers       # the full run
    python bench/models.py --sf-python /path/to/venv/bin/python   # statsforecast elsewhere
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np

HOUR_MS = 3_600_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
T, FIT, H, SEASON = 720, 672, 48, 24
BLOCK = 500  # series generated per rng stream; chunks are whole blocks
GiB = 2.0**30
METRICS = ("http_requests_per_second", "container_cpu_usage_seconds", "queue_depth",
           "container_memory_working_set_bytes", "http_request_errors_per_second",
           "node_network_receive_bytes_per_second")  # fmt: skip


# ---------------------------------------------------------------- synthetic fleet


def synthetic_block(block: int, seed: int) -> tuple[np.ndarray, list[dict[str, str]]]:
    """Series ``block*BLOCK .. +BLOCK``: values [BLOCK, T] and labels.  Replicas (groups of 1-8
    pods of one service) share level, daily + weekly profile, trend and noise level.  Per series:
    5% constant, 5% low Poisson counts, 8% a level shift, 8% spikes, 10% NaN gaps."""
    rng = np.random.default_rng([seed, block])
    sizes = rng.choice([1, 2, 3, 4, 6, 8], size=BLOCK, p=[0.2, 0.2, 0.2, 0.2, 0.1, 0.1])
    g = np.repeat(np.arange(BLOCK), sizes)[:BLOCK]  # group of each series
    n_g = int(g[-1]) + 1
    t = np.arange(T, dtype=np.float64)
    level = 10.0 ** rng.uniform(0, 5, n_g)
    a_day, a_week = rng.uniform(0, 0.6, n_g), rng.uniform(0, 0.3, n_g)
    phase = rng.uniform(0, 24, n_g)[:, None]
    daily = np.cos(2 * np.pi * (t - phase) / 24) + 0.3 * np.cos(4 * np.pi * (t - phase) / 24)
    weekend = ((t // 24) % 7 >= 5).astype(np.float64)  # 2026-01-01 is a Thursday: close enough
    trend = np.where(rng.random(n_g) < 0.3, rng.uniform(-0.3, 0.5, n_g), 0.0)[:, None] * t / T
    shape = (1 + trend) * (1 + a_day[:, None] * daily / 1.3 - a_week[:, None] * weekend)
    noise = 10.0 ** rng.uniform(-2.5, -0.7, n_g)
    scale = rng.uniform(0.85, 1.15, BLOCK)[:, None] * level[g][:, None]
    x = scale * (shape[g] + noise[g][:, None] * rng.standard_normal((BLOCK, T)))
    kind = rng.random(BLOCK)
    counts = kind < 0.05  # low counts: Poisson with a seasonal mean
    x[counts] = rng.poisson(np.maximum(rng.uniform(0.5, 20, (int(counts.sum()), 1)) *
                                       shape[g[counts]], 0)).astype(np.float64)
    x = np.maximum(x, 0.0)
    shift = (kind >= 0.05) & (kind < 0.13)
    at = rng.integers(100, T - 10, BLOCK)[:, None]
    size = rng.choice([-1.0, 1.0], BLOCK)[:, None] * rng.uniform(0.3, 1.0, (BLOCK, 1)) * scale
    x = np.where(shift[:, None] & (t >= at), np.maximum(x + size, 0.0), x)
    spiky = np.flatnonzero((kind >= 0.13) & (kind < 0.21))
    hit = rng.random((len(spiky), T)) < 0.01
    big = rng.uniform(3, 8, (len(spiky), T)) * scale[spiky] * (a_day[g[spiky]][:, None] + 0.1)
    x[spiky] += np.where(hit, big, 0.0)
    gaps = np.flatnonzero((kind >= 0.21) & (kind < 0.31))
    run_at = rng.integers(0, T, len(gaps))[:, None]
    run_end = run_at + rng.integers(1, 48, len(gaps))[:, None]
    holes = (rng.random((len(gaps), T)) < 0.02) | ((t >= run_at) & (t < run_end))
    x[gaps] = np.where(holes, np.nan, x[gaps])
    const = kind >= 0.95
    x[const] = np.where(rng.random(int(const.sum())) < 0.5, 1.0, np.round(level[g[const]]))[:, None]
    labels = [{"__name__": METRICS[int(g[i]) % len(METRICS)], "namespace": f"ns{block}",
               "service": f"svc{g[i]}", "pod": f"pod{i}"} for i in range(BLOCK)]  # fmt: skip
    return x, labels


def synthetic(first: int, stop: int, seed: int) -> tuple[np.ndarray, list[dict[str, str]]]:
    """Series ``first .. stop-1`` (whole blocks; ``first`` a multiple of BLOCK)."""
    parts = [synthetic_block(b, seed) for b in range(first // BLOCK, -(-stop // BLOCK))]
    values = np.concatenate([p[0] for p in parts])[: stop - first]
    return values, [lab for p in parts for lab in p[1]][: stop - first]


# ---------------------------------------------------------------- accuracy


def accuracy(train: np.ndarray, test: np.ndarray, fc: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-series sMAPE (%) and MASE over the observed test points; NaN where the series has no
    forecast at an observed point (counted by the caller) or, for MASE, a zero naive scale."""
    obs = ~np.isnan(test)
    ok = ~(obs & ~np.isfinite(fc)).any(axis=1)
    err = np.where(obs, np.abs(test - fc), 0.0)
    den = np.abs(test) + np.abs(fc)
    ratio = np.where(obs & (den > 0), 2 * err / np.where(den > 0, den, 1.0), 0.0)
    cnt = np.maximum(obs.sum(axis=1), 1)
    smape = np.where(ok, 100 * ratio.sum(axis=1) / cnt, np.nan)
    naive = np.abs(train[:, SEASON:] - train[:, :-SEASON])
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.nanmean(naive, axis=1) if naive.size else np.full(len(train), np.nan)
        mase = np.where(ok & (scale > 0), err.sum(axis=1) / cnt / scale, np.nan)
    return smape, mase


# ---------------------------------------------------------------- numpy seasonal median


def _nanmedian_last(x: np.ndarray) -> np.ndarray:
    """NaN-ignoring median over the last axis by one sort (NaN sorts last)."""
    s = np.sort(x, axis=-1)
    k = (~np.isnan(s)).sum(axis=-1, keepdims=True)
    lo = np.take_along_axis(s, np.maximum((k - 1) // 2, 0), axis=-1)
    hi = np.take_along_axis(s, np.maximum(k // 2, 0), axis=-1)
    return np.where(k > 0, (lo + hi) / 2, np.nan)[..., 0]


class SeasonalMedian:
    """Hour-of-day median of the last 7 days (the profile) and 1.4826 x MAD of its in-sample
    residuals (the scale); forecast repeats the profile, score is |z| / 4.  Phases assume the
    fit window ends on a day boundary (672 points from midnight)."""

    def fit(self, values: np.ndarray) -> SeasonalMedian:
        week = values[:, -7 * SEASON :].reshape(len(values), 7, SEASON)
        profile = _nanmedian_last(week.transpose(0, 2, 1))
        self.profile_ = np.where(np.isnan(profile), _nanmedian_last(values)[:, None], profile)
        resid = values[:, -7 * SEASON :] - np.tile(self.profile_, 7)
        self.scale_ = 1.4826 * _nanmedian_last(np.abs(resid))
        return self

    def forecast(self, horizon: int) -> np.ndarray:
        return np.tile(self.profile_, -(-horizon // SEASON))[:, :horizon]

    def score(self, values: np.ndarray) -> np.ndarray:
        expected = self.forecast(values.shape[1])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.abs(values - expected) / (4 * self.scale_[:, None])


# ---------------------------------------------------------------- chunk workers


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _vigil_chunk(values: np.ndarray, labels: list[dict[str, str]]) -> tuple[Any, ...]:
    from vigil.batch import SeriesBatch
    from vigil.models.defaults import default_factory

    ids = np.arange(len(values), dtype=np.int64)
    fit_b = SeriesBatch(ids, START_MS, HOUR_MS, values[:, :FIT], labels)
    rest = SeriesBatch(ids, START_MS + FIT * HOUR_MS, HOUR_MS, values[:, FIT:], labels)
    c0, w0 = _cpu(), time.perf_counter()
    model = default_factory()().fit(fit_b)
    c1, w1 = _cpu(), time.perf_counter()
    fc = model.forecast(H, [0.5])[:, :, 0]
    c2, w2 = _cpu(), time.perf_counter()
    model.score(rest)
    c3, w3 = _cpu(), time.perf_counter()
    return fc, c1 - c0, c3 - c2, c2 - c1, (w1 - w0) + (w3 - w2)


def _baseline_chunk(values: np.ndarray, labels: list[dict[str, str]]) -> tuple[Any, ...]:
    c0, w0 = _cpu(), time.perf_counter()
    model = SeasonalMedian().fit(values[:, :FIT])
    c1, w1 = _cpu(), time.perf_counter()
    fc = model.forecast(H)
    c2, w2 = _cpu(), time.perf_counter()
    model.score(values[:, FIT:])
    c3, w3 = _cpu(), time.perf_counter()
    return fc, c1 - c0, c3 - c2, c2 - c1, (w1 - w0) + (w3 - w2)


CHUNK_RUNNERS: dict[str, Callable[..., tuple[Any, ...]]] = {
    "vigil": _vigil_chunk, "baseline": _baseline_chunk}  # fmt: skip


def _init_worker(model: str, seed: int) -> None:
    import numba

    numba.set_num_threads(1)
    CHUNK_RUNNERS[model](*synthetic(0, 64, seed))  # compile / load every kernel, untimed


def run_chunk(model: str, first: int, stop: int, seed: int) -> dict[str, Any]:
    c0 = _cpu()
    values, labels = synthetic(first, stop, seed)
    gen = _cpu() - c0
    fc, fit, score, forecast, wall = CHUNK_RUNNERS[model](values, labels)
    smape, mase = accuracy(values[:, :FIT], values[:, FIT:], fc)
    return {"first": first, "pid": os.getpid(), "gen": gen, "fit": fit, "score": score,
            "forecast": forecast, "wall": wall, "smape": smape, "mase": mase}  # fmt: skip


# ---------------------------------------------------------------- one measured run


class TreeRss:
    """Samples the RSS of this process plus its descendants every ``period`` s; ``peak`` bytes."""

    def __init__(self, period: float = 0.05) -> None:
        import psutil

        self.proc, self.period, self.peak = psutil.Process(), period, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except Exception:  # a child that just exited has no RSS to count
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(self.period)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _rusage_totals() -> tuple[float, float]:
    """(CPU s, peak RSS GiB) of self + reaped children."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    return cpu, (me.ru_maxrss + kids.ru_maxrss) * 1024 / GiB


def _summary(smape: np.ndarray, mase: np.ndarray, peer_n: int) -> dict[str, Any]:
    def mean(a: np.ndarray) -> float:
        return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")

    return {"smape": mean(smape), "mase": mean(mase), "no_forecast": int(np.isnan(smape).sum()),
            "mase_undefined": int(np.isnan(mase).sum()),
            "smape_subset": mean(smape[:peer_n]), "mase_subset": mean(mase[:peer_n])}  # fmt: skip


def measure_pool(model: str, n: int, chunk: int, workers: int, seed: int, peer_n: int) -> dict:
    chunk = max(BLOCK, min(chunk, -(-n // workers)) // BLOCK * BLOCK)
    bounds = [(a, min(a + chunk, n)) for a in range(0, n, chunk)]
    smape, mase = np.empty(n), np.empty(n)
    per: list[dict[str, Any]] = []
    import multiprocessing as mp

    ctx = mp.get_context("fork")  # workers inherit the imported modules
    with TreeRss() as tree:
        w0 = time.perf_counter()
        with ProcessPoolExecutor(workers, ctx, _init_worker, (model, seed)) as ex:
            w1 = time.perf_counter()
            futs = [ex.submit(run_chunk, model, a, b, seed) for a, b in bounds]
            for fut in as_completed(futs):
                res = fut.result()
                a, s, m = res["first"], res.pop("smape"), res.pop("mase")
                smape[a : a + len(s)], mase[a : a + len(m)] = s, m
                per.append(res)
            w2 = time.perf_counter()
        w3 = time.perf_counter()
    cpu, rss = _rusage_totals()
    by_pid: dict[int, float] = {}
    for r in per:
        by_pid[r["pid"]] = by_pid.get(r["pid"], 0.0) + r["wall"]
    fit, score = sum(r["fit"] for r in per), sum(r["score"] for r in per)
    return {"model": model, "n": n, "chunk": chunk, "workers": workers, "measured_n": n,
            "cpu_ms": 1e3 * (fit + score) / n, "fit_ms": 1e3 * fit / n, "score_ms": 1e3 * score / n,
            "forecast_ms": 1e3 * sum(r["forecast"] for r in per) / n,
            "gen_ms": 1e3 * sum(r["gen"] for r in per) / n,
            "wall": max(by_pid.values()), "wall_tasks": w2 - w1, "wall_all": w3 - w0,
            "cpu_all_s": cpu, "rss": rss, "rss_tree": tree.peak / GiB,
            **_summary(smape, mase, peer_n)}  # fmt: skip


# ---------------------------------------------------------------- statsforecast peers


def measure_statsforecast(model: str, peer_n: int, seed: int, jobs: int) -> dict[str, Any]:
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS

    make = {"mstl": lambda: MSTL(season_length=[24, 168]),
            "autoets": lambda: AutoETS(season_length=SEASON)}[model]  # fmt: skip
    values, _ = synthetic(0, peer_n, seed)
    filled = pd.DataFrame(values[:, :FIT].T).interpolate(limit_direction="both").to_numpy().T
    df = pd.DataFrame({"unique_id": np.repeat(np.arange(peer_n), FIT),
                       "ds": np.tile(np.arange(FIT), peer_n), "y": filled.ravel()})  # fmt: skip
    StatsForecast([make()], freq=1, n_jobs=1).forecast(df=df[df.unique_id < 2], h=H)  # warm-up
    c0, w0 = _rusage_totals()[0], time.perf_counter()
    with TreeRss() as tree:
        out = StatsForecast([make()], freq=1, n_jobs=jobs).forecast(df=df, h=H, level=[95])
    cpu, wall = _rusage_totals()[0] - c0, time.perf_counter() - w0
    col = next(c for c in out.columns if c not in ("unique_id", "ds") and "-" not in c)
    fc = out.sort_values(["unique_id", "ds"])[col].to_numpy().reshape(peer_n, H)
    smape, mase = accuracy(values[:, :FIT], values[:, FIT:], fc)
    return {"model": model, "n": peer_n, "measured_n": peer_n, "workers": jobs,
            "cpu_ms": 1e3 * cpu / peer_n, "wall": wall, "rss": _rusage_totals()[1],
            "rss_tree": tree.peak / GiB, **_summary(smape, mase, peer_n)}  # fmt: skip


# ---------------------------------------------------------------- driver and report


def _child(python: str, args: list[str]) -> dict[str, Any]:
    """One measurement in a fresh process (so peak RSS and children CPU are its own)."""
    one_thread = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                   "NUMBA_NUM_THREADS")}  # each process one thread, as in the pool
    proc = subprocess.run([python, os.path.abspath(__file__), *args], capture_output=True,
                          text=True, check=False, env={**os.environ, **one_thread})  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"measurement {args} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _row(r: dict[str, Any], n: int) -> str:
    extra = r["measured_n"] != n
    wall = n * r["wall"] / r["measured_n"]
    star = "*" if extra else " "
    return (f"{r['model']:<9}{n:>9,}{star}{wall:>10.1f}{r['cpu_ms']:>11.3f}{n / wall:>12,.0f}"
            f"{r['rss']:>8.2f}{r['rss_tree']:>8.2f}{r['smape']:>8.2f}{r['mase']:>7.3f}")


def report(results: list[dict[str, Any]], ns: list[int], peer_n: int) -> None:
    pooled = [r for r in results if "chunk" in r]
    peers = [r for r in results if "chunk" not in r]
    print("\nCPU-ms/ser: vigil and baseline fit 672 + score 48 points (720 in all, the goal's "
          "figure); mstl/autoets fit 672 + forecast 48 with a 95% band")
    print(f"{'model':<9}{'N':>10}{'wall s':>10}{'CPU-ms/ser':>11}{'series/s':>12}"
          f"{'RSS GiB':>8}{'tree':>8}{'sMAPE':>8}{'MASE':>7}")
    for n in ns:
        for r in [*[p for p in pooled if p["n"] == n], *peers]:
            print(_row(r, n))
    if peers:
        print(f"* extrapolated from {peer_n} series (wall and series/s scale linearly; RSS, "
              f"sMAPE and MASE are those of the {peer_n} series)")
    print("wall s: fit+score critical path (pool rows) / fit+forecast(48, 95% band) (statsforecast)"
          ". RSS: ru_maxrss self+children; tree: sampled peak of the process tree.")
    for r in pooled:
        print(f"  {r['model']} N={r['n']:,}: fit {r['fit_ms']:.3f} + score {r['score_ms']:.3f} "
              f"CPU-ms/series; forecast {r['forecast_ms']:.3f}; data generation {r['gen_ms']:.3f}; "
              f"end-to-end {r['wall_all']:.1f} s wall, {r['cpu_all_s']:.1f} CPU-s incl. start-up "
              f"({r['workers']} workers, chunk {r['chunk']:,}); no forecast {r['no_forecast']}, "
              f"MASE undefined (constant) {r['mase_undefined']}")
    print(f"\naccuracy on the same first {peer_n} series (fit 672, forecast 48):")
    for r in [*[p for p in pooled if p["n"] == max(ns)], *peers]:
        print(f"  {r['model']:<9} sMAPE {r['smape_subset']:7.2f}  MASE {r['mase_subset']:6.3f}")
    vig = [p for p in pooled if p["model"] == "vigil" and p["n"] == max(ns)]
    if vig:
        v = vig[0]
        print(f"\nratios at N={v['n']:,} (CPU-ms per series):")
        for r in [p for p in pooled if p["model"] != "vigil" and p["n"] == v["n"]] + peers:
            ratio = r["cpu_ms"] / v["cpu_ms"]
            word = f"{ratio:.1f} times faster" if ratio >= 1 else f"{1 / ratio:.1f} times slower"
            print(f"  Vigil is {word} than {r['model']} per series "
                  f"(sMAPE {v['smape_subset']:.2f} vs {r['smape_subset']:.2f}, "
                  f"MASE {v['mase_subset']:.3f} vs {r['mase_subset']:.3f} on {peer_n} series)")
        proj = 1e6 * v["cpu_ms"] / 1e3 / v["workers"]
        what = (f"the measured wall (critical path) was {v['wall']:.0f} s, end-to-end "
                f"{v['wall_all']:.0f} s" if v["n"] >= 1_000_000 else
                f"a PROJECTION from N={v['n']:,}, not a measurement")  # fmt: skip
        print(f"  1M series x 720: fit+score CPU / {v['workers']} cores = ~{proj:.0f} s (the wall "
              f"on uncontended cores, inferred); {what} (goal: < 300 s wall, <= 0.5 "
              "CPU-ms/series, peak < 12 GiB)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10_000], help="series counts")
    ap.add_argument("--models", nargs="+", default=["vigil", "baseline"], choices=CHUNK_RUNNERS)
    ap.add_argument("--peers", nargs="+", default=["mstl", "autoets"], choices=["mstl", "autoets"])
    ap.add_argument("--no-peers", action="store_true", help="skip statsforecast")
    ap.add_argument("--peer-n", type=int, default=200, help="series the statsforecast peers run")
    ap.add_argument("--chunk", type=int, default=50_000, help="series per pool task")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sf-python", default=None,
                    help="python with statsforecast installed (default: this one)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--report", default=None, metavar="JSON",
                    help="print the tables of a --json file again (no measurement)")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.peer_n < 1 or a.peer_n > min(a.n) or min(a.n) < 1:
        ap.error(f"--peer-n {a.peer_n} must be between 1 and the smallest --n {min(a.n)}")
    if a.report:
        with open(a.report) as fh:
            saved = json.load(fh)
        report(saved, sorted({r["n"] for r in saved if "chunk" in r}), a.peer_n)
        return
    if a.one:
        model, n = a.one[0], int(a.one[1])
        res = (measure_pool(model, n, a.chunk, a.workers, a.seed, a.peer_n)
               if model in CHUNK_RUNNERS else measure_statsforecast(model, n, a.seed, a.workers))
        print(json.dumps(res))
        return
    sf_python = a.sf_python or sys.executable
    if not a.no_peers and a.sf_python is None and importlib.util.find_spec("statsforecast") is None:
        sys.exit("statsforecast is not importable here: pip install statsforecast (or pass "
                 "--sf-python PATH of a python that has it, or --no-peers)")
    common = ["--chunk", str(a.chunk), "--workers", str(a.workers), "--seed", str(a.seed),
              "--peer-n", str(a.peer_n)]  # fmt: skip
    results = []
    for n in a.n:
        for model in a.models:
            print(f"running {model} N={n:,} ...", file=sys.stderr, flush=True)
            results.append(_child(sys.executable, ["--one", model, str(n), *common]))
    for peer in [] if a.no_peers else a.peers:
        print(f"running {peer} on {a.peer_n} series ...", file=sys.stderr, flush=True)
        results.append(_child(sf_python, ["--one", peer, str(a.peer_n), *common]))
    report(results, a.n, a.peer_n)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
