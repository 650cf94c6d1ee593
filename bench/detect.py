"""End-to-end ``vigil detect`` benchmark: the whole command beside its model-only cost and MSTL.

N synthetic hourly series x 720 points (30 days; the fleet of :mod:`bench/models.py`,
``synthetic_block``, deterministic seed: series ``i`` has the same values in every layout and
run) are written into a fresh store and scored by the real command line, in two label layouts:

* ``instance``: one node-exporter job, ``{__name__, job="node", instance="10.a.b.c:9100"}``.
  ``instance`` is left out of the placement key and of the peer groups, so every series of a
  metric is one peer group and the whole tenant one placement group (the case that used to
  blow up: one worker did everything); since the placement groups above
  ``vigil.engine.partition.MAX_PLACEMENT_SERIES`` (16,384) are sharded, N above that spreads;
* ``service``: ``{__name__, site (3), namespace, service, pod}``, services of 1-8 pods (the
  generator's replicas, one site per service), so placement spreads over the 16 partitions.

Metric names are the generator's gauges (no ``_total``/``_count``/``_sum``/``_bucket``: nothing
is turned into a rate or quantile view).  NaN gaps are not written (no sample there).

Per layout and N:

* **load**: ``Store.append`` of the samples and catalog in chunks of 5,000 series, in this
  process (wall and CPU); not part of detect;
* **detect**: ``<venv>/bin/vigil detect --store DIR --tenant bench --workers W`` as a
  subprocess, so it is everything the command does: store reads, placement, the causal replay
  (first fit on the 3-day warm-up = 72 points, then the remaining 648 points scored with a refit
  every 24 points on a trailing window of up to 336 = 14 d), exhaustion forecasts, ledger
  records, the writes of scores / anomalies / exhaustion / cursor, and the insights rebuild.
  Wall: ``time.perf_counter`` around the child.  CPU: ``resource.getrusage(RUSAGE_CHILDREN)``
  user+sys after minus before (the child and the pool workers it reaped).  Peak RSS: the child's
  process tree (RSS summed over the child and its descendants) sampled every 50 ms with psutil;
  without psutil, ``ru_maxrss`` of the largest reaped child (a lower bound, and the maximum over
  every child of this run so far).  e2e CPU-ms/series = detect CPU / N.  The child's process
  group is killed past ``--timeout`` seconds or ``--max-rss-gib`` (default 75% of physical
  memory, so the bench, not the kernel's OOM killer, stops a run that would take the machine);
  such a row reports what it reached and no per-series figure;
* **model-only**: in this process, the same replay ``vigil detect`` runs by default
  (:func:`vigil.engine.replay.replay_partition` with the schedule of the default
  ``BacktestConfig``: fit on the first 72 points, score the other 648, refit every 24 on up to
  336 trailing points, flagged points masked) of :class:`vigil.models.defaults.FleetDetector`
  on the same values and labels, with **no** exhaustion forecasts, I/O, records or insights.
  Rows are ordered by peer group and cut into chunks of at most 5,000 series made of whole peer
  groups (a group larger than that is split, which changes its peer statistics a little but not
  the work).  CPU: ``time.process_time`` around each chunk's replay (numba at one thread, as in
  the pool workers; kernels loaded by an untimed warm-up);
* **MSTL** (once per run, the same for every layout and N): statsforecast
  ``MSTL(season_length=[24, 168])``, ``forecast(h=48, level=[95])``, ``n_jobs=1``, fitted on
  the first 672 points of the first ``--peer-n`` series (NaN gaps linearly interpolated),
  CPU by ``time.process_time`` plus reaped children.  Note the work differs: Vigil scores 648
  points with 27 fits, MSTL fits once and forecasts 48 points.

Ratios: e2e/model = e2e CPU-ms/series over model-only CPU-ms/series (what the command adds
around the models); e2e/MSTL = e2e CPU-ms/series over MSTL CPU-ms/series.  Results go to a
Markdown table and to ``OUT/detect.json``.  The machine load average is printed with each run.

    python bench/detect.py                               # N=20,000, both layouts, MSTL
    python bench/detect.py --n 2000 20000 --keep --out /tmp/vd
    python bench/detect.py --layouts service --no-peers
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models as M  # bench/models.py: the synthetic fleet

TENANT = "bench"
LAYOUTS = ("instance", "service")
APPEND_SERIES = 5_000  # series per Store.append
MODEL_CHUNK = 5_000  # at most this many series per model-only replay
GiB = 2.0**30


# ---------------------------------------------------------------- data and layouts


def fleet(n: int, seed: int) -> tuple[np.ndarray, list[dict[str, str]], list[int]]:
    """Values [n, 720], the generator's labels and each series' block-local group."""
    values, labels = M.synthetic(0, n, seed)
    groups = [int(lab["service"][3:]) for lab in labels]
    return values, labels, groups


def layout_labels(layout: str, base: list[dict[str, str]], groups: list[int]) -> list[dict]:
    out = []
    for i, (lab, g) in enumerate(zip(base, groups, strict=True)):
        name = lab["__name__"]
        if layout == "instance":
            ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:9100"
            out.append({"__name__": name, "job": "node", "instance": ip})
        else:
            block = i // M.BLOCK
            svc = f"svc{block}-{g}"
            out.append({"__name__": name, "site": f"site{(block * 7 + g) % 3}",
                        "namespace": lab["namespace"], "service": svc,
                        "pod": f"{svc}-{i}"})  # fmt: skip
    return out


def load_store(root: Path, values: np.ndarray, labels: list[dict[str, str]]) -> dict[str, float]:
    """Write the fleet into a fresh store; wall, CPU, rows and bytes on disk."""
    import pyarrow as pa

    from vigil.series import labels_json, series_id
    from vigil.store import Store

    w0, c0 = time.perf_counter(), time.process_time()
    st = Store(root)
    rows = 0
    t_ms = M.START_MS + M.HOUR_MS * np.arange(values.shape[1], dtype=np.int64)
    for a in range(0, len(values), APPEND_SERIES):
        part, labs = values[a : a + APPEND_SERIES], labels[a : a + APPEND_SERIES]
        ids = np.array([series_id(lab) for lab in labs], dtype=np.int64)
        r, c = np.nonzero(~np.isnan(part))
        samples = pa.table({"series_id": pa.array(ids[r]), "timestamp": pa.array(t_ms[c]),
                            "value": pa.array(part[r, c])})  # fmt: skip
        catalog = pa.table({"series_id": pa.array(ids),
                            "labels": pa.array([labels_json(lab) for lab in labs])})
        rows += st.append(TENANT, samples, catalog)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    return {"load_wall_s": wall, "load_cpu_s": cpu, "rows": rows, "store_bytes": size}


# ---------------------------------------------------------------- vigil detect


class ChildTreeRss:
    """Peak RSS (bytes) of process ``pid`` plus its descendants, sampled every ``period`` s;
    over ``limit`` bytes (0: none) the child's process group is killed (``self.killed``)."""

    def __init__(self, pid: int, limit: float = 0, period: float = 0.05) -> None:
        import psutil

        self.proc, self.period, self.peak = psutil.Process(pid), period, 0
        self.pid, self.limit, self.killed = pid, limit, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
            except Exception:  # the child has exited
                return
            for p in procs:
                try:
                    total += p.memory_info().rss
                except Exception:  # a process that just exited has no RSS to count
                    continue
            self.peak = max(self.peak, total)
            if self.limit and total > self.limit:
                self.killed = True
                os.killpg(self.pid, signal.SIGKILL)  # before the kernel's OOM killer picks
                return
            self._stop.wait(self.period)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _children_cpu() -> tuple[float, int]:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime, r.ru_maxrss


