"""Remote-write decoding: round trips, the fast walker against protobuf, hostile input."""

from __future__ import annotations

import math
import struct

import cramjam
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.remote import (
    STALE_NAN_BITS,
    RemoteDecoder,
    RemoteLimits,
    RemoteWriteError,
    WriteBatch,
    decode_write_request,
    encode_write_request,
    proto,
    snappy,
)
from vigil.remote.fast import parse_fast
from vigil.series import canonical_labels, labels_json, series_id

STALE = np.array([STALE_NAN_BITS], dtype=np.uint64).view(np.float64)[0]
FAST = RemoteDecoder()
REFERENCE = RemoteDecoder(fast=False)


def bits(a: np.ndarray) -> list[int]:
    return np.asarray(a, dtype=np.float64).view(np.uint64).tolist()


def same_batch(a: WriteBatch, b: WriteBatch) -> bool:
    return (
        a.series_ids.tolist() == b.series_ids.tolist()
        and a.labels_json == b.labels_json
        and a.series.tolist() == b.series.tolist()
        and a.timestamps.tolist() == b.timestamps.tolist()
        and bits(a.values) == bits(b.values)
        and a.stale_series.tolist() == b.stale_series.tolist()
        and a.stale_timestamps.tolist() == b.stale_timestamps.tolist()
        and (a.exemplars, a.histograms, a.metadata) == (b.exemplars, b.histograms, b.metadata)
    )


def outcome(decoder: RemoteDecoder, body: bytes, compressed: bool = True) -> object:
    """The batch, or the status of the RemoteWriteError; any other exception fails."""
    try:
        return decoder.decode(body, compressed=compressed)
    except RemoteWriteError as exc:
        assert 400 <= exc.status < 500 and exc.reason
        return exc.status


# ------------------------------------------------------------------ valid requests

label_name = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True).filter(
    lambda s: not s.startswith("__")
)
metric = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,15}", fullmatch=True)
label_value = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffd"), max_size=12
)
label_set = st.builds(
    lambda name, rest: {"__name__": name, **rest},
    metric,
    st.dictionaries(label_name, label_value, max_size=5),
)
value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(STALE),
    st.just(float("nan")),
)
timestamp = st.integers(-62_135_596_800_000, 253_402_300_799_999)


@st.composite
def requests(draw: st.DrawFn) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray, np.ndarray]:
    labels = draw(st.lists(label_set, min_size=0, max_size=6))
    n = draw(st.integers(0, 30)) if labels else 0
    series = np.array(
        draw(st.lists(st.integers(0, len(labels) - 1), min_size=n, max_size=n)) if labels else [],
        dtype=np.int64,
    )
    ts = np.array(draw(st.lists(timestamp, min_size=n, max_size=n)), dtype=np.int64)
    vals = np.array(draw(st.lists(value, min_size=n, max_size=n)), dtype=np.float64)
    return labels, series, ts, vals


@given(requests())
def test_round_trip_of_encoder_output(req: tuple) -> None:
    labels, series, ts, vals = req
    body = encode_write_request(labels, series, ts, vals)
    batch = decode_write_request(body)
    canon = [canonical_labels(ls) for ls in labels]
    assert batch.series_ids.tolist() == [series_id(c) for c in canon]
    assert batch.labels_json == [labels_json(c) for c in canon]
    assert batch.labels == canon
    # the encoder groups samples by series, keeping their order within a series
    order = np.argsort(series, kind="stable")
    s, t, v = series[order], ts[order], vals[order]
    stale = np.asarray(bits(v), dtype=np.uint64) == STALE_NAN_BITS
    assert batch.series.tolist() == s[~stale].tolist()
    assert batch.timestamps.tolist() == t[~stale].tolist()
    assert bits(batch.values) == bits(v[~stale])  # NaN payloads and +-Inf kept bit for bit
    assert batch.stale_series.tolist() == s[stale].tolist()
    assert batch.stale_timestamps.tolist() == t[stale].tolist()
    ref = REFERENCE.decode(body)
    assert same_batch(batch, ref)
    if len(batch.series):
        table = batch.samples_table()
        assert table.column("series_id").to_pylist() == batch.series_ids[batch.series].tolist()
    assert batch.catalog_table().num_rows == len(set(batch.series_ids.tolist()))


