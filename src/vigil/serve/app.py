"""The HTTP service (FastAPI on uvicorn): ingest, outputs and health of ``vigil serve``.

Endpoints (OpenAPI at ``/docs``; every one but ``/healthz`` needs credentials when the config
has any, and each answers for the request's tenant only, see :mod:`vigil.serve.auth`):

* ``POST /api/v1/write``: Prometheus remote-write 1.0; 204 once the samples are fsynced in the
  WAL; 4xx with a reason for what a retry cannot fix; 503 for transient trouble (full disk).
* ``POST /api/v1/events``: change events, one JSON object or a list (``vigil events import``'s
  schema); all or nothing.
* ``POST /api/v1/import?format=csv|parquet``: a file in the ``vigil ingest`` format as the body.
* ``GET /api/v1/insights``, ``/api/v1/insights/{id}``, ``/api/v1/anomalies``,
  ``/api/v1/series/{id}/forecast``; ``GET /metrics``; ``GET /healthz``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from vigil import __version__
from vigil.serve.auth import AuthError, resolve_tenant
from vigil.serve.config import ServeConfig
from vigil.serve.exposition import LiveMetrics
from vigil.serve.ingest import RemoteWriteIngest
from vigil.timeparse import format_ms, parse_time

log = logging.getLogger("vigil.serve")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it passes ``limit`` bytes (never buffered past it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is {int(declared):,} bytes: the limit is {limit:,} "
                                 "(limits.max_body_bytes); send smaller requests")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body passed {limit:,} bytes (limits.max_body_bytes): "
                                     "send smaller requests")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: ServeConfig, *, store: Any = None, start_scheduler: bool = True
               ) -> FastAPI:
    from vigil.serve.scheduler import Scheduler
    from vigil.store import Store
    from vigil.wal import Wal

    store = store if store is not None else Store(config.store)
    if config.metric_types:  # the config's metric types, declared for every tenant it names
        import time

        for tenant in config.tenants:
            store.declare_types(tenant, config.metric_types, "config", int(time.time() * 1000))
    live = LiveMetrics()
    wal = Wal(config.wal_path)
    ingest = RemoteWriteIngest(config, store, wal, live)
    sink = None
    if config.alertmanager is not None:
        from vigil.serve.alertmanager import AlertmanagerSink

        host, port = config.host_port
        external = config.alertmanager.external_url or f"http://{host}:{port}"
        sink = AlertmanagerSink(config.alertmanager.url, external,
                                config.seconds(config.alertmanager.timeout),
                                config.seconds(config.alertmanager.resend_every))
    scheduler = Scheduler(config, store, wal, live, sink)
    live.wal_stats = lambda: dataclasses.asdict(wal.stats())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from vigil.remote import warm_up

        await run_in_threadpool(warm_up)  # compile the decoder before the first request
        replayed = await run_in_threadpool(scheduler.checkpoint)  # the WAL left by a crash
        if replayed:
            log.info("checkpointed %d samples found in the WAL at start", replayed)
        if start_scheduler:
            scheduler.start()
        yield
        await run_in_threadpool(scheduler.stop)  # graceful: finish the tick, flush the WAL
        wal.close()

    app = FastAPI(title="Vigil", version=__version__, lifespan=lifespan,
                  description="Per-series anomaly detection, forecasts and insights for "
                              "Prometheus fleets. See docs/serve.md.")
    app.state.vigil = {"config": config, "store": store, "wal": wal, "live": live,
                       "scheduler": scheduler, "ingest": ingest}
    tenant_locks: dict[str, threading.Lock] = {}

    def tenant_of(request: Request, handler: str) -> str:
        try:
            tenant = resolve_tenant(config, request.headers)
        except AuthError as exc:
            live.request("", handler, exc.status)
            headers = {"WWW-Authenticate": 'Basic realm="vigil"'} if exc.status == 401 else None
            raise HTTPException(exc.status, exc.reason, headers=headers) from None
        request.state.tenant = tenant
        return tenant

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        tenant = getattr(request.state, "tenant", "")
        live.request(tenant, request.url.path.split("/")[-1] or "root", exc.status_code)
        if request.url.path == "/api/v1/write":  # Prometheus logs the body as text
            return PlainTextResponse(str(exc.detail), exc.status_code, headers=exc.headers)
        return JSONResponse({"status": "error", "error": exc.detail}, exc.status_code,
                            headers=exc.headers)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Liveness: always answers, needs no credentials."""
        return {"status": "ok", "version": __version__}

    @app.post("/api/v1/write", status_code=204, tags=["ingest"],
              responses={400: {"description": "malformed request (do not retry)"},
                         413: {"description": "too large"}, 415: {"description": "not RW 1.0"},
                         429: {"description": "tenant limit"}, 503: {"description": "retry"}})
    async def write(request: Request) -> Response:
        """Prometheus remote-write 1.0 (protobuf ``WriteRequest``, snappy block format)."""
        tenant = tenant_of(request, "write")
        ingest.check_headers(request.headers)
        body = await read_body(request, config.limits.max_body_bytes)
        samples = await run_in_threadpool(ingest.write, tenant, body)
        live.request(tenant, "write", 204)
        return Response(status_code=204, headers={"X-Vigil-Samples": str(samples)})

    @app.post("/api/v1/events", tags=["ingest"])
    async def events(request: Request) -> dict[str, Any]:
        """Change events: one JSON object or a list; all are stored or none (400 with each
        problem)."""
        tenant = tenant_of(request, "events")
        body = await read_body(request, config.limits.max_body_bytes)
        from vigil.events import EventError, events_to_table, parse_event

        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPException(400, f"the body is not JSON ({exc}): send an event object or a "
                                     "list of them") from None
        items = data if isinstance(data, list) else [data]
        if not items:
            raise HTTPException(400, "the list is empty: send at least one event")
        parsed, problems = [], []
        for i, item in enumerate(items):
            try:
                parsed.append(parse_event(item))
            except EventError as exc:
                problems.append(f"event {i}: {exc}")
        if problems:
            raise HTTPException(400, "; ".join(problems[:20]) + " (nothing was stored)")
        written = await run_in_threadpool(store.append_events, tenant, events_to_table(parsed))
        live.request(tenant, "events", 200)
        return {"status": "ok", "written": int(written)}

    @app.post("/api/v1/import", tags=["ingest"])
    async def import_file(request: Request,
                          format: str = Query("csv", pattern="^(csv|parquet)$"),
                          strict: bool = False) -> dict[str, Any]:
        """A CSV or Parquet file in the ``vigil ingest`` long format, as the request body."""
        tenant = tenant_of(request, "import")
        body = await read_body(request, config.limits.max_upload_bytes)
        if not body:
            raise HTTPException(400, "the body is empty: send the file's bytes")

        def run() -> Any:
            from vigil.ingest import ingest_files

            with tempfile.TemporaryDirectory(prefix="vigil-import-") as tmp:
                path = Path(tmp) / f"upload.{format}"
                path.write_bytes(body)
                lock = tenant_locks.setdefault(tenant, threading.Lock())
                with lock:
                    return ingest_files(store, tenant, [path], strict=strict)

        report = await run_in_threadpool(run)
        summary = report.summary()
        if report.failed_files:
            raise HTTPException(400, summary.replace("upload.", "the upload ."))
        live.request(tenant, "import", 200)
        return {"status": "ok", "report": summary}

    @app.get("/api/v1/insights", tags=["outputs"])
    def insights(request: Request, status: str | None = Query(None, pattern="^(ongoing|closed)$"),
                 kind: str | None = Query(None, pattern="^(reactive|proactive)$")
                 ) -> list[dict[str, Any]]:
        """Insights (the JSON contract of docs/insights.md), newest first."""
        tenant = tenant_of(request, "insights")
        from vigil.insights.model import insight_to_json
        from vigil.insights.persist import load_insights

        out = [insight_to_json(i) for i in load_insights(store, tenant)
               if (status is None or i.status == status) and (kind is None or i.kind == kind)]
        return sorted(out, key=lambda d: d["start"], reverse=True)

    @app.get("/api/v1/insights/{insight_id}", tags=["outputs"])
    def insight(request: Request, insight_id: str) -> dict[str, Any]:
        tenant = tenant_of(request, "insight")
        from vigil.insights.model import insight_to_json
        from vigil.insights.persist import load_insights

        for i in load_insights(store, tenant):
            if i.id == insight_id:
                return insight_to_json(i)
        raise HTTPException(404, f"no insight {insight_id!r} in this tenant: list them with "
                                 "GET /api/v1/insights")

    @app.get("/api/v1/anomalies", tags=["outputs"])
    def anomalies(request: Request, since: str | None = None, until: str | None = None,
                  limit: int = Query(1000, ge=1, le=100_000)) -> list[dict[str, Any]]:
        """Anomaly intervals (``anomaly_score > 1``) that end at or after ``since`` and start
        before ``until`` (RFC 3339 or epoch seconds), newest first."""
        tenant = tenant_of(request, "anomalies")
        try:
            lo = parse_time(since) if since else None
            hi = parse_time(until) if until else None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        table = store.read_table(tenant, "anomalies")
        rows = [] if table is None else table.to_pylist()
        rows = [r for r in rows if (lo is None or r["end"] >= lo) and (hi is None or r["start"]
                                                                          < hi)]
        rows.sort(key=lambda r: (r["start"], r["series_id"]), reverse=True)
        return [{"series_id": str(r["series_id"]), "labels": json.loads(r["labels"]),
                 "start": format_ms(r["start"]), "end": format_ms(r["end"]),
                 "peak_score": r["peak_score"]} for r in rows[:limit]]

    @app.get("/api/v1/series/{series_id}/forecast", tags=["outputs"])
    def forecast(request: Request, series_id: int, horizon: int = Query(12, ge=1, le=2016)
                 ) -> dict[str, Any]:
        """The series' probabilistic forecast (10/50/90% quantiles for the next ``horizon``
        steps, from the model kept by the scheduler) and its newest exhaustion forecast."""
        tenant = tenant_of(request, "forecast")
        from vigil.serve.forecast import series_forecast

        try:
            return series_forecast(store, tenant, config, series_id, horizon)
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0])) from None

    def ledger_call(fn: Any, *args: Any) -> dict[str, Any]:
        try:
            out: dict[str, Any] = fn(store, *args)
            return out
        except KeyError as exc:
            raise HTTPException(404, str(exc.args[0] if exc.args else exc)) from None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/api/v1/decisions/{decision_id}", tags=["ledger"])
    def decision(request: Request, decision_id: str) -> dict[str, Any]:
        """One decision record of the ledger and the checkpoint that signs it
        (docs/ledger.md)."""
        from vigil.ledger import api as ledger

        return ledger_call(ledger.decision, tenant_of(request, "decision"), decision_id)

    @app.get("/api/v1/decisions/{decision_id}/proof", tags=["ledger"])
    def decision_proof(request: Request, decision_id: str,
                       checkpoint: int | None = Query(None, ge=0)) -> dict[str, Any]:
        """Merkle inclusion proof of a decision against a signed checkpoint (by default the
        one that covers it); verify offline with ``vigil.ledger.api.verify_inclusion_proof``."""
        from vigil.ledger import api as ledger

        return ledger_call(ledger.inclusion_proof, tenant_of(request, "proof"), decision_id,
                           checkpoint)

    @app.get("/api/v1/insights/{insight_id}/explain", tags=["ledger"])
    def explain(request: Request, insight_id: str) -> dict[str, Any]:
        """Show your work: data window, band, score, thresholds, events and rules."""
        from vigil.ledger import api as ledger

        return ledger_call(ledger.explain, tenant_of(request, "explain"), insight_id)

    @app.get("/api/v1/ledger/checkpoints", tags=["ledger"])
    def ledger_checkpoints(request: Request) -> dict[str, Any]:
        """The tenant's signed checkpoints and the public key that verifies them."""
        from vigil.ledger import api as ledger

        return ledger_call(ledger.checkpoints, tenant_of(request, "checkpoints"))

    @app.get("/metrics", tags=["outputs"], response_class=PlainTextResponse)
    def metrics(request: Request) -> Response:
        """Prometheus exposition: health and, per scored series, score and band (see
        docs/serve.md for the names)."""
        tenant = tenant_of(request, "metrics")
        return Response(live.render(tenant), media_type="text/plain; version=0.0.4")

    return app
