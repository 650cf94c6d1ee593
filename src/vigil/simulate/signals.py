"""Signal generation: seasonal traffic drives every pod metric; vectorised ``[rows, steps]``.

Per group (service in a site) a traffic curve with a local-time daily peak, a weekend dip, a
slow trend and wander; per pod its share of it (replicas come and go), Poisson request counts
(so rps noise grows with the square root of traffic), p99 latency rising with utilisation and
noisier at low traffic, binomial error ratios, CPU following load, memory with a GC sawtooth
and a warm-up after each (re)start.  Then benign spikes, incident overlays and scrape gaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.simulate.fleet import ServiceTable, SlotArrays, Topology
from vigil.simulate.incidents import HOUR, Incident
from vigil.simulate.noise import Runs, random_runs, smooth_noise
from vigil.simulate.overlays import (
    apply_cpu_stuck,
    apply_disk_filling,
    apply_leaks,
    load_factor,
    memory_warmup,
    regression_effects,
)

POD_METRICS = (
    "container_cpu_usage_cores",
    "container_memory_working_set_bytes",
    "container_memory_limit_bytes",
    "http_requests_per_second",
    "http_request_duration_p99_seconds",
    "http_error_ratio",
)
NODE_METRICS = ("node_disk_usage_ratio",)
METRICS = POD_METRICS + NODE_METRICS
GAP_RATE = 0.0015  # scrape-gap runs per series-step
SPIKE_RATE_PER_DAY = 0.3  # benign spikes per series-day
PAGE = 4096.0


@dataclass
class ChunkValues:
    """Generated rows: metric -> ``[n_rows, n_steps]`` (NaN = no sample), each cell's pod code
    (an index into ``pod_index``: the global pod ids, or node rows for node chunks)."""

    values: dict[str, np.ndarray]
    code: np.ndarray
    pod_index: np.ndarray
    gap_runs: int = 0
    spikes: int = 0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def seasonal_load(
    seconds: np.ndarray, tz_hours: np.ndarray, svc: ServiceTable, idx: np.ndarray
) -> np.ndarray:
    """Relative traffic ``[n_groups, n_steps]`` (about 1 at a weekday peak)."""
    hours = seconds[None, :] / 3600.0 + tz_hours[:, None]
    day_h = hours % 24.0
    week_h = (hours + 72.0) % 168.0  # local hours since Monday 00:00 (1970-01-01 was a Thursday)
    amp = svc.diurnal_amp[idx][:, None]
    peak = svc.peak_hour[idx][:, None]
    phase = 2.0 * np.pi * (day_h - peak) / 24.0
    daily = (1.0 + amp * (0.7 * np.cos(phase) + 0.3 * np.cos(2.0 * phase + 1.0))) / (1.0 + amp)
    tau = 2.0
    weekend = (
        _sigmoid((week_h - 120.0) / tau)
        - _sigmoid((week_h - 168.0) / tau)
        + _sigmoid((week_h + 48.0) / tau)
        - _sigmoid(week_h / tau)
    )
    weekly = 1.0 - (1.0 - svc.weekend[idx][:, None]) * weekend
    span = max(seconds[-1] - seconds[0], 1.0)
    trend = 1.0 + svc.trend[idx][:, None] * ((seconds - seconds[0]) / span)[None, :]
    out: np.ndarray = daily * weekly * trend
    return out


def _row_events(pairs: list[tuple[int, int]], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(local row, column) of ``(slot, column)`` pairs whose slot is in ``rows``."""
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    arr = np.asarray(pairs, dtype=np.int64)
    keep = np.isin(arr[:, 0], rows)
    return np.searchsorted(rows, arr[keep, 0]), arr[keep, 1]


def _since_restart(topo: Topology, rows: np.ndarray, n_steps: int) -> np.ndarray:
    """Columns since the last container (re)start of each row (large if none)."""
    last = np.full((len(rows), n_steps), -(10**9), dtype=np.int64)
    r, c = _row_events(topo.restarts, rows)
    ok = c < n_steps
    last[r[ok], c[ok]] = c[ok]
    np.maximum.accumulate(last, axis=1, out=last)
    out: np.ndarray = (np.arange(n_steps)[None, :] - last).astype(np.float64)
    return out


