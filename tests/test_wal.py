"""The write-ahead log: round trips, torn tails, write errors, checkpoints into the store."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.remote import WriteBatch, decode_write_request, encode_write_request
from vigil.store import Store
from vigil.wal import Wal, WalBackpressure, WalCorrupt, WalUnavailable
from vigil.wal import log as wal_log

BASE = 1_700_000_000_000


def make_batch(b: int, n_series: int = 5, per_series: int = 20) -> WriteBatch:
    """Deterministic batch ``b``: overlapping timestamps with batch b-1, NaN, Inf, stale."""
    rng = np.random.default_rng(b)
    labels = [
        {"__name__": "wal_metric", "pod": f"p{(b + k) % 7}", "zone": f"z{k % 2}"}
        for k in range(n_series)
    ]
    series = np.repeat(np.arange(n_series), per_series)
    ts = BASE + b * 10_000 * per_series // 2 + np.tile(np.arange(per_series) * 10_000, n_series)
    vals = rng.normal(size=len(series)) + b
    vals[rng.random(len(vals)) < 0.05] = np.nan
    vals[rng.random(len(vals)) < 0.03] = np.inf
    order = rng.permutation(len(series))
    return decode_write_request(encode_write_request(labels, series[order], ts[order], vals))


def same(a: WriteBatch, b: WriteBatch) -> bool:
    return (
        a.series_ids.tolist() == b.series_ids.tolist()
        and a.labels_json == b.labels_json
        and a.series.tolist() == b.series.tolist()
        and a.timestamps.tolist() == b.timestamps.tolist()
        and a.values.view(np.uint64).tolist() == b.values.view(np.uint64).tolist()
        and a.stale_series.tolist() == b.stale_series.tolist()
        and a.stale_timestamps.tolist() == b.stale_timestamps.tolist()
    )


def expected_store(batches: list[tuple[str, WriteBatch]], tenant: str) -> dict:
    """(series_id, timestamp) -> value bits, last write wins, for one tenant."""
    out: dict = {}
    for t, b in batches:
        if t != tenant:
            continue
        sid = b.series_ids[b.series]
        for s, ts, v in zip(
            sid.tolist(), b.timestamps.tolist(), b.values.view(np.uint64).tolist(), strict=True
        ):
            out[(s, ts)] = v
    return out


def stored(store: Store, tenant: str) -> dict:
    t = store.select(tenant)
    vals = t.column("value").to_numpy().view(np.uint64).tolist()
    return dict(
        zip(
            zip(t.column("series_id").to_pylist(), t.column("timestamp").to_pylist(), strict=True),
            vals,
            strict=True,
        )
    )


# ----------------------------------------------------------------- appends, replay


def test_append_replay_round_trip(tmp_path: Path) -> None:
    written = []
    with Wal(tmp_path, segment_bytes=4096) as wal:
        for b in range(12):
            tenant = f"t{b % 3}"
            batch = make_batch(b)
            seq = wal.append(tenant, batch)
            written.append((seq, tenant, batch))
        stats = wal.stats()
        assert stats.frames_written == 12 and stats.pending_frames == 12
        assert stats.segments > 1 and stats.fsyncs >= 12 and stats.lag_seconds >= 0
    with Wal(tmp_path) as wal:
        records = list(wal.replay())
        assert [(r.seq, r.tenant) for r in records] == [(s, t) for s, t, _ in written]
        assert all(same(r.batch, b) for r, (_, _, b) in zip(records, written, strict=True))
        assert wal.next_seq == written[-1][0] + 1
        assert wal.stats().truncated_bytes == 0


@given(st.lists(st.tuples(st.sampled_from(["a", "b.c", "T-1"]), st.integers(0, 50)), max_size=6))
def test_replay_returns_exactly_the_appends(
    tmp_path_factory: pytest.TempPathFactory, plan: list
) -> None:
    path = tmp_path_factory.mktemp("wal")
    batches = [(t, make_batch(b, n_series=1 + b % 3, per_series=b % 5)) for t, b in plan]
    with Wal(path) as wal:
        seqs = [wal.append(t, b) for t, b in batches]
    assert seqs == sorted(set(seqs))
    with Wal(path) as wal:
        got = list(wal.replay())
    assert [(r.tenant) for r in got] == [t for t, _ in batches]
    assert all(same(r.batch, b) for r, (_, b) in zip(got, batches, strict=True))


def test_invalid_tenant_is_refused(tmp_path: Path) -> None:
    with Wal(tmp_path) as wal, pytest.raises(ValueError, match="tenant"):
        wal.append("../x", make_batch(0))


def test_one_process_at_a_time(tmp_path: Path) -> None:
    with Wal(tmp_path), pytest.raises(WalCorrupt, match="in use"):
        Wal(tmp_path)


def test_concurrent_appends_share_fsyncs(tmp_path: Path) -> None:
    batch = make_batch(1, n_series=2, per_series=2)
    seqs: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(40):
            s = wal.append("t", batch)
            with lock:
                seqs.append(s)

    with Wal(tmp_path) as wal:
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        fsyncs = wal.stats().fsyncs
    assert sorted(seqs) == list(range(1, 321))
    assert fsyncs <= 320
    with Wal(tmp_path) as wal:
        assert [r.seq for r in wal.replay()] == list(range(1, 321))


def test_checkpoints_racing_concurrent_appends_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a checkpoint closing the segment while other threads' appends were written
    but not yet fsynced (their fsync waiting on the lock) closed the fd under them.  A slow
    disk (each fsync takes 2 ms more) widens the window."""
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.002)
        real_fsync(fd)

    monkeypatch.setattr(wal_log.os, "fsync", slow_fsync)
    unsynced_closes: list[tuple[int, int]] = []
    real_abandon = Wal._abandon_locked

    def spy(self: Wal) -> None:  # the invariant: a segment is closed only once all is synced
        while self._syncing:
            self._cond.wait()
        if self._fd is not None and self._synced < self._written:
            unsynced_closes.append((self._synced, self._written))
        real_abandon(self)

    monkeypatch.setattr(Wal, "_abandon_locked", spy)
    batches = [make_batch(b, n_series=3, per_series=4) for b in range(6)]
    appended: list[tuple[str, WriteBatch]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    store = Store(tmp_path / "store")
    stop = threading.Event()

    def worker(k: int) -> None:
        try:
            for i in range(60):
                b = batches[(k + i) % len(batches)]
                wal.append("t", b)
                with lock:
                    appended.append(("t", b))
        except BaseException as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    def checkpointer() -> None:
        try:
            while not stop.is_set():
                wal.checkpoint(store)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    with Wal(tmp_path / "wal", segment_bytes=4096) as wal:
        ck = threading.Thread(target=checkpointer)
        ck.start()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        ck.join()
        wal.checkpoint(store)
    assert errors == []
    assert unsynced_closes == []
    assert len(appended) == 360
    assert set(stored(store, "t")) == set(expected_store(appended, "t"))


# -------------------------------------------------------------------- torn tails


def segment_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.wal"))


@pytest.mark.parametrize("garbage", [False, True])
def test_torn_tail_is_truncated_at_every_cut(tmp_path: Path, garbage: bool) -> None:
    src = tmp_path / "src"
    batches = [make_batch(b, n_series=2, per_series=3) for b in range(3)]
    with Wal(src) as wal:
        for b in batches:
            wal.append("t", b)
    (seg,) = segment_files(src)
    full = seg.read_bytes()
    frame_ends = [8]
    for rec_end in wal_log._frames(full):
        frame_ends.append(rec_end[2])
    rng = np.random.default_rng(0)
    cuts = sorted(set(rng.integers(1, len(full), 40).tolist()) | {len(full) - 1, 9, 8, 7, 1})
    for cut in cuts:
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        data = full[:cut] + (rng.bytes(50) if garbage else b"")
        (d / seg.name).write_bytes(data)
        complete = sum(1 for e in frame_ends[1:] if e <= cut)
        with Wal(d) as wal:
            got = list(wal.replay())
            assert len(got) == complete
            assert all(same(r.batch, b) for r, b in zip(got, batches, strict=False))
            # the log is usable again: a new append follows the survivors
            wal.append("t", batches[0])
        with Wal(d) as wal:
            assert len(list(wal.replay())) == complete + 1


def test_damaged_frame_ends_its_segment(tmp_path: Path) -> None:
    with Wal(tmp_path) as wal:
        for b in range(3):
            wal.append("t", make_batch(b))
    (seg,) = segment_files(tmp_path)
    data = bytearray(seg.read_bytes())
    ends = [e for _, _, e in wal_log._frames(bytes(data))]
    data[ends[0] + 30] ^= 0xFF  # flip a byte in the second frame's body
    seg.write_bytes(bytes(data))
    with Wal(tmp_path) as wal:
        assert [r.seq for r in wal.replay()] == [1]
        assert wal.stats().truncated_bytes == len(data) - ends[0]


def test_not_a_segment_is_refused(tmp_path: Path) -> None:
    (tmp_path / "00000000000000000001.wal").write_bytes(b"something else entirely")
    with pytest.raises(WalCorrupt, match="magic"):
        Wal(tmp_path)


# ------------------------------------------------------------------ write errors


def test_disk_full_during_write_leaves_a_replayable_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    wal = Wal(tmp_path)
    ok = [wal.append("t", make_batch(0))]

    def half_then_full(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))  # a partial write, then ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wal_log.os, "write", half_then_full)
    with pytest.raises(WalUnavailable, match="disk full") as info:
        wal.append("t", make_batch(1))
    assert info.value.status == 503 and info.value.errno == errno.ENOSPC
    monkeypatch.setattr(wal_log.os, "write", real_write)
    ok.append(wal.append("t", make_batch(2)))
    assert wal.stats().write_errors == 1
    wal.close()
    with Wal(tmp_path) as again:
        got = list(again.replay())
        assert [r.seq for r in got] == ok
        assert same(got[1].batch, make_batch(2))
        assert again.stats().truncated_bytes == 0  # the partial bytes were removed at once


