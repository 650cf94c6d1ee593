"""Write-ahead log for remote writes: durable appends, replay, checkpoints into the store.

See docs/remote_write.md.
"""

from vigil.wal.log import (
    CheckpointResult,
    Wal,
    WalBackpressure,
    WalCorrupt,
    WalRecord,
    WalStats,
    WalUnavailable,
)

__all__ = [
    "CheckpointResult",
    "Wal",
    "WalBackpressure",
    "WalCorrupt",
    "WalRecord",
    "WalStats",
    "WalUnavailable",
]
