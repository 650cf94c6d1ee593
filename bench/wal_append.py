"""WAL append throughput with fsync (group commit), and checkpoint throughput.

    .venv/bin/python bench/wal_append.py [--dir DIR] [--seconds 3] [--threads 1 4 16]

Each append is one decoded remote-write request (``--series`` series x ``--per`` samples);
every append returns only after its fsync.  Prints appends/s, samples/s, MB/s and appends
per fsync for each thread count, then the time to checkpoint what was written into a Store.
The directory should be on the disk the service will use (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from vigil.remote import decode_write_request, encode_write_request
from vigil.store import Store
from vigil.wal import Wal


def batch(n_series: int, per: int):  # type: ignore[no-untyped-def]
    labels = [{"__name__": "bench_metric", "pod": f"p{k}", "job": "bench"} for k in range(n_series)]
    series = np.repeat(np.arange(n_series), per)
    ts = 1_700_000_000_000 + np.tile(np.arange(per) * 15_000, n_series)
    vals = np.random.default_rng(0).normal(size=len(series))
    return decode_write_request(encode_write_request(labels, series, ts, vals))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--per", type=int, default=1)
    args = ap.parse_args()
    b = batch(args.series, args.per)
    root = args.dir or Path(tempfile.mkdtemp(prefix="vigil-wal-bench-"))
    print(f"dir {root}; {b.n_samples} samples per append")
    print(f"{'threads':>7} {'appends/s':>10} {'samples/s':>12} {'MB/s':>7} {'appends/fsync':>14}")
    for threads in args.threads:
        wal_dir = root / f"wal-{threads}"
        with Wal(wal_dir) as wal:
            stop = time.perf_counter() + args.seconds
            counts = [0] * threads

            def run(i: int, stop: float = stop, counts: list[int] = counts) -> None:
                while time.perf_counter() < stop:
                    wal.append("bench", b)
                    counts[i] += 1

            t0 = time.perf_counter()
            workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            dt = time.perf_counter() - t0
            st = wal.stats()
            n = sum(counts)
            print(
                f"{threads:>7} {n / dt:>10,.0f} {n * b.n_samples / dt:>12,.0f} "
                f"{st.bytes_written / dt / 1e6:>7.1f} {n / max(st.fsyncs, 1):>14.1f}"
            )
            t0 = time.perf_counter()
            res = wal.checkpoint(Store(root / f"store-{threads}"))
            dt = time.perf_counter() - t0
            print(
                f"        checkpoint: {res.samples:,} samples in {dt:.2f} s "
                f"({res.samples / dt:,.0f} samples/s)"
            )


if __name__ == "__main__":
    main()
