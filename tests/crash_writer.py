"""Child process for tests/test_store_crash.py: appends batches until it is killed.

Usage::

    python tests/crash_writer.py loop ROOT TENANT FIRST LAST
        append batches FIRST..LAST-1; after each ``append`` returns, print its number
        (flushed); every 5th batch also run ``compact`` (printing ``c<number>``)
    python tests/crash_writer.py halfway ROOT TENANT BATCH WHAT
        start the operation of batch BATCH and SIGKILL itself right after its first Delta
        commit, before HEAD is replaced: WHAT is ``append`` (samples committed, catalog and
        HEAD not) or ``compact`` (one partition rewritten, HEAD not)

``make_batch`` is deterministic, so the test recomputes what each batch wrote.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pyarrow as pa

from vigil.series import canonical_labels, labels_json, series_id
from vigil.store import Store
from vigil.store import catalog as cat
from vigil.store import samples as sm
from vigil.store.layout import SAMPLES
from vigil.store.txn import transaction

N_SERIES = 24
ROWS_PER_SERIES = 4_000
HOUR = 3_600_000
BASE = 1_700_000_000_000


def series_labels() -> list[dict[str, str]]:
    return [
        canonical_labels({"__name__": "crash_metric", "pod": f"pod-{i}", "zone": f"z{i % 3}"})
        for i in range(N_SERIES)
    ]


def make_batch(b: int) -> tuple[pa.Table, pa.Table]:
    """Batch ``b``: 8 series, timestamps over ~27 hours (2-3 day partitions) that overlap
    the previous batch's, so later batches overwrite earlier samples; some NaN/Inf."""
    rng = np.random.default_rng(b)
    labels = series_labels()
    chosen = [(b * 5 + k) % N_SERIES for k in range(8)]
    ids = np.array([series_id(labels[k]) for k in chosen], dtype=np.int64)
    ts0 = BASE + b * 20 * HOUR
    slots = rng.choice(27 * HOUR // 10_000, ROWS_PER_SERIES, replace=False)
    ts = ts0 + np.sort(slots) * 10_000  # 10 s grid: overlaps with batch b-1 collide often
    sid = np.repeat(ids, ROWS_PER_SERIES)
    tss = np.tile(ts, len(ids))
    val = rng.normal(size=len(sid)) + b
    val[rng.random(len(sid)) < 0.01] = np.nan
    val[rng.random(len(sid)) < 0.005] = np.inf
    order = rng.permutation(len(sid))  # out of order on purpose
    samples = pa.table({"series_id": sid[order], "timestamp": tss[order], "value": val[order]})
    catalog = pa.table(
        {"series_id": ids, "labels": [labels_json(labels[k]) for k in chosen]},
    )
    return samples, catalog


def loop(root: str, tenant: str, first: int, last: int) -> None:
    store = Store(root)
    for b in range(first, last):
        samples, catalog = make_batch(b)
        store.append(tenant, samples, catalog)
        print(b, flush=True)
        if b % 5 == 4:
            store.compact(tenant)
            print(f"c{b}", flush=True)


def halfway(root: str, tenant: str, b: int, what: str) -> None:
    store = Store(root)
    if what == "append":
        samples, catalog = make_batch(b)
        sid, ts, val = sm.validate_samples(samples)
        with transaction(store.layout, tenant) as txn:
            seq = txn.next_seq()
            rows, seen = sm.prepare_append(sid, ts, val, seq)
            cat.sightings(seen, catalog, store._snapshot(tenant, txn.head), seq)
            txn.write(SAMPLES, rows, partition_by=["day"])
            os.kill(os.getpid(), signal.SIGKILL)
    elif what == "compact":
        with transaction(store.layout, tenant) as txn:
            dt = txn.table(SAMPLES)
            assert dt is not None
            day = sorted(sm.file_counts(dt))[0]
            part = sm.read_partition(dt, day)
            txn.write(
                SAMPLES, part, mode="overwrite", predicate=f"day = '{day}'", partition_by=["day"]
            )
            os.kill(os.getpid(), signal.SIGKILL)
    raise SystemExit(f"unknown mode {what!r}")


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "loop":
        loop(args[0], args[1], int(args[2]), int(args[3]))
    elif mode == "halfway":
        halfway(args[0], args[1], int(args[2]), args[3])
    else:
        raise SystemExit(f"unknown mode {mode!r}: expected loop or halfway")