def run_detect(root: Path, workers: int, timeout: float | None,
               max_rss: float) -> dict[str, Any]:
    vigil = Path(sys.executable).parent / "vigil"
    cmd = [str(vigil), "detect", "--store", str(root), "--tenant", TENANT,
           "--workers", str(workers)]  # fmt: skip
    c0, _ = _children_cpu()
    w0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        sampler: ChildTreeRss | None = ChildTreeRss(proc.pid, max_rss)
    except ImportError:
        sampler = None
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)  # the child's own session: it and its workers
        out, err = proc.communicate()
    wall = time.perf_counter() - w0
    peak = sampler.stop() if sampler else 0
    c1, maxrss = _children_cpu()
    killed = ("timeout" if timed_out else f"RSS over {max_rss / GiB:.1f} GiB"
              if sampler and sampler.killed else None)
    res: dict[str, Any] = {"command": " ".join(cmd), "exit": proc.returncode,
                           "killed_by_bench": killed, "detect_wall_s": wall,
                           "detect_cpu_s": c1 - c0}  # fmt: skip
    if sampler:
        res["peak_rss_gib"], res["rss_method"] = peak / GiB, "psutil tree, 50 ms"
    else:
        res["peak_rss_gib"], res["rss_method"] = maxrss * 1024 / GiB, "ru_maxrss largest child"
    try:
        res["summary"] = json.loads(out)
    except ValueError:
        res["summary"] = out.strip()
    if proc.returncode != 0:
        res["stderr_tail"] = err[-3000:]
    return res


