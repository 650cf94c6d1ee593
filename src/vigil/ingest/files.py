"""``ingest_files``: CSV/Parquet files in long format -> the store, chunk by chunk.

Each file streams in chunks of ``chunk_rows`` rows (memory is bounded by the chunk, not the
file) and each chunk is one ``Store.append`` (one atomic commit).  Bad rows are skipped,
counted and reported (the first ``max_errors`` in detail).  File-level problems become a
failed :class:`FileReport` naming the fix; the other files are still ingested.

``strict=True`` writes nothing from a file with any bad row.  It validates the whole file in
a first pass without writing; only when that pass found no bad row are the chunks written
(a file of one chunk is kept from the first pass, a longer one is read again).  A file of one
chunk is therefore committed atomically; a longer one is committed chunk by chunk after it was
validated, so only a crash or a store error in the middle of that second pass can leave part
of it written (re-running the ingest is safe: the store keeps the last value per
(series, timestamp)).

Duplicate (series, timestamp) rows: the store keeps the last row given within an append and
the last append across appends, so the last row of a file wins; ``FileReport.duplicates``
counts the rows the store dropped within appends (``Store.append`` returns the rows kept).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from vigil.ingest.columns import Columns, check_parquet_types, is_text, resolve_columns
from vigil.ingest.convert import NATIVE, ChunkResult, SeriesCache, convert_chunk
from vigil.ingest.readers import (
    DEFAULT_BLOCK_SIZE,
    CsvSource,
    ParquetSource,
    RawChunk,
    expand_paths,
    open_source,
)
from vigil.ingest.report import (
    FileError,
    FileReport,
    IngestReport,
    RowError,
    Status,
    show_value,
)
from vigil.ingest.timestamps import DETECT_SAMPLE, TsFormat, detect_numeric, detect_strings
from vigil.metrictypes import check_type
from vigil.series import validate_tenant

DEFAULT_CHUNK_ROWS = 1_000_000
DEFAULT_MAX_ERRORS = 100
ProgressFn = Callable[[int, int], None]


class SampleSink(Protocol):
    """What ingest needs from ``vigil.store.Store``."""

    def append(self, tenant: str, samples: pa.Table, catalog: pa.Table) -> int: ...

    def declare_types(self, tenant: str, types: dict[str, str], source: str, at: int) -> int: ...


@dataclass
class _FileState:
    cols: Columns
    fmt: TsFormat | str | None = None
    cache: SeriesCache = field(default_factory=SeriesCache)
    details: list[tuple[int, RowError]] = field(default_factory=list)
    series: set[int] = field(default_factory=set)


def ingest_files(
    store: SampleSink,
    tenant: str,
    paths: Sequence[str | os.PathLike[str]],
    *,
    strict: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: ProgressFn | None = None,
    max_errors: int = DEFAULT_MAX_ERRORS,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> IngestReport:
    """Ingest CSV/Parquet files (or directories of them) into ``tenant``; see the module doc.

    ``progress(bytes_done, bytes_total)`` is called after each chunk (strict mode counts each
    file twice, for its two passes).  Raises ``ValueError`` only for bad arguments; problems
    with files are in the returned report.
    """
    validate_tenant(tenant)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows} is invalid: expected a positive row count")
    if max_errors < 0:
        raise ValueError(f"max_errors={max_errors} is invalid: expected 0 or more")
    files = expand_paths(list(paths))
    weights = [_size(p) * (2 if strict else 1) for p in files]
    total = sum(weights)
    report = IngestReport()
    base = 0
    for path, weight in zip(files, weights, strict=True):
        fr = FileReport(path=str(path))
        report.files.append(fr)

        def tick(done: int, base: int = base) -> None:
            if progress is not None:
                progress(base + done, total)

        try:
            _ingest_one(store, tenant, path, fr, strict, chunk_rows, max_errors, block_size, tick)
        except FileError as exc:
            fr.status = Status.FAILED
            fr.error = exc.problem + (f"; {exc.fix}" if exc.fix else "")
        base += weight
        if progress is not None:
            progress(base, total)
    return report


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _ingest_one(
    store: SampleSink,
    tenant: str,
    path: Path,
    fr: FileReport,
    strict: bool,
    chunk_rows: int,
    max_errors: int,
    block_size: int,
    tick: Callable[[int], None],
) -> None:
    file = str(path)
    src = open_source(path, file, block_size)
    fr.format, fr.bytes = src.format, src.size
    cols = resolve_columns(file, src.names)
    if isinstance(src, ParquetSource):
        check_parquet_types(file, src.schema, cols)
    state = _FileState(cols)

    def write(res: ChunkResult) -> None:
        if res.samples.num_rows:
            written = int(store.append(tenant, res.samples, res.catalog))
            fr.rows_written += written
            fr.duplicates += res.samples.num_rows - written
            fr.chunks += 1

    first: ChunkResult | None = None
    several = False
    for chunk in src.chunks(chunk_rows):
        res = _convert(src, chunk, state, fr, max_errors)
        _account(fr, res, state, max_errors)
        if not strict:
            write(res)
        elif first is None and not several:
            first = res
        else:
            several, first = True, None
        tick(chunk.bytes_done)
    _finish_errors(src, fr, state, max_errors)
    fr.series = len(state.series)
    if fr.rows_read == 0:
        raise FileError(file, "the file has a header but no data rows", "export the data again")
    if fr.timestamp_format is None:
        fr.timestamp_format = "undetected"
    if strict:
        if fr.rows_skipped:
            fr.status = Status.REJECTED
            return
        if first is not None:
            write(first)
        else:
            for chunk in src.chunks(chunk_rows):
                write(_convert(src, chunk, state, None, 0))
                tick(src.size + chunk.bytes_done)
        tick(2 * src.size)
    if fr.rows_skipped and fr.rows_written == 0:
        raise FileError(
            file,
            f"no valid rows: all {fr.rows_skipped:,} data rows are bad",
            "see the first errors below",
        )
    fr.status = Status.PARTIAL if fr.rows_skipped else Status.OK
    if src.types:  # '# TYPE' lines: kept once the file's samples are in
        valid = {}
        for name, kind in src.types.items():
            try:
                valid[name] = check_type(name, kind)
            except ValueError as exc:
                fr.notes.append(f"{exc}; the line is ignored")
        if valid:
            store.declare_types(tenant, valid, "file", int(time.time() * 1000))


def _convert(
    src: CsvSource | ParquetSource,
    chunk: RawChunk,
    state: _FileState,
    fr: FileReport | None,
    max_errors: int,
) -> ChunkResult:
    if state.fmt is None:
        state.fmt = _detect(chunk.table.column(state.cols.timestamp).combine_chunks())
        if fr is not None and state.fmt is not None:
            typ = src.schema.field(state.cols.timestamp).type
            fr.timestamp_format = f"{typ}" if state.fmt == NATIVE else str(state.fmt)
            if state.fmt == NATIVE and getattr(typ, "tz", None) is None:
                fr.notes.append("timestamp column has no time zone: read as UTC")
    budget = max(0, max_errors - len(state.details))
    return convert_chunk(
        chunk.table,
        state.cols,
        state.fmt,
        file=src.file,
        lines=chunk.lines,
        first_ordinal=chunk.first_ordinal,
        cache=state.cache,
        max_errors=budget,
        unit=src.unit,
        blank_rows=src.blank_rows,
    )


def _account(fr: FileReport, res: ChunkResult, state: _FileState, max_errors: int) -> None:
    fr.rows_read += res.rows
    fr.rows_skipped += res.bad
    fr.blank_lines += res.blank
    state.details.extend(res.errors[: max(0, max_errors - len(state.details))])
    state.series.update(res.catalog.column("series_id").to_pylist())


def _detect(col: pa.Array) -> TsFormat | str | None:
    """The timestamp format of a file, from its first chunk."""
    typ = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    if pa.types.is_timestamp(typ):
        return NATIVE
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):
        valid = col.drop_null().slice(0, 4 * DETECT_SAMPLE)
        return detect_numeric(np.asarray(valid.to_numpy(zero_copy_only=False)))
    if is_text(typ):
        return detect_strings(_texts(col))
    return None


def _texts(col: pa.Array, step: int = 4 * DETECT_SAMPLE) -> Iterator[str]:
    for start in range(0, len(col), step):
        for v in col.slice(start, step).to_pylist():
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError:
                    continue
            if v:
                yield v


def _finish_errors(
    src: CsvSource | ParquetSource, fr: FileReport, state: _FileState, max_errors: int
) -> None:
    """Add the CSV rows with a wrong field count and put every detail on its true line."""
    details = state.details
    if isinstance(src, CsvSource) and src.invalid_rows:
        fr.rows_read += src.invalid_rows
        fr.rows_skipped += src.invalid_rows
        found, invalid, complete = src.locate(
            {o for o, _ in details}, min(src.invalid_rows, max_errors)
        )
        details = [(o, replace(d, line=found.get(o, d.line))) for o, d in details]
        ncols = len(src.names)
        for line, nfields, text in invalid:
            reason = (
                f"expected {ncols} fields, found {nfields}; quote values that contain ',' "
                "and check the row"
            )
            details.append((-1, RowError(src.file, line, None, show_value(text), reason)))
        if not complete:
            fr.notes.append(
                "line numbers after the first row with a wrong field count may be off "
                "(a field is too large to rescan)"
            )
    fr.errors = sorted((d for _, d in details), key=lambda d: d.line or 0)[:max_errors]
