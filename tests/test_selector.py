"""PromQL selector parsing and matching (scalar and vectorised over a catalog)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.selector import (
    LabelColumns,
    Matcher,
    Selector,
    SelectorError,
    make_matcher,
    match_mask,
    parse_selector,
)
from vigil.series import canonical_labels, labels_json

CATALOG = [
    {"__name__": "http_requests_total", "service": "cart", "code": "200"},
    {"__name__": "http_requests_total", "service": "cart", "code": "500"},
    {"__name__": "http_latency_seconds", "service": "cartography"},
    {"__name__": "up", "service": "auth", "zone": "eu-1"},
    {"__name__": "up", "note": 'multi\nline "quoted" \\ back é 😀'},
]


def names(selector: str) -> list[int]:
    """Indexes of CATALOG rows the selector matches, computed both ways (must agree)."""
    sel = parse_selector(selector)
    scalar = [i for i, ls in enumerate(CATALOG) if sel.matches(ls)]
    cols = LabelColumns(pa.array([labels_json(canonical_labels(ls)) for ls in CATALOG]))
    vector = np.flatnonzero(match_mask(sel, cols)).tolist()
    assert scalar == vector
    return scalar


def test_parse_forms() -> None:
    eq = parse_selector("up")
    assert eq.matchers == (Matcher("__name__", "=", "up"),)
    sel = parse_selector('http_requests_total{service="cart", code!~"5..",}')
    assert [(m.label, m.op, m.value) for m in sel.matchers] == [
        ("__name__", "=", "http_requests_total"),
        ("service", "=", "cart"),
        ("code", "!~", "5.."),
    ]
    sel = parse_selector(' { __name__ =~ "http_.*" , service != "auth" } ')
    assert [(m.label, m.op) for m in sel.matchers] == [("__name__", "=~"), ("service", "!=")]
    assert parse_selector("up{}").matchers == (Matcher("__name__", "=", "up"),)
    assert parse_selector('{"up", zone="eu-1"}').matchers[0] == Matcher("__name__", "=", "up")
    assert parse_selector('{"odd.label"="x"}').matchers[0].label == "odd.label"
    assert parse_selector("job:rate5m").matchers[0].value == "job:rate5m"
    assert str(parse_selector('up{a="x\\"y"}')) == '{__name__="up",a="x\\"y"}'


def test_equality_and_inequality() -> None:
    assert names('{service="cart"}') == [0, 1]
    assert names('{service!="cart"}') == [2, 3, 4]
    assert names("up") == [3, 4]
    assert names('http_requests_total{code="500"}') == [1]


def test_regex_is_fully_anchored() -> None:
    assert names('{service=~"cart"}') == [0, 1]  # not "cartography"
    assert names('{service=~"cart.*"}') == [0, 1, 2]
    assert names('{service=~"art"}') == []
    assert names('{service!~"cart"}') == [2, 3, 4]
    assert names('{service=~"cart|auth"}') == [0, 1, 3]  # alternation inside the anchors
    assert names('{__name__=~"http_.*", code!~"2.."}') == [1, 2]


def test_dot_matches_newline() -> None:
    assert names('{note=~"multi.line.*"}') == [4]


def test_absent_label_reads_as_empty() -> None:
    assert names('{zone=""}') == [0, 1, 2, 4]
    assert names('{zone!=""}') == [3]
    assert names('{zone=~".*"}') == [0, 1, 2, 3, 4]
    assert names('{zone=~".+"}') == [3]
    assert names('{zone!~"eu-.*"}') == [0, 1, 2, 4]
    assert names('{missing="x"}') == []


def test_string_escapes() -> None:
    value = 'multi\nline "quoted" \\ back é 😀'
    forms = [
        '{note="multi\\nline \\"quoted\\" \\\\ back \\u00e9 \\U0001F600"}',
        "{note='multi\\nline \"quoted\" \\\\ back \\xc3\\xa9 \\360\\237\\230\\200'}",
    ]
    for text in forms:
        assert parse_selector(text).matchers[0].value == value
        assert names(text) == [4]
    assert parse_selector("{a='it\\'s'}").matchers[0].value == "it's"
    assert parse_selector("{a=`raw\\n\\d`}").matchers[0].value == "raw\\n\\d"
    assert parse_selector('{a="\\a\\b\\f\\r\\t\\v"}').matchers[0].value == "\a\b\f\r\t\v"
    assert parse_selector('{a=~"\\\\d+"}').matchers[0].matches("123")


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("", 0, "a metric name or '{'"),
        ("{}", 1, "a label matcher"),
        ("up{a}", 4, "one of =, !=, =~, !~ after label 'a'"),
        ('up{a=="b"}', 4, "'==' is not a matcher"),
        ("up{a=b}", 5, "a quoted string after a="),
        ('up{a="b"', 8, "',' or '}'"),
        ('up{a="b', 5, 'a closing " (unterminated string)'),
        ('up{a="b\nc"}', 5, "unterminated string"),
        ("up{a=`b}", 5, "unterminated raw string"),
        ('up{a="\\q"}', 6, "a known escape"),
        ("up{a='\\\"'}", 6, "a known escape"),
        ('up{a="\\x4"}', 6, "2 hex digits after '\\x'"),
        ('up{a="\\u12G4"}', 6, "4 hex digits after '\\u'"),
        ('up{a="\\uD800"}', 6, "a valid Unicode code point"),
        ('up{a="\\U00110000"}', 6, "a valid Unicode code point"),
        ('up{a="\\400"}', 6, "three octal digits"),
        ('up{a="\\xff"}', 5, "a string that decodes as UTF-8"),
        ('up{a="x" b="y"}', 9, "',' or '}'"),
        ('up{a="x"} junk', 10, "end of selector"),
        ("up[5m]", 2, "'{' or end of selector"),
        ("1up", 0, "a metric name or '{'"),
        ('{9a="x"}', 1, "a label name or '}'"),
        ('up{__name__="x"}', 3, "no __name__ matcher"),
        ('{"a", "b"}', 6, "a single metric name"),
        ('{a=~"(unclosed"}', 4, "a valid regular expression"),
        ('{a="x"', 6, "',' or '}'"),
        ('{a="\\', 5, "an escape character after '\\'"),
    ],
)
def test_parse_errors_name_position_and_expected(text: str, position: int, expected: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)
    err = info.value
    assert err.position == position, str(err)
    assert expected in err.expected, str(err)
    assert f"at position {position}: expected" in str(err)
    assert repr(text) in str(err)


def test_bad_regex_message_names_the_pattern() -> None:
    with pytest.raises(SelectorError, match=r"regex '\(unclosed' of matcher a=~ is invalid"):
        parse_selector('{a=~"(unclosed"}')


def test_make_matcher_and_type_errors() -> None:
    with pytest.raises(ValueError, match="operator '<' is invalid"):
        make_matcher("a", "<", "x")
    with pytest.raises(TypeError, match="selector must be a string"):
        parse_selector(3)  # type: ignore[arg-type]


def test_none_selects_everything_and_str_is_parsed() -> None:
    cols = LabelColumns(pa.chunked_array([[labels_json({"__name__": "a"})]]))
    assert match_mask(None, cols).tolist() == [True]
    assert match_mask("b", cols).tolist() == [False]


VALUES = st.sampled_from(["", "a", "ab", "b", "a\nb", 'q"', "é", "10", "x.y"])
LABEL_SETS = st.lists(
    st.dictionaries(st.sampled_from(["job", "zone", "k"]), VALUES, max_size=3),
    min_size=1,
    max_size=12,
)
MATCHERS = st.lists(
    st.tuples(
        st.sampled_from(["job", "zone", "k", "absent"]),
        st.sampled_from(["=", "!=", "=~", "!~"]),
        st.sampled_from(["", "a", "a.*", ".*", ".+", "a|b", "[ab]+", "a.b", "x\\.y", "é"]),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(LABEL_SETS, MATCHERS)
def test_vectorised_matching_equals_scalar_semantics(
    label_sets: list[dict[str, str]], matchers: list[tuple[str, str, str]]
) -> None:
    catalog = [canonical_labels({"__name__": "m", **ls}) for ls in label_sets]
    sel = Selector(tuple(make_matcher(*m) for m in matchers))
    mask = match_mask(sel, LabelColumns(pa.array([labels_json(ls) for ls in catalog])))
    # reference: Prometheus rules spelled out (absent = "", full-match regex, DOTALL)
    import re

    def ref(ls: dict[str, str]) -> bool:
        for label, op, value in matchers:
            v = ls.get(label, "")
            if op == "=":
                ok = v == value
            elif op == "!=":
                ok = v != value
            else:
                hit = re.fullmatch(value, v, re.DOTALL) is not None
                ok = hit if op == "=~" else not hit
            if not ok:
                return False
        return True

    assert mask.tolist() == [ref(ls) for ls in catalog]
    # the selector's text form parses back to the same matchers
    assert parse_selector(str(sel)).matchers == sel.matchers
