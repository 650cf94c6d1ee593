"""The ``vigil`` command line (typer + rich).

This is the only place that reads the environment (``VIGIL_STORE``); everything below it takes
explicit arguments.  Heavy modules are imported inside the commands so ``vigil --help`` is fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vigil.timeparse import format_ms, parse_time

app = typer.Typer(
    name="vigil",
    help="Vigil: learns what normal looks like for every metric series and says what is wrong.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
events_app = typer.Typer(
    help="Change events (deployments, config changes...).", no_args_is_help=True
)
bench_app = typer.Typer(help="Public benchmarks: NAB (detection) and M4 Hourly (forecasting).",
                        no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(bench_app, name="bench")

console = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from vigil import __version__

        console.print(f"vigil {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Vigil: learns what normal looks like for every metric series and tells you what is wrong."""


def _default_store() -> Path:
    return Path(os.environ.get("VIGIL_STORE") or "./vigil-data")


StoreOpt = Annotated[
    Path,
    typer.Option("--store", help="Store directory (default ./vigil-data, or $VIGIL_STORE).",
                 default_factory=_default_store, show_default=False),
]
TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant id.")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _open_store(store: Path):
    from vigil.store import Store

    return Store(store)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="CSV or Parquet files in long format.")],
    store: StoreOpt,
    tenant: TenantOpt = "default",
    strict: Annotated[bool, typer.Option(help="Reject a whole file on any bad row.")] = False,
    chunk_rows: Annotated[int, typer.Option(help="Rows per streamed chunk.")] = 1_000_000,
    max_errors: Annotated[int, typer.Option(help="Bad rows reported in detail per file.")] = 100,
    block_size: Annotated[int, typer.Option(help="CSV read block in bytes (longest line).")] = 1
    << 20,
) -> None:
    """Ingest samples from CSV/Parquet files (timestamp, value, metric, label columns)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from vigil.ingest import ingest_files

    st = _open_store(store)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TimeRemainingColumn(), console=err, transient=True,
    ) as bar:
        task = bar.add_task("ingesting", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = ingest_files(st, tenant, paths, strict=strict, chunk_rows=chunk_rows,
                              progress=progress, max_errors=max_errors, block_size=block_size)
    console.print(report.summary(), markup=False, highlight=False)
    if report.failed_files:
        raise typer.Exit(1)


@events_app.command("import")
def events_import(
    path: Annotated[Path, typer.Argument(help="JSON-lines file of change events.")],
    store: StoreOpt,
    tenant: TenantOpt = "default",
    strict: Annotated[bool, typer.Option(help="Reject the whole file on any bad line.")] = False,
) -> None:
    """Import change events from JSON lines: {"time", "kind", "labels", "summary", "attributes"}."""
    from vigil.events import import_events

    report = import_events(_open_store(store), tenant, path, strict=strict)
    console.print(report.summary(), markup=False, highlight=False)
    if report.failed:
        raise typer.Exit(1)


@events_app.command("list")
def events_list(
    store: StoreOpt,
    tenant: TenantOpt = "default",
    since: Annotated[str | None, typer.Option(help="RFC 3339 time or epoch.")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 time or epoch.")] = None,
) -> None:
    """List stored change events."""
    table = _open_store(store).events(
        tenant, parse_time(since) if since else None, parse_time(until) if until else None
    )
    out = Table("time", "kind", "labels", "summary")
    for row in table.sort_by("time").to_pylist():
        out.add_row(format_ms(row["time"]), row["kind"], row["labels"], row["summary"])
    console.print(out)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the fleet into.")],
    sites: Annotated[int, typer.Option(help="Number of sites.")] = 3,
    services: Annotated[int, typer.Option(help="Services per site.")] = 8,
    pods: Annotated[int, typer.Option(help="Replicas per service per site (default 14).")] = 0,
    days: Annotated[int, typer.Option(help="Days simulated.")] = 14,
    step: Annotated[int, typer.Option(help="Seconds between samples.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same fleet).")] = 0,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Write a simulated fleet with injected incidents, events.jsonl and truth.json."""
    from vigil.simulate import simulate_fleet

    kwargs = {"pods": pods} if pods > 0 else {}
    summary = simulate_fleet(out, sites=sites, services=services, days=days, step_s=step,
                             seed=seed, fmt=fmt, **kwargs)
    console.print(summary.describe() if hasattr(summary, "describe") else summary)


