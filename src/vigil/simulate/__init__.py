"""Fleet simulator: a realistic Kubernetes fleet in the ingest formats, with ground truth.

``simulate_fleet(out, ...)`` writes long-format samples (``timestamp, metric, value`` and the
labels ``site, namespace, service, pod, node``), ``events.jsonl`` (deployments, scaling, pod
restarts/evictions, maintenance) and ``truth.json`` (fleet, injected incidents, no-op
deployments, counts).  Everything is driven by numpy over ``[rows, steps]`` arrays in bounded
chunks, so large fleets stream to disk.

Design choice: a deployment restarts nothing and keeps pod names (as an in-place update would),
so the series an incident touches keep their history; new pod names come from scale-ups and
evictions instead.
"""

from vigil.simulate.events import EVENT_KINDS
from vigil.simulate.incidents import KINDS as INCIDENT_KINDS
from vigil.simulate.runner import DEFAULT_PODS, SimulationSummary, simulate_fleet
from vigil.simulate.signals import METRICS, NODE_METRICS, POD_METRICS
from vigil.simulate.writer import LABEL_COLUMNS

__all__ = [
    "DEFAULT_PODS",
    "EVENT_KINDS",
    "INCIDENT_KINDS",
    "LABEL_COLUMNS",
    "METRICS",
    "NODE_METRICS",
    "POD_METRICS",
    "SimulationSummary",
    "simulate_fleet",
]
