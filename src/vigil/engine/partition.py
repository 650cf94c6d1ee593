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

**No partition cliffs.**  A placement group larger than :data:`MAX_PLACEMENT_SERIES` (100,000
instances of one node-exporter job carry no label but ``job`` and ``instance`` to place them
by) is split into shards of about that many series by a hash of each series' labels without
``__name__`` (:func:`placement_shards`): every metric of an instance stays in its shard, and so
do its twin limits.  Each shard is a placement unit, and its series of one metric form a peer
group of their own (``SeriesBatch.shard``, read by :class:`vigil.models.peer.PeerModel`): a
series is compared with a random subset of its replicas of the shard's size (the median of
even a few hundred replicas estimates the whole group's within a few hundredths of its
spread).  The shards depend only on the catalog, never on the number of partitions or
workers, so results stay bit-identical for any number of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from vigil.engine.limits import DEFAULT_PAIRS, LimitPair, pair_rows
from vigil.models.peer import DEFAULT_GROUP_BY
from vigil.series import series_id

PLACEMENT_BY = tuple(k for k in DEFAULT_GROUP_BY if k != "__name__")
# a placement group (all series of one placement key) larger than this is sharded
MAX_PLACEMENT_SERIES = 16_384


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


def placement_shards(label_sets: Sequence[Mapping[str, str]], keys: np.ndarray,
                     max_series: int = MAX_PLACEMENT_SERIES) -> np.ndarray:
    """Shard of each series within its placement group (0 where the group is small): a
    placement group of ``size`` series is split into ``ceil(size / max_series)`` shards by a
    hash of the series' labels without ``__name__`` (every metric of one pod or instance lands
    in the same shard, with its twin limit series)."""
    shard = np.zeros(len(label_sets), dtype=np.int64)
    if len(keys) == 0:
        return shard
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    k = -(-counts // max_series)
    big = k[inverse] > 1
    for row in np.flatnonzero(big).tolist():  # only the series of oversized groups
        ls = label_sets[row]
        h = series_id({n: v for n, v in ls.items() if n != "__name__"})
        shard[row] = (h & 0x7FFF_FFFF_FFFF_FFFF) % int(k[inverse[row]])
    return shard


def sharded(keys: np.ndarray, shard: np.ndarray) -> np.ndarray:
    """Placement keys with their shard mixed in (unchanged where the shard is 0)."""
    mix = (np.asarray(shard, np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    out = (np.asarray(keys, np.int64).view(np.uint64) ^ mix).view(np.int64)
    return np.where(np.asarray(shard) == 0, keys, out)


def placement_ids(
    label_sets: Sequence[Mapping[str, str]], pairs: Sequence[LimitPair] = DEFAULT_PAIRS,
    shard: np.ndarray | None = None,
) -> np.ndarray:
    """Placement key of each series (with its shard, when its group is sharded) with its
    limit pairs joined (see the module doc)."""
    keys = group_ids(label_sets)
    if shard is not None:
        keys = sharded(keys, shard)
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
