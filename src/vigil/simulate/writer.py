"""Writing generated rows as long-format sample files, one file per UTC day and chunk.

Columns: ``timestamp`` (epoch ms int64), ``metric``, ``value`` (float64), then the labels
``site, namespace, service, pod, node``; an empty label cell means the label is absent (node
series have no namespace/service/pod).  Rows are grouped by metric and series, in time order.
Timestamps carry each target's scrape offset (plus a few ms of jitter) inside its step, as
Prometheus does, so they are not on the grid.  Parquet (zstd, dictionary-encoded labels) or CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from vigil.simulate.grid import Grid
from vigil.simulate.signals import METRICS, ChunkValues

LABEL_COLUMNS = ("site", "namespace", "service", "pod", "node")
FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class RowLabels:
    """Label codes of a chunk: per row (site, namespace, service) and per pod code (pod, node,
    scrape offset).  Codes index the writer's dictionaries (``pods`` for the pod label)."""

    site: np.ndarray
    namespace: np.ndarray
    service: np.ndarray
    pods: list[str]
    pod_of_code: np.ndarray
    node_of_code: np.ndarray
    offset_of_code: np.ndarray


class SampleWriter:
    def __init__(
        self,
        root: Path,
        fmt: str,
        grid: Grid,
        seed: int,
        sites: list[str],
        namespaces: list[str],
        services: list[str],
        nodes: list[str],
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"fmt={fmt!r} is not supported: expected one of {FORMATS}")
        self.root, self.fmt, self.grid, self.seed = root, fmt, grid, seed
        self.dicts = {
            "metric": pa.array(list(METRICS), pa.string()),
            "site": pa.array(sites, pa.string()),
            "namespace": pa.array(["", *namespaces], pa.string()),
            "service": pa.array(["", *services], pa.string()),
            "node": pa.array(nodes, pa.string()),
        }
        self.files: list[Path] = []
        self.n_samples = 0
        self.n_series = 0
        self.n_bytes = 0
        # each target scrapes at a fixed offset < 0.8 step; jitter stays below the rest
        self.jitter_ms = max(1, min(50, grid.step_ms // 10))

    def write(self, name: str, chunk: int, cv: ChunkValues, labels: RowLabels) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        grid = self.grid
        n_codes = len(labels.pod_of_code)
        seen = np.zeros((len(METRICS), n_codes), dtype=bool)
        pod_dict = pa.array(labels.pods, pa.string())
        for day, (date, first, stop) in enumerate(grid.day_bounds()):
            parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
            for metric, values in cv.values.items():
                m = METRICS.index(metric)
                r, c = np.nonzero(~np.isnan(values[:, first:stop]))
                c += first
                k = cv.code[r, c]
                seen[m, k] = True
                parts.append((m, r, c, k, values[r, c]))
            if not parts or sum(len(p[1]) for p in parts) == 0:
                continue
            metric_code = np.concatenate([np.full(len(p[1]), p[0], np.int32) for p in parts])
            row = np.concatenate([p[1] for p in parts])
            col = np.concatenate([p[2] for p in parts]).astype(np.int64)
            code = np.concatenate([p[3] for p in parts])
            value = np.concatenate([p[4] for p in parts])
            rng = np.random.default_rng([self.seed, 20, chunk, day])
            ts = grid.start_ms + col * grid.step_ms + labels.offset_of_code[code]
            ts += rng.integers(0, self.jitter_ms, len(ts))

            def dict_col(indices: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
                return pa.DictionaryArray.from_arrays(
                    pa.array(indices.astype(np.int32, copy=False)), dictionary
                )

            columns: dict[str, pa.Array] = {
                "timestamp": pa.array(ts, pa.int64()),
                "metric": dict_col(metric_code, self.dicts["metric"]),
                "value": pa.array(value, pa.float64()),
                "site": dict_col(labels.site[row], self.dicts["site"]),
                "namespace": dict_col(labels.namespace[row], self.dicts["namespace"]),
                "service": dict_col(labels.service[row], self.dicts["service"]),
                "pod": dict_col(labels.pod_of_code[code], pod_dict),
                "node": dict_col(labels.node_of_code[code], self.dicts["node"]),
            }
            path = self.root / f"{date}_{name}.{self.fmt}"
            if self.fmt == "parquet":
                pq.write_table(
                    pa.table(columns),
                    path,
                    compression="zstd",
                    use_dictionary=["metric", *LABEL_COLUMNS],
                    column_encoding={"timestamp": "DELTA_BINARY_PACKED"},
                )
            else:
                plain = {
                    k: v.dictionary_decode() if isinstance(v, pa.DictionaryArray) else v
                    for k, v in columns.items()
                }
                pacsv.write_csv(pa.table(plain), path)
            self.files.append(path)
            self.n_samples += len(ts)
            self.n_bytes += path.stat().st_size
        self.n_series += int(seen.sum())
