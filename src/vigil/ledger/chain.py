"""The ledger itself: append-only records in a hash chain per tenant, signed checkpoints.

Storage: two result tables of the tenant in the store (Delta, committed through HEAD like
every table, so the ledger survives ``kill -9`` exactly as samples do):

* ``ledger``: ``seq int64 | id string | kind string | subject string | hash string |
  body string`` (``body`` = the record's canonical JSON, which itself holds ``seq`` and
  ``prev``; ``hash`` = SHA-256 hex of ``body``; ``id`` = ``"dec-"`` + the first 24 hex of
  ``hash``);
* ``ledger_checkpoints``: ``number int64 | first_seq int64 | last_seq int64 | body string |
  signature string`` (Ed25519 over ``body``, hex).

:func:`append` takes the tenant's write lock (one store transaction), reads the chain head
from the last checkpoint, chains the new records, and writes them **and** the checkpoint that
covers exactly them in one operation: after any completed append every record is covered by a
signed checkpoint, and a crash leaves either all of it or nothing.

:func:`verify_rows` is the pure check (docs/ledger.md, "Verify").
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import vigil
from vigil.ledger.canonical import canonical_json, sha256_hex
from vigil.ledger.keys import key_id, load_or_create_key
from vigil.ledger.merkle import merkle_root
from vigil.store.layout import table_key
from vigil.store.txn import dataset, open_table, transaction
from vigil.timeparse import format_ms

RECORDS = "ledger"
CHECKPOINTS = "ledger_checkpoints"
RECORD_SCHEMA = "vigil.decision/1"
CHECKPOINT_SCHEMA = "vigil.checkpoint/1"
GENESIS = "0" * 64
BATCH_RECORDS = 50_000  # records per store operation (and per checkpoint)
KINDS = ("anomaly", "exhaustion", "insight", "suppression", "feedback", "input")

RECORDS_ARROW = pa.schema([("seq", pa.int64()), ("id", pa.string()), ("kind", pa.string()),
                           ("subject", pa.string()), ("hash", pa.string()),
                           ("body", pa.string())])
CHECKPOINTS_ARROW = pa.schema([("number", pa.int64()), ("first_seq", pa.int64()),
                               ("last_seq", pa.int64()), ("body", pa.string()),
                               ("signature", pa.string())])


@functools.cache
def code_digest() -> str:
    """SHA-256 over vigil's Python sources and rules (path NUL content, sorted): tells two
    builds apart even when the package version is the same."""
    import hashlib
    from pathlib import Path

    root = Path(vigil.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def record_id(hash_hex: str) -> str:
    return "dec-" + hash_hex[:24]


def now_ms() -> int:
    return int(time.time() * 1000)


def _last_checkpoint(txn: Any) -> dict[str, Any] | None:
    dt = open_table(txn.layout, txn.tenant, txn.head, table_key(CHECKPOINTS))
    if dt is None:
        return None
    table = dataset(dt).to_table(columns=["number", "body"])
    if table.num_rows == 0:
        return None
    numbers = table.column("number").to_pylist()
    last = max(range(len(numbers)), key=numbers.__getitem__)
    body = table.column("body")[last].as_py()
    return {"body": body, **json.loads(body)}


def append(store: Any, tenant: str, entries: Sequence[Mapping[str, Any]], *,
           decided_at: int | None = None) -> list[dict[str, str]]:
    """Chain and store ``entries`` (record bodies without ``seq``/``prev``/``tenant``/
    ``schema``/``decided_at``/``code_version``), checkpointing each batch; returns
    ``[{"id", "hash", "subject"}]`` in order."""
    out: list[dict[str, str]] = []
    if not entries:
        return out
    key = load_or_create_key(store.root)
    kid = key_id(key.public_key())
    when = now_ms() if decided_at is None else decided_at
    for lo in range(0, len(entries), BATCH_RECORDS):
        chunk = entries[lo:lo + BATCH_RECORDS]
        with transaction(store.layout, tenant) as txn:
            last = _last_checkpoint(txn)
            seq = 0 if last is None else int(last["last_seq"]) + 1
            prev = GENESIS if last is None else str(last["head"])
            first = seq
            rows: dict[str, list[Any]] = {k: [] for k in RECORDS_ARROW.names}
            hashes: list[bytes] = []
            for entry in chunk:
                body = canonical_json({**entry, "schema": RECORD_SCHEMA, "seq": seq,
                                       "prev": prev, "tenant": tenant,
                                       "decided_at": format_ms(when),
                                       "code_version": vigil.__version__,
                                       "code_sha256": code_digest()})
                digest = sha256_hex(body)
                rows["seq"].append(seq)
                rows["id"].append(record_id(digest))
                rows["kind"].append(str(entry["kind"]))
                rows["subject"].append(str(entry.get("subject", "")))
                rows["hash"].append(digest)
                rows["body"].append(body.decode("utf-8"))
                hashes.append(bytes.fromhex(digest))
                out.append({"id": record_id(digest), "hash": digest,
                            "subject": str(entry.get("subject", ""))})
                prev, seq = digest, seq + 1
            number = 0 if last is None else int(last["number"]) + 1
            cp_body = canonical_json({
                "schema": CHECKPOINT_SCHEMA, "tenant": tenant, "number": number,
                "first_seq": first, "last_seq": seq - 1, "count": seq - first, "head": prev,
                "merkle_root": merkle_root(hashes).hex(),
                "prev_checkpoint": GENESIS if last is None else sha256_hex(
                    str(last["body"]).encode("utf-8")),
                "signed_at": format_ms(now_ms()), "key_id": kid,
            })
            txn.write(table_key(RECORDS), pa.table(rows, schema=RECORDS_ARROW))
            txn.write(table_key(CHECKPOINTS), pa.table({
                "number": [number], "first_seq": [first], "last_seq": [seq - 1],
                "body": [cp_body.decode("utf-8")],
                "signature": [key.sign(cp_body).hex()]}, schema=CHECKPOINTS_ARROW))
    return out


# ----------------------------------------------------------------------------- reading


def read_records(store: Any, tenant: str, columns: Sequence[str] | None = None,
                 kinds: Iterable[str] | None = None) -> pa.Table:
    """The tenant's ledger rows (by seq); empty when it has none."""
    table = store.read_table(tenant, RECORDS)
    if table is None:
        table = RECORDS_ARROW.empty_table()
    if kinds is not None:
        import pyarrow.compute as pc

        table = table.filter(pc.is_in(table.column("kind"), pa.array(list(kinds), pa.string())))
    table = table.sort_by("seq")
    return table.select(list(columns)) if columns is not None else table


def read_checkpoints(store: Any, tenant: str) -> pa.Table:
    table = store.read_table(tenant, CHECKPOINTS)
    return (CHECKPOINTS_ARROW.empty_table() if table is None else table).sort_by("number")


def find_record(store: Any, tenant: str, ident: str) -> dict[str, Any]:
    """The record with this id (a unique prefix of 8+ characters also works) or seq number;
    the parsed body plus ``id`` and ``hash``."""
    import pyarrow.compute as pc

    table = read_records(store, tenant)
    if ident.isdigit():
        hit = table.filter(pc.equal(table.column("seq"), int(ident)))
    else:
        hit = table.filter(pc.starts_with(table.column("id"), ident))
        if len(ident) < 8 and hit.num_rows:
            raise ValueError(f"decision id {ident!r} is too short: give at least 8 characters")
    if hit.num_rows == 0:
        raise KeyError(f"no decision {ident!r} in the ledger of tenant {tenant!r}")
    if hit.num_rows > 1:
        raise ValueError(f"{ident!r} matches {hit.num_rows} decisions: give more of the id")
    row = hit.to_pylist()[0]
    return {**json.loads(row["body"]), "id": row["id"], "hash": row["hash"]}


# ------------------------------------------------------------------------------ verify


@dataclass
class Problem:
    where: str  # "record" or "checkpoint"
    position: int  # seq of the record / number of the checkpoint
    ident: str  # record id or ""
    message: str

    def text(self) -> str:
        who = (f"record seq {self.position}" + (f" ({self.ident})" if self.ident else "")
               if self.where == "record" else f"checkpoint {self.position}")
        return f"{who}: {self.message}"


@dataclass
class VerifyReport:
    tenant: str
    records: int
    checkpoints: int
    key_id: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "ok": self.ok, "records": self.records,
                "checkpoints": self.checkpoints, "key_id": self.key_id,
                "first_problem": self.problems[0].text() if self.problems else None,
                "problems": [p.text() for p in self.problems[:20]]}


def _text(body: str | bytes) -> tuple[bytes, str | None]:
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass"), None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return body, f"body is not UTF-8 text ({exc.reason} at byte {exc.start})"
    return body, None


def verify_rows(tenant: str, records: Sequence[Mapping[str, Any]],
                checkpoints: Sequence[Mapping[str, Any]],
                public_key: Ed25519PublicKey) -> VerifyReport:
    """Check every link and every signature of a ledger given as rows (in stored order).

    ``records``: ``seq, id, kind, hash, body``; ``checkpoints``: ``number, first_seq,
    last_seq, body, signature``.  Problems are reported in ledger order, the first broken
    record first."""
    kid = key_id(public_key)
    report = VerifyReport(tenant, len(records), len(checkpoints), kid)
    problems = report.problems
    hashes: list[str] = []
    prev = GENESIS
    for pos, row in enumerate(records):
        ident = str(row.get("id", ""))
        raw, bad_text = _text(row["body"])
        digest = sha256_hex(raw)
        hashes.append(digest)

        def fail(msg: str, pos: int = pos, ident: str = ident) -> None:
            problems.append(Problem("record", pos, ident, msg))

        if bad_text:
            fail(bad_text)
            prev = digest
            continue
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            fail(f"body is not a JSON object ({exc}); the record was altered")
            prev = digest
            continue
        if canonical_json(body) != raw:
            fail("body is not in canonical form (it was re-encoded or edited)")
        if body.get("schema") != RECORD_SCHEMA:
            fail(f"schema {body.get('schema')!r}: expected {RECORD_SCHEMA!r}")
        if body.get("tenant") != tenant:
            fail(f"tenant {body.get('tenant')!r}: expected {tenant!r}")
        if body.get("seq") != pos or row.get("seq") != pos:
            fail(f"holds seq {body.get('seq')!r} (stored as {row.get('seq')!r}) at position "
                 f"{pos}: a record before it was deleted, inserted or moved")
        if body.get("prev") != prev:
            fail(f"prev {str(body.get('prev'))[:16]}… does not match the hash "
                 f"{prev[:16]}… of the record before it: the chain is broken here (this "
                 "record or its predecessor was changed, deleted, inserted or moved)")
        if row.get("hash") != digest:
            fail(f"stored hash {str(row.get('hash'))[:16]}… differs from the SHA-256 "
                 f"{digest[:16]}… of its body: the body or the hash was altered")
        if ident != record_id(digest):
            fail(f"id {ident!r} is not {record_id(digest)!r} (derived from its hash)")
        if row.get("kind") != body.get("kind") or body.get("kind") not in KINDS:
            fail(f"kind column {row.get('kind')!r} / body {body.get('kind')!r}: expected "
                 f"one of {KINDS} and equal")
        prev = digest
    covered = 0
    prev_cp = GENESIS
    for number, cp in enumerate(checkpoints):
        def cfail(msg: str, number: int = number) -> None:
            problems.append(Problem("checkpoint", number, "", msg))

        raw, bad_text = _text(cp["body"])
        try:
            sig = bytes.fromhex(str(cp["signature"]))
            if sig.hex() != str(cp["signature"]):  # one spelling only: lowercase hex
                raise ValueError("signature is not in lowercase hex")
            public_key.verify(sig, raw)
        except (InvalidSignature, ValueError):
            cfail(f"signature does not verify with public key {kid}: the checkpoint was "
                  "altered or was signed by another key (pass the right --public-key)")
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            cfail("body is not a JSON object")
            prev_cp = sha256_hex(raw)
            continue
        first, last = body.get("first_seq"), body.get("last_seq")
        if (body.get("number") != number or cp.get("number") != number
                or cp.get("first_seq") != first or cp.get("last_seq") != last):
            cfail(f"numbered {body.get('number')!r} at position {number}: a checkpoint was "
                  "deleted, inserted or moved")
        if body.get("key_id") != kid:
            cfail(f"names key {body.get('key_id')!r} but the public key given is {kid}")
        if body.get("prev_checkpoint") != prev_cp:
            cfail("prev_checkpoint does not match the checkpoint before it")
        if body.get("tenant") != tenant:
            cfail(f"tenant {body.get('tenant')!r}: expected {tenant!r}")
        if first != covered or not isinstance(last, int) or last < first:
            cfail(f"covers records {first}..{last} but the next uncovered record is "
                  f"{covered}: records were deleted or inserted")
        elif last >= len(hashes):
            cfail(f"covers records {first}..{last} but the ledger has only {len(hashes)} "
                  "records: records were deleted")
        else:
            if body.get("head") != hashes[last]:
                cfail(f"signed head {str(body.get('head'))[:16]}… is not the hash of record "
                      f"{last} ({hashes[last][:16]}…): records {first}..{last} were altered")
            root = merkle_root([bytes.fromhex(h) for h in hashes[first:last + 1]]).hex()
            if body.get("merkle_root") != root:
                cfail(f"Merkle root over records {first}..{last} differs from the signed "
                      "one: one of them was altered")
            covered = last + 1
        prev_cp = sha256_hex(raw)
    if covered < len(hashes):
        problems.append(Problem("record", covered, str(records[covered].get("id", "")),
                                f"records {covered}..{len(hashes) - 1} are covered by no "
                                "signed checkpoint: a checkpoint was deleted (every append "
                                "signs its records in the same operation)"))
    # the first broken record first; checkpoint problems (whose records all chain) after
    problems.sort(key=lambda p: (p.where != "record", p.position))
    return report


def verify(store: Any, tenant: str, public_key: Ed25519PublicKey | None = None
           ) -> VerifyReport:
    """Verify the tenant's whole ledger (public key: the store's own unless given)."""
    from vigil.ledger.keys import existing_public_key

    key = public_key or existing_public_key(store.root)
    records = read_records(store, tenant).to_pylist()
    checkpoints = read_checkpoints(store, tenant).to_pylist()
    if key is None:
        if records or checkpoints:
            raise ValueError(f"the store {store.root} has no ledger key: pass --public-key")
        return VerifyReport(tenant, 0, 0, "")
    return verify_rows(tenant, records, checkpoints, key)
