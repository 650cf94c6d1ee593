"""Splitting the catalog into partitions.

Series are assigned to partitions by a hash of their **peer-group key**: the values of the peer
model's ``group_by`` labels (metric, namespace, job, service, container; pod, instance and site
left out), so every peer group lands whole in one partition and the peer model sees all its
members.  Apart from peers, rows are independent, so results are identical for any number of
partitions.

Hash: the group key's BLAKE2b-64 (as :func:`vigil.series.series_id` computes it over the key's
label set, absent labels omitted), read as unsigned; ``partition = hash mod n``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vigil.models.peer import DEFAULT_GROUP_BY
from vigil.series import series_id


def group_ids(
    label_sets: Sequence[Mapping[str, str]], group_by: Sequence[str] = DEFAULT_GROUP_BY
) -> np.ndarray:
    """int64 content hash of each series' peer-group key (hashed once per distinct key)."""
    keys = ["\xff".join(ls.get(k, "") for k in group_by) for ls in label_sets]
    uniq, inverse = np.unique(np.array(keys, dtype=object), return_inverse=True)
    hashes = np.array(
        [series_id({k: v for k, v in zip(group_by, u.split("\xff"), strict=True) if v})
         for u in uniq],
        dtype=np.int64,
    )
    return hashes[inverse.ravel()] if len(keys) else np.zeros(0, dtype=np.int64)


def partition_of(keys: np.ndarray, n_partitions: int) -> np.ndarray:
    """Partition index in ``[0, n_partitions)`` of each int64 key."""
    if n_partitions < 1:
        raise ValueError(f"n_partitions={n_partitions} is invalid: expected at least 1")
    return (keys.astype(np.int64).view(np.uint64) % np.uint64(n_partitions)).astype(np.int64)
