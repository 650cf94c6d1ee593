"""Crash safety with real processes killed by SIGKILL (see tests/crash_writer.py)."""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable

from crash_writer import make_batch
from vigil.store import Store

WRITER = Path(__file__).with_name("crash_writer.py")
SRC = Path(__file__).resolve().parents[1] / "src"


def child(*args: object) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(SRC), str(WRITER.parent), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.Popen(
        [sys.executable, str(WRITER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@functools.cache
def batch_arrays(b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    samples, _ = make_batch(b)
    sid, ts, val = (samples.column(c).to_numpy() for c in ("series_id", "timestamp", "value"))
    return sid, ts, val


@functools.cache
def expected(n_batches: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The store's content after batches 0..n-1: last write wins, sorted."""
    parts = [batch_arrays(b) for b in range(n_batches)]
    sid = np.concatenate([p[0] for p in parts])
    ts = np.concatenate([p[1] for p in parts])
    val = np.concatenate([p[2] for p in parts])
    order = np.lexsort((np.arange(len(sid)), ts, sid))
    sid, ts, val = sid[order], ts[order], val[order]
    last = np.r_[(sid[1:] != sid[:-1]) | (ts[1:] != ts[:-1]), True]
    return sid[last], ts[last], val[last]


def same(table: pa.Table, want: tuple[np.ndarray, np.ndarray, np.ndarray]) -> bool:
    sid, ts, val = (table.column(c).to_numpy() for c in ("series_id", "timestamp", "value"))
    if len(sid) != len(want[0]):
        return False
    return bool(
        np.array_equal(sid, want[0])
        and np.array_equal(ts, want[1])
        and np.array_equal(val.view(np.int64), want[2].view(np.int64))  # bitwise, NaN too
    )


def committed_batches(table: pa.Table, lowest: int) -> int:
    """How many batches the visible state holds: exactly ``lowest`` or ``lowest + 1``."""
    for n in (lowest, lowest + 1):
        if same(table, expected(n)):
            return n
    raise AssertionError(
        f"visible state ({table.num_rows} rows) is neither batches 0..{lowest - 1} nor "
        f"0..{lowest}: a committed append was lost or a partial one is visible"
    )


def check_catalog(store: Store, tenant: str, table: pa.Table) -> None:
    """The catalog describes exactly the visible samples (never a crashed append)."""
    catalog = store.catalog(tenant)
    sid = table.column("series_id").to_numpy()
    ts = table.column("timestamp").to_numpy()
    ids = np.unique(sid)
    assert np.array_equal(catalog.column("series_id").to_numpy(), ids)
    first = np.array([ts[sid == i].min() for i in ids])
    last = np.array([ts[sid == i].max() for i in ids])
    assert np.array_equal(catalog.column("first_seen").to_numpy(), first)
    assert np.array_equal(catalog.column("last_seen").to_numpy(), last)
    assert store.stats(tenant)["samples"] == table.num_rows


def leftovers(root: Path, tenant: str) -> list[str]:
    """Delta commits or tables newer than HEAD: traces of an operation that was cut."""
    tdir = root / "tenants" / tenant
    head_path = tdir / "HEAD.json"
    versions = json.loads(head_path.read_text())["versions"] if head_path.exists() else {}
    out = []
    for name in ("samples", "catalog"):
        log = tdir / name / "_delta_log"
        if not log.is_dir():
            continue
        if name not in versions:
            out.append(f"{name}: table not in HEAD")
        elif (log / f"{versions[name] + 1:020d}.json").exists():
            out.append(f"{name}: commit {versions[name] + 1} after HEAD")
    return out


def test_sigkill_at_random_moments_keeps_every_reported_append(tmp_path: Path) -> None:
    rng = random.Random(20240601)
    tenant = "crashy"
    committed = 0
    cut = 0
    for _ in range(4):
        proc = child("loop", tmp_path, tenant, committed, committed + 1000)
        reported: list[int] = []
        want = rng.randint(1, 3)
        assert proc.stdout is not None
        while len(reported) < want:
            line = proc.stdout.readline()
            assert line, f"writer exited early: {proc.stderr.read() if proc.stderr else ''}"
            if not line.startswith("c"):
                reported.append(int(line))
        time.sleep(rng.uniform(0.0, 0.15))  # lands inside an append (or a compaction)
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        reported += [int(x) for x in rest.split() if not x.startswith("c")]
        assert reported == list(range(committed, committed + len(reported)))
        cut += bool(leftovers(tmp_path, tenant))
        store = Store(tmp_path)  # a fresh reader, as after a restart
        table = store.select(tenant)
        committed = committed_batches(table, reported[-1] + 1)
        check_catalog(store, tenant, table)
    print(f"kills that cut an operation after a Delta commit: {cut}/4")
    # a writer after the crashes rolls the leftovers back and continues
    samples, catalog = make_batch(committed)
    Store(tmp_path).append(tenant, samples, catalog)
    assert leftovers(tmp_path, tenant) == []
    assert same(Store(tmp_path).select(tenant), expected(committed + 1))


def test_sigkill_between_delta_commit_and_head(tmp_path: Path) -> None:
    tenant = "half"
    proc = child("loop", tmp_path, tenant, 0, 3)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert out.split() == ["0", "1", "2"]
    store = Store(tmp_path)
    files_before = store.stats(tenant)["files"]

    # samples of batch 3 committed in Delta, catalog and HEAD not: invisible
    proc = child("halfway", tmp_path, tenant, 3, "append")
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert leftovers(tmp_path, tenant) == ["samples: commit 3 after HEAD"]
    table = Store(tmp_path).select(tenant)
    assert same(table, expected(3))
    check_catalog(Store(tmp_path), tenant, table)

    # a compaction cut after rewriting one partition: still the same data and files
    proc = child("halfway", tmp_path, tenant, 0, "compact")
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    store = Store(tmp_path)
    assert same(store.select(tenant), expected(3))
    assert store.stats(tenant)["files"] == files_before

    # the next writer restores the table to HEAD's version, then appends
    samples, catalog = make_batch(3)
    store.append(tenant, samples, catalog)
    assert leftovers(tmp_path, tenant) == []
    history = DeltaTable(tmp_path / "tenants" / tenant / "samples").history()
    assert any(h["operation"] == "RESTORE" for h in history)
    table = store.select(tenant)
    assert same(table, expected(4))
    check_catalog(store, tenant, table)


def test_sigkill_during_first_append_of_a_tenant(tmp_path: Path) -> None:
    tenant = "fresh"
    proc = child("halfway", tmp_path, tenant, 0, "append")
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert leftovers(tmp_path, tenant) == ["samples: table not in HEAD"]
    store = Store(tmp_path)
    assert store.tenants() == []
    assert store.select(tenant).num_rows == 0
    samples, catalog = make_batch(0)
    store.append(tenant, samples, catalog)
    assert store.tenants() == [tenant]
    assert same(store.select(tenant), expected(1))
    assert DeltaTable(tmp_path / "tenants" / tenant / "samples").version() == 0
