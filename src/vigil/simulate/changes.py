"""Benign fleet changes and the change events of incidents.

Deployments that change nothing (``noop``), scale-ups (new pods mid-run) and scale-downs,
pod evictions (a replacement pod with a new name, maybe on another node), and the events that
incidents carry: the deployment that causes a leak or regression, its rollback, and the
container restart that ends a stuck pod.  Benign changes keep clear of incident windows of
their group so every incident has one clear cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vigil.simulate.events import Attribute, Event
from vigil.simulate.fleet import Topology
from vigil.simulate.incidents import HOUR, Calendar, Incident

SCALE_PROBABILITY = 0.25
EVICTION_RATE_PER_DAY = 0.006  # per slot
NOOP_DEPLOYS_PER_DAY = 0.25  # per group


@dataclass
class ChangePlan:
    events: list[Event] = field(default_factory=list)
    noop_deployments: list[Event] = field(default_factory=list)
    scale_ups: int = 0
    evictions: int = 0


def plan_changes(
    topo: Topology,
    incidents: list[Incident],
    cal: Calendar,
    days: int,
    rng: np.random.Generator,
) -> ChangePlan:
    plan = ChangePlan()
    grid = topo.grid
    n = grid.n_steps
    by_group: dict[int, list[tuple[int, Incident | None]]] = {}
    for inc in incidents:
        if inc.kind in ("memory_leak", "deployment_regression"):
            by_group.setdefault(inc.group, []).append((inc.start, inc))
    for g in range(topo.n_groups):
        for _ in range(int(rng.poisson(NOOP_DEPLOYS_PER_DAY * days))):
            col = _pick_column(
                topo, cal, g, grid.steps(2 * HOUR), n - grid.steps(HOUR), rng, working_hours=True
            )
            taken = [c for c, _ in by_group.get(g, [])]
            if col is not None and all(abs(col - c) > grid.steps(2 * HOUR) for c in taken):
                by_group.setdefault(g, []).append((col, None))
    for g in sorted(by_group):
        counter = int(rng.integers(100, 900))
        running = f"v{counter}"
        labels = topo.group_labels(g)
        for col, cause in sorted(by_group[g], key=lambda x: x[0]):
            counter += int(rng.integers(1, 4))
            prev, new = running, f"v{counter}"
            lead_ms = int(rng.integers(10_000, max(10_001, grid.step_ms // 2)))
            event = deployment(labels, grid.ms(col) - lead_ms // 1000 * 1000, new, prev)
            plan.events.append(event)
            running = new
            if cause is None:
                plan.noop_deployments.append(event)
                continue
            # the bad version is rolled back when the incident ends
            cause.cause, cause.version_prev, cause.version_new = event, prev, new
            running = prev
            if cause.kind == "deployment_regression":
                cause.resolution = deployment(labels, grid.ms(cause.end), prev, new, rollback=True)
                plan.events.append(cause.resolution)
    for inc in incidents:
        if inc.kind == "pod_cpu_stuck":
            topo.restarts.append((inc.slot, inc.end))
            topo.gaps.append((inc.slot, inc.end, inc.end + 1))
            pod = topo.pod_at(inc.slot, inc.start)
            inc.resolution = pod_restart(
                topo, pod.slot, pod.name, pod.node, grid.ms(inc.end), "LivenessProbeFailed"
            )
            plan.events.append(inc.resolution)
    _scale(topo, cal, plan, rng)
    _evict(topo, cal, plan, days, rng)
    return plan


def deployment(
    labels: dict[str, str], time_ms: int, version: str, previous: str, rollback: bool = False
) -> Event:
    attrs: dict[str, Attribute] = {"version": version, "previous_version": previous}
    if rollback:
        attrs["rollback"] = True
        summary = f"Rolled back {labels['service']} to {version} in {labels['site']}"
    else:
        summary = f"Deployed {labels['service']} {version} to {labels['site']}"
    return Event(time_ms, "deployment", dict(labels), summary, attrs)


def pod_restart(topo: Topology, slot: int, pod: str, node: int, time_ms: int, reason: str) -> Event:
    labels = topo.group_labels(topo.slot_group[slot]) | {"pod": pod, "node": topo.nodes[node]}
    return Event(
        time_ms,
        "infrastructure",
        labels,
        f"Container of {pod} restarted ({reason})",
        {"action": "container_restart", "reason": reason},
    )


def _pick_column(
    topo: Topology,
    cal: Calendar,
    group: int,
    lo: int,
    hi: int,
    rng: np.random.Generator,
    working_hours: bool = False,
) -> int | None:
    grid = topo.grid
    if hi <= lo:
        return None
    tz = float(topo.site_tz[topo.group_site[group]])
    for _ in range(50):
        col = int(rng.integers(lo, hi))
        if working_hours:
            # local hours since a Monday 00:00 (the epoch began on a Thursday)
            week_h = (grid.ms(col) / 3.6e6 + tz + 72.0) % 168.0
            if week_h >= 120.0 or not 9.0 <= week_h % 24.0 < 18.0:
                continue
        if cal.free([("g", group)], col, col + 1):
            return col
    return None


def _scale(topo: Topology, cal: Calendar, plan: ChangePlan, rng: np.random.Generator) -> None:
    grid = topo.grid
    n = grid.n_steps
    chosen = rng.random(topo.n_groups) < SCALE_PROBABILITY
    if not chosen.any():  # every fleet gets at least one scale-up (pods that appear mid-run)
        chosen[rng.integers(topo.n_groups)] = True
    for g in np.flatnonzero(chosen).tolist():
        up = _pick_column(topo, cal, g, grid.steps(12 * HOUR), n - grid.steps(24 * HOUR), rng)
        if up is None:
            continue
        extra = int(rng.integers(1, 4))
        down: int | None = None
        if rng.random() < 0.5:
            down = _pick_column(topo, cal, g, up + grid.steps(6 * HOUR), n - grid.steps(HOUR), rng)
        before = len(topo.group_slots(g))
        for _ in range(extra):
            topo.add_slot(g, up, n if down is None else down)
        labels = topo.group_labels(g)
        plan.events.append(_scale_event(labels, grid.ms(up) - 30_000, before, before + extra))
        if down is not None:
            plan.events.append(_scale_event(labels, grid.ms(down) - 30_000, before + extra, before))
        plan.scale_ups += 1


def _scale_event(labels: dict[str, str], time_ms: int, old: int, new: int) -> Event:
    return Event(
        time_ms,
        "scaling",
        dict(labels),
        f"Scaled {labels['service']} from {old} to {new} replicas in {labels['site']}",
        {
            "action": "scale_up" if new > old else "scale_down",
            "replicas": new,
            "previous_replicas": old,
        },
    )


def _evict(
    topo: Topology, cal: Calendar, plan: ChangePlan, days: int, rng: np.random.Generator
) -> None:
    grid = topo.grid
    p = min(0.5, EVICTION_RATE_PER_DAY * days)
    chosen = rng.random(len(topo.slot_group)) < p
    if not chosen.any():  # and at least one eviction (a replacement pod with a new name)
        chosen[rng.integers(len(chosen))] = True
    for slot in np.flatnonzero(chosen).tolist():
        g = topo.slot_group[slot]
        lo = topo.slot_start[slot] + grid.steps(2 * HOUR)
        hi = topo.slot_stop[slot] - grid.steps(2 * HOUR)
        col = _pick_column(topo, cal, g, lo, hi, rng)
        if col is None:
            continue
        gap = int(rng.integers(1, 3))
        old = topo.pod_at(slot, col)
        new = topo.add_pod(slot, col, gap=gap)
        labels = topo.group_labels(g) | {"pod": old.name, "node": topo.nodes[old.node]}
        plan.events.append(
            Event(
                grid.ms(col - gap),
                "infrastructure",
                labels,
                f"Pod {old.name} evicted (node pressure); replaced by {new.name}",
                {"action": "pod_eviction", "reason": "Evicted", "replacement_pod": new.name},
            )
        )
        plan.evictions += 1
