"""``simulate_fleet``: generate a Kubernetes fleet's samples, change events and ground truth."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from vigil.simulate.changes import deployment, plan_changes, pod_restart
from vigil.simulate.events import Event, write_events
from vigil.simulate.fleet import Topology, build_topology, slot_arrays
from vigil.simulate.grid import MIN_STEPS, Grid, parse_start, rfc3339
from vigil.simulate.incidents import KINDS, Incident, schedule_incidents, truth_entry
from vigil.simulate.noise import random_runs
from vigil.simulate.signals import METRICS, generate_nodes, generate_pods, plan_chunks
from vigil.simulate.writer import FORMATS, RowLabels, SampleWriter

DEFAULT_PODS = 14  # replicas per service per site: 3 sites x 8 services x 14 x 6 > 2,000 series
CHUNK_CELLS = 2_000_000  # row-steps generated at once (bounds memory, ~0.3 GB per chunk)
TRUTH_VERSION = 1


@dataclass(frozen=True)
class SimulationSummary:
    out: Path
    sample_files: list[Path]
    events_path: Path
    truth_path: Path
    n_series: int
    n_samples: int
    n_events: int
    incidents: dict[str, int]
    start_ms: int
    end_ms: int
    step_ms: int
    bytes_written: int
    seconds: float
    skipped_incidents: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """A few lines for the CLI."""
        kinds = ", ".join(f"{k} {v}" for k, v in self.incidents.items())
        lines = [
            f"wrote {self.n_series:,} series, {self.n_samples:,} samples in "
            f"{len(self.sample_files)} files ({self.bytes_written / 1e6:.1f} MB) to {self.out} "
            f"in {self.seconds:.1f} s",
            f"{rfc3339(self.start_ms)} .. {rfc3339(self.end_ms)} every {self.step_ms // 1000} s; "
            f"{self.n_events} events",
            f"incidents: {kinds}",
        ]
        if self.skipped_incidents:
            lines.append(f"not placed (no room): {self.skipped_incidents}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["out"] = str(self.out)
        out["sample_files"] = [str(p) for p in self.sample_files]
        out["events_path"] = str(self.events_path)
        out["truth_path"] = str(self.truth_path)
        return out


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}={value!r} is invalid: expected an integer >= {low}")
    if value < low:
        raise ValueError(f"{name}={value} is invalid: expected an integer >= {low}")
    return int(value)


def simulate_fleet(
    out: Path | str,
    *,
    sites: int = 3,
    services: int = 8,
    pods: int = DEFAULT_PODS,
    days: int = 14,
    step_s: int = 300,
    seed: int = 0,
    start: datetime | str | int | None = None,
    fmt: str = "parquet",
) -> SimulationSummary:
    """Write a simulated fleet to ``out``: ``samples/<day>_<part>.<fmt>`` (long format),
    ``events.jsonl`` and ``truth.json``.  ``pods`` is replicas per service per site.  The same
    arguments give bit-identical files.  ``out`` must be absent or empty."""
    began = time.perf_counter()
    sites = _check_int("sites", sites, 1)
    services = _check_int("services", services, 1)
    pods = _check_int("pods", pods, 1)
    days = _check_int("days", days, 2)
    step_s = _check_int("step_s", step_s, 1)
    seed = _check_int("seed", seed, 0)
    if fmt not in FORMATS:
        raise ValueError(f"fmt={fmt!r} is not supported: expected one of {FORMATS}")
    n_steps = days * 86400 // step_s
    if n_steps < MIN_STEPS:
        raise ValueError(
            f"days={days} at step_s={step_s} gives {n_steps} steps: expected at least "
            f"{MIN_STEPS}; use a smaller step or more days"
        )
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"output {str(out)!r} exists and is not an empty directory: remove it or choose "
            "another path (the simulator never mixes runs)"
        )
    grid = Grid(parse_start(start), step_s, n_steps)
    topo = build_topology(grid, sites, services, pods, np.random.default_rng([seed, 1]))
    incidents, cal, skipped = schedule_incidents(topo, days, np.random.default_rng([seed, 2]))
    plan = plan_changes(topo, incidents, cal, days, np.random.default_rng([seed, 3]))
    sa = slot_arrays(topo)
    outage_rate = step_s / (3 * 86400.0)
    site_down = random_runs(np.random.default_rng([seed, 4]), (sites, n_steps), outage_rate, 1.5, 4)
    site_down_mask = site_down.mask((sites, n_steps))

    namespaces = sorted(set(topo.services.namespaces))
    ns_of_service = np.array([namespaces.index(ns) for ns in topo.services.namespaces])
    writer = SampleWriter(
        out / "samples", fmt, grid, seed, topo.sites, namespaces, topo.services.names, topo.nodes
    )
    gap_runs = len(site_down)
    spikes = 0
    chunks = plan_chunks(sa, n_steps, CHUNK_CELLS)
    for k, rows in enumerate(chunks):
        cv = generate_pods(
            topo, sa, rows, incidents, site_down_mask, np.random.default_rng([seed, 10, k])
        )
        svc = topo.group_service[sa.slot_group[rows]]
        labels = RowLabels(
            site=topo.group_site[sa.slot_group[rows]],
            namespace=ns_of_service[svc] + 1,
            service=svc + 1,
            pods=[sa.pod_names[i] for i in cv.pod_index],
            pod_of_code=np.arange(len(cv.pod_index)),
            node_of_code=sa.pod_node[cv.pod_index],
            offset_of_code=sa.pod_offset_ms[cv.pod_index],
        )
        writer.write(f"pods-{k:03d}", k, cv, labels)
        gap_runs += cv.gap_runs
        spikes += cv.spikes
        del cv
    n_nodes = len(topo.nodes)
    cv = generate_nodes(topo, incidents, site_down_mask, np.random.default_rng([seed, 11]))
    zeros = np.zeros(n_nodes, dtype=np.int64)
    labels = RowLabels(
        site=topo.node_site,
        namespace=zeros,
        service=zeros,
        pods=[""],
        pod_of_code=zeros,
        node_of_code=np.arange(n_nodes),
        offset_of_code=topo.node_offset_ms,
    )
    writer.write("nodes", len(chunks), cv, labels)
    gap_runs += cv.gap_runs
    del cv

    events = plan.events + _resolution_events(topo, incidents)
    n_events = write_events(out / "events.jsonl", events)
    by_kind = {kind: sum(1 for i in incidents if i.kind == kind) for kind in KINDS}
    truth = {
        "version": TRUTH_VERSION,
        "generator": "vigil.simulate",
        "seed": seed,
        "params": {
            "sites": sites,
            "services": services,
            "pods": pods,
            "days": days,
            "step_s": step_s,
            "fmt": fmt,
        },
        "start": rfc3339(grid.start_ms),
        "end": rfc3339(grid.end_ms),
        "step_s": step_s,
        "metrics": list(METRICS),
        "fleet": _fleet_json(topo),
        "incidents": [truth_entry(inc, topo) for inc in incidents],
        "noop_deployments": sorted(e.id for e in plan.noop_deployments),
        "counts": {
            "series": writer.n_series,
            "samples": writer.n_samples,
            "events": n_events,
            "incidents": by_kind,
            "skipped_incidents": skipped,
            "mid_run_pods": int(np.count_nonzero(sa.pod_start > 0)),
            "scale_ups": plan.scale_ups,
            "evictions": plan.evictions,
            "scrape_gap_runs": gap_runs,
            "benign_spikes": spikes,
        },
        "files": [str(p.relative_to(out)) for p in writer.files],
    }
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return SimulationSummary(
        out=out,
        sample_files=list(writer.files),
        events_path=out / "events.jsonl",
        truth_path=truth_path,
        n_series=writer.n_series,
        n_samples=writer.n_samples,
        n_events=n_events,
        incidents=by_kind,
        start_ms=grid.start_ms,
        end_ms=grid.end_ms,
        step_ms=grid.step_ms,
        bytes_written=writer.n_bytes + truth_path.stat().st_size,
        seconds=time.perf_counter() - began,
        skipped_incidents=skipped,
    )


def _resolution_events(topo: Topology, incidents: list[Incident]) -> list[Event]:
    """Events whose time comes from the generated curves: OOM kills, leak rollbacks and disk
    cleanups."""
    grid = topo.grid
    events: list[Event] = []
    for inc in incidents:
        if inc.kind == "memory_leak":
            for slot, col in sorted(inc.crossings.items()):
                pod = topo.pod_at(slot, inc.start)
                restart = pod_restart(topo, slot, pod.name, pod.node, grid.ms(col), "OOMKilled")
                events.append(restart)
            labels = topo.group_labels(inc.group)
            inc.resolution = deployment(
                labels, grid.ms(inc.end), inc.version_prev, inc.version_new, rollback=True
            )
            events.append(inc.resolution)
        elif inc.kind == "disk_filling":
            node = topo.nodes[inc.node]
            inc.resolution = Event(
                grid.ms(inc.end),
                "infrastructure",
                {"site": topo.sites[inc.site], "node": node},
                f"Cleaned up runaway logs on {node}",
                {"action": "disk_cleanup"},
            )
            events.append(inc.resolution)
    return events


def _fleet_json(topo: Topology) -> dict[str, object]:
    svc = topo.services
    return {
        "sites": [
            {"name": s, "utc_offset_hours": float(tz)}
            for s, tz in zip(topo.sites, topo.site_tz, strict=True)
        ],
        "services": [
            {
                "name": svc.names[i],
                "namespace": svc.namespaces[i],
                "replicas": topo.replicas,
                "cpu_limit_cores": float(svc.cpu_limit[i]),
                "memory_limit_bytes": int(svc.mem_limit[i]),
            }
            for i in range(len(svc.names))
        ],
        "nodes": [
            {"name": n, "site": topo.sites[int(s)]}
            for n, s in zip(topo.nodes, topo.node_site, strict=True)
        ],
    }
