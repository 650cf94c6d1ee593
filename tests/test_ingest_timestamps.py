"""Timestamp detection and parsing for ingest (vigil.ingest.timestamps) and value parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.ingest.convert import VALUE_PATTERN, parse_values
from vigil.ingest.timestamps import (
    EPOCH_PATTERN,
    ISO_PATTERN,
    TsFormat,
    cast_masked,
    detect_numeric,
    detect_strings,
    epoch_to_ms,
    explain_timestamp,
    parse_timestamp,
    parse_timestamp_strings,
)

T0_MS = 1714564800000  # 2024-05-01T12:00:00Z


def parse(values: list[str], fmt: TsFormat) -> tuple[list[int], list[bool]]:
    ms, ok = parse_timestamp_strings(pa.array(values, pa.string()), fmt)
    return ms.tolist(), ok.tolist()


def test_detect_seconds_millis_rfc3339() -> None:
    assert detect_strings(["1714564800", "1714564860"]) is TsFormat.EPOCH_S
    assert detect_strings(["1714564800.5", "1714564860.25"]) is TsFormat.EPOCH_S
    assert detect_strings(["1714564800000", "1714564860000"]) is TsFormat.EPOCH_MS
    assert detect_strings(["2024-05-01T12:00:00Z"]) is TsFormat.RFC3339
    # the majority of recognisable values decides; junk and empties are ignored
    assert detect_strings(["", "junk", "1714564800000", "1714564800000", "5"]) is TsFormat.EPOCH_MS
    assert detect_strings(["junk", ""]) is None
    assert detect_numeric(np.array([1714564800, 1714564801])) is TsFormat.EPOCH_S
    assert detect_numeric(np.array([1.7145648e12, np.nan])) is TsFormat.EPOCH_MS
    assert detect_numeric(np.array([1e17])) is None


def test_rfc3339_offsets_are_converted_to_utc() -> None:
    values = [
        "2024-05-01T12:00:00Z",
        "2024-05-01T14:00:00+02:00",
        "2024-05-01T06:30:00-05:30",
        "2024-05-01 12:00:00z",
        "2024-05-01t12:00:00.000Z",
    ]
    ms, ok = parse(values, TsFormat.RFC3339)
    expected = int(datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp() * 1000)
    assert ok == [True] * 5
    assert ms == [expected] * 5


def test_short_iso_forms_with_an_offset_are_accepted() -> None:
    ms, ok = parse(
        ["2024-05-01T12:00Z", "2024-05-01T17:00+05", "2024-05-01T17:30:00+0530", "2024-05-01T12Z"],
        TsFormat.RFC3339,
    )
    assert ok == [True] * 4 and ms == [T0_MS] * 4


def test_fractional_seconds_round_to_nearest_ms() -> None:
    ms, ok = parse(
        [
            "2024-05-01T12:00:00.1Z",
            "2024-05-01T12:00:00.1234Z",
            "2024-05-01T12:00:00.0005Z",
            "2024-05-01T12:00:00.123456789+00:00",
        ],
        TsFormat.RFC3339,
    )
    base = int(datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp() * 1000)
    assert ok == [True] * 4
    assert [m - base for m in ms] == [100, 123, 1, 123]
    ms, ok = parse(["1714564800.123", "1714564800.1236", "-1.5", "1.7145648e9"], TsFormat.EPOCH_S)
    assert ok == [True] * 4
    assert ms == [1714564800123, 1714564800124, -1500, 1714564800000]
    ms, ok = parse(["1714564800123", "1714564800123.6"], TsFormat.EPOCH_MS)
    assert ms == [1714564800123, 1714564800124] and ok == [True, True]


def test_bad_timestamps_are_flagged_row_by_row() -> None:
    values = [
        "2024-05-01T12:00:00Z",  # ok
        "2024-02-30T00:00:00Z",  # no such day
        "2024-05-01T24:00:00Z",  # hour 24
        "2024-05-01T12:00:00",  # no offset
        "2024-05-01",  # no time, no offset
        "1714564800",  # epoch in an RFC 3339 file
        "",
        "yesterday",
        "2024-05-01T12:00:00.1234567891Z",  # 10 fractional digits
    ]
    ms, ok = parse(values, TsFormat.RFC3339)
    assert ok == [True] + [False] * 8
    ms, ok = parse(
        ["1714564800", "1714564800000", "1e20", "nan", "inf", "12abc", ""], TsFormat.EPOCH_S
    )
    assert ok == [True, False, False, False, False, False, False]
    ms, ok = parse(["1714564800000", "1714564800", "1714564800000000"], TsFormat.EPOCH_MS)
    assert ok == [True, False, False] and ms[0] == T0_MS


@pytest.mark.parametrize(
    ("raw", "fmt", "reason"),
    [
        ("2024-02-30T00:00:00Z", TsFormat.RFC3339, "day is out of range for month"),
        ("2024-05-01T12:00:00", TsFormat.RFC3339, "has no UTC offset"),
        ("yesterday", TsFormat.RFC3339, "not an RFC 3339 timestamp"),
        ("1714564800", TsFormat.RFC3339, "written as epoch seconds"),
        ("2024-05-01T12:00:00Z", TsFormat.EPOCH_S, "written as RFC 3339"),
        ("1714564800000", TsFormat.EPOCH_S, "written as epoch milliseconds"),
        ("1714564800000000", TsFormat.EPOCH_MS, "microseconds or nanoseconds"),
        ("12abc", TsFormat.EPOCH_S, "not a number"),
        ("", TsFormat.EPOCH_S, "empty timestamp"),
        (None, TsFormat.EPOCH_S, "missing timestamp"),
        (b"\xff1", TsFormat.EPOCH_S, "not valid UTF-8"),
        ("2024-05-01T12:00:00+25:00", TsFormat.RFC3339, "invalid UTC offset"),
        ("2024-05-01T12:00:00.1234567891Z", TsFormat.RFC3339, "more than 9 fractional"),
        ("9999-05-01T12:00:00Z", TsFormat.RFC3339, "outside the supported range"),
        ("x", None, "expected RFC 3339"),
        (float("nan"), TsFormat.EPOCH_S, "not a finite number"),
    ],
)
def test_explain_timestamp(raw: object, fmt: TsFormat | None, reason: str) -> None:
    assert reason in explain_timestamp(raw, fmt)


def test_parse_timestamp_scalar() -> None:
    assert parse_timestamp("2024-05-01T14:00:00+02:00") == 1714564800000
    assert parse_timestamp(1714564800) == 1714564800000
    assert parse_timestamp(1714564800.5) == 1714564800500
    assert parse_timestamp("1714564800000") == 1714564800000
    assert parse_timestamp(1714564800000) == 1714564800000
    for bad, why in [
        (True, "has type bool"),
        (None, "has type NoneType"),
        (float("inf"), "not a finite number"),
        ("2024-05-01 12:00", "has no UTC offset"),
        ("2024-02-30T00:00:00Z", "day is out of range"),
        (10**17, "expected RFC 3339"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_timestamp(bad)


def test_epoch_to_ms_rejects_wrong_magnitude() -> None:
    ms, ok = epoch_to_ms(np.array([1.0, 2e11, np.inf]), np.ones(3, dtype=bool), TsFormat.EPOCH_S)
    assert ok.tolist() == [True, False, False] and ms[0] == 1000


def test_cast_masked_isolates_failures_by_bisection() -> None:
    values = [str(i) for i in range(100)]
    bad = {3, 40, 41, 99}
    for i in bad:
        values[i] = "x"
    out, ok = cast_masked(pa.array(values), pa.float64(), np.ones(100, dtype=bool))
    assert set(np.flatnonzero(~ok).tolist()) == bad
    assert out[ok].tolist() == [float(i) for i in range(100) if i not in bad]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.datetimes(min_value=datetime(1800, 1, 1), max_value=datetime(2200, 1, 1)),
        min_size=1,
        max_size=20,
    ),
    st.integers(-23 * 60, 23 * 60),
    st.booleans(),
)
def test_rfc3339_roundtrip_and_slow_path_agrees(
    stamps: list[datetime], offset_min: int, poison: bool
) -> None:
    tz = timezone(timedelta(minutes=offset_min))
    texts = [d.replace(tzinfo=tz).isoformat() for d in stamps]
    expected = [(int(d.replace(tzinfo=tz).timestamp() * 1_000_000) + 500) // 1000 for d in stamps]
    if poison:  # one bad row sends the chunk through the bisection path
        texts.append("2024-02-30T00:00:00Z")
    ms, ok = parse(texts, TsFormat.RFC3339)
    assert ms[: len(stamps)] == expected
    assert ok == [True] * len(stamps) + ([False] if poison else [])


FLOATISH = st.text(alphabet="0123456789.+-eEinfatyINFATY()x ", max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(FLOATISH, min_size=1, max_size=10))
def test_value_parsing_is_the_same_with_and_without_bad_rows(texts: list[str]) -> None:
    """A value is accepted iff Arrow's cast accepts it, whatever else is in the chunk."""
    vals, ok = parse_values(pa.array(texts, pa.string()))
    for i, t in enumerate(texts):
        try:
            alone = pc.cast(pa.array([t.strip()]), pa.float64())[0].as_py()
        except pa.ArrowInvalid:
            alone = None
        assert ok[i] == (alone is not None and t.strip() != ""), t
        if ok[i]:
            assert vals[i] == alone or (np.isnan(vals[i]) and np.isnan(alone))
        # the pre-filter never rejects what Arrow accepts
        if alone is not None and t.strip():
            assert pc.match_substring_regex(pa.array([t.strip()]), VALUE_PATTERN)[0].as_py()


