"""File ingest: CSV/Parquet samples in long format -> the store (see :mod:`.files`)."""

from vigil.ingest.files import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_ERRORS, ingest_files
from vigil.ingest.report import FileError, FileReport, IngestReport, RowError, Status
from vigil.ingest.timestamps import TsFormat, parse_timestamp

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_MAX_ERRORS",
    "FileError",
    "FileReport",
    "IngestReport",
    "RowError",
    "Status",
    "TsFormat",
    "ingest_files",
    "parse_timestamp",
]
