"""Fleet topology: sites, services, nodes, replica slots and the pods that fill them.

A *group* is one service in one site (a Kubernetes Deployment).  It has replica *slots*; each
slot is filled by a sequence of *pods* (a new pod, with a new name and maybe a new node, when
the old one is evicted).  Slots added by a scale-up start mid-run; container restarts keep the
pod (and so the series) but reset its memory.  Deployments do not rename pods here, so every
pod-level series keeps its history across a rollout (see ``__init__``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vigil.simulate.grid import Grid

NAMESPACES = ("shop", "payments", "platform")
SERVICE_CATALOG = (
    ("frontend", "shop"),
    ("checkout", "shop"),
    ("payments-api", "payments"),
    ("auth", "platform"),
    ("cart", "shop"),
    ("ledger", "payments"),
    ("catalog", "shop"),
    ("gateway", "platform"),
    ("search", "shop"),
    ("fraud-check", "payments"),
    ("notifications", "platform"),
    ("recommendations", "shop"),
    ("billing", "payments"),
    ("inventory", "shop"),
    ("config-server", "platform"),
    ("reviews", "shop"),
)
SITE_TZ_HOURS = (1, -5, 8, 0, -8, 9, -3, 5, 2, 10, -6, 3)
MIB = 1024 * 1024
MEMORY_LIMITS = (512 * MIB, 1024 * MIB, 2048 * MIB)
CPU_LIMITS = (0.5, 1.0, 2.0)
PODS_PER_NODE = 16
_NAME_ALPHABET = np.array(list("bcdfghjklmnpqrstvwxz2456789"))


@dataclass(frozen=True)
class ServiceTable:
    """Per-service parameters, one array entry per service."""

    names: list[str]
    namespaces: list[str]
    cap_rps: np.ndarray  # requests/s one pod serves at utilisation 1
    u_peak: np.ndarray  # pod utilisation at the weekday daily peak
    p99_base: np.ndarray  # seconds, at idle
    err_base: np.ndarray  # error ratio at normal load
    cpu_limit: np.ndarray  # cores
    cpu_idle: np.ndarray  # cores
    cpu_full: np.ndarray  # cores added at utilisation 1
    mem_limit: np.ndarray  # bytes
    mem_frac: np.ndarray  # working set / limit at steady state
    saw_amp: np.ndarray  # GC sawtooth amplitude / limit
    gc_period_s: np.ndarray
    diurnal_amp: np.ndarray
    peak_hour: np.ndarray  # local hour of the daily peak
    weekend: np.ndarray  # weekend traffic factor
    trend: np.ndarray  # relative traffic growth over the whole run


def make_services(n: int, rng: np.random.Generator) -> ServiceTable:
    names: list[str] = []
    namespaces: list[str] = []
    for i in range(n):
        if i < len(SERVICE_CATALOG):
            name, ns = SERVICE_CATALOG[i]
        else:
            name, ns = f"svc-{i + 1}", NAMESPACES[i % len(NAMESPACES)]
        names.append(name)
        namespaces.append(ns)
    u_peak = rng.uniform(0.35, 0.6, n)
    cpu_limit = rng.choice(np.array(CPU_LIMITS), n)
    cpu_idle = rng.uniform(0.01, 0.05, n) * cpu_limit
    cpu_peak = rng.uniform(0.3, 0.5, n) * cpu_limit
    return ServiceTable(
        names=names,
        namespaces=namespaces,
        cap_rps=np.clip(rng.lognormal(np.log(40.0), 0.8, n), 2.0, 500.0),
        u_peak=u_peak,
        p99_base=np.clip(rng.lognormal(np.log(0.12), 0.6, n), 0.01, 2.0),
        err_base=np.clip(rng.lognormal(np.log(0.002), 0.7, n), 1e-4, 0.02),
        cpu_limit=cpu_limit,
        cpu_idle=cpu_idle,
        cpu_full=(cpu_peak - cpu_idle) / u_peak,
        mem_limit=rng.choice(np.array(MEMORY_LIMITS, dtype=np.float64), n, p=[0.35, 0.4, 0.25]),
        mem_frac=rng.uniform(0.35, 0.6, n),
        saw_amp=rng.uniform(0.03, 0.08, n),
        gc_period_s=rng.uniform(2700.0, 4 * 3600.0, n),
        diurnal_amp=rng.uniform(0.45, 0.7, n),
        peak_hour=rng.uniform(13.0, 20.0, n),
        weekend=rng.uniform(0.55, 0.85, n),
        trend=rng.uniform(-0.02, 0.06, n),
    )


@dataclass(frozen=True)
class Pod:
    slot: int
    start: int  # first column the pod exists
    name: str
    node: int
    offset_ms: int  # scrape offset inside each step


@dataclass
class Topology:
    grid: Grid
    sites: list[str]
    site_tz: np.ndarray
    services: ServiceTable
    nodes: list[str]
    node_site: np.ndarray
    node_offset_ms: np.ndarray
    replicas: int
    group_site: np.ndarray
    group_service: np.ndarray
    rng: np.random.Generator
    slot_group: list[int] = field(default_factory=list)
    slot_start: list[int] = field(default_factory=list)
    slot_stop: list[int] = field(default_factory=list)
    slot_share: list[float] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    restarts: list[tuple[int, int]] = field(default_factory=list)  # (slot, column)
    gaps: list[tuple[int, int, int]] = field(default_factory=list)  # (slot, first, stop)
    _names: set[str] = field(default_factory=set)
    _hash: dict[int, str] = field(default_factory=dict)
    _group_slots: dict[int, list[int]] = field(default_factory=dict)
    _slot_pods: dict[int, list[Pod]] = field(default_factory=dict)

    @property
    def n_groups(self) -> int:
        return len(self.group_site)

    def group_labels(self, group: int) -> dict[str, str]:
        svc = int(self.group_service[group])
        return {
            "site": self.sites[int(self.group_site[group])],
            "namespace": self.services.namespaces[svc],
            "service": self.services.names[svc],
        }

    def group_slots(self, group: int) -> list[int]:
        return list(self._group_slots.get(group, []))

    def pod_at(self, slot: int, column: int) -> Pod:
        found = [p for p in self._slot_pods[slot] if p.start <= column]
        return max(found, key=lambda p: p.start)

    def add_slot(self, group: int, start: int, stop: int) -> int:
        slot = len(self.slot_group)
        self.slot_group.append(group)
        self._group_slots.setdefault(group, []).append(slot)
        self.slot_start.append(start)
        self.slot_stop.append(stop)
        self.slot_share.append(float(np.exp(self.rng.normal(0.0, 0.05))))
        self.add_pod(slot, start)
        if start > 0:
            self.restarts.append((slot, start))
        return slot

    def add_pod(self, slot: int, start: int, gap: int = 0) -> Pod:
        """A new pod in ``slot`` from ``start`` (after ``gap`` empty columns)."""
        group = self.slot_group[slot]
        svc = self.services.names[int(self.group_service[group])]
        if group not in self._hash:
            self._hash[group] = "".join(self.rng.choice(_NAME_ALPHABET, 10))
        while True:
            name = f"{svc}-{self._hash[group]}-{''.join(self.rng.choice(_NAME_ALPHABET, 5))}"
            if name not in self._names:
                break
        self._names.add(name)
        site_nodes = np.flatnonzero(self.node_site == self.group_site[group])
        pod = Pod(
            slot=slot,
            start=start,
            name=name,
            node=int(self.rng.choice(site_nodes)),
            offset_ms=int(self.rng.integers(0, max(1, int(self.grid.step_ms * 0.8)))),
        )
        self.pods.append(pod)
        self._slot_pods.setdefault(slot, []).append(pod)
        if start > 0 and gap > 0:
            self.gaps.append((slot, max(0, start - gap), start))
            self.restarts.append((slot, start))
        return pod


def build_topology(
    grid: Grid, sites: int, services: int, replicas: int, rng: np.random.Generator
) -> Topology:
    site_names = [f"site-{i + 1}" for i in range(sites)]
    svc = make_services(services, rng)
    per_site = max(2, math.ceil(services * replicas / PODS_PER_NODE))
    nodes = [f"{s}-worker-{k + 1:02d}" for s in site_names for k in range(per_site)]
    n_groups = sites * services
    topo = Topology(
        grid=grid,
        sites=site_names,
        site_tz=np.array([SITE_TZ_HOURS[i % len(SITE_TZ_HOURS)] for i in range(sites)], float),
        services=svc,
        nodes=nodes,
        node_site=np.repeat(np.arange(sites), per_site),
        node_offset_ms=rng.integers(0, max(1, int(grid.step_ms * 0.8)), len(nodes)),
        replicas=replicas,
        group_site=np.repeat(np.arange(sites), services),
        group_service=np.tile(np.arange(services), sites),
        rng=rng,
    )
    for g in range(n_groups):
        for _ in range(replicas):
            topo.add_slot(g, 0, grid.n_steps)
    return topo


@dataclass(frozen=True)
class SlotArrays:
    """The topology as arrays, for vectorised signal generation."""

    slot_group: np.ndarray
    slot_start: np.ndarray
    slot_stop: np.ndarray
    slot_share: np.ndarray
    pod_slot: np.ndarray  # pods sorted by (slot, start)
    pod_start: np.ndarray
    pod_names: list[str]
    pod_node: np.ndarray
    pod_offset_ms: np.ndarray


def slot_arrays(topo: Topology) -> SlotArrays:
    order = sorted(range(len(topo.pods)), key=lambda i: (topo.pods[i].slot, topo.pods[i].start))
    pods = [topo.pods[i] for i in order]
    return SlotArrays(
        slot_group=np.asarray(topo.slot_group, dtype=np.int64),
        slot_start=np.asarray(topo.slot_start, dtype=np.int64),
        slot_stop=np.asarray(topo.slot_stop, dtype=np.int64),
        slot_share=np.asarray(topo.slot_share, dtype=np.float64),
        pod_slot=np.array([p.slot for p in pods], dtype=np.int64),
        pod_start=np.array([p.start for p in pods], dtype=np.int64),
        pod_names=[p.name for p in pods],
        pod_node=np.array([p.node for p in pods], dtype=np.int64),
        pod_offset_ms=np.array([p.offset_ms for p in pods], dtype=np.int64),
    )
