"""Prometheus remote-write 1.0: decoding (and encoding) of snappy-compressed WriteRequests.

See docs/remote_write.md.
"""

from vigil.remote.decode import (
    STALE_NAN_BITS,
    RemoteDecoder,
    RemoteLimits,
    RemoteWriteError,
    WriteBatch,
    decode_write_request,
    encode_write_request,
    warm_up,
)

__all__ = [
    "STALE_NAN_BITS",
    "RemoteDecoder",
    "RemoteLimits",
    "RemoteWriteError",
    "WriteBatch",
    "decode_write_request",
    "encode_write_request",
    "warm_up",
]
