"""Multi-table transactions over Delta tables, committed by replacing HEAD.json.

A writer takes the tenant lock, rolls back leftovers of crashed operations (``repair``),
makes its Delta commits, and finally writes HEAD with the new versions.  Until HEAD is
replaced, readers keep opening the previous versions, so a crash at any point leaves the
last completed operation visible and nothing of the interrupted one:

* Delta itself never exposes a half-written commit: data files are written first and the
  commit is one atomic log entry; files of an unfinished commit are never referenced;
* commits newer than HEAD (the operation died before replacing HEAD) are reverted with
  ``DeltaTable.restore`` by the next writer, and a table that HEAD does not list at all
  (its first write died) is removed.

Durability covers process crashes (SIGKILL, OOM, exceptions).  HEAD is fsync'ed; Delta's
local writer does not fsync data files, so after a *power loss* the latest operations may
be missing and ``repair`` reports a HEAD pointing past the log as a ``StoreError``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import DeltaTable, WriterProperties, write_deltalake
from pyarrow.fs import LocalFileSystem, SubTreeFileSystem

from vigil.store.layout import BUILTIN_TABLES, Head, Layout, StoreError

ZSTD_LEVEL = 3


def writer_properties(row_group_rows: int | None = None) -> WriterProperties:
    return WriterProperties(
        compression="ZSTD", compression_level=ZSTD_LEVEL, max_row_group_size=row_group_rows
    )


def local_path(dt: DeltaTable) -> str:
    uri = dt.table_uri
    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def dataset(dt: DeltaTable, predicate: str | None = None) -> pads.Dataset:
    """The table's files at its loaded version as a pyarrow dataset.

    Reads through pyarrow's native local filesystem: deltalake's default Python-level
    filesystem handler can abort the interpreter at exit ("terminate called without an
    active exception") once pyarrow's I/O threads used it.
    """
    filesystem = SubTreeFileSystem(local_path(dt), LocalFileSystem())
    return dt.to_pyarrow_dataset(filesystem=filesystem, file_pruning_predicate=predicate)


def log_entry(path: Path, version: int) -> Path:
    return path / "_delta_log" / f"{version:020d}.json"


def open_table(layout: Layout, tenant: str, head: Head, key: str) -> DeltaTable | None:
    """The Delta table ``key`` at its committed version, or None if it was never written."""
    version = head.versions.get(key)
    if version is None:
        return None
    path = layout.table_path(tenant, key)
    if not (path / "_delta_log").is_dir():
        raise StoreError(
            f"table {path} (version {version} in HEAD) is missing: the store was changed "
            "outside Vigil; restore the directory from a backup"
        )
    return DeltaTable(path, version=version)


def table_keys_on_disk(layout: Layout, tenant: str) -> list[str]:
    tdir = layout.tenant_dir(tenant)
    keys = [k for k in BUILTIN_TABLES if (tdir / k).exists()]
    tables = tdir / "tables"
    if tables.is_dir():
        keys += [f"tables/{name}" for name in sorted(os.listdir(tables))]
    return keys


def repair(layout: Layout, tenant: str, head: Head) -> list[str]:
    """Roll back what crashed operations left behind; returns what was done (for logs)."""
    done: list[str] = []
    on_disk = table_keys_on_disk(layout, tenant)
    lost = sorted(set(head.versions) - set(on_disk))
    if lost:
        raise StoreError(
            f"HEAD of tenant {tenant!r} lists {lost} but {layout.tenant_dir(tenant)} has no "
            "such table: the store was changed outside Vigil; restore it from a backup"
        )
    for key in on_disk:
        path = layout.table_path(tenant, key)
        version = head.versions.get(key)
        if version is None:
            if log_entry(path, 1).is_file():
                raise StoreError(
                    f"table {path} has several Delta versions but HEAD does not list it: "
                    "HEAD.json was replaced or edited by hand; restore it from a backup"
                )
            shutil.rmtree(path)  # only its first commit exists: the operation died
            done.append(f"removed {key} (its first write never committed)")
            continue
        if not log_entry(path, version).is_file() and not _checkpointed(path, version):
            raise StoreError(
                f"HEAD lists {key} at version {version} but its Delta log has no such "
                f"version ({path}); the log was truncated (power loss?) or edited by hand: "
                "restore the tenant directory from a backup"
            )
        if log_entry(path, version + 1).is_file():
            DeltaTable(path).restore(version)
            head.versions[key] = DeltaTable(path).version()
            done.append(f"rolled {key} back to version {version}")
    return done


def _checkpointed(path: Path, version: int) -> bool:
    return (
        any(
            name.startswith(f"{version:020d}.checkpoint")
            for name in os.listdir(path / "_delta_log")
            if name.endswith(".parquet")
        )
        if (path / "_delta_log").is_dir()
        else False
    )


@dataclass
class Txn:
    """One operation on a tenant: Delta commits that become visible together."""

    layout: Layout
    tenant: str
    head: Head
    repaired: list[str] = field(default_factory=list)
    dirty: bool = False

    def next_seq(self) -> int:
        self.head.seq += 1
        self.dirty = True
        return self.head.seq

    def table(self, key: str) -> DeltaTable | None:
        return open_table(self.layout, self.tenant, self.head, key)

    def write(
        self,
        key: str,
        data: pa.Table | pa.RecordBatchReader,
        *,
        mode: str = "append",
        partition_by: list[str] | None = None,
        predicate: str | None = None,
        schema_mode: str | None = None,
        row_group_rows: int | None = None,
    ) -> int:
        """One Delta commit to table ``key``; returns its version (visible at commit())."""
        path = self.layout.table_path(self.tenant, key)
        expected = self.head.versions.get(key, -1) + 1
        kwargs: dict[str, Any] = {
            "mode": mode,
            "partition_by": partition_by,
            "writer_properties": writer_properties(row_group_rows),
        }
        if predicate is not None:
            kwargs["predicate"] = predicate
        if schema_mode is not None:
            kwargs["schema_mode"] = schema_mode
        path.parent.mkdir(parents=True, exist_ok=True)
        if expected == 0:
            write_deltalake(str(path), data, **kwargs)
            return self.refresh(key, expected)
        dt = DeltaTable(path)
        write_deltalake(dt, data, **kwargs)  # updates ``dt`` to the new version
        return self._record(key, dt.version(), expected)

    def refresh(self, key: str, expected: int | None = None) -> int:
        """Record the table's latest version (after a Delta operation made under the lock)."""
        path = self.layout.table_path(self.tenant, key)
        return self._record(key, DeltaTable(path).version(), expected)

    def _record(self, key: str, version: int, expected: int | None) -> int:
        if expected is not None and version != expected:
            path = self.layout.table_path(self.tenant, key)
            raise StoreError(
                f"{path} is at version {version} after one commit, expected {expected}: "
                "another process wrote to it without the tenant lock; write through Vigil only"
            )
        self.head.versions[key] = version
        self.dirty = True
        return version

    def commit(self) -> None:
        if self.dirty:
            self.layout.write_head(self.tenant, self.head)
            self.dirty = False


@contextmanager
def transaction(layout: Layout, tenant: str) -> Iterator[Txn]:
    """Lock the tenant, repair leftovers, yield a Txn, and commit HEAD if the body succeeds."""
    with layout.locked(tenant):
        head = layout.read_head(tenant)
        if not layout.head_path(tenant).is_file():
            layout.write_head(tenant, head)  # from now on HEAD exists for this tenant
        done = repair(layout, tenant, head)
        txn = Txn(layout, tenant, head, repaired=done)
        if done:  # make the rollback durable before anything else
            txn.dirty = True
            txn.commit()
        yield txn
        txn.commit()
