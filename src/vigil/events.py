"""Change events (deployments, config changes...): schema, validation, JSON-lines import.

One event per line::

    {"time": "2024-05-01T12:00:00Z", "kind": "deployment",
     "labels": {"namespace": "shop", "service": "cart"},
     "summary": "cart v1.4.2 rolled out", "attributes": {"version": "1.4.2"}}

``time`` is RFC 3339 (with an offset) or epoch seconds/milliseconds (number or text; the
magnitude decides the unit, as in file ingest).  ``kind`` is one of :class:`EventKind`.
``labels`` follow Prometheus label rules (string values; empty values are dropped).
``attributes`` is optional, any JSON object without NaN/Infinity.  Unknown keys are rejected.

``event_id`` is a stable hash of the canonical content (time in ms, kind, sorted labels,
summary, sorted attributes), so the same event imported twice has the same id.

:func:`parse_event` and :func:`events_to_table` are pure (the HTTP API reuses them);
:func:`import_events` reads a file and writes one ``Store.append_events`` call (one commit),
holding the file's events in memory (change events are few).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol, cast

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from vigil.ingest.report import FileError, RowError, Status, show_value
from vigil.ingest.timestamps import parse_timestamp
from vigil.series import (
    LabelError,
    labels_json,
    validate_label_name,
    validate_label_value,
    validate_tenant,
)
from vigil.store.events import EVENT_SCHEMA

DEFAULT_MAX_ERRORS = 100
EVENTS_SCHEMA = EVENT_SCHEMA  # the store's events table: one schema, declared there


class EventKind(StrEnum):
    DEPLOYMENT = "deployment"
    CONFIG_CHANGE = "config_change"
    SCALING = "scaling"
    INFRASTRUCTURE = "infrastructure"
    FEATURE_FLAG = "feature_flag"
    SECURITY_CHANGE = "security_change"
    OTHER = "other"


_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


def _canonical_json(value: object) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


class Event(BaseModel):
    """A validated change event; ``time`` is epoch ms UTC, ``labels`` sorted and non-empty."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time: int
    kind: EventKind
    labels: dict[str, str]
    summary: str
    attributes: dict[str, Any] = {}
    id: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not _ID_RE.match(value):
            raise ValueError(
                "id must be 1-128 characters of [A-Za-z0-9_.:-] (the source's own event id); "
                "leave it out to get a content hash"
            )
        return value

    @field_validator("time", mode="before")
    @classmethod
    def _time(cls, value: object) -> int:
        return parse_timestamp(value)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: object) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise ValueError(
                f"labels must be a JSON object of string values, got {type(value).__name__}"
            )
        out: dict[str, str] = {}
        for name in sorted(value):
            try:
                validate_label_name(name)
                text = validate_label_value(name, value[name])
            except LabelError as exc:
                raise ValueError(str(exc)) from None
            if text != "":
                out[name] = text
        return out

    @field_validator("summary", mode="before")
    @classmethod
    def _summary(cls, value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"summary must be a string, got {type(value).__name__}")
        text = value.strip()
        if not text:
            raise ValueError("summary is empty: say in a few words what changed")
        return text

    @field_validator("attributes", mode="before")
    @classmethod
    def _attributes(cls, value: object) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"attributes must be a JSON object, got {type(value).__name__}")
        try:
            return json.loads(_canonical_json(value))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"attributes are not plain JSON ({exc})") from None

    @property
    def event_id(self) -> str:
        """The source's ``id`` when given, else BLAKE2b-128 (hex) of the canonical content."""
        if self.id is not None:
            return self.id
        digest = hashlib.blake2b(self.canonical().encode("utf-8"), digest_size=16)
        return digest.hexdigest()

    def canonical(self) -> str:
        return _canonical_json(
            {
                "attributes": self.attributes,
                "kind": str(self.kind),
                "labels": self.labels,
                "summary": self.summary,
                "time": self.time,
            }
        )


@dataclass(frozen=True)
class FieldProblem:
    field: str  # dotted path, e.g. "labels.service"; "" for the whole event
    value: object
    reason: str


class EventError(ValueError):
    """An event that failed validation; ``problems`` lists each field at fault."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__(
            "; ".join(f"{p.field or 'event'}: {p.reason}" for p in problems) or "invalid event"
        )


def parse_event(obj: object) -> Event:
    """Validate one decoded JSON value as an :class:`Event`, or raise :class:`EventError`."""
    if not isinstance(obj, Mapping):
        raise EventError(
            [FieldProblem("", obj, f"expected a JSON object, got {type(obj).__name__}")]
        )
    try:
        return Event.model_validate(dict(obj))
    except ValidationError as exc:
        raise EventError([_problem(err) for err in exc.errors()]) from None


def _problem(err: Mapping[str, Any]) -> FieldProblem:
    path = ".".join(str(p) for p in err.get("loc", ()))
    kind, msg = err.get("type", ""), str(err.get("msg", ""))
    msg = msg.removeprefix("Value error, ")
    if kind == "missing":
        msg = "required field is missing"
    elif kind == "extra_forbidden":
        msg = "unknown field; allowed: id, time, kind, labels, summary, attributes"
    elif kind == "enum":
        msg = f"unknown kind; expected one of {', '.join(k.value for k in EventKind)}"
    return FieldProblem(path, err.get("input"), msg)


def events_to_table(events: Iterable[Event]) -> pa.Table:
    """Events -> the store's events table (labels/attributes as canonical JSON text)."""
    rows = list(events)
    return pa.table(
        [
            pa.array([e.event_id for e in rows], pa.string()),
            pa.array([e.time for e in rows], pa.int64()),
            pa.array([str(e.kind) for e in rows], pa.string()),
            pa.array([labels_json(e.labels) for e in rows], pa.string()),
            pa.array([e.summary for e in rows], pa.string()),
            pa.array([_canonical_json(e.attributes) for e in rows], pa.string()),
        ],
        schema=EVENTS_SCHEMA,
    )


