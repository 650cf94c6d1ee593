"""Splitting the catalog into partitions.

Series are assigned to partitions by a hash of their **peer-group key** (metric name plus the
grouping labels, pod and instance dropped), so replicas of one service always land in the same
partition and the peer model sees all of them.  Every model treats rows independently apart from
peers, so results are identical for any number of partitions.

Hash: the group key's series id (BLAKE2b-64 of its canonical bytes, see :mod:`vigil.series`),
read as unsigned; ``partition = hash mod n``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vigil.series import series_id

# Labels that distinguish replicas of one workload: dropped from the peer-group key.
REPLICA_LABELS = ("pod", "instance", "container_id", "pod_ip")


def group_key(labels: dict[str, str], peer_labels: Sequence[str] = REPLICA_LABELS,
              ignore: Sequence[str] = ("site",)) -> dict[str, str]:
    """The labels two series share when they are peers (same metric, same service...)."""
    drop = set(peer_labels) | set(ignore)
    return {k: v for k, v in labels.items() if k not in drop}


def group_ids(label_sets: Sequence[dict[str, str]],
              peer_labels: Sequence[str] = REPLICA_LABELS,
              ignore: Sequence[str] = ("site",)) -> np.ndarray:
    """int64 id of each series' peer group (a hash of its group key)."""
    cache: dict[tuple[tuple[str, str], ...], int] = {}
    out = np.empty(len(label_sets), dtype=np.int64)
    for i, labels in enumerate(label_sets):
        key = tuple(sorted(group_key(labels, peer_labels, ignore).items()))
        gid = cache.get(key)
        if gid is None:
            gid = cache[key] = series_id(dict(key))
        out[i] = gid
    return out


def partition_of(keys: np.ndarray, n_partitions: int) -> np.ndarray:
    """Partition index in ``[0, n_partitions)`` of each int64 key."""
    if n_partitions < 1:
        raise ValueError(f"n_partitions={n_partitions} is invalid: expected at least 1")
    return (keys.astype(np.int64).view(np.uint64) % np.uint64(n_partitions)).astype(np.int64)
