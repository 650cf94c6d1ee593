"""WAL crash safety with a real process killed by SIGKILL.

The child (this file run as a script) appends deterministic batches from several threads
and prints each seq as soon as ``append`` returns; the test kills it at a random moment,
reopens the log and checks that every acknowledged append is there, intact.  Another child
is killed in the middle of ``checkpoint`` and the store must end up with every sample once.

    python tests/test_wal_crash.py append WAL_DIR THREADS
    python tests/test_wal_crash.py checkpoint WAL_DIR STORE_DIR
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from vigil.remote import WriteBatch, decode_write_request, encode_write_request

SRC = Path(__file__).resolve().parents[1] / "src"
BASE = 1_700_000_000_000


def make_batch(k: int) -> WriteBatch:
    """Batch ``k`` (thread t, n-th append: k = t * 1_000_000 + n)."""
    rng = np.random.default_rng(k)
    n_series = 1 + k % 4
    labels = [
        {"__name__": "crash_wal", "s": str(s), "t": str(k // 1_000_000)} for s in range(n_series)
    ]
    per = 50
    series = np.repeat(np.arange(n_series), per)
    ts = BASE + (k % 1_000_000) * 5_000 + np.tile(np.arange(per) * 1_000, n_series)
    vals = rng.normal(size=len(series))
    return decode_write_request(encode_write_request(labels, series, ts, vals))


def tenant_of(k: int) -> str:
    return f"tenant{k // 1_000_000}"


def child_append(wal_dir: str, threads: int) -> None:
    from vigil.wal import Wal

    wal = Wal(wal_dir, segment_bytes=64_000)
    out_lock = threading.Lock()

    def run(t: int) -> None:
        n = 0
        while True:
            k = t * 1_000_000 + n
            seq = wal.append(tenant_of(k), make_batch(k))
            with out_lock:
                sys.stdout.write(f"{seq} {k}\n")
                sys.stdout.flush()
            n += 1

    workers = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def child_checkpoint(wal_dir: str, store_dir: str) -> None:
    from vigil.store import Store
    from vigil.wal import Wal

    wal = Wal(wal_dir)
    print("open", flush=True)
    wal.checkpoint(Store(store_dir))
    print("done", flush=True)


def spawn(*args: object) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen(
        [sys.executable, __file__, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def acknowledged(proc: subprocess.Popen[str]) -> list[tuple[int, int]]:
    out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err
    lines = out.splitlines()
    done = [tuple(map(int, line.split())) for line in lines if line.count(" ") == 1]
    return done  # type: ignore[return-value]


def kill_after_appends(wal_dir: Path, threads: int, wait_for: int, extra: float) -> list:
    proc = spawn("append", wal_dir, threads)
    assert proc.stdout is not None
    seen = 0
    deadline = time.monotonic() + 120
    lines = []
    while seen < wait_for and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        seen += 1
    time.sleep(extra)
    proc.kill()
    rest = acknowledged(proc)
    return [tuple(map(int, ln.split())) for ln in lines if ln.count(" ") == 1] + rest


def test_sigkill_during_appends_keeps_every_acknowledged_append(tmp_path: Path) -> None:
    from vigil.wal import Wal

    rng = random.Random(7)
    wal_dir = tmp_path / "wal"
    acked: list[tuple[int, int]] = []
    for round_ in range(3):
        acked += kill_after_appends(
            wal_dir, threads=4, wait_for=rng.randint(5, 60), extra=rng.random() * 0.05
        )
        with Wal(wal_dir) as wal:
            records = {r.seq: r for r in wal.replay()}
        assert acked, f"round {round_}: the child acknowledged nothing"
        for seq, k in acked:
            rec = records.get(seq)
            assert rec is not None, f"acknowledged seq {seq} (batch {k}) is missing"
            want = make_batch(k)
            assert rec.tenant == tenant_of(k)
            assert rec.batch.timestamps.tolist() == want.timestamps.tolist()
            assert rec.batch.values.tolist() == want.values.tolist()
            assert rec.batch.labels_json == want.labels_json
        seqs = sorted(records)
        assert seqs == sorted(set(seqs))


def test_sigkill_during_checkpoint_stores_everything_once(tmp_path: Path) -> None:
    from vigil.store import Store
    from vigil.wal import Wal

    wal_dir, store_dir = tmp_path / "wal", tmp_path / "store"
    batches = []
    with Wal(wal_dir, segment_bytes=20_000) as wal:
        for n in range(60):
            k = (n % 3) * 1_000_000 + n
            wal.append(tenant_of(k), make_batch(k))
            batches.append(k)
    rng = random.Random(3)
    for _ in range(4):
        proc = spawn("checkpoint", wal_dir, store_dir)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "open"
        time.sleep(rng.random() * 1.5)
        proc.kill()
        proc.communicate()
    with Wal(wal_dir) as wal:
        wal.checkpoint(Store(store_dir))
        assert list(wal.replay()) == []
    store = Store(store_dir)
    for t in range(3):
        want: dict[tuple[int, int], float] = {}
        for k in batches:
            if k // 1_000_000 != t:
                continue
            b = make_batch(k)
            for s, ts, v in zip(
                b.series_ids[b.series].tolist(),
                b.timestamps.tolist(),
                b.values.tolist(),
                strict=True,
            ):
                want[(s, ts)] = v
        got = store.select(f"tenant{t}")
        keys = list(
            zip(
                got.column("series_id").to_pylist(),
                got.column("timestamp").to_pylist(),
                strict=True,
            )
        )
        assert len(keys) == len(set(keys))  # each sample once
        assert dict(zip(keys, got.column("value").to_pylist(), strict=True)) == want


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "append":
        child_append(rest[0], int(rest[1]))
    elif mode == "checkpoint":
        child_checkpoint(rest[0], rest[1])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
