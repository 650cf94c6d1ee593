"""Incident effects on the generated arrays (a loop over incidents, vectorised inside)."""

from __future__ import annotations

import numpy as np

from vigil.simulate.fleet import Topology
from vigil.simulate.grid import Grid
from vigil.simulate.incidents import HOUR, Incident

MEMORY_WARMUP_S = 3600.0


def trapezoid(n: int, first: int, stop: int, ramp: int) -> np.ndarray:
    """1 inside ``[first, stop)``, ramping over ``ramp`` columns at both ends, 0 outside."""
    t = np.arange(n, dtype=np.float64)
    up = np.clip((t - first + 1) / ramp, 0.0, 1.0)
    down = np.clip((stop - t) / ramp, 0.0, 1.0)
    return np.minimum(up, down)


def memory_warmup(since_steps: np.ndarray, step_s: int) -> np.ndarray:
    """Working-set factor after a (re)start: starts at 0.6 and settles within a few hours."""
    return 1.0 - 0.4 * np.exp(-np.maximum(since_steps, 0) * (step_s / MEMORY_WARMUP_S))


def load_factor(incidents: list[Incident], topo: Topology, groups: np.ndarray) -> np.ndarray:
    """Traffic multipliers ``[n_groups, n_steps]`` from surges (site-wide) and drops."""
    grid = topo.grid
    out = np.ones((len(groups), grid.n_steps))
    for inc in incidents:
        if inc.kind == "traffic_surge":
            sel = topo.group_site[groups] == inc.site
            shape = trapezoid(grid.n_steps, inc.start, inc.end, grid.steps(0.75 * HOUR))
            out[sel] *= 1.0 + (inc.magnitude - 1.0) * shape
        elif inc.kind == "traffic_drop":
            sel = groups == inc.group
            shape = trapezoid(grid.n_steps, inc.start, inc.end, 1)
            out[sel] *= 1.0 - (1.0 - inc.magnitude) * shape
    return out


def regression_effects(
    incidents: list[Incident], groups: np.ndarray, n_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """p99 multipliers and error-ratio additions ``[n_groups, n_steps]`` of regressions."""
    latency = np.ones((len(groups), n_steps))
    errors = np.zeros((len(groups), n_steps))
    for inc in incidents:
        if inc.kind == "deployment_regression":
            sel = groups == inc.group
            latency[sel, inc.start : inc.end] *= inc.magnitude
            errors[sel, inc.start : inc.end] += inc.extra
    return latency, errors


def apply_cpu_stuck(
    cpu: np.ndarray,
    incidents: list[Incident],
    rows: np.ndarray,
    limit: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Pin each stuck pod's CPU at its limit (throttled just below it) in place."""
    for inc in incidents:
        if inc.kind != "pod_cpu_stuck":
            continue
        r = np.searchsorted(rows, inc.slot)
        if r >= len(rows) or rows[r] != inc.slot:
            continue
        width = inc.end - inc.start
        cpu[r, inc.start : inc.end] = limit[r] * (1.0 - np.abs(rng.normal(0.0, 0.004, width)))


def _crossing(curve: np.ndarray, limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First column where each row reaches its limit and the interpolated fractional column."""
    hit = curve >= limit[:, None] * (1.0 - 1e-12)
    if not hit.any(axis=1).all():
        raise RuntimeError("an exhaustion curve never reaches its limit; this is a simulator bug")
    first = np.argmax(hit, axis=1)
    k = np.arange(len(first))
    prev = curve[k, np.maximum(first - 1, 0)]
    cur = curve[k, first]
    span = np.where(cur > prev, cur - prev, 1.0)
    frac = np.clip((limit - prev) / span, 0.0, 1.0)
    return first, np.where(first > 0, first - 1 + frac, 0.0)


def apply_leaks(
    mem: np.ndarray,
    incidents: list[Incident],
    rows: np.ndarray,
    row_group: np.ndarray,
    active: np.ndarray,
    limit: np.ndarray,
    grid: Grid,
    rng: np.random.Generator,
) -> list[tuple[int, int]]:
    """Memory leaks in place on the noise-free working set ``mem``.

    From the cause deployment each pod of the group leaks linearly so that it reaches its
    limit within the planned delay; on reaching it the container is OOM-killed (one missing
    scrape, memory back to a fresh start) and keeps leaking until the rollback, ``hold``
    columns after the last pod's crossing.  Sets ``crossings`` and ``end`` of each leak and
    returns the (row, column) cells left empty by the restarts.
    """
    gaps: list[tuple[int, int]] = []
    n_steps = grid.n_steps
    for inc in incidents:
        if inc.kind != "memory_leak":
            continue
        sel = np.flatnonzero((row_group == inc.group) & active[:, inc.start])
        if len(sel) == 0:
            continue
        t0 = inc.start
        clean = mem[sel, t0:]
        lim = limit[sel]
        k = np.arange(len(sel))
        delay = np.maximum(1, np.round((inc.cross - t0) * rng.uniform(0.85, 1.0, len(sel))))
        delay = delay.astype(np.int64)
        slope = (lim - clean[k, delay]) / delay
        tt = np.arange(clean.shape[1], dtype=np.float64)
        curve = clean + slope[:, None] * tt
        first, cross = _crossing(curve, lim)
        fix = min(int(first.max()) + inc.hold, clean.shape[1] - 1)
        since = tt[None, :] - first[:, None]
        out = np.where(
            since <= 0,
            np.minimum(curve, lim[:, None]),
            clean * memory_warmup(since, grid.step_s) + slope[:, None] * np.maximum(since, 0),
        )
        out[:, fix:] = clean[:, fix:] * memory_warmup(tt[None, fix:] - fix, grid.step_s)
        mem[sel, t0:] = np.minimum(out, lim[:, None])
        inc.end = t0 + fix
        inc.crossings = {int(rows[r]): float(t0 + c) for r, c in zip(sel, cross, strict=True)}
        gaps.extend(
            (int(r), int(t0 + f + 1))
            for r, f in zip(sel, first, strict=True)
            if t0 + f + 1 < n_steps
        )
    return gaps


def apply_disk_filling(disk: np.ndarray, incidents: list[Incident], grid: Grid) -> None:
    """A node's disk ratio climbs to 1.0 by the planned crossing, stays full ``hold`` columns,
    then a cleanup brings it back (in place on the noise-free ratio)."""
    for inc in incidents:
        if inc.kind != "disk_filling":
            continue
        t0 = inc.start
        clean = disk[inc.node : inc.node + 1, t0:]
        delay = max(1, inc.cross - t0)
        slope = (1.0 - clean[0, delay]) / delay
        tt = np.arange(clean.shape[1], dtype=np.float64)
        curve = clean + slope * tt
        first, cross = _crossing(curve, np.ones(1))
        fix = min(int(first[0]) + inc.hold, clean.shape[1] - 1)
        filled = np.minimum(curve, 1.0)
        filled[:, int(first[0]) : fix] = 1.0
        filled[:, fix:] = clean[:, fix:]
        disk[inc.node, t0:] = filled[0]
        inc.end = t0 + fix
        inc.crossings = {inc.node: float(t0 + cross[0])}
