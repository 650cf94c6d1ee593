"""Merkle trees over record hashes, as in RFC 9162 (Certificate Transparency v2), SHA-256.

Leaves are the records' hashes (32 bytes each) in ledger order.  ``leaf = H(0x00 || record
hash)``, ``node = H(0x01 || left || right)``; a tree of ``n > 1`` leaves splits at ``k``, the
largest power of two below ``n`` (RFC 9162 section 2.1.1).  An inclusion proof of leaf ``m``
is the audit path of section 2.1.3 (sibling hashes from the leaf up) and is checked with the
algorithm of section 2.1.3.2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def leaf_hash(record_hash: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + record_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(_root(leaves[:k]), _root(leaves[k:]))


def merkle_root(record_hashes: Sequence[bytes]) -> bytes:
    """Root over the records' hashes (the empty tree: SHA-256 of nothing)."""
    if not record_hashes:
        return hashlib.sha256(b"").digest()
    level = [leaf_hash(h) for h in record_hashes]
    return _root(level)


def inclusion_path(record_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path of leaf ``index`` (RFC 9162 2.1.3.1), from the leaf up."""
    if not 0 <= index < len(record_hashes):
        raise ValueError(f"leaf {index} is outside a tree of {len(record_hashes)} leaves")
    leaves = [leaf_hash(h) for h in record_hashes]

    def path(m: int, d: Sequence[bytes]) -> list[bytes]:
        n = len(d)
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*path(m, d[:k]), _root(d[k:])]
        return [*path(m - k, d[k:]), _root(d[:k])]

    return path(index, leaves)


def verify_inclusion(record_hash: bytes, index: int, size: int, path: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does ``path`` prove leaf ``index`` of a ``size``-leaf tree with
    ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(record_hash)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
