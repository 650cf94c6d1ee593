"""The service's background work: WAL checkpoints, pulls, scoring ticks and notifications.

Two threads:

* the **checkpointer** moves the WAL into the store every ``checkpoint_every``;
* the **scorer** runs, for each tenant every ``infer_every``, :func:`vigil.engine.detect.
  detect_store` over the columns completed since its cursor (a column ``[t, t + step)`` is scored
  once ``now >= t + step + delay``), continuing the models kept between ticks and refitting them
  on ``fit_window`` every ``fit_every`` or when new series appear (a new series is scored from its
  peers on its first step); then it refreshes the insights, updates ``/metrics`` and syncs
  Alertmanager.  Pull readers run on the same thread before scoring.

``stop()`` (graceful shutdown) lets the running tick finish, then checkpoints the WAL one last
time, so everything acknowledged is in the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vigil.engine.backtest import BacktestConfig, parse_duration
from vigil.engine.detect import detect_store
from vigil.engine.limits import LimitPair
from vigil.insights.persist import load_insights
from vigil.models.defaults import default_factory
from vigil.serve.alertmanager import AlertmanagerSink
from vigil.serve.config import ServeConfig
from vigil.serve.exposition import LiveMetrics
from vigil.serve.pull import PullError, Reader
from vigil.serve.remote_out import RemoteWriter

log = logging.getLogger("vigil.serve.scheduler")


class Scheduler:
    def __init__(self, config: ServeConfig, store: Any, wal: Any, live: LiveMetrics,
                 sink: AlertmanagerSink | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self.store, self.wal, self.live, self.sink = config, store, wal, live, sink
        self.clock = clock
        self.readers = [Reader(r) for r in config.readers]
        self.writer = RemoteWriter(config.remote_write) if config.remote_write else None
        sched = config.schedule
        self.infer_every = parse_duration(sched.infer_every) / 1000
        self.checkpoint_every = parse_duration(sched.checkpoint_every) / 1000
        self.delay_ms = parse_duration(sched.delay)
        self.models_root = Path(config.store) / "models"
        self.series_ttl_ms = parse_duration(config.limits.series_ttl)
        self.backtest = BacktestConfig(
            warmup=sched.warmup, refit_every=sched.fit_every, fit_window=sched.fit_window,
            step_ms=parse_duration(sched.step) if sched.step else None,
            forecast_every=sched.forecast_every, horizon=sched.horizon,
            trend_window=sched.trend_window, partitions=config.partitions,
            workers=config.workers,
            limit_pairs=tuple(LimitPair.from_dict(p) for p in config.limit_pairs))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._tick_lock = threading.Lock()
        self.ticks = 0
        self.last_error: str | None = None

    # -- threads -----------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._checkpoint_loop, "vigil-checkpoint"),
                             (self._score_loop, "vigil-score")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 120.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self.checkpoint()
        for r in self.readers:
            r.close()
        if self.sink:
            self.sink.close()
        if self.writer:
            self.writer.close()

    def _checkpoint_loop(self) -> None:
        while not self._stop.wait(self.checkpoint_every):
            try:
                self.checkpoint()
            except Exception:  # keep serving; the WAL still holds the data
                log.exception("WAL checkpoint failed; retrying in %.0f s", self.checkpoint_every)

    def _score_loop(self) -> None:
        while not self._stop.wait(self.infer_every):
            try:
                self.run_once()
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("scoring tick failed; retrying in %.0f s", self.infer_every)

    # -- work --------------------------------------------------------------------------------
    def checkpoint(self) -> int:
        return int(self.wal.checkpoint(self.store).samples)

    def tenants(self) -> list[str]:
        return sorted(set(self.store.tenants()) | {r.cfg.tenant for r in self.readers})

    def run_once(self) -> dict[str, Any]:
        """One scoring pass over every tenant (pulls first); what each tenant's run said."""
        with self._tick_lock:
            for reader in self.readers:
                if reader.due(time.monotonic()):
                    try:
                        reader.pull(self.store, int(self.clock() * 1000))
                    except PullError as exc:
                        log.warning("%s", exc)
            out = {t: self.score_tenant(t) for t in self.tenants()}
            self.ticks += 1
            return out

    def _outputs(self, tenant: str, table: Any) -> None:
        self.live.scores(tenant, table)
        if self.writer is not None:
            self.writer.push(tenant, table)

    def score_tenant(self, tenant: str) -> dict[str, Any]:
        if self.store.time_range(tenant) is None:  # the Delta log's statistics, no scan
            return {"note": "no samples yet"}
        started = time.monotonic()
        until = int(self.clock() * 1000) - self.delay_ms
        try:
            result = detect_store(
                self.store, tenant, default_factory(), until=until, config=self.backtest,
                models_root=self.models_root, fit_every=self.config.schedule.fit_every,
                on_scores=lambda table: self._outputs(tenant, table), complete_only=True)
        except ValueError as exc:  # not enough history yet: warming up
            return {"note": str(exc)}
        insights = load_insights(self.store, tenant)
        # series churn: retired series (no sample within series_ttl, or a staleness marker
        # since their last sample) leave /metrics and the active count
        active = self.store.modelled_active_ids(tenant, until, self.series_ttl_ms)
        self.live.retire(tenant, active)
        self.live.tick(tenant, seconds=time.monotonic() - started,
                       refit=bool(result.get("refit", False)),
                       active=len(active),
                       open_insights=sum(1 for i in insights if i.status == "ongoing"))
        if self.sink is not None:
            self.sink.sync(tenant, insights)
        return result
