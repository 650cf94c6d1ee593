"""Snappy *block* format (what remote write uses), decompressed defensively.

A block starts with its uncompressed length as a uvarint (the preamble).  Before any
allocation the preamble is read and checked: above ``max_bytes`` the request is refused
(413), and a length that the compressed bytes cannot possibly produce is refused as corrupt
(400): the densest snappy element is a 3-byte copy that emits 64 bytes, so ``n`` compressed
bytes decode to at most ``64 * n / 3`` bytes.  The output buffer is then allocated at exactly
the declared size (never more) and the decoder must fill it exactly.
"""

from __future__ import annotations

import cramjam

MAX_EXPANSION_NUM, MAX_EXPANSION_DEN = 64, 3  # a 3-byte copy element emits up to 64 bytes


class SnappyError(ValueError):
    """Not a valid snappy block; ``too_large`` when only the size limit is in the way."""

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


def preamble(data: bytes | memoryview) -> tuple[int, int]:
    """``(declared uncompressed length, bytes the preamble takes)``."""
    value = shift = 0
    for i in range(min(len(data), 5)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >= 1 << 32:
                break
            return value, i + 1
        shift += 7
    raise SnappyError("snappy preamble (uncompressed length) is missing or malformed")


def decompress(data: bytes | memoryview, max_bytes: int) -> memoryview:
    """Decompress one snappy block of at most ``max_bytes`` (see the module doc)."""
    declared, used = preamble(data)
    if declared > max_bytes:
        raise SnappyError(
            f"snappy block declares {declared} uncompressed bytes, above the limit of "
            f"{max_bytes}; send smaller requests (lower max_samples_per_send)",
            too_large=True,
        )
    body = len(data) - used
    if declared * MAX_EXPANSION_DEN > body * MAX_EXPANSION_NUM:
        raise SnappyError(
            f"snappy block declares {declared} uncompressed bytes, more than its {body} "
            "compressed bytes can hold: corrupt or not snappy"
        )
    out = bytearray(declared)  # calloc: pages are touched only as they are written
    if declared == 0:
        if body:
            raise SnappyError("snappy block declares 0 bytes but carries data: corrupt")
        return memoryview(out)
    try:
        written = cramjam.snappy.decompress_raw_into(bytes(data), out)
    except Exception as exc:  # cramjam raises its own DecompressionError (and ValueError)
        raise SnappyError(f"invalid snappy block: {exc}") from None
    if written != declared:
        raise SnappyError(
            f"snappy block decoded to {written} bytes but declared {declared}: corrupt"
        )
    return memoryview(out)


def compress(data: bytes | memoryview) -> bytes:
    return bytes(cramjam.snappy.compress_raw(bytes(data)))
