"""Streaming readers: a CSV or Parquet file as chunks of raw rows, with bounded memory.

CSV is read with ``pyarrow.csv.open_csv`` (``block_size`` bytes at a time), every column as
raw bytes (UTF-8 is checked later, per value); Parquet with ``ParquetFile.iter_batches``.
Each :class:`RawChunk` carries the rows' line numbers (CSV: 1-based physical lines, header =
line 1, quoted newlines counted; Parquet: 1-based row numbers) and how many bytes of the file
were consumed, for progress bars.

CSV rows with the wrong number of fields are skipped by the Arrow reader, which does not say
where they were; they are counted, and :meth:`CsvSource.locate` rescans the file with Python's
``csv`` module (only when such rows exist, and only as far as needed) to find their lines and
correct the line numbers of the rows after them.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from vigil.ingest.report import FileError

COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
CSV_SUFFIXES = (".csv", *(f".csv{s}" for s in COMPRESSION))
PARQUET_SUFFIXES = (".parquet", ".pq")
DEFAULT_BLOCK_SIZE = 1 << 20  # Arrow reads ~32 blocks ahead: ~40 MB in flight


@dataclass
class RawChunk:
    table: pa.Table
    first_ordinal: int  # index of the first row among the file's data rows
    lines: np.ndarray  # line (CSV) or row (Parquet) number of each row, 1-based
    bytes_done: int


def file_format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def _file_size(path: Path, file: str) -> int:
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise FileError(file, "no such file", "check the path") from None
    except PermissionError:
        raise FileError(file, "permission denied", "make the file readable") from None
    except OSError as exc:
        raise FileError(file, f"cannot read the file ({exc.strerror})") from None
    if size == 0:
        raise FileError(file, "the file is empty (0 bytes)", "export the data again")
    return size


def _long_line(file: str, line: int, block_size: int) -> FileError:
    return FileError(
        file,
        f"a line at or after line {line:,} is longer than the read block of {block_size:,} bytes "
        "(or a quote is never closed)",
        "check for an unbalanced '\"' there, or raise the block size (block_size=)",
    )


class CsvSource:
    format = "csv"
    unit = "line"
    blank_rows = True

    def __init__(self, path: Path, file: str, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        self.path, self.file, self.block_size = path, file, block_size
        self.size = _file_size(path, file)
        self.invalid_rows = 0  # rows with the wrong number of fields (skipped by Arrow)
        self.types, self.comment_lines = self._comments()
        self.names = self._header()
        self.header_lines = (self.comment_lines + 1
                             + sum(name.count("\n") for name in self.names))
        self.schema = pa.schema([(n, pa.binary()) for n in self.names])

    def _suffix(self) -> str | None:
        return COMPRESSION.get(self.path.suffix.lower())

    def _open(self, handler: object, types: dict[str, pa.DataType] | None) -> tuple:
        raw = pa.OSFile(str(self.path))
        codec = self._suffix()
        stream = pa.CompressedInputStream(raw, codec) if codec else raw
        read = pcsv.ReadOptions(block_size=self.block_size, skip_rows=self.comment_lines)
        parse = pcsv.ParseOptions(
            newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=handler
        )
        convert = pcsv.ConvertOptions(
            column_types=types,
            check_utf8=False,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        return raw, pcsv.open_csv(stream, read, parse, convert)

    def _comments(self) -> tuple[dict[str, str], int]:
        """Leading ``#`` lines (before the header): ``# TYPE <metric> <type>`` declares a metric
        type as in Prometheus' text format (``# HELP`` and other comments are skipped) ->
        (metric -> type, number of comment lines)."""
        types: dict[str, str] = {}
        count = 0
        try:
            with pa.input_stream(str(self.path), compression="detect") as stream:
                text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
                for line in text:
                    if not line.startswith("#"):
                        break
                    count += 1
                    parts = line[1:].split()
                    if len(parts) == 3 and parts[0] == "TYPE":
                        types[parts[1]] = parts[2].lower()
        except (OSError, pa.ArrowException) as exc:
            raise FileError(self.file, f"cannot read the file ({exc})") from None
        return types, count

    def _header(self) -> list[str]:
        try:
            raw, reader = self._open(lambda row: "skip", None)
            names = list(reader.schema.names)
            raw.close()
        except pa.ArrowInvalid as exc:
            msg = str(exc)
            if "Empty CSV" in msg:
                raise FileError(self.file, "the file is empty", "export the data again") from None
            if "straddl" in msg:
                raise _long_line(self.file, 1, self.block_size) from None
            raise FileError(self.file, f"not a readable CSV file ({msg})") from None
        except (OSError, pa.ArrowException) as exc:
            raise FileError(self.file, f"cannot read the file ({exc})") from None
        except UnicodeDecodeError:
            raise FileError(
                self.file, "the header is not valid UTF-8", "re-encode the file as UTF-8"
            ) from None
        return names

    def _on_invalid(self, row: object) -> str:
        self.invalid_rows += 1
        return "skip"

    def chunks(self, chunk_rows: int) -> Iterator[RawChunk]:
        self.invalid_rows = 0
        raw, reader = self._open(self._on_invalid, {n: pa.binary() for n in self.names})
        ordinal, next_line = 0, self.header_lines + 1
        consumed = sum(len(n.encode()) + 1 for n in self.names)  # bytes parsed so far (estimate)
        compressed = self._suffix() is not None
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except pa.ArrowInvalid as exc:
                    if "straddl" in str(exc):
                        raise _long_line(
                            self.file, next_line + pending_rows, self.block_size
                        ) from None
                    raise FileError(
                        self.file, f"CSV parse error after line {next_line + pending_rows:,}: {exc}"
                    ) from None
                except OSError as exc:
                    raise FileError(self.file, f"read error: {exc}") from None
                pending.append(batch)
                pending_rows += batch.num_rows
                while pending_rows >= chunk_rows:
                    table = pa.Table.from_batches(pending, self.schema)
                    head, rest = table.slice(0, chunk_rows), table.slice(chunk_rows)
                    lines, next_line = self._lines(head, next_line)
                    consumed += self._bytes(head)
                    done = raw.tell() if compressed else min(consumed, raw.tell())
                    yield RawChunk(head, ordinal, lines, done)
                    ordinal += head.num_rows
                    pending, pending_rows = rest.to_batches(), rest.num_rows
            if pending_rows:
                table = pa.Table.from_batches(pending, self.schema)
                lines, next_line = self._lines(table, next_line)
                yield RawChunk(table, ordinal, lines, self.size)
        finally:
            raw.close()

    @staticmethod
    def _bytes(table: pa.Table) -> int:
        """Approximate size in the file of the rows of ``table`` (fields + separators)."""
        data = sum(int(pc.sum(pc.binary_length(col)).as_py() or 0) for col in table.columns)
        return data + table.num_rows * table.num_columns

    def _lines(self, table: pa.Table, first: int) -> tuple[np.ndarray, int]:
        n = table.num_rows
        extra = np.zeros(n, dtype=np.int64)
        for col in table.columns:
            if any(_has_newline(chunk) for chunk in col.chunks):
                counts = pc.count_substring(col, "\n").fill_null(0)
                extra += np.asarray(counts.to_numpy(), dtype=np.int64)
        before = np.cumsum(extra) - extra
        lines = first + np.arange(n, dtype=np.int64) + before
        return lines, int(first + n + extra.sum())

    def locate(
        self, ordinals: set[int], want_invalid: int
    ) -> tuple[dict[int, int], list[tuple[int, int, str]], bool]:
        """Rescan: ``(ordinal -> line, [(line, n_fields, text)] of bad rows, complete)``."""
        found: dict[int, int] = {}
        invalid: list[tuple[int, int, str]] = []
        remaining = set(ordinals)
        ncols = len(self.names)
        with pa.input_stream(str(self.path), compression="detect") as stream:
            text = io.TextIOWrapper(stream, encoding="latin-1", newline="")
            for _ in range(self.comment_lines):
                text.readline()
            reader = csv.reader(text)
            try:
                next(reader)
                end = reader.line_num + self.comment_lines
                ordinal = 0
                for fields in reader:
                    start, end = end + 1, reader.line_num + self.comment_lines
                    if not fields or len(fields) == ncols:
                        if ordinal in remaining:
                            found[ordinal] = start
                            remaining.discard(ordinal)
                        ordinal += 1
                    elif len(invalid) < want_invalid:
                        shown = ",".join(fields).encode("latin-1").decode("utf-8", "replace")
                        invalid.append((start, len(fields), shown))
                    if not remaining and len(invalid) >= want_invalid:
                        break
            except csv.Error:
                return found, invalid, False
        return found, invalid, True


def _has_newline(arr: pa.Array) -> bool:
    """Whether any value of a binary array holds a newline (one memchr over its data)."""
    if len(arr) == 0:
        return False
    _, offsets, data = arr.buffers()[:3]
    if data is None:
        return False
    bounds = np.frombuffer(offsets, np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    start, stop = int(bounds[0]), int(bounds[-1])
    return memoryview(data)[start:stop].tobytes().find(b"\n") >= 0


class ParquetSource:
    format = "parquet"
    unit = "row"
    blank_rows = False

    def __init__(self, path: Path, file: str) -> None:
        self.path, self.file = path, file
        self.size = _file_size(path, file)
        self.invalid_rows = 0
        self.types: dict[str, str] = {}  # declared metric types (CSV only: # TYPE lines)
        try:
            self.pf = pq.ParquetFile(str(path))
        except (pa.ArrowInvalid, OSError) as exc:
            raise FileError(
                file, f"not a readable Parquet file ({exc})", "check the file is complete"
            ) from None
        self.schema = self.pf.schema_arrow
        self.names = list(self.schema.names)
        self.rows = self.pf.metadata.num_rows
        if self.rows == 0:
            raise FileError(file, "the file has no rows", "export the data again")

    def chunks(self, chunk_rows: int, columns: list[str] | None = None) -> Iterator[RawChunk]:
        ordinal = 0
        try:
            for batch in self.pf.iter_batches(batch_size=chunk_rows, columns=columns):
                n = batch.num_rows
                lines = np.arange(ordinal + 1, ordinal + n + 1, dtype=np.int64)
                done = self.size * (ordinal + n) // max(self.rows, 1)
                yield RawChunk(pa.Table.from_batches([batch]), ordinal, lines, done)
                ordinal += n
        except (pa.ArrowInvalid, OSError) as exc:
            raise FileError(
                self.file, f"read error after row {ordinal:,} ({exc})", "check the file"
            ) from None


def open_source(path: Path, file: str, block_size: int) -> CsvSource | ParquetSource:
    if path.is_dir():
        raise FileError(file, "the directory holds no .csv or .parquet files", "check the path")
    fmt = file_format(path)
    if fmt == "csv":
        return CsvSource(path, file, block_size)
    if fmt == "parquet":
        return ParquetSource(path, file)
    raise FileError(
        file,
        f"unknown file type {''.join(path.suffixes) or '(no extension)'!r}",
        f"name it *.csv ({', '.join(CSV_SUFFIXES[1:])} compressed) or *.parquet",
    )


def expand_paths(paths: list[str | os.PathLike[str]]) -> list[Path]:
    """Files to ingest: each path, or the supported files under a directory (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and file_format(f))
            out.extend(found or [p])  # an empty directory is reported by open_source
        else:
            out.append(p)
    return out