# ---------------------------------------------------------------- model-only


def _model_chunks(labels: list[dict[str, str]]) -> list[np.ndarray]:
    """Row indices ordered by peer group, packed into chunks of at most MODEL_CHUNK rows of
    whole groups (a group larger than MODEL_CHUNK is split)."""
    from vigil.models.peer import DEFAULT_GROUP_BY, peer_groups

    group = peer_groups(labels, DEFAULT_GROUP_BY)
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1], True])
    chunks, cur = [], 0
    for a, b in itertools.pairwise(bounds):
        if b - cur > MODEL_CHUNK and a > cur:  # close the chunk before this group
            chunks.append(order[cur:a])
            cur = a
        while b - cur > MODEL_CHUNK:  # a group larger than a chunk
            chunks.append(order[cur : cur + MODEL_CHUNK])
            cur += MODEL_CHUNK
    if cur < len(order):
        chunks.append(order[cur:])
    return chunks


def _replay_config() -> Any:
    from vigil.engine.backtest import BacktestConfig, replay_config

    return replay_config(BacktestConfig(forecast_every="0"), M.HOUR_MS)


def warm_up(seed: int) -> None:
    """Load / compile every kernel the replay uses (untimed)."""
    import numba

    numba.set_num_threads(1)
    values, labels, groups = fleet(64, seed)
    for layout in LAYOUTS:
        model_only(values, layout_labels(layout, labels, groups))


def model_only(values: np.ndarray, labels: list[dict[str, str]]) -> dict[str, Any]:
    from vigil.batch import SeriesBatch
    from vigil.engine.replay import replay_partition
    from vigil.models.defaults import default_factory

    config, factory = _replay_config(), default_factory()
    cpu, wall = 0.0, 0.0
    chunks = _model_chunks(labels)
    for idx in chunks:
        batch = SeriesBatch(np.arange(len(idx), dtype=np.int64), M.START_MS, M.HOUR_MS,
                            np.ascontiguousarray(values[idx]), [labels[i] for i in idx])
        c0, w0 = time.process_time(), time.perf_counter()
        replay_partition(batch, config, factory)
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
    return {"model_cpu_s": cpu, "model_wall_s": wall, "model_chunks": len(chunks),
            "model_cpu_ms": 1e3 * cpu / len(values)}  # fmt: skip


# ---------------------------------------------------------------- MSTL


