"""The decision ledger's chain, checkpoints, keys, proofs and canonical encodings."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.ledger import api, chain
from vigil.ledger.canonical import canonical_json, input_digest, read_float
from vigil.ledger.keys import existing_public_key, key_path, load_public_key, public_pem
from vigil.ledger.merkle import inclusion_path, merkle_root, verify_inclusion
from vigil.store import Store

TENANT = "t"


def _entries(batch: int, n: int) -> list[dict[str, Any]]:
    return [{"kind": "feedback", "subject": f"feedback:ins-{batch}-{i}",
             "outputs": {"value": 0.1 * i, "nan": math.nan, "inf": -math.inf, "neg0": -0.0}}
            for i in range(n)]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, list[dict], list[dict]]:
    store = Store(tmp_path_factory.mktemp("ledger"))
    for b, n in enumerate((5, 1, 6)):
        chain.append(store, TENANT, _entries(b, n))
    return (store, chain.read_records(store, TENANT).to_pylist(),
            chain.read_checkpoints(store, TENANT).to_pylist())


def test_a_fresh_ledger_verifies_and_is_chained(ledger: Any) -> None:
    store, records, checkpoints = ledger
    report = chain.verify(store, TENANT)
    assert report.ok, report.as_dict()
    assert (report.records, report.checkpoints) == (12, 3)
    assert [r["seq"] for r in records] == list(range(12))
    bodies = [json.loads(r["body"]) for r in records]
    assert bodies[0]["prev"] == chain.GENESIS
    assert all(bodies[i]["prev"] == records[i - 1]["hash"] for i in range(1, 12))
    assert [(c["first_seq"], c["last_seq"]) for c in checkpoints] == [(0, 4), (5, 5), (6, 11)]
    assert bodies[1]["outputs"] == {"value": 0.1, "nan": "NaN", "inf": "-Infinity",
                                    "neg0": -0.0}


def test_the_key_is_private_and_exportable(ledger: Any, tmp_path: Path) -> None:
    store = ledger[0]
    mode = stat.S_IMODE(os.stat(key_path(store.root)).st_mode)
    assert mode == 0o600
    pem = tmp_path / "pub.pem"
    key = existing_public_key(store.root)
    assert key is not None
    pem.write_bytes(public_pem(key))
    assert chain.verify(store, TENANT, load_public_key(pem)).ok


def test_verify_with_the_wrong_public_key_fails(ledger: Any) -> None:
    store = ledger[0]
    other = Ed25519PrivateKey.generate().public_key()
    report = chain.verify(store, TENANT, other)
    assert not report.ok
    assert all(p.where == "checkpoint" for p in report.problems)
    assert "signature does not verify" in report.problems[0].message


MUTATIONS = ("byte", "delete", "swap", "duplicate", "forge", "cp_byte", "cp_delete",
             "cp_swap", "hash_byte")


def _mutate(records: list[dict], cps: list[dict], data: st.DataObject, how: str
            ) -> tuple[list[dict], list[dict]]:
    records = [dict(r) for r in records]
    cps = [dict(c) for c in cps]
    n = len(records)
    i = data.draw(st.integers(0, n - 1), label="record")
    if how == "byte":
        raw = bytearray(records[i]["body"].encode("utf-8"))
        pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
        new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]), label="byte")
        raw[pos] = new
        records[i]["body"] = bytes(raw)
    elif how == "hash_byte":
        field = data.draw(st.sampled_from(["hash", "id"]), label="field")
        text = records[i][field]
        pos = data.draw(st.integers(0, len(text) - 1), label="pos")
        ch = data.draw(st.sampled_from("0123456789abcdefg-x").filter(lambda c: c != text[pos]))
        records[i][field] = text[:pos] + ch + text[pos + 1:]
    elif how == "delete":
        del records[i]
    elif how == "swap":
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i), label="other")
        records[i], records[j] = records[j], records[i]
    elif how == "duplicate":
        j = data.draw(st.integers(0, n), label="at")
        records.insert(j, dict(records[i]))
    elif how == "forge":  # a well-formed record with a correct hash of its own body
        j = data.draw(st.integers(0, n), label="at")
        prev = records[j - 1]["hash"] if j > 0 else chain.GENESIS
        body = canonical_json({**json.loads(records[i]["body"]), "seq": j, "prev": prev,
                               "outputs": {"forged": True}})
        from vigil.ledger.canonical import sha256_hex

        h = sha256_hex(body)
        records.insert(j, {"seq": j, "id": chain.record_id(h), "kind": "feedback",
                           "subject": "x", "hash": h, "body": body.decode()})
    elif how == "cp_byte":
        k = data.draw(st.integers(0, len(cps) - 1), label="checkpoint")
        field = data.draw(st.sampled_from(["body", "signature"]), label="field")
        raw = bytearray(cps[k][field].encode())
        pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
        raw[pos] = data.draw(st.integers(32, 126).filter(lambda b: b != raw[pos]))
        cps[k][field] = raw.decode("latin-1")
    elif how == "cp_delete":
        del cps[data.draw(st.integers(0, len(cps) - 1), label="checkpoint")]
    elif how == "cp_swap":
        cps[0], cps[-1] = cps[-1], cps[0]
    return records, cps


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), how=st.sampled_from(MUTATIONS))
def test_verify_catches_every_single_tampering(ledger: Any, data: st.DataObject,
                                               how: str) -> None:
    store, records, cps = ledger
    key = existing_public_key(store.root)
    assert key is not None
    bad_records, bad_cps = _mutate(records, cps, data, how)
    report = chain.verify_rows(TENANT, bad_records, bad_cps, key)
    assert not report.ok, (how, report.as_dict())


def test_verify_names_the_first_broken_record(ledger: Any) -> None:
    store, records, cps = ledger
    key = existing_public_key(store.root)
    assert key is not None
    changed = [dict(r) for r in records]
    changed[7]["body"] = changed[7]["body"].replace('"value":', '"value": ')
    report = chain.verify_rows(TENANT, changed, cps, key)
    assert report.problems[0].position == 7
    assert report.problems[0].ident == records[7]["id"]
    gone = records[:3] + records[4:]
    first = chain.verify_rows(TENANT, gone, cps, key).problems[0]
    assert first.position == 3 and "deleted, inserted or moved" in first.message


def test_tampering_inside_the_store_is_caught(tmp_path: Path) -> None:
    import pyarrow as pa

    store = Store(tmp_path)
    chain.append(store, TENANT, _entries(0, 4))
    table = chain.read_records(store, TENANT)
    bodies = table.column("body").to_pylist()
    bodies[2] = bodies[2].replace('"value":0.2', '"value":0.3')
    table = table.set_column(table.schema.get_field_index("body"), "body",
                             pa.array(bodies, pa.string()))
    store.write_table(TENANT, chain.RECORDS, table, mode="overwrite")
    report = chain.verify(store, TENANT)
    assert not report.ok
    assert report.problems[0].position == 2 and "hash" in report.problems[0].message


def test_merkle_proofs_for_every_leaf_of_every_size() -> None:
    import hashlib

    for n in range(1, 20):
        leaves = [hashlib.sha256(bytes([n, i])).digest() for i in range(n)]
        root = merkle_root(leaves)
        for i in range(n):
            path = inclusion_path(leaves, i)
            assert verify_inclusion(leaves[i], i, n, path, root)
            assert not verify_inclusion(leaves[(i + 1) % n], i, n, path, root) or n == 1
            if path:
                assert not verify_inclusion(leaves[i], i, n, path[:-1], root)


def test_api_proof_verifies_offline_and_fails_when_altered(ledger: Any) -> None:
    store, records, _ = ledger
    pem = public_pem(existing_public_key(store.root))  # type: ignore[arg-type]
    for rec in records:
        proof = api.inclusion_proof(store, TENANT, rec["id"])
        proof = json.loads(json.dumps(proof))  # travels as JSON
        assert api.verify_inclusion_proof(proof, pem, rec["body"])["ok"]
    proof = api.inclusion_proof(store, TENANT, records[8]["id"])
    assert not api.verify_inclusion_proof(proof, pem, records[9]["body"])["ok"]
    proof["record"]["hash"] = records[9]["hash"]
    assert not api.verify_inclusion_proof(proof, pem)["ok"]
    other = public_pem(Ed25519PrivateKey.generate().public_key())
    proof = api.inclusion_proof(store, TENANT, records[8]["id"])
    assert not api.verify_inclusion_proof(proof, other)["ok"]
    with pytest.raises(ValueError, match="covers records"):
        api.inclusion_proof(store, TENANT, records[8]["id"], checkpoint_id=0)
    with pytest.raises(KeyError):
        api.decision(store, TENANT, "dec-ffffffffffff")
    got = api.decision(store, TENANT, records[5]["id"])
    assert got["checkpoint"] == 1 and got["decision"]["seq"] == 5
    cps = api.checkpoints(store, TENANT)
    assert len(cps["checkpoints"]) == 3 and cps["public_key_pem"].startswith("-----BEGIN")


def test_canonical_encodings() -> None:
    assert canonical_json({"b": 1, "a": [1.5, "é", None, True]}) == (
        '{"a":[1.5,"é",null,true],"b":1}'.encode())
    for x in (0.1, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, math.nan, math.inf):
        back = read_float(json.loads(canonical_json([x]))[0])
        assert (math.isnan(x) and math.isnan(back)) or (
            np.float64(back).tobytes() == np.float64(x).tobytes())
    ids = np.array([3, 5], dtype=np.int64)
    a = np.array([[1.0, np.nan], [-0.0, 2.0]])
    b = a.copy()
    b[0, 1] = np.float64(np.nan) * -1  # another NaN bit pattern: same data
    assert input_digest(ids, 0, 10, a) == input_digest(ids, 0, 10, b)
    c = a.copy()
    c[1, 0] = 0.0  # -0.0 and 0.0 differ in bits
    assert input_digest(ids, 0, 10, a) != input_digest(ids, 0, 10, c)
    assert input_digest(ids, 0, 10, a) != input_digest(ids, 10, 10, a)
