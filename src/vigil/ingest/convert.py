"""One chunk of raw rows -> a samples table, a catalog table and the bad rows (pure, no I/O).

Vectorised: timestamps and values are parsed with Arrow kernels; series ids are computed once
per *distinct* label combination (each label column is dictionary-encoded, the codes are
combined into one key and ``np.unique`` finds the combinations), and the result is cached per
file in a :class:`SeriesCache` so a combination is validated and hashed once per file.
Samples keep the file's row order; rows repeating a (series, timestamp) are resolved by the
store (``Store.append`` keeps the last row given, and later appends win).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil.ingest.columns import Columns, is_text
from vigil.ingest.report import RowError, show_value
from vigil.ingest.timestamps import (
    TsFormat,
    cast_masked,
    epoch_to_ms,
    explain_timestamp,
    in_range,
    parse_timestamp_strings,
)
from vigil.series import (
    METRIC_LABEL,
    LabelError,
    canonical_labels,
    labels_json,
    series_id,
    validate_label_value,
    validate_metric_name,
)

VALUE_PATTERN = (
    r"^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?"
    r"|[Nn][Aa][Nn](\([0-9A-Za-z_]*\))?|[Ii][Nn][Ff]([Ii][Nn][Ii][Tt][Yy])?)$"
)
SAMPLES_SCHEMA = pa.schema(
    [("series_id", pa.int64()), ("timestamp", pa.int64()), ("value", pa.float64())]
)
CATALOG_SCHEMA = pa.schema([("series_id", pa.int64()), ("labels", pa.string())])
NATIVE = "native"  # timestamp column of an Arrow timestamp type


class BadBytes(bytes):
    """A label value that is not valid UTF-8 (kept raw for the report)."""


@dataclass(frozen=True)
class SeriesProblem:
    column: str
    value: object
    reason: str


SeriesEntry = tuple[int, str] | SeriesProblem


@dataclass
class SeriesCache:
    """Distinct label combinations of one file -> (series id, labels JSON) or the problem."""

    entries: dict[tuple[object, ...], SeriesEntry] = field(default_factory=dict)


@dataclass
class ChunkResult:
    samples: pa.Table
    catalog: pa.Table
    rows: int  # data rows (blank lines excluded)
    blank: int
    bad: int
    errors: list[tuple[int, RowError]]  # (row ordinal in the file, detail), the first few


# --------------------------------------------------------------------------- column parsing


def to_strings(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Binary/text -> UTF-8 strings: ``(strings, ok)``; invalid UTF-8 rows become ''."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
        return col.cast(pa.string()), np.ones(len(col), dtype=bool)
    try:
        return col.cast(pa.string()), np.ones(len(col), dtype=bool)
    except pa.ArrowInvalid:
        pass
    ok = np.ones(len(col), dtype=bool)
    texts: list[str | None] = []
    for i, raw in enumerate(col.to_pylist()):  # only on chunks with invalid UTF-8
        try:
            texts.append(None if raw is None else raw.decode("utf-8"))
        except UnicodeDecodeError:
            ok[i] = False
            texts.append("")
    return pa.array(texts, pa.string()), ok


def _valid(col: pa.Array) -> np.ndarray:
    return np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def parse_timestamps(col: pa.Array, fmt: TsFormat | str | None) -> tuple[np.ndarray, np.ndarray]:
    """A timestamp column (text, number or Arrow timestamp) -> ``(ms int64, ok bool)``."""
    n = len(col)
    if fmt is None:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    if pa.types.is_timestamp(col.type):
        ok = _valid(col)
        raw = np.asarray(col.cast(pa.int64()).fill_null(0).to_numpy(), dtype=np.int64)
        if col.type.unit == "s":
            ok &= np.abs(raw) < 2**53 // 1000  # beyond the store's range anyway; no overflow
            return in_range(np.where(ok, raw, 0) * 1000, ok)
        div = {"ms": 1, "us": 1_000, "ns": 1_000_000}[col.type.unit]
        return in_range((raw + div // 2) // div, ok)
    if pa.types.is_floating(col.type):
        vals = np.asarray(col.cast(pa.float64()).fill_null(0.0).to_numpy(), dtype=np.float64)
        return epoch_to_ms(vals, _valid(col), TsFormat(fmt))
    if pa.types.is_integer(col.type):
        ints = np.asarray(
            pc.cast(col, pa.int64(), safe=False).fill_null(0).to_numpy(), dtype=np.int64
        )
        return epoch_to_ms(ints, _valid(col), TsFormat(fmt))
    text, utf8 = to_strings(col)
    ms, ok = parse_timestamp_strings(text, TsFormat(fmt))
    return ms, ok & utf8


def parse_values(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A value column (text or number) -> ``(float64, ok)``; NaN, +Inf, -Inf are values."""
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not is_text(col.type):
        ok = _valid(col)
        vals = pc.cast(col, pa.float64(), safe=False).fill_null(0.0).to_numpy(zero_copy_only=False)
        return np.asarray(vals, dtype=np.float64), ok
    if col.null_count == 0:
        try:  # fast path: every row is a plain number
            vals = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
            return np.asarray(vals, dtype=np.float64), np.ones(len(col), dtype=bool)
        except pa.ArrowInvalid:
            pass
    text, utf8 = to_strings(col)
    text = pc.utf8_trim_whitespace(text)
    if utf8.all() and text.null_count == 0:
        try:
            vals = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
            return np.asarray(vals, dtype=np.float64), utf8
        except pa.ArrowInvalid:
            pass
    nonempty = np.asarray(
        pc.fill_null(pc.greater(pc.binary_length(text), 0), False).to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    match = pc.fill_null(pc.match_substring_regex(text, VALUE_PATTERN), False)
    ok = utf8 & nonempty & np.asarray(match.to_numpy(zero_copy_only=False), dtype=bool)
    return cast_masked(text, pa.float64(), ok)


def explain_value(raw: object) -> str:
    if raw is None:
        return "missing value; every row needs a value"
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8"
    if not str(raw).strip():
        return "empty value; every row needs a value"
    return "not a number; expected a decimal number such as 1.5, 2e-3, NaN, +Inf or -Inf"


def _codes(col: pa.Array) -> tuple[np.ndarray, list[object]]:
    """Dictionary-encode a label column: ``(codes int64 [n], distinct values)``.

    Nulls read as ''.  Values that are not valid UTF-8 come back as :class:`BadBytes`.
    """
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not is_text(col.type):
        col = col.cast(pa.string())
    elif pa.types.is_large_binary(col.type) or pa.types.is_binary_view(col.type):
        col = col.cast(pa.binary())
    elif not pa.types.is_binary(col.type):
        col = col.cast(pa.string())
    empty = b"" if pa.types.is_binary(col.type) else ""
    enc = pc.dictionary_encode(col.fill_null(empty) if col.null_count else col)
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    values: list[object] = []
    for v in enc.dictionary.to_pylist():
        if isinstance(v, bytes):
            try:
                values.append(v.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(BadBytes(v))
        else:
            values.append(v)
    return codes, values


def combine_codes(codes: Sequence[np.ndarray], sizes: Sequence[int], n: int) -> np.ndarray:
    """One int64 key per row such that rows with equal keys have equal codes in every column."""
    key = np.zeros(n, dtype=np.int64)
    card = 1
    for c, m in zip(codes, sizes, strict=True):
        m = max(m, 1)
        if card * m >= 2**62:
            _, key = np.unique(key, return_inverse=True)
            key = key.astype(np.int64).reshape(-1)
            card = int(key.max()) + 1 if n else 1
        key = key * m + c
        card *= m
    return key


def first_rows(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (hash-based): ``(first row of each, index of each row's key)``."""
    enc = pc.dictionary_encode(pa.array(key, pa.int64()))
    inverse = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    first = np.empty(len(enc.dictionary), dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(key) - 1, -1, -1, dtype=np.int64)
    return first, inverse


def series_entry(columns: Sequence[str], values: Sequence[object]) -> SeriesEntry:
    """Validate one label combination (metric first) -> (series id, labels JSON) or problem."""
    for name, value in zip(columns, values, strict=True):
        if isinstance(value, BadBytes):
            return SeriesProblem(name, bytes(value), "not valid UTF-8; re-encode the file as UTF-8")
    metric = str(values[0])
    if metric == "":
        return SeriesProblem(columns[0], "", "empty metric name; every row needs a metric name")
    try:
        validate_metric_name(metric)
    except LabelError as exc:
        return SeriesProblem(columns[0], metric, str(exc))
    labels: dict[str, object] = {METRIC_LABEL: metric}
    for name, value in zip(columns[1:], values[1:], strict=True):
        try:
            labels[name] = validate_label_value(name, value)
        except LabelError as exc:
            return SeriesProblem(name, value, str(exc))
    canon = canonical_labels(labels)
    return series_id(canon), labels_json(canon)


# ------------------------------------------------------------------------------ one chunk


def convert_chunk(
    table: pa.Table,
    cols: Columns,
    fmt: TsFormat | str | None,
    *,
    file: str,
    lines: np.ndarray,
    first_ordinal: int,
    cache: SeriesCache,
    max_errors: int,
    unit: str = "line",
    blank_rows: bool = False,
) -> ChunkResult:
    """Convert one chunk of raw rows (see the module doc).

    ``lines`` holds each row's line (or row) number for reports; ``first_ordinal`` is the
    index of the chunk's first row in the file.  With ``blank_rows`` (CSV), rows whose fields
    are all empty are blank lines: counted, not reported.  At most ``max_errors`` details are
    returned; every bad row is counted.
    """
    n = table.num_rows
    raw = {name: table.column(name).combine_chunks() for name in cols.names}
    blank = np.zeros(n, dtype=bool)
    if blank_rows and n:
        blank = np.ones(n, dtype=bool)
        for name in cols.names:
            blank &= np.asarray(
                pc.fill_null(pc.equal(pc.binary_length(raw[name]), 0), True).to_numpy(
                    zero_copy_only=False
                ),
                dtype=bool,
            )
    ms, ts_ok = parse_timestamps(raw[cols.timestamp], fmt)
    vals, val_ok = parse_values(raw[cols.value])

    # series: one validation + hash per distinct label combination
    names = cols.series_columns
    coded = [_codes(raw[name]) for name in names]
    key = combine_codes([c for c, _ in coded], [len(v) for _, v in coded], n)
    first, inverse = first_rows(key)
    combo_sid = np.zeros(len(first), dtype=np.int64)
    combo_ok = np.zeros(len(first), dtype=bool)
    combo_json: list[str] = []
    problems: dict[int, SeriesProblem] = {}
    for u, row in enumerate(first.tolist()):
        combo = tuple(values[codes[row]] for codes, values in coded)
        entry = cache.entries.get(combo)
        if entry is None:
            entry = series_entry(names, combo)
            cache.entries[combo] = entry
        if isinstance(entry, SeriesProblem):
            problems[u] = entry
            combo_json.append("")
        else:
            combo_sid[u], combo_ok[u] = entry[0], True
            combo_json.append(entry[1])
    series_ok = combo_ok[inverse] if n else np.zeros(0, dtype=bool)

    good = ts_ok & val_ok & series_ok & ~blank
    bad = ~good & ~blank
    n_bad = int(np.count_nonzero(bad))
    errors: list[tuple[int, RowError]] = []
    for row in np.flatnonzero(bad)[:max_errors].tolist():
        if not ts_ok[row]:
            column, shown = cols.timestamp, raw[cols.timestamp][row].as_py()
            if fmt == NATIVE:
                reason = "missing timestamp" if shown is None else "outside years 1 to 9999"
            else:
                reason = explain_timestamp(shown, fmt if isinstance(fmt, TsFormat) else None)
        elif not val_ok[row]:
            column, shown = cols.value, raw[cols.value][row].as_py()
            reason = explain_value(shown)
        else:
            problem = problems[int(inverse[row])]
            column, shown, reason = problem.column, problem.value, problem.reason
        detail = RowError(
            file,
            int(lines[row]),
            column,
            None if shown is None else show_value(shown),
            reason,
            unit,
        )
        errors.append((first_ordinal + row, detail))

    if n_bad or blank.any():
        idx = np.flatnonzero(good)
        sids, ms, vals, rows_combo = combo_sid[inverse[idx]], ms[idx], vals[idx], inverse[idx]
    else:
        sids, rows_combo = combo_sid[inverse], inverse
    samples = pa.table([pa.array(sids), pa.array(ms), pa.array(vals)], schema=SAMPLES_SCHEMA)
    in_use = np.zeros(len(first), dtype=bool)
    in_use[rows_combo] = True
    used = np.flatnonzero(in_use)
    cat_sid, pos = np.unique(combo_sid[used], return_index=True)
    catalog = pa.table(
        [pa.array(cat_sid, pa.int64()), pa.array([combo_json[used[p]] for p in pos], pa.string())],
        schema=CATALOG_SCHEMA,
    )
    n_blank = int(np.count_nonzero(blank))
    return ChunkResult(samples, catalog, n - n_blank, n_blank, n_bad, errors)
