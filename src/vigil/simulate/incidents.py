"""Injected incidents: what they are, when and where they happen, and their truth record.

Incidents start after a warm-up (the first 5/14 of the run) so detectors have history, and
never overlap (with a buffer) another incident of the same service group or node; a traffic
surge holds every group of its site.  Exhaustion kinds (``memory_leak``, ``disk_filling``)
get their limit-crossing time from the generated noise-free curve (see ``overlays``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vigil.simulate.events import Event
from vigil.simulate.fleet import Topology
from vigil.simulate.grid import Grid, rfc3339

KINDS = (
    "memory_leak",
    "disk_filling",
    "traffic_surge",
    "deployment_regression",
    "traffic_drop",
    "pod_cpu_stuck",
)
METRICS_BY_KIND = {
    "memory_leak": ["container_memory_working_set_bytes"],
    "deployment_regression": ["http_request_duration_p99_seconds", "http_error_ratio"],
    "traffic_surge": ["http_requests_per_second", "container_cpu_usage_cores"],
    "traffic_drop": ["http_requests_per_second", "container_cpu_usage_cores"],
    "pod_cpu_stuck": ["container_cpu_usage_cores"],
    "disk_filling": ["node_disk_usage_ratio"],
}
HOUR = 3600.0
DAY = 86400.0
WARMUP_FRACTION = 5.0 / 14.0
BUFFER_S = 6 * HOUR


@dataclass
class Incident:
    kind: str
    start: int  # first affected column
    end: int  # first column after the incident (exhaustion kinds: set by the overlay)
    site: int
    group: int = -1
    slot: int = -1
    node: int = -1
    magnitude: float = 1.0  # rps factor (surge/drop) or p99 factor (regression)
    extra: float = 0.0  # error ratio added (regression)
    cross: int = -1  # exhaustion: column by which the noise-free curve reaches the limit
    hold: int = 0  # exhaustion: columns from the last crossing to the fix
    id: str = ""
    limit: float | None = None
    crossings: dict[int, float] = field(default_factory=dict)  # slot or node -> column
    cause: Event | None = None
    resolution: Event | None = None
    version_prev: str = ""
    version_new: str = ""


class Calendar:
    """Busy windows per resource key (a service group or a node)."""

    def __init__(self, buffer: int) -> None:
        self.buffer = buffer
        self.busy: dict[tuple[str, int], list[tuple[int, int]]] = {}

    def free(self, keys: list[tuple[str, int]], first: int, stop: int, buffer: int = -1) -> bool:
        pad = self.buffer if buffer < 0 else buffer
        for key in keys:
            for a, b in self.busy.get(key, []):
                if first < b + pad and a < stop + pad:
                    return False
        return True

    def claim(self, keys: list[tuple[str, int]], first: int, stop: int) -> None:
        for key in keys:
            self.busy.setdefault(key, []).append((first, stop))


def incident_counts(topo: Topology, days: int) -> dict[str, int]:
    """How many incidents of each kind a fleet gets: 2 each for the default fleet, scaled."""
    span = days / 14.0
    groups = topo.n_groups / 24.0
    counts = {
        "memory_leak": max(1, round(2 * groups * span)),
        "deployment_regression": max(1, round(2 * groups * span)),
        "traffic_drop": max(1, round(2 * groups * span)),
        "pod_cpu_stuck": max(1, round(2 * groups * span)) if topo.replicas >= 2 else 0,
        "traffic_surge": max(1, round(2 * len(topo.sites) / 3.0 * span)),
        "disk_filling": max(1, round(2 * len(topo.nodes) / 21.0 * span)),
    }
    return counts


def schedule_incidents(
    topo: Topology, days: int, rng: np.random.Generator
) -> tuple[list[Incident], Calendar, dict[str, int]]:
    """Place incidents; returns them (sorted, with ids), the calendar and per-kind shortfalls."""
    grid = topo.grid
    n = grid.n_steps
    warm = round(n * WARMUP_FRACTION)
    room = n - warm
    margin = grid.steps(HOUR)
    cal = Calendar(min(grid.steps(BUFFER_S), max(1, room // 20)))
    counts = incident_counts(topo, days)
    placed: list[Incident] = []
    skipped: dict[str, int] = {}
    if topo.replicas < 2:
        skipped["pod_cpu_stuck"] = 1
    for kind in KINDS:
        offset = int(rng.integers(len(topo.sites)))
        for i in range(counts[kind]):
            stratum = (i, counts[kind], offset)
            inc = _place(kind, topo, grid, cal, warm, margin, room, stratum, rng)
            if inc is None:
                skipped[kind] = skipped.get(kind, 0) + 1
            else:
                placed.append(inc)
    placed.sort(key=lambda i: (i.start, KINDS.index(i.kind), i.group, i.node))
    for k, inc in enumerate(placed):
        inc.id = f"inc-{k + 1:03d}"
    return placed, cal, skipped


def _place(
    kind: str,
    topo: Topology,
    grid: Grid,
    cal: Calendar,
    warm: int,
    margin: int,
    room: int,
    stratum: tuple[int, int, int],
    rng: np.random.Generator,
) -> Incident | None:
    """One incident of ``kind``; the i-th of n first tries the i-th n-th of the time after the
    warm-up (and, for surges, the i-th site from a random offset), so incidents spread out."""
    steps = grid.steps
    index, count, offset = stratum
    for attempt in range(100):
        spread = attempt < 60
        inc = Incident(kind=kind, start=0, end=0, site=0)
        if kind in ("memory_leak", "disk_filling"):
            lo, hi, cap = (1.0, 3.0, 0.45) if kind == "memory_leak" else (0.5, 2.0, 0.35)
            delay = min(steps(rng.uniform(lo, hi) * DAY), max(2, int(room * cap)))
            inc.hold = steps(
                rng.uniform(2, 6) * HOUR if kind == "memory_leak" else rng.uniform(1, 4) * HOUR
            )
            length = delay + inc.hold + 1
        else:
            hours = {
                "traffic_surge": (2, 6),
                "deployment_regression": (1, 6),
                "traffic_drop": (1, 4),
                "pod_cpu_stuck": (2, 8),
            }[kind]
            length = steps(rng.uniform(*hours) * HOUR)
            delay = 0
        latest = grid.n_steps - margin - length
        if latest <= warm:
            return None
        lo, hi = warm, latest
        if spread:
            lo = max(lo, warm + index * room // count)
            hi = min(hi, warm + (index + 1) * room // count)
            if hi <= lo:
                lo, hi = warm, latest
        inc.start = int(rng.integers(lo, hi))
        inc.end = inc.start + length
        if kind == "disk_filling":
            inc.node = _pick(cal, "n", len(topo.nodes), spread, rng)
            inc.site = int(topo.node_site[inc.node])
            keys = [("n", inc.node)]
        elif kind == "traffic_surge":
            n_sites = len(topo.sites)
            inc.site = (index + offset) % n_sites if spread else int(rng.integers(n_sites))
            keys = [("g", int(g)) for g in np.flatnonzero(topo.group_site == inc.site)]
        else:
            inc.group = _pick(cal, "g", topo.n_groups, spread, rng)
            inc.site = int(topo.group_site[inc.group])
            keys = [("g", inc.group)]
        if not cal.free(keys, inc.start, inc.end):
            continue
        if kind in ("memory_leak", "disk_filling"):
            inc.cross = inc.start + delay
        if kind == "pod_cpu_stuck":
            inc.slot = int(rng.choice(topo.group_slots(inc.group)[: topo.replicas]))
            inc.limit = float(topo.services.cpu_limit[topo.group_service[inc.group]])
        elif kind == "memory_leak":
            inc.limit = float(topo.services.mem_limit[topo.group_service[inc.group]])
        elif kind == "disk_filling":
            inc.limit = 1.0
        elif kind == "traffic_surge":
            inc.magnitude = float(rng.uniform(2.0, 3.0))
        elif kind == "traffic_drop":
            inc.magnitude = float(rng.uniform(0.1, 0.35))
        elif kind == "deployment_regression":
            inc.magnitude = float(rng.uniform(1.8, 3.0))
            inc.extra = float(rng.uniform(0.02, 0.08))
        cal.claim(keys, inc.start, inc.end)
        return inc
    return None


def _pick(cal: Calendar, kind: str, n: int, spread: bool, rng: np.random.Generator) -> int:
    """A random group or node, while spreading one that has no incident yet (if any)."""
    if spread:
        fresh = [i for i in range(n) if (kind, i) not in cal.busy]
        if fresh:
            return int(rng.choice(fresh))
    return int(rng.integers(n))


def truth_entry(inc: Incident, topo: Topology) -> dict[str, object]:
    """The ``truth.json`` record of one incident."""
    grid = topo.grid
    if inc.kind == "disk_filling":
        labels = {"site": topo.sites[inc.site], "node": topo.nodes[inc.node]}
    elif inc.kind == "traffic_surge":
        labels = {"site": topo.sites[inc.site]}
    else:
        labels = topo.group_labels(inc.group)
    if inc.kind == "pod_cpu_stuck":
        pod = topo.pod_at(inc.slot, inc.start)
        labels |= {"pod": pod.name, "node": topo.nodes[pod.node]}
    crossing = min(inc.crossings.values()) if inc.crossings else None
    entry: dict[str, object] = {
        "id": inc.id,
        "kind": inc.kind,
        "start": rfc3339(grid.ms(inc.start)),
        "end": rfc3339(grid.ms(inc.end)),
        "labels": dict(sorted(labels.items())),
        "metrics": list(METRICS_BY_KIND[inc.kind]),
        "cause_event_id": inc.cause.id if inc.cause else None,
        "resolution_event_id": inc.resolution.id if inc.resolution else None,
        "limit_crossing_time": rfc3339(grid.ms(crossing)) if crossing is not None else None,
        "limit": inc.limit,
    }
    if inc.kind in ("traffic_surge", "traffic_drop"):
        entry["magnitude"] = {"rps_factor": round(inc.magnitude, 4)}
    elif inc.kind == "deployment_regression":
        entry["magnitude"] = {
            "p99_factor": round(inc.magnitude, 4),
            "error_ratio_added": round(inc.extra, 4),
        }
    if inc.kind == "memory_leak":
        pods = []
        for slot, col in sorted(inc.crossings.items(), key=lambda kv: kv[1]):
            pod = topo.pod_at(slot, inc.start)
            pods.append(
                {
                    "pod": pod.name,
                    "node": topo.nodes[pod.node],
                    "limit_crossing_time": rfc3339(grid.ms(col)),
                }
            )
        entry["pods"] = pods
    return entry
