"""What the decision ledger costs the scoring path, side by side with the ledger off.

Each worker process takes chunks of the synthetic fleet of ``bench/models.py`` (hourly, 720
points, peer groups of 1-8 pods, 8% level shifts and 8% spiky series, so a realistic share of
the series make decisions) and runs every chunk twice, in alternating order:

* **off**: ``replay_partition`` (fit on 672 points, score the last 48: the goal's 720 points,
  the engine's own replay function, as ``bench/models.py`` measures the models);
* **on**: the same with the ledger: the fit observer (state copy at each fit, state digests of
  flagged series), the decision records (input digests per placement group, output digests)
  and their append to a store's ledger (hash chain, Merkle root, Ed25519 checkpoint, one Delta
  commit per chunk).

CPU seconds (``getrusage`` of the worker) are summed per arm; the ratio on/off is the cost.

    .venv/bin/python bench/ledger.py --n 100000 --chunk 50000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import models as bm  # bench/models.py: the synthetic fleet


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _init(root: str) -> None:
    import numba

    numba.set_num_threads(1)
    _run(*bm.synthetic(0, 64, 0), ledger=True, root=root, tenant="warmup")  # compile, untimed


def _run(values: np.ndarray, labels: list[dict[str, str]], *, ledger: bool, root: str,
         tenant: str) -> dict[str, Any]:
    from vigil.batch import SeriesBatch
    from vigil.engine.replay import ReplayConfig, replay_partition
    from vigil.ledger.capture import FitObserver, LedgerSpec, Window, partition_entries
    from vigil.ledger.chain import append
    from vigil.models.defaults import default_factory
    from vigil.series import series_id
    from vigil.store import Store

    ids = np.array([series_id(lab) for lab in labels], dtype=np.int64)
    order = np.argsort(ids)
    batch = SeriesBatch(ids[order], bm.START_MS, bm.HOUR_MS, values[order],
                        [labels[i] for i in order])
    cfg = ReplayConfig(warmup_steps=bm.FIT, refit_every_steps=10**9, fit_window_steps=bm.FIT)
    factory = default_factory()
    c0, w0 = _cpu(), time.perf_counter()
    observer = FitObserver() if ledger else None
    scores, _, ex = replay_partition(batch, cfg, factory, None, None, None, observer)
    c1 = _cpu()
    n_dec = 0
    if observer is not None:
        window = Window(tenant, batch.start, batch.start + bm.T * bm.HOUR_MS, bm.HOUR_MS, 0, 3,
                        False, cfg)
        entries = partition_entries(LedgerSpec("run-bench", "backtest"), window, batch,
                                    batch.values, None, scores, ex, observer, factory)
        append(Store(root), tenant, entries)
        n_dec = len(entries)
    return {"cpu": _cpu() - c0, "score_cpu": c1 - c0, "wall": time.perf_counter() - w0,
            "decisions": n_dec}


def run_chunk(first: int, stop: int, seed: int, root: str, on_first: bool) -> dict[str, Any]:
    values, labels = bm.synthetic(first, stop, seed)
    tenant = f"w{os.getpid()}"
    out: dict[str, Any] = {"n": stop - first}
    for arm in (("on", "off") if on_first else ("off", "on")):
        out[arm] = _run(values, labels, ledger=arm == "on", root=root, tenant=tenant)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    import multiprocessing

    with tempfile.TemporaryDirectory(prefix="vigil-bench-ledger-") as root:
        chunks = [(a, min(a + args.chunk, args.n)) for a in range(0, args.n, args.chunk)]
        t0 = time.perf_counter()
        results = []
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init,
                                 initargs=(root,)) as pool:
            futs = [pool.submit(run_chunk, a, b, args.seed, root, i % 2 == 0)
                    for i, (a, b) in enumerate(chunks)]
            for f in as_completed(futs):
                results.append(f.result())
                print(f"  chunk done ({len(results)}/{len(chunks)})", file=sys.stderr)
        wall = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in Path(root).rglob("*") if f.is_file()
                   and "/tables/ledger" in str(f))
    n = sum(r["n"] for r in results)
    off = sum(r["off"]["cpu"] for r in results)
    on = sum(r["on"]["cpu"] for r in results)
    on_score = sum(r["on"]["score_cpu"] for r in results)
    dec = sum(r["on"]["decisions"] for r in results)
    summary = {
        "n_series": n, "chunk": args.chunk, "workers": args.workers,
        "off_cpu_s": off, "on_cpu_s": on, "on_replay_cpu_s": on_score,
        "on_records_and_append_cpu_s": on - on_score,
        "off_cpu_ms_per_series": 1000 * off / n, "on_cpu_ms_per_series": 1000 * on / n,
        "cpu_ratio_on_off": on / off, "throughput_drop_pct": 100 * (1 - off / on),
        "decisions": dec, "ledger_bytes": size, "wall_s_both_arms": wall,
    }
    print(f"ledger cost at N={n:,} series (fit 672 + score 48 points, {args.workers} workers, "
          f"chunks of {args.chunk:,}):")
    print(f"  ledger off: {off:9.1f} CPU-s  {summary['off_cpu_ms_per_series']:.3f} "
          "CPU-ms/series")
    print(f"  ledger on : {on:9.1f} CPU-s  {summary['on_cpu_ms_per_series']:.3f} CPU-ms/series"
          f"  (replay with observer {on_score:.1f} s, records + append {on - on_score:.1f} s)")
    print(f"  ratio on/off {on / off:.4f}: scoring throughput {summary['throughput_drop_pct']:.2f}"
          f"% lower with the ledger (goal: at most 10%)")
    print(f"  {dec:,} decisions recorded ({dec / n:.3f} per series), ledger tables "
          f"{size / 2**20:.1f} MiB; both arms {wall:.0f} s wall")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
