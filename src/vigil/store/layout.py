"""On-disk layout of a tenant, its HEAD manifest and its writer lock.

::

    <root>/tenants/<tenant>/HEAD.json        committed state: {"format", "seq", "versions"}
    <root>/tenants/<tenant>/.lock            flock'ed by writers of this tenant
    <root>/tenants/<tenant>/samples/         Delta table, partitioned by ``day``
    <root>/tenants/<tenant>/catalog/         Delta table, log of series sightings
    <root>/tenants/<tenant>/events/          Delta table of change events
    <root>/tenants/<tenant>/tables/<name>/   Delta tables written with ``Store.write_table``

``HEAD.json`` is the commit point of every store operation.  It maps each table to the
Delta version that belongs to the last *completed* operation; readers open every table at
that version, so they see all of an operation (samples and catalog together) or none of
it.  It is replaced atomically (write to a temporary file, then ``os.replace``).  Delta
commits newer than HEAD are leftovers of an operation that crashed; the next writer rolls
them back (see ``txn.py``).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vigil.series import TENANT_RE, LabelError, validate_tenant

HEAD_FILE = "HEAD.json"
LOCK_FILE = ".lock"
FORMAT = 1
SAMPLES = "samples"
CATALOG = "catalog"
EVENTS = "events"
BUILTIN_TABLES = (SAMPLES, CATALOG, EVENTS)
TABLE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class StoreError(RuntimeError):
    """The store on disk is not in a state this operation can use."""


@dataclass
class Head:
    """The committed state of one tenant: the Delta version of each table and the last seq."""

    seq: int = -1
    versions: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"format": FORMAT, "seq": self.seq, "versions": dict(sorted(self.versions.items()))},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str, path: Path) -> Head:
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT:
                raise StoreError(
                    f"{path} has format {data.get('format')!r}: this Vigil reads format {FORMAT}; "
                    "upgrade Vigil"
                )
            return cls(int(data["seq"]), {str(k): int(v) for k, v in data["versions"].items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(
                f"{path} is not a valid HEAD manifest ({exc}); restore it from a backup"
            ) from None


def table_key(name: str) -> str:
    """HEAD key (and path relative to the tenant dir) of a generic result table."""
    if not isinstance(name, str) or not TABLE_NAME_RE.match(name):
        raise LabelError(
            f"table name {name!r} is invalid: expected 1-64 characters of [a-z0-9_] "
            "starting with a letter"
        )
    return f"tables/{name}"


class Layout:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.tenants_dir = self.root / "tenants"

    def tenant_dir(self, tenant: str) -> Path:
        return self.tenants_dir / validate_tenant(tenant)

    def table_path(self, tenant: str, key: str) -> Path:
        return self.tenant_dir(tenant) / key

    def tenants(self) -> list[str]:
        if not self.tenants_dir.is_dir():
            return []
        out = []
        for entry in sorted(os.listdir(self.tenants_dir)):
            if not TENANT_RE.match(entry) or entry in {".", ".."}:
                continue  # not created by Vigil: no valid id can address it
            if (self.tenants_dir / entry / HEAD_FILE).is_file() and self.read_head(entry).versions:
                out.append(entry)
        return out

    def head_path(self, tenant: str) -> Path:
        return self.tenant_dir(tenant) / HEAD_FILE

    def read_head(self, tenant: str) -> Head:
        """The committed state; empty for a tenant never written.

        HEAD.json is written before a tenant's first table, so tables without it mean
        damage (a lost or deleted HEAD.json): that raises instead of reading as empty.
        """
        path = self.head_path(tenant)
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            tdir = path.parent
            found = [n for n in (*BUILTIN_TABLES, "tables") if (tdir / n).exists()]
            if found:
                raise StoreError(
                    f"{tdir} holds {found} but no {HEAD_FILE}: it was deleted or the "
                    "directory was copied without it; restore it from a backup"
                ) from None
            return Head()
        return Head.from_json(text, path)

    def write_head(self, tenant: str, head: Head) -> None:
        """Atomically replace HEAD.json (the commit point of an operation)."""
        tdir = self.tenant_dir(tenant)
        tdir.mkdir(parents=True, exist_ok=True)
        tmp = tdir / f".{HEAD_FILE}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(head.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, tdir / HEAD_FILE)

    @contextmanager
    def locked(self, tenant: str) -> Iterator[None]:
        """Exclusive writer lock of a tenant (``flock``; released if the process dies)."""
        tdir = self.tenant_dir(tenant)
        tdir.mkdir(parents=True, exist_ok=True)
        fd = os.open(tdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock
