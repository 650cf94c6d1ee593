"""What an ingest run did: per-row problems, per-file outcomes and a readable summary.

A :class:`RowError` names the file, the 1-based physical line (CSV, JSON lines; the header
is line 1) or the 1-based row number (Parquet), the column, the offending value and why it
was rejected.  A :class:`FileError` is a problem with a whole file (missing column, empty
file, unreadable file...) and carries the fix.  Reports keep the first ``max_errors`` row
details and count every bad row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

VALUE_SHOWN = 80  # characters of an offending value shown in a report


def show_value(value: object) -> str:
    """A short, printable form of an offending value (bytes shown with escapes)."""
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", "backslashreplace")
    else:
        text = str(value)
    if len(text) > VALUE_SHOWN:
        text = text[: VALUE_SHOWN - 3] + "..."
    return text


@dataclass(frozen=True)
class RowError:
    """One bad row (or line): where it is, what is wrong with it and how to fix it."""

    file: str
    line: int | None  # 1-based physical line (CSV/JSONL) or row number (Parquet); None: unknown
    column: str | None  # the column or field at fault; None for the whole row
    value: str | None  # the offending value, shortened for display
    reason: str
    unit: str = "line"  # "line" or "row"

    def __str__(self) -> str:
        if self.line is None:
            where = self.file
        elif self.unit == "line":
            where = f"{self.file}:{self.line}"
        else:
            where = f"{self.file} row {self.line}"
        what = f" column '{self.column}'" if self.column else ""
        if self.value is not None:
            what += f" value '{self.value}'" if self.column else f" '{self.value}'"
        return f"{where}:{what}: {self.reason}"


class FileError(Exception):
    """A problem with a whole file; its message names the file, the problem and the fix."""

    def __init__(self, file: str, problem: str, fix: str = "") -> None:
        self.file = file
        self.problem = problem
        self.fix = fix
        super().__init__(f"{file}: {problem}" + (f"; {fix}" if fix else ""))


class Status(StrEnum):
    OK = "ok"  # every row written
    PARTIAL = "partial"  # written, bad rows skipped
    REJECTED = "rejected"  # strict mode and bad rows: nothing written
    FAILED = "failed"  # a file-level error (see FileReport.error)


@dataclass
class FileReport:
    path: str
    format: str = ""  # csv, parquet or jsonl
    status: Status = Status.OK
    timestamp_format: str | None = None  # rfc3339, epoch_s, epoch_ms or the Parquet type
    rows_read: int = 0  # data rows seen (blank lines excluded)
    rows_written: int = 0  # samples handed to the store (after in-file deduplication)
    rows_skipped: int = 0  # bad rows, each counted once
    duplicates: int = 0  # rows replaced by a later row of the same (series, timestamp), per chunk
    blank_lines: int = 0
    series: int = 0  # distinct series in the file
    chunks: int = 0  # store appends (one atomic commit each)
    bytes: int = 0
    errors: list[RowError] = field(default_factory=list)  # the first max_errors bad rows
    error: str | None = None  # the file-level error, when status is FAILED
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED, Status.REJECTED)

    def summary(self, details: int = 10) -> str:
        head = f"{self.path}: "
        if self.status is Status.FAILED:
            head += f"FAILED: {self.error}"
            if self.rows_written:
                head += (
                    f" ({self.rows_written:,} samples in {self.chunks} chunk(s) were written "
                    "before the error)"
                )
        elif self.status is Status.REJECTED:
            head += (
                f"REJECTED (strict): {self.rows_skipped:,} bad row(s) of {self.rows_read:,}; "
                "nothing written"
            )
        else:
            head += (
                f"{self.rows_written:,} samples written from {self.rows_read:,} rows "
                f"({self.series:,} series, timestamps {self.timestamp_format}) "
                f"in {self.chunks} chunk(s)"
            )
            if self.rows_skipped:
                head += f"; {self.rows_skipped:,} bad row(s) skipped"
        extra = []
        if self.duplicates:
            extra.append(f"{self.duplicates:,} duplicate (series, timestamp) row(s): last kept")
        if self.blank_lines:
            extra.append(f"{self.blank_lines:,} blank line(s) ignored")
        lines = [head, *(f"  note: {n}" for n in [*extra, *self.notes])]
        for e in self.errors[:details]:
            lines.append(f"  {e}")
        more = self.rows_skipped - min(details, len(self.errors))
        if more > 0:
            lines.append(f"  ... and {more:,} more bad row(s)")
        return "\n".join(lines)


@dataclass
class IngestReport:
    files: list[FileReport] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        return sum(f.rows_written for f in self.files)

    @property
    def rows_skipped(self) -> int:
        return sum(f.rows_skipped for f in self.files)

    @property
    def failed_files(self) -> list[FileReport]:
        """Files that failed or were rejected (strict); empty when everything was ingested."""
        return [f for f in self.files if f.failed]

    @property
    def ok(self) -> bool:
        return not self.failed_files

    def summary(self, details: int = 10) -> str:
        """Plain text (no markup): one block per file, then the totals."""
        parts = [f.summary(details) for f in self.files]
        total = (
            f"total: {len(self.files)} file(s), {self.rows_written:,} samples written, "
            f"{self.rows_skipped:,} bad row(s)"
        )
        if self.failed_files:
            total += f", {len(self.failed_files)} file(s) failed or rejected"
        parts.append(total)
        return "\n".join(parts)
