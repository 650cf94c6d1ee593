"""Ingest and batch-load benchmark.

1. ``vigil ingest`` (a subprocess, so its peak RSS is its own) of a simulator output of at least
   10 million samples, side by side with the peer: plain pyarrow reading the same Parquet files
   and writing them to Parquet again (no validation, no series ids, no catalog, no Delta log).
2. Loading 10,000 series x 30 days at 5-minute steps (86.4 M samples) from the store into a dense
   ``SeriesBatch``, side by side with the peer: DuckDB reading the same long table and pandas
   pivoting it to a dense frame.

    python bench/ingest.py [--samples 10e6] [--series 10000] [--days 30] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def child_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20


def bench_ingest(work: Path, samples: float) -> None:
    from vigil.simulate import simulate_fleet

    fleet = work / "fleet"
    # the default fleet has ~2,100 series; days scale it to the requested sample count
    days = max(2, int(np.ceil(samples / (2100 * 288))))
    t0 = time.perf_counter()
    simulate_fleet(fleet, days=days, seed=11)
    files = sorted((fleet / "samples").glob("*.parquet"))
    n = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    size = sum(f.stat().st_size for f in files)
    print(f"simulator: {n:,} samples in {len(files)} files ({size / 2**20:.0f} MiB), "
          f"{time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    out = work / "peer"
    out.mkdir()
    for i, f in enumerate(files):
        pq.write_table(pq.read_table(f), out / f"{i}.parquet", compression="zstd")
    peer_s = time.perf_counter() - t0

    store = work / "store"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vigil.cli", "ingest", "--store", str(store),
                    *map(str, files)], check=True, stdout=subprocess.DEVNULL)
    vigil_s = time.perf_counter() - t0
    print(f"vigil ingest : {n / vigil_s:,.0f} samples/s ({vigil_s:.1f} s), "
          f"peak RSS {child_rss_gib():.2f} GiB (subprocess, includes interpreter start)")
    print(f"peer pyarrow : {n / peer_s:,.0f} samples/s ({peer_s:.1f} s) "
          "(read + rewrite Parquet, no validation)")
    print(f"ratio        : vigil takes {vigil_s / peer_s:.2f}x the peer's time")


def bench_load(work: Path, n_series: int, days: int) -> None:
    import duckdb

    from vigil.series import labels_json, series_id
    from vigil.store import Store

    step = 300_000
    t_steps = days * 288
    start = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    store = Store(work / "load-store")
    labels = [{"__name__": "bench_metric", "series": str(i)} for i in range(n_series)]
    ids = np.array([series_id(ls) for ls in labels], dtype=np.int64)
    catalog = pa.table({"series_id": ids, "labels": [labels_json(ls) for ls in labels]})
    rng = np.random.default_rng(5)
    t0 = time.perf_counter()
    per_day = 288
    for d in range(days):  # one append per day, as a live feed would land
        ts = start + (d * per_day + np.arange(per_day, dtype=np.int64)) * step
        sid = np.repeat(ids, per_day)
        tt = np.tile(ts, n_series)
        store.append("bench", pa.table({"series_id": sid, "timestamp": tt,
                                        "value": rng.normal(size=len(sid))}), catalog)
    print(f"\nwrote {n_series:,} series x {days} days = {n_series * t_steps:,} samples "
          f"in {time.perf_counter() - t0:.1f} s")
    store.compact("bench")

    t0 = time.perf_counter()
    batch = store.load_batch("bench", None, start, start + t_steps * step, step)
    vigil_s = time.perf_counter() - t0
    assert batch.values.shape == (n_series, t_steps)
    print(f"vigil load_batch : {vigil_s:.2f} s -> [{n_series}, {t_steps}] "
          f"({batch.values.nbytes / 2**30:.2f} GiB dense), peak RSS so far {rss_gib():.2f} GiB")
    del batch

    files = [str(p) for p in (work / "load-store").rglob("*.parquet") if "samples" in str(p)]
    t0 = time.perf_counter()
    long = duckdb.sql(
        f"select series_id, timestamp, value from read_parquet({files!r})"
    ).df()
    dense = long.pivot_table(index="series_id", columns="timestamp", values="value",
                             aggfunc="last")
    peer_s = time.perf_counter() - t0
    print(f"peer duckdb+pandas pivot: {peer_s:.2f} s -> {dense.shape}")
    print(f"ratio: vigil takes {vigil_s / peer_s:.2f}x the peer's time")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=float, default=10e6)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vigil-bench-"))
    try:
        if not args.skip_ingest:
            bench_ingest(work, args.samples)
        if not args.skip_load:
            bench_load(work, args.series, args.days)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
