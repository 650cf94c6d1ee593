"""Fitted models kept between runs of ``vigil detect`` / the ``vigil serve`` scheduler.

A *model set* is one directory per scoring run, ``<models>/<tenant>/<end>/part-NNNNN.npz``
(the partition's final model, :func:`vigil.models.persist.save_model`) beside
``part-NNNNN.ids.npy`` (the series ids of its rows, in row order), and a pointer file
``<models>/<tenant>/current.json`` = ``{"dir", "cursor", "fitted_at", "catalog", "fit_start"}``
written atomically *after* the run's results and cursor are committed.  A crash before the pointer
moves leaves it on the previous set, whose state matches the previous cursor, so a model's
state always stands exactly at the cursor it is used from.

The next run continues those models (scores only the new columns, no fit) when the pointer's
cursor equals the run's first column, the tenant's series are the same (``catalog`` digest),
and ``fit_every`` has not elapsed since ``fitted_at``; otherwise it refits on ``fit_window``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vigil.models.base import Model
from vigil.models.persist import ModelVersionMismatch, load_model, save_model
from vigil.series import validate_tenant

POINTER = "current.json"


@dataclass(frozen=True)
class ModelSet:
    dir: Path
    cursor: int  # the state of every model stands at this column's start (epoch ms)
    fitted_at: int  # first column scored after the last fit (epoch ms)
    catalog: str  # digest of the tenant's series ids when fitted
    fit_start: int = 0  # first column of the window the models were fitted on (0: unknown)


def catalog_digest(series_ids: np.ndarray) -> str:
    ids = np.sort(np.asarray(series_ids, dtype=np.int64))
    return hashlib.sha256(ids.tobytes()).hexdigest()


def tenant_dir(models_root: Path, tenant: str) -> Path:
    return Path(models_root) / validate_tenant(tenant)


def current(models_root: Path, tenant: str) -> ModelSet | None:
    path = tenant_dir(models_root, tenant) / POINTER
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    d = tenant_dir(models_root, tenant) / str(meta["dir"])
    if not d.is_dir():
        return None
    return ModelSet(d, int(meta["cursor"]), int(meta["fitted_at"]), str(meta["catalog"]),
                    int(meta.get("fit_start", 0)))


def new_dir(models_root: Path, tenant: str, end: int) -> Path:
    d = tenant_dir(models_root, tenant) / f"set-{end}"
    if d.exists():
        shutil.rmtree(d)  # left by a run that crashed before its pointer moved
    d.mkdir(parents=True)
    return d


def publish(models_root: Path, tenant: str, models: ModelSet) -> None:
    """Point the tenant at ``models`` (atomic rename, fsynced) and delete older sets."""
    base = tenant_dir(models_root, tenant)
    tmp = base / f".{POINTER}.tmp"
    with open(tmp, "w") as fh:
        json.dump({"dir": models.dir.name, "cursor": models.cursor,
                   "fitted_at": models.fitted_at, "catalog": models.catalog,
                   "fit_start": models.fit_start}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, base / POINTER)
    fd = os.open(base, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for old in base.glob("set-*"):
        if old != models.dir:
            shutil.rmtree(old, ignore_errors=True)


def part_path(models_dir: Path, partition: int) -> Path:
    return Path(models_dir) / f"part-{partition:05d}.npz"


def save_partition_model(model: Model, series_ids: np.ndarray, path: str | Path) -> None:
    path = Path(path)
    save_model(model, path)
    np.save(path.with_suffix(".ids.npy"), np.asarray(series_ids, dtype=np.int64))


def load_partition_model(path: str | Path, series_ids: np.ndarray) -> Model | None:
    """The saved model of a partition, or None when it is missing, was saved by another model
    version (an upgrade changed its state) or its rows are not exactly ``series_ids`` in that
    order (the caller then fits a fresh one)."""
    path = Path(path)
    ids_path = path.with_suffix(".ids.npy")
    if not path.is_file() or not ids_path.is_file():
        return None
    if not np.array_equal(np.load(ids_path), np.asarray(series_ids, dtype=np.int64)):
        return None
    try:
        return load_model(path)
    except ModelVersionMismatch:
        return None
