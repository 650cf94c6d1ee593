"""The ledger for the HTTP API: plain functions of ``(store, tenant, ...)`` returning
JSON-able dicts; a missing thing raises ``KeyError``, a bad argument ``ValueError`` (both with
a message for the client).  The service mounts them as

* ``GET /api/v1/decisions/{id}`` -> :func:`decision`
* ``GET /api/v1/insights/{id}/explain`` -> :func:`explain`
* ``GET /api/v1/ledger/checkpoints`` -> :func:`checkpoints`
* ``GET /api/v1/decisions/{id}/proof[?checkpoint=N]`` -> :func:`inclusion_proof`

:func:`verify_inclusion_proof` checks a proof offline (no store, only the public key).
"""

from __future__ import annotations

import json
from typing import Any

from vigil.ledger import chain
from vigil.ledger.canonical import sha256_hex
from vigil.ledger.keys import existing_public_key, key_id, public_pem
from vigil.ledger.merkle import inclusion_path, verify_inclusion

PROOF_FORMAT = "vigil.inclusion-proof/1"


def decision(store: Any, tenant: str, decision_id: str) -> dict[str, Any]:
    """One decision record (its body, id, hash) and the checkpoint that signs it."""
    rec = chain.find_record(store, tenant, decision_id)
    cp = _covering(store, tenant, int(rec["seq"]))
    return {"decision": rec, "checkpoint": None if cp is None else cp["number"]}


def explain(store: Any, tenant: str, insight_id: str) -> dict[str, Any]:
    from vigil.ledger.explain import explain as _explain

    return _explain(store, tenant, insight_id)


def checkpoints(store: Any, tenant: str) -> dict[str, Any]:
    """Every signed checkpoint, with the public key that verifies them."""
    key = existing_public_key(store.root)
    rows = chain.read_checkpoints(store, tenant).to_pylist()
    return {
        "tenant": tenant,
        "key_id": None if key is None else key_id(key),
        "public_key_pem": None if key is None else public_pem(key).decode("ascii"),
        "checkpoints": [{"number": r["number"], "first_seq": r["first_seq"],
                         "last_seq": r["last_seq"], "body": r["body"],
                         "signature": r["signature"], **_parsed(r["body"])} for r in rows],
    }


def _parsed(body: str) -> dict[str, Any]:
    data = json.loads(body)
    return {k: data[k] for k in ("head", "merkle_root", "signed_at", "key_id") if k in data}


def _covering(store: Any, tenant: str, seq: int) -> dict[str, Any] | None:
    for row in chain.read_checkpoints(store, tenant).to_pylist():
        if row["first_seq"] <= seq <= row["last_seq"]:
            return dict(row)
    return None


def inclusion_proof(store: Any, tenant: str, record_id: str,
                    checkpoint_id: int | None = None) -> dict[str, Any]:
    """Proof that a record is in the Merkle tree a signed checkpoint commits to (RFC 9162
    audit path over the records that checkpoint covers)."""
    rec = chain.find_record(store, tenant, record_id)
    seq = int(rec["seq"])
    rows = chain.read_checkpoints(store, tenant).to_pylist()
    if checkpoint_id is None:
        cps = [r for r in rows if r["first_seq"] <= seq <= r["last_seq"]]
        if not cps:
            raise KeyError(f"no checkpoint covers record {rec['id']} (seq {seq})")
        cp = cps[0]
    else:
        cps = [r for r in rows if r["number"] == checkpoint_id]
        if not cps:
            raise KeyError(f"no checkpoint {checkpoint_id} in tenant {tenant!r}")
        cp = cps[0]
        if not cp["first_seq"] <= seq <= cp["last_seq"]:
            raise ValueError(
                f"checkpoint {checkpoint_id} covers records {cp['first_seq']}..{cp['last_seq']}"
                f", not seq {seq}; omit the checkpoint to use the one that signs it")
    table = chain.read_records(store, tenant, ["seq", "hash"])
    hashes = table.column("hash").to_pylist()[cp["first_seq"]:cp["last_seq"] + 1]
    index = seq - cp["first_seq"]
    path = inclusion_path([bytes.fromhex(h) for h in hashes], index)
    return {
        "format": PROOF_FORMAT, "algorithm": "RFC 9162 Merkle audit path, SHA-256",
        "tenant": tenant,
        "record": {"id": rec["id"], "seq": seq, "hash": rec["hash"]},
        "leaf_index": index, "tree_size": len(hashes),
        "path": [p.hex() for p in path],
        "checkpoint": {"number": cp["number"], "body": cp["body"],
                       "signature": cp["signature"]},
    }


def verify_inclusion_proof(proof: dict[str, Any], public_key_pem: bytes | str,
                           record_body: str | bytes | None = None) -> dict[str, Any]:
    """Check a proof offline: the checkpoint's signature, that the path leads from the
    record's hash to the signed Merkle root, and (given the record's body) that the body
    hashes to the record's hash.  Returns ``{"ok": bool, "problems": [...]}``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    problems: list[str] = []
    pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the public key is not Ed25519")
    cp = proof["checkpoint"]
    body_bytes = str(cp["body"]).encode("utf-8")
    try:
        key.verify(bytes.fromhex(cp["signature"]), body_bytes)
    except (InvalidSignature, ValueError):
        problems.append(f"the checkpoint signature does not verify with key {key_id(key)}")
    body = json.loads(body_bytes)
    rec = proof["record"]
    if not body["first_seq"] <= rec["seq"] <= body["last_seq"]:
        problems.append("the checkpoint does not cover the record's seq")
    if proof["leaf_index"] != rec["seq"] - body["first_seq"] or proof["tree_size"] != body[
            "count"]:
        problems.append("leaf index or tree size disagree with the signed checkpoint")
    if not verify_inclusion(bytes.fromhex(rec["hash"]), proof["leaf_index"],
                            proof["tree_size"], [bytes.fromhex(p) for p in proof["path"]],
                            bytes.fromhex(body["merkle_root"])):
        problems.append("the audit path does not lead from the record's hash to the signed "
                        "Merkle root")
    if record_body is not None:
        raw = record_body.encode("utf-8") if isinstance(record_body, str) else record_body
        if sha256_hex(raw) != rec["hash"]:
            problems.append("the record body does not hash to the proven record hash")
    return {"ok": not problems, "problems": problems, "checkpoint": body["number"],
            "key_id": key_id(key)}


def verify(store: Any, tenant: str, public_key_pem: bytes | str | None = None
           ) -> dict[str, Any]:
    """The whole tenant ledger checked (``vigil ledger verify``) as a dict."""
    from vigil.ledger.keys import load_public_key_bytes

    key = None if public_key_pem is None else load_public_key_bytes(public_key_pem)
    return chain.verify(store, tenant, key).as_dict()
