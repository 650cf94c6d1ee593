"""Every ingest endpoint under hostile input: random and mutated bodies, wrong headers, abusive
labels, NaN/Inf/stale values, duplicate and out-of-order timestamps.  The answer is 2xx or a 4xx
with a reason, never a 5xx or a crash, and nothing of a rejected request is stored."""

from __future__ import annotations

import errno
import json
import math
import os
import struct

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.remote import STALE_NAN_BITS, encode_write_request
from vigil.serve.app import create_app
from vigil.serve.config import validate_config

RW = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
START = 1_767_225_600_000
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fuzz")
    app = create_app(validate_config({"store": str(root / "store"),
                                      "limits": {"max_body_bytes": 1 << 20,
                                                 "max_decompressed_bytes": 4 << 20}}),
                     start_scheduler=False)
    with TestClient(app) as client:
        yield client, app.state.vigil


def stored(state: dict, tenant: str) -> int:
    state["scheduler"].checkpoint()
    store = state["store"]
    return store.stats(tenant)["samples"] if tenant in store.tenants() else 0


def valid_body(n_series: int = 3, n: int = 4) -> bytes:
    labels = [{"__name__": "m", "pod": f"p{i}"} for i in range(n_series)]
    sid = np.repeat(np.arange(n_series), n)
    ts = START + np.tile(np.arange(n), n_series) * 1000
    return encode_write_request(labels, sid, ts, np.arange(len(sid), dtype=float))


def check(resp, allowed=(200, 204)) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text)
    if resp.status_code not in allowed:
        assert 400 <= resp.status_code < 500 and resp.text.strip(), resp.text


@SETTINGS
@given(body=st.binary(max_size=2048))
def test_random_bytes_never_5xx_nothing_stored(served, body: bytes) -> None:
    client, state = served
    r = client.post("/api/v1/write", content=body, headers={**RW, "X-Scope-OrgID": "rand"})
    check(r, allowed=(204,))
    if r.status_code != 204:
        assert stored(state, "rand") == 0


@SETTINGS
@given(data=st.data())
def test_mutated_requests_never_5xx(served, data: st.DataObject) -> None:
    client, state = served
    body = bytearray(valid_body())
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(len(body) - 1, 0)))
        if op == "flip" and body:
            body[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del body[pos:pos + data.draw(st.integers(1, 16))]
        else:
            body[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    before = stored(state, "mut")
    r = client.post("/api/v1/write", content=bytes(body), headers={**RW, "X-Scope-OrgID": "mut"})
    check(r, allowed=(204,))
    if r.status_code != 204:
        assert stored(state, "mut") == before


@SETTINGS
@given(ctype=st.text(max_size=40), enc=st.text(max_size=20))
def test_wrong_content_type_or_encoding_is_415(served, ctype: str, enc: str) -> None:
    client, _ = served
    if ctype.strip().lower().split(";")[0] == "application/x-protobuf" and \
            enc.strip().lower() == "snappy":
        return
    try:
        r = client.post("/api/v1/write", content=valid_body(),
                        headers={"Content-Type": ctype, "Content-Encoding": enc})
    except Exception as exc:  # httpx refuses to send some header bytes at all
        assert "header" in str(exc).lower() or isinstance(exc, (UnicodeEncodeError, ValueError))
        return
    assert r.status_code == 415 and r.text


label_name = st.text(min_size=0, max_size=300)
label_value = st.text(max_size=5000)


@SETTINGS
@given(labels=st.lists(st.dictionaries(label_name, label_value, max_size=50), min_size=1,
                       max_size=4))
def test_abusive_labels_get_4xx_with_a_reason(served, labels) -> None:
    client, state = served
    try:
        body = encode_write_request(labels, np.zeros(1, int), [START], [1.0])
    except (ValueError, UnicodeEncodeError):
        return  # the encoder itself refuses (e.g. surrogates): nothing to send
    before = stored(state, "abuse")
    r = client.post("/api/v1/write", content=body, headers={**RW, "X-Scope-OrgID": "abuse"})
    check(r, allowed=(204,))
    if r.status_code != 204:
        assert stored(state, "abuse") == before


special = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308,
                           struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]])


@SETTINGS
@given(values=st.lists(st.one_of(special, st.floats(allow_nan=True)), min_size=1, max_size=20),
       offsets=st.lists(st.integers(-5, 5), min_size=20, max_size=20))
def test_special_values_and_disordered_timestamps_are_accepted_or_4xx(
        served, values, offsets) -> None:
    client, _ = served
    ts = START + np.array(offsets[:len(values)]) * 1000  # duplicates and out of order
    body = encode_write_request([{"__name__": "v"}], np.zeros(len(values), int), ts, values)
    r = client.post("/api/v1/write", content=body, headers={**RW, "X-Scope-OrgID": "vals"})
    check(r, allowed=(204,))


@SETTINGS
@given(doc=st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=20)
                        | st.integers(), lambda c: st.lists(c, max_size=4)
                        | st.dictionaries(st.text(max_size=10), c, max_size=5), max_leaves=20))
def test_events_endpoint_never_5xx(served, doc) -> None:
    client, _ = served
    # Python's json writes NaN/Infinity tokens: the server must refuse those too, with a 4xx
    r = client.post("/api/v1/events", content=json.dumps(doc), headers={"X-Scope-OrgID": "ev"})
    check(r)


@SETTINGS
@given(text=st.text(max_size=400))
def test_import_endpoint_never_5xx(served, text: str) -> None:
    client, _ = served
    r = client.post("/api/v1/import?format=csv", content=text.encode("utf-8", "surrogatepass"),
                    headers={"X-Scope-OrgID": "imp"})
    check(r)


def test_full_disk_gives_503_and_the_log_stays_usable(served, monkeypatch) -> None:
    """ENOSPC from the kernel while the WAL writes: 503 (Prometheus retries), nothing stored,
    and the next request succeeds once space is back."""
    client, state = served
    import vigil.wal.log as wal_log

    real_write = os.write

    def full(fd: int, data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    before = stored(state, "disk")
    monkeypatch.setattr(wal_log.os, "write", full)
    r = client.post("/api/v1/write", content=valid_body(), headers={**RW, "X-Scope-OrgID": "disk"})
    assert r.status_code == 503 and "durable" in r.text
    monkeypatch.setattr(wal_log.os, "write", real_write)
    assert stored(state, "disk") == before
    r = client.post("/api/v1/write", content=valid_body(), headers={**RW, "X-Scope-OrgID": "disk"})
    assert r.status_code == 204
    assert stored(state, "disk") == before + 12


def test_a_snappy_bomb_is_refused_before_allocation(served) -> None:
    client, _ = served
    import cramjam

    # 64 MiB of zeros compress to ~3 MiB... use 16 MiB: ~0.75 MiB of body, 4x the limit inflated
    bomb = bytes(cramjam.snappy.compress_raw(b"\0" * (16 << 20)))
    assert len(bomb) < 1 << 20
    r = client.post("/api/v1/write", content=bomb, headers=RW)
    assert r.status_code == 413 and r.text, r.text
    # a preamble declaring 2**40 bytes with a tiny body cannot be snappy at all: 400
    liar = bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x20]) + b"\0" * 64
    r = client.post("/api/v1/write", content=liar, headers=RW)
    assert r.status_code == 400 and r.text


def test_oversized_declared_body_is_refused_unread(served) -> None:
    client, _ = served
    r = client.post("/api/v1/write", content=b"x" * ((1 << 20) + 1), headers=RW)
    assert r.status_code == 413 and "max_body_bytes" in r.text