def test_fast_walker_handles_the_usual_shape() -> None:
    body = encode_write_request(
        [{"__name__": "up", "job": "x"}, {"__name__": "up", "job": "y"}],
        [0, 1, 1],
        [1_000, 2_000, 3_000],
        [1.0, 0.0, 1.0],
        compress=False,
    )
    parsed = parse_fast(body, 10, 10)
    assert parsed is not None and parsed.keys is not None and len(parsed.keys) == 2


def test_nan_inf_are_values_and_stale_markers_are_reported() -> None:
    body = encode_write_request(
        [{"__name__": "m"}],
        [0, 0, 0, 0, 0],
        [1, 2, 3, 4, 5],
        [math.nan, math.inf, -math.inf, STALE, 7.0],
    )
    batch = decode_write_request(body)
    assert batch.timestamps.tolist() == [1, 2, 3, 5]
    assert math.isnan(batch.values[0]) and batch.values[1] == math.inf
    assert batch.values[2] == -math.inf and batch.values[3] == 7.0
    assert batch.stale_series.tolist() == [0] and batch.stale_timestamps.tolist() == [4]


def test_duplicates_and_out_of_order_keep_request_order() -> None:
    body = encode_write_request(
        [{"__name__": "m", "a": "1"}, {"a": "1", "__name__": "m"}],
        [0, 0, 0, 1],
        [30, 10, 30, 10],
        [1.0, 2.0, 3.0, 4.0],
    )
    batch = decode_write_request(body)
    # same label set twice: one id; order and duplicates as sent (the store keeps the last)
    assert batch.series_ids[0] == batch.series_ids[1]
    assert batch.timestamps.tolist() == [30, 10, 30, 10]
    assert batch.values.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert batch.catalog_table().num_rows == 1


def test_empty_label_values_are_dropped() -> None:
    body = encode_write_request([[("__name__", "m"), ("a", ""), ("b", "x")]], [0], [1], [1.0])
    assert decode_write_request(body).labels == [{"__name__": "m", "b": "x"}]


# --------------------------------------------------------------- refused requests


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ([("job", "x")], "no '__name__'"),
        ([("__name__", "")], "empty metric name"),
        ([("__name__", "1bad")], "metric name"),
        ([("__name__", "m"), ("bad-name", "x")], "label name"),
        ([("__name__", "m"), ("__reserved", "x")], "reserved"),
        ([("__name__", "m"), ("", "x")], "label name"),
        ([("__name__", "m"), ("a", "1"), ("a", "2")], "twice"),
        ([("__name__", "m"), ("a", b"\xff\xfe")], "UTF-8"),
        ([("__name__", "m"), (b"\xc3", "x")], "UTF-8"),
        ([("__name__", "m"), ("a", "\ufffd")], "U+FFFD"),
        ([("__name__", "m"), ("a", "x" * 5000)], "limit"),
        ([("__name__", "m"), ("a" * 300, "x")], "limit"),
        ([("__name__", "m")] + [(f"l{i}", "x") for i in range(70)], "limit"),
    ],
)
def test_abusive_label_sets_are_400(labels: list, reason: str) -> None:
    body = encode_write_request([[("__name__", "ok")], labels], [0, 1], [1, 1], [1.0, 2.0])
    for decoder in (FAST, REFERENCE):
        with pytest.raises(RemoteWriteError) as info:
            decoder.decode(body)
        assert info.value.status == 400
        assert reason in info.value.reason and "series 1" in info.value.reason