def mstl(peer_n: int, seed: int) -> dict[str, Any]:
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL

    values, _ = M.synthetic(0, peer_n, seed)
    fit = M.FIT
    filled = pd.DataFrame(values[:, :fit].T).interpolate(limit_direction="both").to_numpy().T
    df = pd.DataFrame({"unique_id": np.repeat(np.arange(peer_n), fit),
                       "ds": np.tile(np.arange(fit), peer_n), "y": filled.ravel()})  # fmt: skip

    def run(frame: pd.DataFrame) -> pd.DataFrame:
        sf = StatsForecast([MSTL(season_length=[24, 168])], freq=1, n_jobs=1)
        return sf.forecast(df=frame, h=M.H, level=[95])

    run(df[df.unique_id < 2])  # warm-up (numba kernels), untimed
    k0, c0, w0 = _children_cpu()[0], time.process_time(), time.perf_counter()
    run(df)
    cpu = time.process_time() - c0 + _children_cpu()[0] - k0
    return {"mstl_n": peer_n, "mstl_cpu_s": cpu, "mstl_wall_s": time.perf_counter() - w0,
            "mstl_cpu_ms": 1e3 * cpu / peer_n}  # fmt: skip


# ---------------------------------------------------------------- driver and report


def _default_max_rss() -> float:
    try:
        import psutil
    except ImportError:
        return 0.0
    return round(0.75 * psutil.virtual_memory().total / GiB, 1)


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None or x != x else format(x, spec)


