"""The write-ahead log of accepted remote writes (see docs/remote_write.md).

Layout of a WAL directory (one process at a time: ``LOCK`` is flock'ed)::

    <dir>/LOCK
    <dir>/CHECKPOINT.json  {"format": 1, "seq": S, "partial": {"upto": U, "tenants": [...]}}
    <dir>/<first seq, 20 digits>.wal segments: 8-byte magic, then frames (see frame.py)

Guarantees:

* ``append`` returns a seq only after the frame's bytes are written and fsynced (and the
  directory fsynced when the segment was created).  Concurrent appends share one fsync
  (group commit): the first waiter syncs everything written so far, the others wait.
* A failed write (ENOSPC, EDQUOT, EIO...) raises ``WalUnavailable`` (HTTP 503) and leaves
  the log replayable: the partial bytes are truncated away, or, if that fails too, the
  segment is abandoned and the next append starts a new one.  A failed fsync fails every
  append not yet synced and abandons the segment the same way (its unsynced tail may or
  may not survive: such a frame may be stored although its append failed -- the sender
  retries, and the store's last-write-wins makes the duplicate harmless).
* Opening the log checks every frame (CRC of header and body) and truncates each segment
  at its first incomplete or damaged frame (a torn tail: only un-acknowledged bytes can be
  there, as acknowledged frames are never written after a failed one in a segment).
* ``checkpoint(store)`` moves the closed segments into the store, one ``Store.append`` per
  tenant, and records progress in ``CHECKPOINT.json`` (atomic replace) after each tenant,
  then deletes the segments.  A crash at any point neither loses nor duplicates data: frames
  at or below the recorded seq are never applied again; a crash between a store append and
  the progress record re-applies that one tenant's frames, which, as the store keeps the
  last write per (series, timestamp) and the WAL replays in order, leaves the same samples.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from vigil.remote.decode import CATALOG_SCHEMA, SAMPLES_SCHEMA, WriteBatch
from vigil.series import validate_tenant
from vigil.wal import frame as fr

MAGIC = b"VGWAL\x00\x01\n"
SUFFIX = ".wal"
CHECKPOINT_FILE = "CHECKPOINT.json"
LOCK_FILE = "LOCK"
FORMAT = 1
MiB = 1 << 20


class WalUnavailable(Exception):
    """The WAL cannot take writes now (disk full, I/O error): answer 503, retry later."""

    status = 503

    def __init__(self, reason: str, errno_: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errno = errno_


class WalBackpressure(WalUnavailable):
    """More is waiting for a checkpoint than ``max_pending_bytes``: answer 429, retry later."""

    status = 429


class WalCorrupt(RuntimeError):
    """The WAL directory holds something this code cannot read (not a torn tail)."""


class StoreLike(Protocol):
    def append(self, tenant: str, samples: pa.Table, catalog: pa.Table) -> int: ...

    def mark_stale(self, tenant: str, stale: pa.Table) -> int: ...


@dataclass(frozen=True)
class WalRecord:
    seq: int
    tenant: str
    batch: WriteBatch


@dataclass
class _Segment:
    path: Path
    first_seq: int
    last_seq: int = -1  # -1: no frame yet
    frames: int = 0
    samples: int = 0
    size: int = len(MAGIC)
    since: float = 0.0  # monotonic time of its first frame (or of opening the log)


@dataclass
class CheckpointResult:
    segments: int = 0
    frames: int = 0
    samples: int = 0
    tenants: dict[str, int] = field(default_factory=dict)  # rows stored per tenant
    seconds: float = 0.0


@dataclass(frozen=True)
class WalStats:
    """Counters for metrics.  ``lag_seconds``: age of the oldest frame not yet in the store."""

    bytes_written: int
    frames_written: int
    samples_written: int
    fsyncs: int
    last_fsync_seconds: float
    pending_frames: int
    pending_samples: int
    pending_bytes: int
    segments: int
    lag_seconds: float
    checkpoints: int
    checkpointed_samples: int
    write_errors: int
    truncated_bytes: int  # torn tails removed when the log was opened


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _unavailable(what: str, exc: OSError) -> WalUnavailable:
    kind = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded"}.get(
        exc.errno or 0, exc.strerror or type(exc).__name__
    )
    return WalUnavailable(f"write-ahead log unavailable ({kind}) while {what}", exc.errno)


class Wal:
    """The write-ahead log in ``directory`` (created if missing); see the module doc."""

    def __init__(
        self,
        directory: str | Path,
        *,
        segment_bytes: int = 64 * MiB,
        max_pending_bytes: int = 4096 * MiB,
        checkpoint_samples: int = 5_000_000,
    ) -> None:
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self.max_pending_bytes = max_pending_bytes
        self.checkpoint_samples = checkpoint_samples
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise WalCorrupt(f"{self.dir} is in use by another process (LOCK is held)") from None
        self._cond = threading.Condition(threading.Lock())
        self._ckpt_lock = threading.Lock()
        self._fd: int | None = None
        self._written = 0  # logical bytes ever written (monotonic across segments)
        self._synced = 0  # logical bytes known durable
        self._failed: list[tuple[int, int]] = []  # (lo, hi]: appends ending there failed
        self._syncing = False
        self._closed = False
        self._counters = dict.fromkeys(
            ("bytes", "frames", "samples", "fsyncs", "checkpoints", "ckpt_samples", "errors"), 0
        )
        self._last_fsync = 0.0
        self.truncated_bytes = 0
        self._marker_seq, self._partial = self._read_marker()
        self._segments: list[_Segment] = []
        self._next_seq = self._marker_seq + 1
        self._recover()

    # ---------------------------------------------------------------- opening

    def _read_marker(self) -> tuple[int, dict[str, Any] | None]:
        path = self.dir / CHECKPOINT_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return 0, None
        except ValueError as exc:
            raise WalCorrupt(f"{path} is not valid JSON ({exc})") from None
        if data.get("format") != FORMAT:
            raise WalCorrupt(f"{path} has format {data.get('format')!r}; expected {FORMAT}")
        return int(data["seq"]), data.get("partial")

    def _write_marker(self, seq: int, partial: dict[str, Any] | None) -> None:
        path = self.dir / CHECKPOINT_FILE
        tmp = path.with_suffix(".tmp")
        text = json.dumps({"format": FORMAT, "seq": seq, "partial": partial})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(self.dir)
        self._marker_seq, self._partial = seq, partial

    def _recover(self) -> None:
        """Check every segment, truncate torn tails, drop empty segments.  All segments
        found are closed: appends go to a new one."""
        now = time.monotonic()
        paths = sorted(self.dir.glob(f"*{SUFFIX}"))
        for path in paths:
            try:
                first = int(path.stem)
            except ValueError:
                raise WalCorrupt(f"{path} is not a WAL segment name") from None
            with open(path, "rb") as f:
                data = f.read()
            if data[: len(MAGIC)] != MAGIC:
                # a segment's magic is synced before its first frame: a bad magic means the
                # segment was torn while being created -- possible for the newest one only
                head = data[: len(MAGIC)]
                torn = head[:1] == MAGIC[:1] or (head and not head.strip(b"\x00"))
                if path == paths[-1] and (not data or torn):
                    self.truncated_bytes += len(data)
                    path.unlink()
                    continue
                raise WalCorrupt(f"{path} does not start with the WAL magic")
            seg = _Segment(path, first, since=now)
            end = len(MAGIC)
            for seq, body, stop in _frames(data):
                seg.frames += 1
                seg.samples += fr.body_samples(body)
                seg.last_seq = seq
                end = stop
            if seg.frames == 0:
                self.truncated_bytes += len(data) - len(MAGIC)
                path.unlink()
                continue
            if end < len(data):
                self.truncated_bytes += len(data) - end
                with open(path, "r+b") as f:
                    f.truncate(end)
                    os.fsync(f.fileno())
            seg.size = end
            self._next_seq = max(self._next_seq, seg.last_seq + 1)
            self._segments.append(seg)
        _fsync_dir(self.dir)

    # ---------------------------------------------------------------- appends

    def append(self, tenant: str, batch: WriteBatch) -> int:
        """Write one accepted request durably; returns its seq (see the module doc)."""
        validate_tenant(tenant)
        body = fr.encode_body(tenant, batch)
        with self._cond:
            if self._closed:
                raise WalUnavailable("write-ahead log is closed")
            pending = sum(s.size for s in self._segments)
            if pending > self.max_pending_bytes:
                raise WalBackpressure(
                    f"write-ahead log holds {pending} bytes not yet in the store, above "
                    f"{self.max_pending_bytes}: the checkpointer is behind; retry later"
                )
            seg = self._active_locked()
            if seg.size >= self.segment_bytes and seg.frames:
                seg = self._rotate_locked()
            seq = self._next_seq
            data = fr.header(body, seq) + body.data
            assert self._fd is not None
            try:
                _write_all(self._fd, data)
            except OSError as exc:
                self._counters["errors"] += 1
                self._undo_write_locked(seg)
                raise _unavailable("writing", exc) from None
            self._next_seq += 1
            seg.size += len(data)
            seg.frames += 1
            seg.samples += body.samples
            seg.last_seq = seq
            if seg.frames == 1:
                seg.since = time.monotonic()
            self._written += len(data)
            target = self._written
            self._counters["bytes"] += len(data)
            self._counters["frames"] += 1
            self._counters["samples"] += body.samples
            self._sync_locked(target)
        return seq

    def _active_locked(self) -> _Segment:
        """The segment appends go to (created on demand, e.g. after a failure)."""
        if self._fd is not None:
            return self._segments[-1]
        path = self.dir / f"{self._next_seq:020d}{SUFFIX}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            self._counters["errors"] += 1
            raise _unavailable("creating a segment", exc) from None
        try:
            _write_all(fd, MAGIC)
            os.fsync(fd)
            _fsync_dir(self.dir)
        except OSError as exc:
            self._counters["errors"] += 1
            os.close(fd)
            try:
                path.unlink()
            except OSError:
                pass
            raise _unavailable("creating a segment", exc) from None
        self._fd = fd
        seg = _Segment(path, self._next_seq, since=time.monotonic())
        self._segments.append(seg)
        return seg

    def _undo_write_locked(self, seg: _Segment) -> None:
        """Remove a failed write's partial bytes, or abandon the segment if that fails."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, seg.size)
            os.lseek(self._fd, seg.size, os.SEEK_SET)
        except OSError:
            self._abandon_locked()

    def _abandon_locked(self) -> None:
        """Stop writing to the current segment: a later append starts a new one.  Waits for
        a running fsync of it to finish (the fd must not be closed under it)."""
        while self._syncing:
            self._cond.wait()
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.close(fd)
        except OSError:
            pass
        if self._segments and self._segments[-1].frames == 0:
            dead = self._segments.pop()
            try:
                dead.path.unlink()
            except OSError:
                pass

    def _rotate_locked(self) -> _Segment:
        """Close the active segment (synced) and start a new one."""
        self._close_synced_locked()
        return self._active_locked()

    def _close_synced_locked(self) -> None:
        """Make every byte written to the active segment durable, then close it.  Appends of
        other threads may write while an fsync runs with the lock released, so this loops until,
        holding the lock, nothing written is unsynced and no fsync runs; only then is the fd
        closed (raises WalUnavailable if an fsync fails)."""
        while True:
            self._sync_locked(self._written)
            while self._syncing:
                self._cond.wait()
            if self._synced >= self._written:
                break
        self._abandon_locked()

    def _sync_locked(self, target: int) -> None:
        """Return once the bytes up to logical offset ``target`` are fsynced (group commit);
        raise WalUnavailable if an fsync covering them failed."""
        while True:
            if any(lo < target <= hi for lo, hi in self._failed):
                raise WalUnavailable("write-ahead log unavailable (fsync failed); retry")
            if self._synced >= target:
                return
            if self._syncing:
                self._cond.wait()
                continue
            fd = self._fd
            if fd is None:  # the segment was abandoned after a failure: these bytes are lost
                self._failed.append((self._synced, self._written))
                self._synced = self._written
                raise WalUnavailable("write-ahead log segment was abandoned after an error; retry")
            self._syncing = True
            upto = self._written
            self._cond.release()
            error: OSError | None = None
            t0 = time.perf_counter()
            try:
                os.fsync(fd)
            except OSError as exc:
                error = exc
            finally:
                self._cond.acquire()
                self._syncing = False
            self._last_fsync = time.perf_counter() - t0
            self._counters["fsyncs"] += 1
            if error is None:
                self._synced = max(self._synced, upto)
                self._cond.notify_all()
                continue
            # the kernel may have dropped the pages whatever a retry says: every append
            # not yet synced fails, and the segment is abandoned
            self._counters["errors"] += 1
            self._failed.append((self._synced, self._written))
            seg = self._segments[-1]
            seg.size -= self._written - self._synced
            try:  # best effort: drop the unsynced tail
                os.ftruncate(fd, seg.size)
            except OSError:
                pass
            self._synced = self._written
            self._abandon_locked()
            self._cond.notify_all()
            raise _unavailable("syncing", error) from None

    # ---------------------------------------------------------------- reading

    def replay(self) -> Iterator[WalRecord]:
        """Every frame not yet checkpointed, in seq order (from disk; torn tails were
        truncated when the log was opened)."""
        with self._cond:
            segments = list(self._segments)
        for seg in segments:
            for record in _read_segment(seg.path, seg.size):
                if record.seq > self._marker_seq:
                    yield record

    # ---------------------------------------------------------------- checkpoints

    def checkpoint(self, store: StoreLike) -> CheckpointResult:
        """Move every frame written so far into ``store`` and drop the segments (see the
        module doc).  Store errors propagate; the next call resumes where this one stopped."""
        with self._ckpt_lock:
            t0 = time.perf_counter()
            result = CheckpointResult()
            with self._cond:
                if self._fd is not None and self._segments[-1].frames:
                    self._close_synced_locked()
                # the open segment (if any) has no frame: every segment with frames is closed
                closed = [s for s in self._segments if s.frames]
            while closed:
                group = [closed.pop(0)]
                budget = group[0].samples
                while closed and budget + closed[0].samples <= self.checkpoint_samples:
                    budget += closed[0].samples
                    group.append(closed.pop(0))
                self._checkpoint_group(store, group, result)
            result.seconds = time.perf_counter() - t0
            return result

    def _checkpoint_group(
        self, store: StoreLike, group: list[_Segment], result: CheckpointResult
    ) -> None:
        by_tenant: dict[str, list[WriteBatch]] = {}
        upto = self._marker_seq
        done: set[str] = set()
        done_upto = -1
        if self._partial:
            done, done_upto = set(self._partial["tenants"]), int(self._partial["upto"])
        frames = 0
        for seg in group:
            for rec in _read_segment(seg.path, seg.size):
                upto = max(upto, rec.seq)
                if rec.seq <= self._marker_seq:
                    continue
                frames += 1
                if rec.tenant in done and rec.seq <= done_upto:
                    continue
                by_tenant.setdefault(rec.tenant, []).append(rec.batch)
        finished = sorted(done) if done_upto >= upto else []
        moved = 0
        for tenant in sorted(by_tenant):
            samples, catalog = _tables(by_tenant[tenant])
            rows = store.append(tenant, samples, catalog)
            stale = _stale_table(by_tenant[tenant])
            if stale.num_rows:  # staleness markers retire series (idempotent on a resume)
                store.mark_stale(tenant, stale)
            result.tenants[tenant] = result.tenants.get(tenant, 0) + rows
            moved += samples.num_rows
            finished.append(tenant)
            self._write_marker(self._marker_seq, {"upto": upto, "tenants": sorted(finished)})
        self._write_marker(upto, None)
        for seg in group:
            seg.path.unlink(missing_ok=True)
        _fsync_dir(self.dir)
        with self._cond:
            self._segments = [s for s in self._segments if s not in group]
            self._counters["checkpoints"] += 1
            self._counters["ckpt_samples"] += moved
        result.samples += moved
        result.segments += len(group)
        result.frames += frames

    # ---------------------------------------------------------------- metrics, closing

    def stats(self) -> WalStats:
        with self._cond:
            pending = [s for s in self._segments if s.frames]
            now = time.monotonic()
            c = self._counters
            return WalStats(
                bytes_written=c["bytes"],
                frames_written=c["frames"],
                samples_written=c["samples"],
                fsyncs=c["fsyncs"],
                last_fsync_seconds=self._last_fsync,
                pending_frames=sum(s.frames for s in pending),
                pending_samples=sum(s.samples for s in pending),
                pending_bytes=sum(s.size for s in pending),
                segments=len(self._segments),
                lag_seconds=now - min(s.since for s in pending) if pending else 0.0,
                checkpoints=c["checkpoints"],
                checkpointed_samples=c["ckpt_samples"],
                write_errors=c["errors"],
                truncated_bytes=self.truncated_bytes,
            )

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def close(self) -> None:
        """Sync and close (frames stay on disk for the next open's checkpoint)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            try:
                if self._fd is not None:  # no append can start once closed
                    self._sync_locked(self._written)
            finally:
                self._abandon_locked()
                os.close(self._lock_fd)

    def __enter__(self) -> Wal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _frames(data: bytes) -> Iterator[tuple[int, memoryview, int]]:
    """(seq, body, end offset) of each intact frame from the magic on; stops at the first
    incomplete or damaged one."""
    view = memoryview(data)
    pos = len(MAGIC)
    last_seq = -1
    while pos < len(view):
        try:
            body_len, seq, crc = fr.read_header(view, pos)
        except fr.FrameError:
            return
        end = pos + fr.HEADER_SIZE + body_len
        if end > len(view) or seq <= last_seq:
            return
        body = view[pos + fr.HEADER_SIZE : end]
        if zlib.crc32(body) != crc:
            return
        yield seq, body, end
        last_seq = seq
        pos = end


def _read_segment(path: Path, size: int) -> Iterator[WalRecord]:
    with open(path, "rb") as f:
        data = f.read(size)
    for seq, body, _ in _frames(data):
        tenant, batch = fr.decode_body(body)
        yield WalRecord(seq, tenant, batch)


def _stale_table(batches: list[WriteBatch]) -> pa.Table:
    """``series_id, at``: the newest staleness marker of each series in one tenant's batches."""
    sid = np.concatenate([b.series_ids[b.stale_series] for b in batches]
                         or [np.zeros(0, np.int64)]).astype(np.int64, copy=False)
    ts = np.concatenate([b.stale_timestamps for b in batches] or [np.zeros(0, np.int64)])
    if len(sid) == 0:
        return pa.table({"series_id": pa.array([], pa.int64()), "at": pa.array([], pa.int64())})
    order = np.lexsort((ts, sid))
    sid, ts = sid[order], ts[order]
    last = np.r_[sid[1:] != sid[:-1], True]
    return pa.table({"series_id": pa.array(sid[last], pa.int64()),
                     "at": pa.array(ts[last], pa.int64())})


def _tables(batches: list[WriteBatch]) -> tuple[pa.Table, pa.Table]:
    """One tenant's batches -> (samples, catalog) in the store's format, in WAL order."""
    sid = np.concatenate(
        [b.series_ids[b.series] for b in batches] or [np.zeros(0, np.int64)]
    ).astype(np.int64, copy=False)
    ts = np.concatenate([b.timestamps for b in batches] or [np.zeros(0, np.int64)])
    val = np.concatenate([b.values for b in batches] or [np.zeros(0, np.float64)])
    samples = pa.Table.from_arrays(
        [pa.array(sid, pa.int64()), pa.array(ts, pa.int64()), pa.array(val, pa.float64())],
        schema=SAMPLES_SCHEMA,
    )
    ids = np.concatenate([b.series_ids for b in batches])
    texts = [t for b in batches for t in b.labels_json]
    uniq, first = np.unique(ids, return_index=True)
    catalog = pa.Table.from_arrays(
        [pa.array(uniq, pa.int64()), pa.array([texts[i] for i in first.tolist()], pa.string())],
        schema=CATALOG_SCHEMA,
    )
    return samples, catalog
