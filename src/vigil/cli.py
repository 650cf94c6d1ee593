"""The ``vigil`` command line (typer + rich).

This is the only place that reads the environment (``VIGIL_STORE``); everything below it takes
explicit arguments.  Heavy modules are imported inside the commands so ``vigil --help`` is fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vigil.cli_ledger import explain, ledger_app
from vigil.cli_serve import config_app, serve
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
bench_app = typer.Typer(help="Public benchmarks: NAB and KPI (detection), M4 Hourly (forecasting).",
                        no_args_is_help=True)
suppress_app = typer.Typer(help="Suppression rules: mute insights, or do not learn a window.",
                           no_args_is_help=True)
types_app = typer.Typer(help="Metric types (counter, gauge, histogram...) and the series Vigil "
                             "models from them (rates, quantiles).", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(types_app, name="types")
app.add_typer(bench_app, name="bench")
app.add_typer(suppress_app, name="suppress")
app.add_typer(ledger_app, name="ledger")
app.command("explain")(explain)
app.add_typer(config_app, name="config")
app.command()(serve)

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


def _read_limit_pairs(path: Path) -> tuple[Any, ...]:
    """Usage/limit pairs from a YAML or JSON list (CLI exit 2 naming the file on errors)."""
    import yaml

    from vigil.engine.limits import LimitPair

    try:
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, list):
            raise ValueError(f"expected a list of pairs, got {type(data).__name__}")
        return tuple(LimitPair.from_dict(item) for item in data)
    except (OSError, yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
        raise _fail(f"{path}: {exc}") from None


@types_app.command("set")
def types_set(
    name: Annotated[str, typer.Argument(help="Metric or family name, e.g. jobs_done_count.")],
    metric_type: Annotated[str, typer.Argument(
        metavar="TYPE", help="counter, gauge, histogram, summary, info, stateset or unknown.")],
    store: StoreOpt,
    tenant: TenantOpt = "default",
) -> None:
    """Declare a metric's type (wins over remote-write metadata and naming rules)."""
    import time

    from vigil.series import LabelError, validate_metric_name

    try:
        validate_metric_name(name)
        _open_store(store).declare_types(tenant, {name: metric_type}, "config",
                                         int(time.time() * 1000))
    except (ValueError, LabelError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"{name}: {metric_type.lower()}", markup=False, highlight=False)