def table(rows: list[dict[str, Any]], peer: dict[str, Any] | None) -> str:
    head = ("layout", "N", "load s", "detect wall s", "detect CPU s", "e2e CPU-ms/series",
            "peak RSS GiB", "model-only CPU-ms/series", "e2e/model", "MSTL CPU-ms/series",
            "e2e/MSTL")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    m = peer["mstl_cpu_ms"] if peer else None
    for r in rows:
        ok = r["exit"] == 0
        e2e = r["e2e_cpu_ms"] if ok else None
        mo = r.get("model_cpu_ms")
        cells = (r["layout"], f"{r['n']:,}", _fmt(r["load_wall_s"], ".1f"),
                 _fmt(r["detect_wall_s"], ".1f") + ("" if ok else
                                                    f" (killed: {r['killed_by_bench']})"
                                                    if r["killed_by_bench"] else
                                                    f" (exit {r['exit']})"),
                 _fmt(r["detect_cpu_s"], ".1f"), _fmt(e2e, ".3f"), _fmt(r["peak_rss_gib"], ".2f"),
                 _fmt(mo, ".3f"), _fmt(e2e / mo if e2e and mo else None, ".2f"),
                 _fmt(m, ".2f"), _fmt(e2e / m if e2e and m else None, ".3f"))  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])  # fmt: skip
    ap.add_argument("--n", type=int, nargs="+", default=[20_000], help="series counts")
    ap.add_argument("--layouts", default=",".join(LAYOUTS),
                    help="comma-separated: instance, service (default both)")
    ap.add_argument("--workers", type=int, default=2, help="vigil detect --workers")
    ap.add_argument("--peer-n", type=int, default=200, help="series MSTL runs on")
    ap.add_argument("--no-peers", action="store_true", help="skip MSTL")
    ap.add_argument("--no-model", action="store_true", help="skip the model-only figure")
    ap.add_argument("--out", type=Path, default=None,
                    help="work directory (default: a new temp dir); detect.json is written here")
    ap.add_argument("--keep", action="store_true",
                    help="keep the stores under --out (default: each is deleted after its run)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="kill vigil detect after this many seconds (default: no limit)")
    ap.add_argument("--max-rss-gib", type=float, default=_default_max_rss(),
                    help="kill vigil detect when its process tree holds more than this "
                    "(default: 75%% of physical memory; 0: no limit)")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    layouts = [s.strip() for s in a.layouts.split(",") if s.strip()]
    bad = [s for s in layouts if s not in LAYOUTS]
    if bad or not layouts:
        ap.error(f"--layouts {a.layouts!r}: expected a comma-separated subset of {LAYOUTS}")
    if min(a.n) < 1 or a.workers < 1 or a.peer_n < 1:
        ap.error("--n, --workers and --peer-n must be positive")
    out = a.out or Path(tempfile.mkdtemp(prefix="vigil-bench-detect-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"work dir {out}; {os.cpu_count()} CPUs; load average {_load()}", flush=True)

    peer: dict[str, Any] | None = None
    if a.no_peers:
        print("MSTL: skipped (--no-peers)")
    else:
        try:
            import statsforecast  # noqa: F401
        except ImportError:
            print("MSTL: skipped, statsforecast is not importable "
                  "(pip install -e '.[bench]')")  # fmt: skip
        else:
            peer = mstl(a.peer_n, a.seed)
            print(f"MSTL on {a.peer_n} series: {peer['mstl_cpu_ms']:.2f} CPU-ms/series "
                  f"({peer['mstl_wall_s']:.1f} s wall)", flush=True)
    if not a.no_model:
        warm_up(a.seed)

    rows: list[dict[str, Any]] = []
    for n in a.n:
        values, base, groups = fleet(n, a.seed)
        for layout in layouts:
            labels = layout_labels(layout, base, groups)
            root = out / f"store-{layout}-{n}"
            if root.exists():
                shutil.rmtree(root)
            row: dict[str, Any] = {"layout": layout, "n": n, "points": values.shape[1],
                                   "workers": a.workers, "load_before": _load()}  # fmt: skip
            row.update(load_store(root, values, labels))
            print(f"[{layout} N={n:,}] loaded {row['rows']:,} samples in "
                  f"{row['load_wall_s']:.1f} s ({row['store_bytes'] / 2**20:.0f} MiB); "
                  f"running vigil detect ...", flush=True)  # fmt: skip
            row.update(run_detect(root, a.workers, a.timeout, a.max_rss_gib * GiB))
            row["e2e_cpu_ms"] = 1e3 * row["detect_cpu_s"] / n
            summary = row["summary"]
            why = row["killed_by_bench"]
            print(f"[{layout} N={n:,}] detect exit {row['exit']}"
                  f"{f' (killed: {why})' if why else ''}: {row['detect_wall_s']:.1f} s "
                  f"wall, {row['detect_cpu_s']:.1f} CPU-s, peak RSS {row['peak_rss_gib']:.2f} GiB"
                  f"; {json.dumps(summary) if isinstance(summary, dict) else summary[-500:]}",
                  flush=True)  # fmt: skip
            if row["exit"] != 0:
                print(row.get("stderr_tail", ""), flush=True)
            if not a.no_model:
                row.update(model_only(values, labels))
                print(f"[{layout} N={n:,}] model-only {row['model_cpu_ms']:.3f} CPU-ms/series "
                      f"({row['model_chunks']} chunks, {row['model_wall_s']:.1f} s)", flush=True)
            row["load_after"] = _load()
            rows.append(row)
            if not a.keep:
                shutil.rmtree(root, ignore_errors=True)
            with open(out / "detect.json", "w") as fh:
                json.dump({"rows": rows, "mstl": peer, "seed": a.seed,
                           "cpus": os.cpu_count()}, fh, indent=1)  # fmt: skip

    print("\nvigil detect end to end (720 hourly points: fit on 72, score 648, refit every 24 on "
          "<= 336) vs model-only (the same replay in process, no I/O / forecasts / records / "
          f"insights); MSTL: fit 672 + forecast 48 with a 95% band on {a.peer_n} series, n_jobs=1"
          "\n")
    print(table(rows, peer))
    print("\nload averages (1/5/15 min) before -> after each run: " + "; ".join(
        f"{r['layout']} {r['n']:,}: {r['load_before']} -> {r['load_after']}" for r in rows))
    print(f"rows written to {out / 'detect.json'}")
    if any(r["exit"] != 0 for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
