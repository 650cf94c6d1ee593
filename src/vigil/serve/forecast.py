"""``GET /api/v1/series/{id}/forecast``: a series' forecast from the model the scheduler keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vigil.engine import modelset
from vigil.engine.detect import read_cursor
from vigil.models.persist import load_model
from vigil.series import parse_labels_json
from vigil.serve.config import ServeConfig
from vigil.timeparse import format_ms

QUANTILES = (0.1, 0.5, 0.9)


def series_forecast(store: Any, tenant: str, config: ServeConfig, series_id: int,
                    horizon: int) -> dict[str, Any]:
    catalog = store.modelled_catalog(tenant) if tenant in store.tenants() else None
    if catalog is None:
        raise KeyError(f"tenant {tenant!r} has no series yet")
    ids = catalog.column("series_id").to_numpy()
    hit = np.flatnonzero(ids == series_id)
    if not len(hit):
        raise KeyError(f"no series {series_id} in this tenant: find ids in /api/v1/anomalies or "
                       "the insights' series")
    labels = parse_labels_json(catalog.column("labels")[int(hit[0])].as_py())
    out: dict[str, Any] = {"series_id": str(series_id), "labels": labels}
    models = modelset.current(store.root / "models", tenant)
    if models is None:
        raise KeyError("no model is fitted yet for this tenant: wait for the first scoring tick")
    # the partition that holds the series (placement joins limit pairs across label sets, so
    # read the parts' id lists rather than recompute it from one label set)
    path, row = None, np.zeros(0, dtype=np.int64)
    for ids_file in sorted(Path(models.dir).glob("part-*.ids.npy")):
        row = np.flatnonzero(np.load(ids_file) == series_id)
        if len(row):
            path = ids_file.with_name(ids_file.name.replace(".ids.npy", ".npz"))
            break
    if path is None or not len(row):
        raise KeyError(f"series {series_id} has no model yet (it appeared after the last fit)")
    model = load_model(path)
    q = model.forecast(horizon, QUANTILES)[int(row[0])]
    cursor = read_cursor(store, tenant)
    step = cursor["step"] if cursor else None
    out["from"] = format_ms(models.cursor)
    out["step_seconds"] = step / 1000 if step else None
    out["quantiles"] = {str(qq): [None if not np.isfinite(v) else float(v) for v in q[:, k]]
                        for k, qq in enumerate(QUANTILES)}
    ex = store.read_table(tenant, "exhaustion")
    if ex is not None:
        rows = [r for r in ex.to_pylist() if r["series_id"] == series_id]
        if rows:
            r = max(rows, key=lambda r: r["evaluated_at"])
            out["exhaustion"] = {
                "evaluated_at": format_ms(r["evaluated_at"]), "limit": r["limit"],
                "probability": r["probability"],
                **{k: format_ms(r[k]) if r[k] is not None else None
                   for k in ("crossing_p50", "crossing_lo", "crossing_hi")}}
    return out