def test_values_nan_inf_and_errors() -> None:
    vals, ok = parse_values(pa.array(["1.5", "NaN", "+Inf", "-Inf", " 2 ", "", "abc", None]))
    assert ok.tolist() == [True, True, True, True, True, False, False, False]
    assert vals[0] == 1.5 and np.isnan(vals[1]) and vals[2] == np.inf and vals[3] == -np.inf
    assert vals[4] == 2.0
    vals, ok = parse_values(pa.array([b"1", b"\xff"], pa.binary()))
    assert ok.tolist() == [True, False]
    vals, ok = parse_values(pa.array([1, None, 3], pa.int32()))
    assert ok.tolist() == [True, False, True] and vals.tolist()[::2] == [1.0, 3.0]


ISO_LIKE = st.tuples(
    st.sampled_from(["2024-05-01", "2024-5-01", "02024-05-01", "2024-02-30", "1969-12-31"]),
    st.sampled_from(["", "T", "t", " ", "TT"]),
    st.sampled_from(["", "12", "24", "1"]),
    st.sampled_from(["", ":00", ":0", ":60"]),
    st.sampled_from(["", ":00", ":59", ":60", ":5"]),
    st.sampled_from(["", ".", ".5", ".123456789", ".1234567891", ",5"]),
    st.sampled_from(
        ["", "Z", "z", "+05", "+0530", "+05:30", "-00:00", "+24:00", "+5", "+05:3", " Z", "ZZ"]
    ),
).map("".join)


@settings(max_examples=400, deadline=None)
@given(ISO_LIKE)
def test_iso_prefilter_keeps_everything_arrow_parses(text: str) -> None:
    """The regex that skips hopeless rows never drops a timestamp Arrow would accept."""
    upper = text.upper()
    try:
        pc.cast(pa.array([upper]), pa.timestamp("ns", tz="UTC"))
    except pa.ArrowInvalid:
        return
    assert pc.match_substring_regex(pa.array([upper]), ISO_PATTERN)[0].as_py(), upper


@settings(max_examples=300, deadline=None)
@given(FLOATISH)
def test_epoch_prefilter_keeps_every_finite_number_arrow_parses(text: str) -> None:
    try:
        v = pc.cast(pa.array([text]), pa.float64())[0].as_py()
    except pa.ArrowInvalid:
        return
    if np.isfinite(v):
        assert pc.match_substring_regex(pa.array([text]), EPOCH_PATTERN)[0].as_py(), text