@app.command()
def status(store: StoreOpt) -> None:
    """Per tenant: series, samples and time range held."""
    st = _open_store(store)
    table = Table("tenant", "series", "samples", "from", "to", title=f"store {store}")
    for tenant in st.tenants():
        s = st.stats(tenant)
        table.add_row(
            tenant, f"{s['series']:,}", f"{s['samples']:,}",
            format_ms(s["min_timestamp"]) if s["samples"] else "-",
            format_ms(s["max_timestamp"]) if s["samples"] else "-",
        )
    console.print(table)


@app.command()
def query(
    selector: Annotated[str, typer.Argument(help='PromQL selector, e.g. {service="cart"}.')],
    store: StoreOpt,
    tenant: TenantOpt = "default",
    since: Annotated[str | None, typer.Option(help="RFC 3339 time or epoch.")] = None,
    until: Annotated[str | None, typer.Option(help="RFC 3339 time or epoch.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 20,
) -> None:
    """Show the series matching a selector and their samples in a time range."""
    st = _open_store(store)
    cat = st.catalog(tenant, selector)
    samples = st.select(tenant, selector, parse_time(since) if since else None,
                        parse_time(until) if until else None)
    console.print(f"{cat.num_rows:,} series, {samples.num_rows:,} samples")
    labels = dict(zip(cat["series_id"].to_pylist(), cat["labels"].to_pylist(), strict=True))
    out = Table("series", "timestamp", "value")
    for row in samples.slice(0, limit).to_pylist():
        out.add_row(labels.get(row["series_id"], str(row["series_id"])),
                    format_ms(row["timestamp"]), repr(row["value"]))
    console.print(out)


@app.command()
def compact(store: StoreOpt, tenant: TenantOpt = "default") -> None:
    """Merge small files and fold duplicates in a tenant's tables."""
    console.print(json.dumps(_open_store(store).compact(tenant), indent=2, default=str))


@app.command()
def backtest(
    samples: Annotated[list[Path], typer.Argument(help="Long-format sample files or folders.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")],
    events: Annotated[Path | None, typer.Option(help="Change events (JSON lines).")] = None,
    truth: Annotated[Path | None, typer.Option(help="Simulator truth.json to score.")] = None,
    warmup: Annotated[str, typer.Option(help="First fit on this span.")] = "3d",
    refit_every: Annotated[str, typer.Option(help="Refit schedule.")] = "1d",
    fit_window: Annotated[str, typer.Option(help="Trailing window of each refit.")] = "14d",
    workers: Annotated[int, typer.Option(help="Worker processes (0: every core).")] = 0,
    partitions: Annotated[int, typer.Option(help="Partitions of the catalog.")] = 16,
) -> None:
    """Replay files as if live: causal scores, anomalies and a summary (vs truth if given)."""
    import tempfile

    from vigil.engine.backtest import BacktestConfig, backtest_store
    from vigil.events import import_events
    from vigil.ingest import ingest_files
    from vigil.models.defaults import default_factory
    from vigil.store import Store

    with tempfile.TemporaryDirectory(prefix="vigil-backtest-") as tmp:
        st = Store(Path(tmp))
        report = ingest_files(st, "backtest", samples)
        err.print(report.summary(details=3), markup=False, highlight=False)
        if events is not None:
            import_events(st, "backtest", events)
        config = BacktestConfig(warmup=warmup, refit_every=refit_every, fit_window=fit_window,
                                workers=workers or None, partitions=partitions)
        summary = backtest_store(st, "backtest", out, default_factory(), config=config,
                                 truth=truth, progress=_bar("backtest"))
    _print_summary(summary)
    console.print(f"wrote {out}/scores.parquet, anomalies.json, summary.json")


def _bar(label: str):
    def progress(done: int, total: int) -> None:
        err.print(f"  {label}: partition {done}/{total}", end="\r")

    return progress


def _print_summary(summary: dict) -> None:
    console.print(f"{summary['series']:,} series x {summary['steps']:,} steps; "
                  f"{summary['alerts']:,} anomaly intervals "
                  f"({summary['alerts_per_series_day']:.3f} per series-day)")
    truth = summary.get("truth")
    if truth:
        table = Table("incident kind", "incidents", "recall", "median delay (min)")
        for kind, row in truth["per_kind"].items():
            delay = row["median_delay_minutes"]
            table.add_row(kind, str(row["incidents"]), f"{row['recall']:.2f}",
                          "-" if delay is None else f"{delay:.0f}")
        console.print(table)
        precision = truth["precision"]
        console.print(f"recall {truth['recall']:.2f}, precision "
                      f"{'-' if precision is None else f'{precision:.2f}'}, false intervals per "
                      f"1,000 series-days {truth['false_alerts_per_1000_series_days']:.1f}")


@app.command()
def detect(
    store: StoreOpt,
    tenant: TenantOpt = "default",
    since: Annotated[str | None, typer.Option(help="Score from here (default: the cursor).")] =
    None,
    until: Annotated[str | None, typer.Option(help="Score up to here (default: newest).")] =
    None,
    fit_window: Annotated[str, typer.Option(help="History the model is fitted on.")] = "14d",
    warmup: Annotated[str, typer.Option(help="History needed before the first run.")] = "3d",
    workers: Annotated[int, typer.Option(help="Worker processes (0: every core).")] = 0,
) -> None:
    """Score what the store holds since the last run; results stay in the store."""
    from vigil.engine.backtest import BacktestConfig
    from vigil.engine.detect import detect_store
    from vigil.models.defaults import default_factory

    config = BacktestConfig(fit_window=fit_window, warmup=warmup, workers=workers or None)
    result = detect_store(_open_store(store), tenant, default_factory(),
                          since=parse_time(since) if since else None,
                          until=parse_time(until) if until else None, config=config)
    console.print_json(json.dumps(result))


@app.command()
def demo(
    store: StoreOpt,
    out: Annotated[Path, typer.Option("--out", help="Working directory.")] = Path("vigil-demo"),
    tenant: TenantOpt = "demo",
    sites: Annotated[int, typer.Option(help="Sites in the simulated fleet.")] = 3,
    services: Annotated[int, typer.Option(help="Services per site.")] = 8,
    days: Annotated[int, typer.Option(help="Days simulated.")] = 14,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Simulate a fleet with incidents, ingest it, replay it through the engine, score it."""
    from vigil.demo import run_demo

    result = run_demo(_open_store(store), tenant, out, sites=sites, services=services,
                      days=days, seed=seed, say=console.print)
    console.print(f"store {store} (tenant {tenant}); fleet {result.fleet_dir}; "
                  f"backtest {result.backtest_dir}")
    _print_summary(result.summary)
    console.print("stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in
                                              result.timings.items()))


@bench_app.command("nab")
def bench_nab(
    data: Annotated[Path, typer.Option(help="NAB folder (data/, labels/).")] =
    Path("../shared/data/nab"),
    out: Annotated[Path, typer.Option(help="Results directory (NAB layout).")] = Path("nab-out"),
) -> None:
    """Run the default detector over NAB causally and print the three NAB scores."""
    from vigil.benchmarks.nab import run_nab

    result = run_nab(data, out, progress=lambda name: err.print(f"  {name}", end="\r"))
    console.print_json(json.dumps(result, default=str))


@bench_app.command("m4")
def bench_m4(
    data: Annotated[Path, typer.Option(help="M4 folder (Hourly-train.csv, Hourly-test.csv).")] =
    Path("../shared/data/m4"),
) -> None:
    """Forecast M4 Hourly 48 steps ahead; print sMAPE, MASE and OWA (Naive2 as reference)."""
    from vigil.benchmarks.m4 import run_m4

    run_m4(data, verbose=True)


def main() -> None:
    from vigil.series import LabelError

    try:
        app()
    except (LabelError, ValueError, FileNotFoundError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