def test_timestamps_outside_the_store_range_are_400() -> None:
    body = encode_write_request([{"__name__": "m"}], [0], [2**62], [1.0])
    with pytest.raises(RemoteWriteError, match="years 1-9999") as info:
        decode_write_request(body)
    assert info.value.status == 400


def test_request_size_limits_are_413() -> None:
    limits = RemoteLimits(max_series=2, max_samples=3, max_body_bytes=10_000)
    three = encode_write_request([{"__name__": f"m{i}"} for i in range(3)], [0], [1], [1.0])
    four = encode_write_request([{"__name__": "m"}], [0, 0, 0, 0], [1, 2, 3, 4], [1.0] * 4)
    for body, what in ((three, "max_series"), (four, "max_samples")):
        for fast in (True, False):
            with pytest.raises(RemoteWriteError, match=what) as info:
                RemoteDecoder(limits, fast=fast).decode(body)
            assert info.value.status == 413
    with pytest.raises(RemoteWriteError) as info:
        decode_write_request(b"\x00" * 10_001, limits)
    assert info.value.status == 413


def test_snappy_bomb_is_refused_before_allocating() -> None:
    # preamble claims 4 GiB - 1; the body is tiny
    bomb = b"\xff\xff\xff\xff\x0f" + b"\x00" * 100
    with pytest.raises(RemoteWriteError, match="limit") as info:
        decode_write_request(bomb)
    assert info.value.status == 413
    # within the limit but impossible for the compressed size: corrupt, 400
    liar = b"\x80\x80\x80\x01" + b"\x00" * 100  # 2 MiB from 100 bytes
    with pytest.raises(RemoteWriteError, match="more than") as info:
        decode_write_request(liar)
    assert info.value.status == 400
    # a real highly compressible block declaring its true size decodes (up to the limit)
    zeros = bytes(cramjam.snappy.compress_raw(b"\x00" * 3_000_000))
    limits = RemoteLimits(max_decompressed_bytes=1_000_000)
    with pytest.raises(RemoteWriteError) as info:
        decode_write_request(zeros, limits)
    assert info.value.status == 413


def test_snappy_declared_length_must_match() -> None:
    raw = proto.build_message(
        [{"__name__": "m"}], np.array([0]), np.array([1]), np.array([1.0])
    ).SerializeToString()
    block = bytes(cramjam.snappy.compress_raw(raw))
    n, used = snappy.preamble(block)
    assert n == len(raw)
    for declared in (n - 1, n + 1, n + 5):
        lying = bytes([declared]) + block[used:]
        with pytest.raises(RemoteWriteError) as info:
            decode_write_request(lying)
        assert info.value.status == 400
    for cut in range(len(block)):
        assert outcome(FAST, block[:cut]) == 400 or cut == len(block)
    assert outcome(FAST, b"") == 400


def test_metadata_exemplars_histograms_are_tolerated_and_counted() -> None:
    req = proto.WriteRequest()
    ts = req.timeseries.add()
    ts.labels.add(name=b"__name__", value=b"m")
    ts.samples.add(value=1.5, timestamp=10)
    ex = ts.exemplars.add(value=2.0, timestamp=11)
    ex.labels.add(name=b"trace_id", value=b"abc")
    ts.histograms.add()
    req.metadata.add(type=1, metric_family_name=b"m", help=b"help", unit=b"")
    body = snappy.compress(req.SerializeToString())
    for decoder in (FAST, REFERENCE):
        batch = decoder.decode(body)
        assert batch.values.tolist() == [1.5]
        assert (batch.exemplars, batch.histograms, batch.metadata) == (1, 1, 1)


