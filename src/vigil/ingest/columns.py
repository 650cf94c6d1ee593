"""Which column of an ingested file is the timestamp, the value, the metric name and the labels.

Long format: ``timestamp`` and ``value`` are required, ``metric`` or ``__name__`` names the
metric, and every other column is a label whose name must follow Prometheus rules.  Problems
are file-level (:class:`FileError`), since they concern every row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from vigil.ingest.report import FileError
from vigil.series import METRIC_LABEL, LabelError, validate_label_name

TIMESTAMP = "timestamp"
VALUE = "value"
METRIC_COLUMNS = ("metric", METRIC_LABEL)


@dataclass(frozen=True)
class Columns:
    timestamp: str
    value: str
    metric: str
    labels: tuple[str, ...]  # label columns; the column name is the label name

    @property
    def names(self) -> list[str]:
        return [self.timestamp, self.value, self.metric, *self.labels]

    @property
    def series_columns(self) -> list[str]:
        """The metric column, then the label columns: what identifies a series."""
        return [self.metric, *self.labels]


def resolve_columns(file: str, names: Sequence[str]) -> Columns:
    """Assign roles to a file's columns, or raise :class:`FileError` naming the fix."""
    found = ", ".join(repr(n) for n in names) or "none"
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    if dupes:
        raise FileError(
            file,
            f"column(s) {', '.join(map(repr, dupes))} appear more than once",
            "give every column a distinct name",
        )
    if len(names) == 1:
        for sep in ("\t", ";", "|"):
            if sep in names[0]:
                raise FileError(
                    file,
                    f"the header has one column; the file looks separated by {sep!r}",
                    "write it comma-separated",
                )
    for required in (TIMESTAMP, VALUE):
        if required not in names:
            near = [n for n in names if n.strip().lower() == required]
            hint = (
                f"rename column {near[0]!r} to {required!r}"
                if near
                else (f"add a {required!r} column (found columns: {found})")
            )
            raise FileError(file, f"missing required column {required!r}", hint)
    metric = [n for n in names if n in METRIC_COLUMNS]
    if not metric:
        raise FileError(
            file,
            "no metric name column",
            f"add a 'metric' (or '__name__') column naming each row's metric (found: {found})",
        )
    if len(metric) > 1:
        raise FileError(
            file,
            "both 'metric' and '__name__' columns are present",
            "keep one of them as the metric name column",
        )
    labels = tuple(n for n in names if n not in (TIMESTAMP, VALUE, metric[0]))
    for name in labels:
        try:
            validate_label_name(name)
        except LabelError as exc:
            raise FileError(file, f"column {name!r} is not a valid label name: {exc}") from None
    return Columns(TIMESTAMP, VALUE, metric[0], labels)


def check_parquet_types(file: str, schema: pa.Schema, cols: Columns) -> None:
    """Reject Parquet column types that cannot be read as timestamps, values or labels."""

    def kind(name: str) -> pa.DataType:
        typ = schema.field(name).type
        return typ.value_type if pa.types.is_dictionary(typ) else typ

    ts = kind(cols.timestamp)
    if not (
        is_text(ts)
        or pa.types.is_integer(ts)
        or pa.types.is_floating(ts)
        or pa.types.is_timestamp(ts)
    ):
        raise FileError(
            file,
            f"column 'timestamp' has type {ts}",
            "store timestamps as a timestamp type, epoch seconds/milliseconds or RFC 3339 text",
        )
    val = kind(cols.value)
    if not (
        is_text(val)
        or pa.types.is_integer(val)
        or pa.types.is_floating(val)
        or pa.types.is_decimal(val)
    ):
        raise FileError(file, f"column 'value' has type {val}", "store values as numbers")
    for name in cols.series_columns:
        typ = kind(name)
        if not (
            is_text(typ)
            or pa.types.is_integer(typ)
            or pa.types.is_boolean(typ)
            or pa.types.is_null(typ)
        ):
            raise FileError(
                file, f"label column {name!r} has type {typ}", "store label values as strings"
            )


def is_text(typ: pa.DataType) -> bool:
    return (
        pa.types.is_string(typ)
        or pa.types.is_large_string(typ)
        or pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ)
        or pa.types.is_string_view(typ)
        or pa.types.is_binary_view(typ)
    )