# ------------------------------------------------------------------------------- import


class EventSink(Protocol):
    """What event import needs from ``vigil.store.Store``."""

    def append_events(self, tenant: str, events: pa.Table) -> int: ...


@dataclass
class EventImportReport:
    path: str
    status: Status = Status.OK
    lines: int = 0  # non-blank lines read
    events_written: int = 0
    bad_lines: int = 0
    duplicates: int = 0  # lines repeating an event already in the file (same event_id)
    blank_lines: int = 0
    errors: list[RowError] = field(default_factory=list)  # the first max_errors problems
    error: str | None = None  # file-level error

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED, Status.REJECTED)

    def summary(self, details: int = 10) -> str:
        """Plain text (no markup)."""
        if self.status is Status.FAILED:
            head = f"{self.path}: FAILED: {self.error}"
        elif self.status is Status.REJECTED:
            head = (
                f"{self.path}: REJECTED (strict): {self.bad_lines:,} bad line(s) of "
                f"{self.lines:,}; nothing written"
            )
        else:
            head = f"{self.path}: {self.events_written:,} events written from {self.lines:,} lines"
            if self.bad_lines:
                head += f"; {self.bad_lines:,} bad line(s) skipped"
        out = [head]
        if self.duplicates:
            out.append(f"  note: {self.duplicates:,} duplicate event(s) in the file: kept once")
        out.extend(f"  {e}" for e in self.errors[:details])
        if len(self.errors) > details:
            out.append(f"  ... and {len(self.errors) - details:,} more problem(s)")
        return "\n".join(out)


def read_events(
    lines: Iterable[bytes], file: str, max_errors: int = DEFAULT_MAX_ERRORS
) -> tuple[list[Event], EventImportReport]:
    """Parse JSON lines (raw bytes) into events; bad lines are counted and described."""
    report = EventImportReport(path=file)
    events: dict[str, Event] = {}

    def problem(line: int, fld: str | None, value: object, reason: str) -> None:
        if len(report.errors) < max_errors:
            shown = None if value is None else show_value(_json_text(value))
            report.errors.append(RowError(file, line, fld, shown, reason))

    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            report.blank_lines += 1
            continue
        report.lines += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            report.bad_lines += 1
            problem(
                number,
                None,
                raw.strip(),
                f"not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8",
            )
            continue
        try:
            obj = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            report.bad_lines += 1
            problem(number, None, text.strip(), f"not valid JSON ({exc})")
            continue
        try:
            event = parse_event(obj)
        except EventError as exc:
            report.bad_lines += 1
            for p in exc.problems:
                problem(number, p.field or None, p.value, p.reason)
            continue
        if event.event_id in events:
            report.duplicates += 1
        events[event.event_id] = event
    return list(events.values()), report


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON; write null or a string")


def _json_text(value: object) -> object:
    if isinstance(value, str | bytes):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def import_events(
    store: EventSink,
    tenant: str,
    path: str | Path,
    strict: bool = False,
    *,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> EventImportReport:
    """Import a JSON-lines file of change events into ``tenant`` with one store commit.

    Bad lines are skipped and reported; with ``strict`` any bad line rejects the file and
    nothing is written.  File-level problems give a FAILED report, not an exception; an
    invalid tenant id raises ``LabelError``.
    """
    validate_tenant(tenant)
    file = str(path)
    try:
        with _open_lines(Path(path), file) as fh:
            events, report = read_events(_lines(fh), file, max_errors)
    except FileError as exc:
        return EventImportReport(
            path=file, status=Status.FAILED, error=exc.problem + (f"; {exc.fix}" if exc.fix else "")
        )
    if report.lines == 0:
        report.status, report.error = Status.FAILED, "the file has no events; export it again"
        return report
    if report.bad_lines and strict:
        report.status = Status.REJECTED
        return report
    if not events:
        report.status = Status.FAILED
        report.error = f"no valid events: all {report.bad_lines:,} lines are bad; see below"
        return report
    if events:
        written = store.append_events(tenant, events_to_table(events))
        report.events_written = int(written) if written is not None else len(events)
    report.status = Status.PARTIAL if report.bad_lines else Status.OK
    return report


def _open_lines(path: Path, file: str) -> IO[bytes]:
    try:
        if path.stat().st_size == 0:
            raise FileError(file, "the file is empty (0 bytes)", "export the events again")
        if path.suffix.lower() == ".gz":
            return cast(IO[bytes], gzip.open(path, "rb"))
        return open(path, "rb")
    except FileNotFoundError:
        raise FileError(file, "no such file", "check the path") from None
    except IsADirectoryError:
        raise FileError(file, "is a directory", "give the path of a JSON-lines file") from None
    except PermissionError:
        raise FileError(file, "permission denied", "make the file readable") from None
    except OSError as exc:
        raise FileError(file, f"cannot read the file ({exc.strerror})") from None


def _lines(fh: IO[bytes]) -> Iterator[bytes]:
    try:
        yield from fh
    except OSError as exc:  # e.g. a truncated gzip stream
        raise FileError(getattr(fh, "name", "?"), f"read error ({exc})") from None


__all__ = [
    "EVENTS_SCHEMA",
    "Event",
    "EventError",
    "EventImportReport",
    "EventKind",
    "FieldProblem",
    "events_to_table",
    "import_events",
    "parse_event",
    "read_events",
]