# ----------------------------------------------- arbitrary protobuf-like bytes


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_bytes(number: int, wire: int, payload: object, pad: int) -> bytes:
    tag = uvarint((number << 3) | wire)
    if pad:  # a non-canonical (padded) varint: legal protobuf, declined by the walker
        tag = tag[:-1] + bytes([tag[-1] | 0x80]) + b"\x80" * (pad - 1) + b"\x00"
    if wire == 0:
        assert isinstance(payload, int)
        return tag + uvarint(payload)
    if wire == 1:
        return tag + struct.pack("<Q", int(payload) & (2**64 - 1))  # type: ignore[call-overload]
    if wire == 5:
        return tag + struct.pack("<I", int(payload) & (2**32 - 1))  # type: ignore[call-overload]
    body = payload if isinstance(payload, bytes) else message_bytes(payload)  # type: ignore[arg-type]
    return tag + uvarint(len(body)) + body


def message_bytes(fields: list[tuple[int, int, object, int]]) -> bytes:
    return b"".join(field_bytes(*f) for f in fields)


scalar_field = st.tuples(
    st.sampled_from([1, 2, 3, 4, 5, 16, 100]),
    st.sampled_from([0, 1, 5]),
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 0, 0, 0, 1]),
)
text_field = st.tuples(
    st.sampled_from([1, 2, 3]),
    st.just(2),
    st.one_of(
        st.sampled_from([b"__name__", b"up", b"job", b"", b"a-b", b"\xff", b"__x"]),
        st.binary(max_size=6),
    ),
    st.just(0),
)
label_msg = st.lists(st.one_of(text_field, text_field, scalar_field), max_size=3)
sample_msg = st.lists(
    st.one_of(
        st.tuples(st.just(1), st.just(1), st.integers(0, 2**64 - 1), st.just(0)),
        st.tuples(
            st.just(2),
            st.just(0),
            st.integers(0, 2**64 - 1),
            st.sampled_from([0, 0, 0, 1]),
        ),
        scalar_field,
    ),
    max_size=3,
)
series_msg = st.lists(
    st.one_of(
        st.tuples(st.just(1), st.just(2), label_msg, st.just(0)),
        st.tuples(st.just(2), st.just(2), sample_msg, st.just(0)),
        st.tuples(st.sampled_from([3, 4, 7]), st.just(2), label_msg, st.just(0)),
        scalar_field,
    ),
    max_size=6,
)
request_msg = st.lists(
    st.one_of(
        st.tuples(st.just(1), st.just(2), series_msg, st.just(0)),
        st.tuples(st.just(1), st.just(2), series_msg, st.just(0)),
        st.tuples(st.just(3), st.just(2), label_msg, st.just(0)),
        scalar_field,
    ),
    max_size=5,
)


def mutate(data: bytes, cut: int | None, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data if cut is None else data[: cut % (len(data) + 1)])
    for pos, byte in flips:
        if out:
            out[pos % len(out)] = byte
    return bytes(out)


@given(
    request_msg,
    st.one_of(st.none(), st.integers(0, 10_000)),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=2),
)
def test_fast_walker_decodes_exactly_like_protobuf(
    fields: list, cut: int | None, flips: list
) -> None:
    raw = mutate(message_bytes(fields), cut, flips)
    fast = outcome(FAST, raw, compressed=False)
    ref = outcome(REFERENCE, raw, compressed=False)
    if isinstance(ref, WriteBatch):
        assert isinstance(fast, WriteBatch) and same_batch(fast, ref)
    else:
        assert fast == ref
    # and through snappy
    assert type(outcome(FAST, snappy.compress(raw))) is type(fast)


@given(st.binary(max_size=300))
def test_random_bytes_give_a_batch_or_a_4xx(data: bytes) -> None:
    outcome(FAST, data)
    outcome(FAST, data, compressed=False)
    outcome(FAST, snappy.compress(data))


@given(st.binary(min_size=1, max_size=200), st.integers(0, 2**35))
def test_any_preamble_gives_a_batch_or_a_4xx(data: bytes, declared: int) -> None:
    outcome(FAST, uvarint(declared) + data)
