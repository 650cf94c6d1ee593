"""Splitting the catalog into partitions.

Series are assigned to partitions by a hash of their **placement key**: the peer model's
``group_by`` labels without the metric name (site, cluster, region, namespace, job, service,
container; pod and instance left out).  So every peer group lands whole in one partition (the
peer model sees all its members) and so does every series' paired limit series
(``..._limit_bytes`` beside ``..._bytes`` of the same pod), which exhaustion forecasts need.
Apart from that, rows are independent, so results are identical for any number of partitions.

Hash: the key's BLAKE2b-64 (as :func:`vigil.series.series_id` computes it over the key's label
set, absent labels omitted), read as unsigned; ``partition = hash mod n``.

A limit series of another scrape job (kube-state-metrics' ``kube_pod_container_resource_limits``
beside the kubelet's ``container_memory_working_set_bytes``: :mod:`vigil.engine.limits`) has
another placement key; :func:`placement_ids` joins the keys of every usage/limit pair (connected
components, each named by its smallest key hash), so a pair lands in one partition and the
placement still does not depend on the number of partitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vigil.engine.limits import DEFAULT_PAIRS, LimitPair, pair_rows
from vigil.models.peer import DEFAULT_GROUP_BY
from vigil.series import series_id

PLACEMENT_BY = tuple(k for k in DEFAULT_GROUP_BY if k != "__name__")


def group_ids(
    label_sets: Sequence[Mapping[str, str]], group_by: Sequence[str] = PLACEMENT_BY
) -> np.ndarray:
    """int64 content hash of each series' placement key (hashed once per distinct key)."""
    keys = ["\xff".join(ls.get(k, "") for k in group_by) for ls in label_sets]
    uniq, inverse = np.unique(np.array(keys, dtype=object), return_inverse=True)
    hashes = np.array(
        [series_id({k: v for k, v in zip(group_by, u.split("\xff"), strict=True) if v})
         for u in uniq],
        dtype=np.int64,
    )
    return hashes[inverse.ravel()] if len(keys) else np.zeros(0, dtype=np.int64)


def placement_ids(
    label_sets: Sequence[Mapping[str, str]], pairs: Sequence[LimitPair] = DEFAULT_PAIRS
) -> np.ndarray:
    """Placement key of each series with its limit pairs joined (see the module doc)."""
    keys = group_ids(label_sets)
    found = pair_rows(label_sets, pairs)
    if not found:
        return keys
    parent: dict[int, int] = {}

    def root(k: int) -> int:
        while parent.get(k, k) != k:
            parent[k] = parent.get(parent[k], parent[k])
            k = parent[k]
        return k

    for usage, limit, _ in found:  # union by the smaller key: components named by their min
        a, b = root(int(keys[usage])), root(int(keys[limit]))
        if a != b:
            parent[max(a, b)] = min(a, b)
    uniq, inverse = np.unique(keys, return_inverse=True)
    roots = np.array([root(int(k)) for k in uniq], dtype=np.int64)
    return roots[inverse.ravel()]


def partition_of(keys: np.ndarray, n_partitions: int) -> np.ndarray:
    """Partition index in ``[0, n_partitions)`` of each int64 key."""
    if n_partitions < 1:
        raise ValueError(f"n_partitions={n_partitions} is invalid: expected at least 1")
    return (keys.astype(np.int64).view(np.uint64) % np.uint64(n_partitions)).astype(np.int64)
