"""Series identity: Prometheus validation rules and the stable 64-bit id (fixed vectors)."""

import hashlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.series import (
    LabelError,
    canonical_bytes,
    canonical_labels,
    format_series,
    labels_json,
    parse_labels_json,
    series_id,
    validate_label_name,
    validate_metric_name,
    validate_tenant,
)

# Pinned: changing any of these breaks every stored catalog. Never edit them to make a test pass.
FIXED_VECTORS = [
    ({"__name__": "up"}, -8105470714296190025),
    (
        {"__name__": "http_requests_total", "job": "api", "instance": "10.0.0.1:9090"},
        5401867325360163599,
    ),
    (
        {
            "__name__": "container_memory_working_set_bytes",
            "pod": "cart-7f9c-1",
            "namespace": "shop",
            "site": "eu-1",
        },
        7306282059521057235,
    ),
    ({"__name__": "x", "label": "välue ✓"}, -6585242248988789148),
]


@pytest.mark.parametrize(("labels", "expected"), FIXED_VECTORS)
def test_series_id_fixed_vectors(labels, expected):
    assert series_id(labels) == expected


def test_series_id_follows_documented_formula():
    raw = hashlib.blake2b(b"__name__\xffup\xff", digest_size=8).digest()
    assert canonical_bytes({"__name__": "up"}) == b"__name__\xffup\xff"
    assert series_id({"__name__": "up"}) == int.from_bytes(raw, "little", signed=True)


def test_series_id_same_in_another_process():
    labels, expected = FIXED_VECTORS[1]
    code = f"from vigil.series import series_id; print(series_id({labels!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    assert int(out.stdout) == expected


label_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,10}", fullmatch=True)
label_sets = st.dictionaries(label_names, st.text(min_size=1, max_size=12), max_size=6)


@given(label_sets, st.randoms())
def test_series_id_independent_of_label_order(labels, rnd):
    labels = {"__name__": "m", **labels}
    items = list(labels.items())
    rnd.shuffle(items)
    assert series_id(dict(items)) == series_id(labels)
    assert parse_labels_json(labels_json(dict(items))) == dict(sorted(labels.items()))


@given(label_sets, label_sets)
def test_distinct_label_sets_get_distinct_canonical_bytes(a, b):
    a, b = {"__name__": "m", **a}, {"__name__": "m", **b}
    assert (canonical_bytes(a) == canonical_bytes(b)) == (a == b)


@pytest.mark.parametrize("name", ["up", "http_requests_total", "a:b:c", "_x", ":y"])
def test_valid_metric_names(name):
    assert validate_metric_name(name) == name


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "é", "a.b"])
def test_invalid_metric_names(name):
    with pytest.raises(LabelError, match=r"metric name .* is invalid: expected"):
        validate_metric_name(name)


@pytest.mark.parametrize("name", ["", "1a", "a:b", "a-b", "ü"])
def test_invalid_label_names(name):
    with pytest.raises(LabelError, match=r"label name .* is invalid"):
        validate_label_name(name)


def test_reserved_label_names():
    with pytest.raises(LabelError, match="reserved"):
        validate_label_name("__meta_x")
    assert validate_label_name("__name__") == "__name__"


def test_canonical_labels_rules():
    assert canonical_labels({"b": "2", "__name__": "m", "a": "1", "empty": ""}) == {
        "__name__": "m",
        "a": "1",
        "b": "2",
    }
    with pytest.raises(LabelError, match="no metric name"):
        canonical_labels({"a": "1"})
    with pytest.raises(LabelError, match="not valid UTF-8"):
        canonical_labels({"__name__": "m", "a": b"\xff\xfe"})
    with pytest.raises(LabelError, match="U\\+FFFD"):
        canonical_labels({"__name__": "m", "a": "bad\ufffd"})
    with pytest.raises(LabelError, match="must be a string"):
        canonical_labels({"__name__": "m", "a": 3})


@pytest.mark.parametrize("tenant", ["..", ".", "a/b", "", "../etc", "x" * 65, "-a"])
def test_bad_tenants(tenant):
    with pytest.raises(LabelError, match="tenant id"):
        validate_tenant(tenant)


def test_format_series():
    assert format_series({"__name__": "m", "b": 'q"x', "a": "1"}) == 'm{a="1",b="q\\"x"}'
