import pytest

from vigil.timeparse import format_ms, parse_time


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-01-09T22:10:00Z", 1767996600000),
        ("2026-01-09T23:10:00+01:00", 1767996600000),
        ("2026-01-09T22:10:00", 1767996600000),
        ("1767996600", 1767996600000),
        ("1767996600.5", 1767996600500),
        ("1767996600000", 1767996600000),
        (1767996600, 1767996600000),
    ],
)
def test_parse_time(text, ms):
    assert parse_time(text) == ms


def test_parse_time_errors():
    with pytest.raises(ValueError, match="expected RFC 3339"):
        parse_time("yesterday")
    with pytest.raises(ValueError, match="not a finite number"):
        parse_time("nan")


def test_format_ms():
    assert format_ms(1767996600000) == "2026-01-09T22:10:00Z"
    assert format_ms(1767996600500) == "2026-01-09T22:10:00.500Z"
    assert format_ms(None) == "-"