def _pod_codes(sa: SlotArrays, rows: np.ndarray, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    pods = np.flatnonzero(np.isin(sa.pod_slot, rows))
    prow = np.searchsorted(rows, sa.pod_slot[pods])
    first = np.ones(len(pods), dtype=bool)
    first[1:] = prow[1:] != prow[:-1]
    base = np.zeros(len(rows), dtype=np.int32)
    base[prow[first]] = np.flatnonzero(first)
    diff = np.zeros((len(rows), n_steps), dtype=np.int32)
    np.add.at(diff, (prow[~first], sa.pod_start[pods][~first]), 1)
    code = base[:, None] + np.cumsum(diff, axis=1, dtype=np.int32)
    return code, pods


def _spike(
    rng: np.random.Generator, shape: tuple[int, int], step_s: int, lo: float, hi: float
) -> tuple[np.ndarray, int]:
    runs = random_runs(rng, shape, SPIKE_RATE_PER_DAY * step_s / 86400.0, 1.3, 3)
    factor = 1.0 + runs.paint(shape, rng.uniform(lo, hi, len(runs)) - 1.0)
    return factor, len(runs)


def generate_pods(
    topo: Topology,
    sa: SlotArrays,
    rows: np.ndarray,
    incidents: list[Incident],
    site_down: np.ndarray,
    rng: np.random.Generator,
) -> ChunkValues:
    grid, svc = topo.grid, topo.services
    n_steps, step_s = grid.n_steps, grid.step_s
    n = len(rows)
    shape = (n, n_steps)
    row_group = sa.slot_group[rows]
    groups, gi = np.unique(row_group, return_inverse=True)
    seconds = grid.seconds()
    cols = np.arange(n_steps)

    gsvc = topo.group_service[groups]
    load = seasonal_load(seconds, topo.site_tz[topo.group_site[groups]], svc, gsvc)
    load *= np.exp(0.04 * smooth_noise(rng, (len(groups), n_steps), grid.steps(HOUR)))
    load *= load_factor(incidents, topo, groups)

    active = cols[None, :] >= sa.slot_start[rows, None]
    active &= cols[None, :] < sa.slot_stop[rows, None]
    n_active = np.zeros((len(groups), n_steps))
    np.add.at(n_active, gi, active)
    rs = gsvc[gi]
    u = load[gi] * (svc.u_peak[rs] * sa.slot_share[rows])[:, None]
    u *= topo.replicas / np.maximum(n_active[gi], 1.0)

    cap = svc.cap_rps[rs][:, None]
    rps_true = u * cap * np.exp(0.03 * smooth_noise(rng, shape, 3))
    requests = rng.poisson(rps_true * step_s).astype(np.float64)
    del rps_true
    rps = requests / step_s
    u_real = rps / cap
    n_req = np.maximum(requests, 1.0)

    latency, err_add = regression_effects(incidents, groups, n_steps)
    p99 = (svc.p99_base[rs] * np.exp(rng.normal(0.0, 0.05, n)))[:, None] * (1.0 + 1.2 * u_real**2)
    p99 *= latency[gi] * np.exp((0.03 + 0.8 / np.sqrt(n_req)) * rng.standard_normal(shape))
    rate = svc.err_base[rs][:, None] * np.exp(0.3 * smooth_noise(rng, shape, 6))
    rate += 0.05 * np.clip(u_real - 0.85, 0.0, None) + err_add[gi]
    errors = rng.binomial(requests.astype(np.int64), np.clip(rate, 0.0, 1.0)) / n_req
    del rate, n_req

    since = _since_restart(topo, rows, n_steps)
    cpu_lim = svc.cpu_limit[rs][:, None]
    cpu = svc.cpu_idle[rs][:, None] + svc.cpu_full[rs][:, None] * u_real
    cpu *= np.exp(0.04 * smooth_noise(rng, shape, 6) + 0.03 * rng.standard_normal(shape))
    cpu += 0.4 * cpu_lim * np.exp(-since * (step_s / 600.0))
    del u_real

    mem_lim = svc.mem_limit[rs]
    period = svc.gc_period_s[rs] * np.exp(rng.normal(0.0, 0.1, n))
    phase = rng.uniform(0.0, 1.0, n)
    mem = svc.saw_amp[rs][:, None] * ((seconds[None, :] / period[:, None] + phase[:, None]) % 1.0)
    mem += svc.mem_frac[rs][:, None] * (0.85 + 0.15 * load[gi])
    mem += 0.01 * smooth_noise(rng, shape, grid.steps(6 * HOUR))
    mem *= mem_lim[:, None] * memory_warmup(since, step_s)
    del since
    leak_gaps = apply_leaks(mem, incidents, rows, row_group, active, mem_lim, grid, rng)
    mem *= 1.0 + 0.002 * rng.standard_normal(shape)
    np.minimum(mem, mem_lim[:, None], out=mem)
    mem = np.floor(mem / PAGE) * PAGE

    f, n_spikes = _spike(rng, shape, step_s, 1.3, 2.0)
    rps *= f
    f, k = _spike(rng, shape, step_s, 1.5, 3.0)
    p99 *= f
    n_spikes += k
    f, k = _spike(rng, shape, step_s, 1.2, 1.6)
    cpu *= f
    n_spikes += k
    del f
    np.clip(cpu, 0.001, cpu_lim, out=cpu)
    apply_cpu_stuck(cpu, incidents, rows, cpu_lim[:, 0], rng)

    # missing samples: pod not running, evictions/restarts, Prometheus outages, scrape gaps
    down = ~active
    r, c = _row_events(leak_gaps, np.arange(n))
    gaps = [(int(s), int(a), int(b)) for s, a, b in topo.gaps]
    g_arr = np.asarray(gaps, dtype=np.int64).reshape(-1, 3)
    keep = np.isin(g_arr[:, 0], rows)
    events = Runs(
        np.concatenate([np.searchsorted(rows, g_arr[keep, 0]), r]),
        np.concatenate([g_arr[keep, 1], c]),
        np.minimum(np.concatenate([g_arr[keep, 2], c + 1]), n_steps),
    )
    down |= events.mask(shape)
    down |= site_down[topo.group_site[groups][gi]]
    app = random_runs(rng, shape, GAP_RATE, 1.6, 8)
    cad = random_runs(rng, shape, GAP_RATE, 1.6, 8)
    app_missing = down | app.mask(shape)
    cad_missing = down | cad.mask(shape)
    for arr in (rps, p99, errors):
        arr[app_missing] = np.nan
    limit = np.broadcast_to(mem_lim[:, None], shape).copy()
    for arr in (cpu, mem, limit):
        arr[cad_missing] = np.nan
    code, pod_index = _pod_codes(sa, rows, n_steps)
    values = dict(zip(POD_METRICS, (cpu, mem, limit, rps, p99, errors), strict=True))
    return ChunkValues(values, code, pod_index, len(app) + len(cad), n_spikes)


def generate_nodes(
    topo: Topology,
    incidents: list[Incident],
    site_down: np.ndarray,
    rng: np.random.Generator,
) -> ChunkValues:
    """``node_disk_usage_ratio`` of every node: base + slow growth + daily log rotation."""
    grid = topo.grid
    n = len(topo.nodes)
    shape = (n, grid.n_steps)
    seconds = grid.seconds()
    tz = topo.site_tz[topo.node_site]
    day_frac = ((seconds[None, :] / 3600.0 + tz[:, None]) % 24.0) / 24.0
    elapsed = ((seconds - seconds[0]) / 86400.0)[None, :]
    disk = rng.uniform(0.2, 0.55, n)[:, None] + rng.uniform(0.0, 0.004, n)[:, None] * elapsed
    disk += rng.uniform(0.01, 0.05, n)[:, None] * day_frac
    disk += 0.003 * smooth_noise(rng, shape, grid.steps(6 * HOUR))
    apply_disk_filling(disk, incidents, grid)
    disk += 0.0003 * rng.standard_normal(shape)
    np.clip(disk, 0.0, 1.0, out=disk)
    gaps = random_runs(rng, shape, GAP_RATE, 1.6, 8)
    disk[gaps.mask(shape) | site_down[topo.node_site]] = np.nan
    code = np.broadcast_to(np.arange(n, dtype=np.int32)[:, None], shape)
    return ChunkValues({"node_disk_usage_ratio": disk}, code, np.arange(n), len(gaps), 0)


def plan_chunks(sa: SlotArrays, n_steps: int, max_cells: int) -> list[np.ndarray]:
    """Slot ids grouped by service group into chunks of at most ``max_cells`` row-steps
    (a group is never split)."""
    groups = np.unique(sa.slot_group)
    chunks: list[np.ndarray] = []
    current: list[np.ndarray] = []
    cells = 0
    for g in groups:
        slots = np.flatnonzero(sa.slot_group == g)
        if current and cells + len(slots) * n_steps > max_cells:
            chunks.append(np.sort(np.concatenate(current)))
            current, cells = [], 0
        current.append(slots)
        cells += len(slots) * n_steps
    if current:
        chunks.append(np.sort(np.concatenate(current)))
    return chunks