def test_disk_full_and_truncate_failing_abandons_the_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write, real_ftruncate = os.write, os.ftruncate
    wal = Wal(tmp_path)
    first = wal.append("t", make_batch(0))

    def half_then_quota(fd: int, data: bytes) -> int:
        real_write(fd, bytes(data[: len(data) // 3]))
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    def broken(fd: int, n: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(wal_log.os, "write", half_then_quota)
    monkeypatch.setattr(wal_log.os, "ftruncate", broken)
    with pytest.raises(WalUnavailable, match="quota"):
        wal.append("t", make_batch(1))
    monkeypatch.setattr(wal_log.os, "write", real_write)
    monkeypatch.setattr(wal_log.os, "ftruncate", real_ftruncate)
    second = wal.append("u", make_batch(2))
    wal.close()
    assert len(segment_files(tmp_path)) == 2  # the damaged one was abandoned
    with Wal(tmp_path) as again:
        assert [(r.seq, r.tenant) for r in again.replay()] == [(first, "t"), (second, "u")]
        assert again.stats().truncated_bytes > 0


def test_disk_full_creating_a_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def no_space(path: object, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".wal"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, mode)  # type: ignore[arg-type]

    wal = Wal(tmp_path)
    monkeypatch.setattr(wal_log.os, "open", no_space)
    with pytest.raises(WalUnavailable, match="disk full"):
        wal.append("t", make_batch(0))
    monkeypatch.setattr(wal_log.os, "open", real_open)
    seq = wal.append("t", make_batch(0))
    wal.close()
    with Wal(tmp_path) as again:
        assert [r.seq for r in again.replay()] == [seq]


def test_failed_fsync_fails_the_append_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync
    wal = Wal(tmp_path)
    first = wal.append("t", make_batch(0))
    calls = {"n": 0}

    def eio_once(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(wal_log.os, "fsync", eio_once)
    with pytest.raises(WalUnavailable):
        wal.append("t", make_batch(1))
    third = wal.append("t", make_batch(2))
    wal.close()
    with Wal(tmp_path) as again:
        assert [r.seq for r in again.replay()] == [first, third]


def test_backpressure_when_the_checkpointer_is_behind(tmp_path: Path) -> None:
    with Wal(tmp_path, max_pending_bytes=2000) as wal:
        with pytest.raises(WalBackpressure) as info:
            for b in range(100):
                wal.append("t", make_batch(b))
        assert info.value.status == 429
        wal.checkpoint(Store(tmp_path / "store"))
        wal.append("t", make_batch(0))


# ------------------------------------------------------------------- checkpoints


def test_checkpoint_moves_everything_into_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    appended = []
    with Wal(tmp_path / "wal", segment_bytes=3000, checkpoint_samples=250) as wal:
        for b in range(10):
            tenant = "a" if b % 3 else "b"
            batch = make_batch(b)
            wal.append(tenant, batch)
            appended.append((tenant, batch))
            if b == 4:
                wal.checkpoint(store)
        result = wal.checkpoint(store)
        assert result.frames > 0 and result.segments >= 1
        stats = wal.stats()
        assert stats.pending_frames == 0 and stats.lag_seconds == 0.0
        assert stats.checkpointed_samples == sum(b.n_samples for _, b in appended)
        assert wal.checkpoint(store).frames == 0  # nothing left: a no-op
        assert list(wal.replay()) == []
    assert segment_files(tmp_path / "wal") == []
    for tenant in ("a", "b"):
        assert stored(store, tenant) == expected_store(appended, tenant)
    labels = set(store.catalog("a").column("labels").to_pylist())
    assert labels == {t for tn, b in appended if tn == "a" for t in b.labels_json}


class Crash(BaseException):
    """Stands for the process dying at that point."""


@pytest.mark.parametrize(
    "point",
    ["store_append_1", "store_append_2", "marker_1", "marker_2", "marker_3", "unlink"],
)
def test_checkpoint_survives_a_crash_at_any_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    store = Store(tmp_path / "store")
    appended = [(t, make_batch(b)) for b, t in enumerate(["a", "b", "a", "c", "b"])]
    wal = Wal(tmp_path / "wal", segment_bytes=2500)
    for t, b in appended:
        wal.append(t, b)

    kind, _, nth = point.rpartition("_")
    counter = {"n": 0}

    def crash_after(real):  # type: ignore[no-untyped-def]
        def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            out = real(*args, **kwargs)
            counter["n"] += 1
            if counter["n"] == int(nth):
                raise Crash(point)
            return out

        return wrapped

    if kind == "store_append":
        monkeypatch.setattr(store, "append", crash_after(store.append))
    elif kind == "marker":
        monkeypatch.setattr(wal, "_write_marker", crash_after(wal._write_marker))
    else:
        real_unlink = Path.unlink

        def unlink_crash(self: Path, missing_ok: bool = False) -> None:
            if self.suffix == ".wal":
                raise Crash(point)
            real_unlink(self, missing_ok=missing_ok)

        monkeypatch.setattr(Path, "unlink", unlink_crash)
    with pytest.raises(Crash):
        wal.checkpoint(store)
    monkeypatch.undo()
    os.close(wal._lock_fd)  # the "dead" process lets go of the directory
    if wal._fd is not None:
        os.close(wal._fd)

    again = Wal(tmp_path / "wal")
    again.checkpoint(Store(tmp_path / "store"))
    assert list(again.replay()) == []
    store = Store(tmp_path / "store")
    for tenant in ("a", "b", "c"):
        assert stored(store, tenant) == expected_store(appended, tenant)
    again.close()