@types_app.command("list")
def types_list(
    store: StoreOpt,
    tenant: TenantOpt = "default",
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Per metric name: its type, how it is modelled (as is, as views, not scored), its series
    and the views derived from it."""
    from vigil.metrictypes import summarise
    from vigil.series import parse_labels_json

    st = _open_store(store)
    labels = [parse_labels_json(t) for t in st.catalog(tenant).column("labels").to_pylist()]
    rows = summarise(st.view_plan(tenant), labels, st.metric_types(tenant))
    if fmt == "json":
        console.print_json(json.dumps(rows))
        return
    if fmt != "table":
        raise _fail(f"--format {fmt!r} is invalid: expected table or json")
    out = Table("metric", "type", "declared", "modelled", "series", "views")
    for r in rows:
        out.add_row(r["metric"], r["type"], r["declared"] or "-", r["modelled"],
                    str(r["series"]), ", ".join(f"{k} x{v}" for k, v in r["views"].items()))
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
        _print_kind_table(truth["per_kind"])
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
    limit_pairs: Annotated[Path | None, typer.Option(
        help="YAML/JSON list of usage/limit pairs ({usage, limit, on, match, zero_is_none}) "
             "used before the built-in ones (docs/metrics.md).")] = None,
) -> None:
    """Score what the store holds since the last run; results stay in the store."""
    from vigil.engine.backtest import BacktestConfig
    from vigil.engine.detect import detect_store
    from vigil.models.defaults import default_factory

    pairs = _read_limit_pairs(limit_pairs) if limit_pairs else ()
    config = BacktestConfig(fit_window=fit_window, warmup=warmup, workers=workers or None,
                            limit_pairs=pairs)
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
    show: Annotated[int, typer.Option(help="Insights printed (most severe first).")] = 25,
) -> None:
    """Simulate a fleet, ingest it, replay it, build insights, write the report, score it."""
    from vigil.demo import run_demo

    result = run_demo(_open_store(store), tenant, out, sites=sites, services=services,
                      days=days, seed=seed, say=console.print)
    from vigil.insights.model import insights_from_json

    console.print(f"store {store} (tenant {tenant}); fleet {result.fleet_dir}; "
                  f"backtest {result.backtest_dir}")
    found = insights_from_json((result.backtest_dir / "insights.json").read_text())
    shown = sorted(found, key=lambda i: ("high", "medium", "low").index(i.severity))[:show]
    title = f"{len(found)} insights" + (f" (the {len(shown)} most severe; all of them in the "
                                        "report and 'vigil insights')"
                                        if len(shown) < len(found) else "")
    table = Table("severity", "kind", "summary", "top cause", "recommendation", title=title,
                  show_lines=True)
    for ins in shown:
        table.add_row(ins.severity, ins.kind, ins.summary,
                      ins.events[0].summary if ins.events else "-",
                      ins.recommendations[0].action if ins.recommendations else "-")
    console.print(table)
    console.print("[bold]Anomaly intervals against the truth[/]")
    _print_summary(result.summary)
    _print_insight_truth(result.summary.get("insight_truth"))
    console.print(f"report: {result.report}")
    console.print("stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in
                                              result.timings.items())
                  + f" (total {sum(result.timings.values()):.1f} s)")


def _print_kind_table(per_kind: dict[str, dict[str, Any]]) -> None:
    table = Table("incident kind", "incidents", "recall", "median delay (min)")
    for kind, row in per_kind.items():
        delay = row["median_delay_minutes"]
        table.add_row(kind, str(row["incidents"]), f"{row['recall']:.2f}",
                      "-" if delay is None else f"{delay:.0f}")
    console.print(table)


def _print_insight_truth(t: dict | None) -> None:
    if not t:
        return
    console.print("[bold]Insights against the truth[/]")
    _print_kind_table(t["per_kind"])

    def num(v: float | None, fmt: str = ".2f") -> str:
        return "-" if v is None else format(v, fmt)

    console.print(
        f"{t['insights']} insights ({t['reactive']} reactive, {t['proactive']} proactive); "
        f"recall {num(t['recall'])}; every kind found: {t['every_kind_found']}; false "
        f"insights {t['false_insights']} = {num(t['false_insights_per_1000_series_days'])} "
        f"per 1,000 series-days; median delay {num(t['median_delay_minutes'], '.0f')} min")
    console.print(
        f"causing event ranked first: {num(t['cause_ranked_first'])} (of incidents with a "
        f"cause); proactive insight before the crossing: {num(t['proactive_before_crossing'])}"
        f"; median lead {num(t['median_lead_minutes'], '.0f')} min; median crossing-time "
        f"error at opening {num(t['median_crossing_error'])} and over the insight's life "
        f"{num(t['median_crossing_error_over_life'])} of the time that remained")


# ------------------------------------------------------------------ insights, report, feedback


def _insight_rows(insights: list) -> Table:
    table = Table("id", "severity", "kind", "status", "start", "summary", "top cause",
                  "recommendation", show_lines=False)
    for ins in insights:
        top = ins.events[0].summary if ins.events else "-"
        rec = ins.recommendations[0].action if ins.recommendations else "-"
        table.add_row(ins.id, ins.severity, ins.kind, ins.status, format_ms(ins.start),
                      ins.summary, top, rec)
    return table


@app.command()
def insights(
    store: StoreOpt,
    tenant: TenantOpt = "default",
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    status_: Annotated[str | None, typer.Option("--status", help="ongoing or closed.")] =
    None,
    muted: Annotated[bool, typer.Option(help="Include muted insights.")] = True,
) -> None:
    """List the insights kept in the store (built by vigil detect / backtest / demo)."""
    from vigil.insights.model import STATUSES, insights_to_json
    from vigil.insights.persist import load_insights

    if fmt not in ("table", "json"):
        raise _fail(f"--format {fmt!r} is invalid: expected table or json")
    if status_ is not None and status_ not in STATUSES:
        raise _fail(f"--status {status_!r} is invalid: expected one of {', '.join(STATUSES)}")
    found = [i for i in load_insights(_open_store(store), tenant)
             if (status_ is None or i.status == status_) and (muted or not i.muted)]
    if fmt == "json":
        print(insights_to_json(found))
        return
    console.print(_insight_rows(found))
    console.print(f"{len(found)} insights")


@app.command()
def insight(
    insight_id: Annotated[str, typer.Argument(help="Insight id (a unique prefix works).")],
    store: StoreOpt,
    tenant: TenantOpt = "default",
) -> None:
    """Every detail of one insight and its evidence (JSON)."""
    from vigil.insights.model import insight_to_json
    from vigil.insights.persist import find_insight

    print(json.dumps(insight_to_json(find_insight(_open_store(store), tenant, insight_id)),
                     indent=2, ensure_ascii=False))


@app.command()
def feedback(
    insight_id: Annotated[str, typer.Argument(help="Insight id.")],
    label: Annotated[str, typer.Option(help="false_positive, expected or true_positive.")],
    store: StoreOpt,
    tenant: TenantOpt = "default",
    note: Annotated[str, typer.Option(help="Free text kept with the label.")] = "",
    user: Annotated[str, typer.Option(help="Who gives the feedback.")] = "",
) -> None:
    """Label an insight; false positives make its group less sensitive (docs/insights.md)."""
    import time

    from vigil.insights.feedback import sensitivity_factors
    from vigil.insights.persist import add_feedback, read_feedback

    st = _open_store(store)
    rec = add_feedback(st, tenant, insight_id, label, note, time_ms=int(time.time() * 1000),
                       user=user)
    factor = sensitivity_factors(read_feedback(st, tenant)).get(rec["group_key"], 1.0)
    console.print(f"stored {label} on {rec['insight_id']} (group {rec['group_key']}); its "
                  f"group's thresholds are now x{factor:g} (applies from the next build)",
                  markup=False)


@app.command()
def report(
    store: StoreOpt,
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] =
    Path("report.html"),
    tenant: TenantOpt = "default",
    backtest_dir: Annotated[Path | None, typer.Option(
        "--backtest", help="Read a backtest's insights.json and scores.parquet instead.")] =
    None,
) -> None:
    """Write one self-contained HTML page (works offline) of the insights with charts."""
    from vigil.insights.model import insights_from_json
    from vigil.insights.persist import load_insights
    from vigil.report import TableSource, member_ids, write_report

    st = _open_store(store)
    if backtest_dir is not None:
        path = backtest_dir / "insights.json"
        if not path.exists():
            raise _fail(f"{path} does not exist: run vigil backtest --out {backtest_dir}")
        found = insights_from_json(path.read_text())
        source = TableSource.from_parquet(backtest_dir / "scores.parquet", member_ids(found))
        events = None
    else:
        found = load_insights(st, tenant)
        scores = st.read_table(tenant, "scores")
        if scores is None:
            raise _fail(f"tenant {tenant!r} holds no scores: run vigil detect first, or pass "
                        "--backtest DIR for a backtest's outputs")
        ids = list(member_ids(found))
        scores = scores.filter(pc_is_in(scores, ids))
        source = TableSource(scores)
        events = st.events(tenant)
    write_report(out, found, source, events, title=f"Vigil insights ({tenant})")
    console.print(f"wrote {out} ({len(found)} insights)")


def pc_is_in(table, ids: list[int]):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.is_in(table.column("series_id"), value_set=pa.array(ids, pa.int64()))


@suppress_app.command("add")
def suppress_add(
    rule_id: Annotated[str, typer.Argument(help="Rule id.")],
    selector: Annotated[str, typer.Option(help='Label matchers, e.g. {site="site-2"}.')],
    store: StoreOpt,
    tenant: TenantOpt = "default",
    start: Annotated[str | None, typer.Option(help="Window start (RFC 3339 or epoch).")] =
    None,
    end: Annotated[str | None, typer.Option(help="Window end (RFC 3339 or epoch).")] = None,
    mute: Annotated[bool, typer.Option(help="Never notify matching insights.")] = True,
    do_not_learn: Annotated[bool, typer.Option(
        help="Do not learn the matching points as normal.")] = False,
    reason: Annotated[str, typer.Option(help="Why (kept with the rule).")] = "",
) -> None:
    """Add (or replace) a suppression rule; applies from the next insight build."""
    from vigil.insights.persist import raw_suppressions, write_suppressions

    st = _open_store(store)
    rule = {"id": rule_id, "selector": selector, "mute": mute, "do_not_learn": do_not_learn,
            "reason": reason}
    if start is not None:
        rule["start"] = format_ms(parse_time(start))
    if end is not None:
        rule["end"] = format_ms(parse_time(end))
    rules = [r for r in raw_suppressions(st, tenant) if r.get("id") != rule_id] + [rule]
    write_suppressions(st, tenant, rules)
    console.print(f"suppression {rule_id} stored ({len(rules)} rules)", markup=False)


@suppress_app.command("list")
def suppress_list(store: StoreOpt, tenant: TenantOpt = "default") -> None:
    """List the suppression rules."""
    from vigil.insights.persist import raw_suppressions

    print(json.dumps(raw_suppressions(_open_store(store), tenant), indent=2))


@suppress_app.command("remove")
def suppress_remove(rule_id: Annotated[str, typer.Argument(help="Rule id.")],
                    store: StoreOpt, tenant: TenantOpt = "default") -> None:
    """Remove a suppression rule."""
    from vigil.insights.persist import raw_suppressions, write_suppressions

    st = _open_store(store)
    rules = raw_suppressions(st, tenant)
    kept = [r for r in rules if r.get("id") != rule_id]
    if len(kept) == len(rules):
        raise _fail(f"no suppression rule {rule_id!r} in tenant {tenant!r}")
    write_suppressions(st, tenant, kept)
    console.print(f"removed {rule_id}", markup=False)


@bench_app.command("nab")
def bench_nab(
    data: Annotated[Path, typer.Option(help="NAB folder (data/, labels/).")] =
    Path("../shared/data/nab"),
    out: Annotated[Path, typer.Option(help="Results directory (NAB layout).")] = Path("nab-out"),
) -> None:
    """Replay NAB through the engine default (FleetDetector; fit on the probationary rows,
    refit daily on 14 days, as the backtest does) and print the three NAB scores."""
    from vigil.benchmarks.nab import run_nab

    result = run_nab(data, out, progress=lambda name: err.print(f"  {name}", end="\r"))
    console.print_json(json.dumps(result, default=str))


@bench_app.command("kpi")
def bench_kpi(
    data: Annotated[Path, typer.Option(help="KPI folder (*.csv: timestamp,value,label).")] =
    Path("../shared/data/kpi"),
    out: Annotated[Path, typer.Option(help="Results directory.")] = Path("kpi-out"),
    workers: Annotated[int, typer.Option(help="Files run in parallel processes.")] = 1,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run only this file (name, with or without .csv); repeatable.")] = None,
) -> None:
    """Replay the AIOps 2018 KPI files through the engine default (FleetDetector; fit on 3 days,
    refit daily on 14 days, as the backtest does) and a rolling z-score baseline; print the
    best point-adjusted F1 (delay 7) of each over one corpus-wide threshold."""
    from vigil.benchmarks.kpi import DETECTORS, run_kpi

    try:
        result = run_kpi(data, out, only=only, workers=workers,
                         progress=lambda name: err.print(f"  {name}", end="\r"))
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"KPI: {result['files']} files, {result['rows']:,} rows, "
                  f"{result['segments']:,} segments; best point-adjusted F1 (delay "
                  f"{result['config']['delay']}) over one corpus-wide threshold", markup=False)
    head = ("", "F1", "precision", "recall", "threshold", "raw threshold", "detect s", "rows")
    lines = [head]
    for name in DETECTORS:
        d = result["detectors"][name]
        raw = d["raw_threshold"]
        lines.append((name, f"{d['f1']:.4f}", f"{d['precision']:.4f}", f"{d['recall']:.4f}",
                      f"{d['threshold']:.6f}", "inf" if raw is None else f"{raw:.4g}",
                      f"{d['detect_seconds']:.1f}", f"{result['rows']:,}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        console.print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                                for i, (cell, w) in enumerate(zip(line, widths, strict=True))),
                      markup=False)
    console.print(f"wall {result['wall_seconds']:.1f} s with {result['workers']} worker(s); "
                  f"summary: {out / 'kpi_summary.json'}", markup=False)


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
