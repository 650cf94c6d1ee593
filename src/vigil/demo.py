"""``vigil demo``: simulate a fleet, ingest it, replay it through the engine, build insights,
write the report, and score anomalies and insights against the simulator's truth.

Every stage is the real component the CLI exposes; the demo only chains them and times them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DemoResult:
    fleet_dir: Path
    backtest_dir: Path
    report: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    simulation: Any = None
    ingest: Any = None
    events: Any = None
    summary: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _timed(timings: dict[str, float], name: str, say: Callable[[str], None]) -> Iterator[None]:
    say(f"[bold]{name}[/] ...")
    t0 = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - t0
    say(f"  {name} took {timings[name]:.1f} s")


def run_demo(
    store: Any,
    tenant: str,
    out: Path,
    *,
    sites: int = 3,
    services: int = 8,
    days: int = 14,
    seed: int = 7,
    workers: int | None = None,
    say: Callable[[str], None] = print,
) -> DemoResult:
    from vigil.engine.backtest import BacktestConfig, backtest_store
    from vigil.events import import_events
    from vigil.ingest import ingest_files
    from vigil.models.defaults import default_factory
    from vigil.simulate import simulate_fleet

    fleet = out / "fleet"
    bt = out / "backtest"
    if fleet.exists():
        shutil.rmtree(fleet)
    result = DemoResult(fleet, bt)
    with _timed(result.timings, "simulate", say):
        result.simulation = simulate_fleet(fleet, sites=sites, services=services, days=days,
                                           seed=seed)
    with _timed(result.timings, "ingest", say):
        result.ingest = ingest_files(store, tenant, sorted((fleet / "samples").glob("*")))
        result.events = import_events(store, tenant, fleet / "events.jsonl")
    result.report = out / "report.html"
    with _timed(result.timings, "backtest", say):
        result.summary = backtest_store(
            store, tenant, bt, default_factory(), config=BacktestConfig(workers=workers),
            truth=fleet / "truth.json", report=result.report,
        )
    # the insight and report stages ran inside the backtest, on its arrays in memory
    inner = result.summary.get("timings", {})
    for key, name in (("insights_s", "insights"), ("report_s", "report")):
        if key in inner:
            result.timings["backtest"] -= inner[key]
            result.timings[name] = inner[key]
    return result
