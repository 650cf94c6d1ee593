"""Scenario matrix: an independent fleet generator and a detectability benchmark for Vigil.

The generator shares no code, signal shape or incident overlay with ``vigil.simulate``: it is a
second measuring instrument, written from the description of real fleets below, so that Vigil's
figures are not only measured on the data its own simulator makes.

**Fleet.**  One tenant per scrape step (15 s, 1 min, 5 min: ``vigil detect`` aligns a tenant on
one step).  A *service* (labels ``site``, ``namespace``, ``service``, ``job``) runs 1..5 replicas
(``pod``, or ``instance`` for node-level metrics) in one site and emits one metric of one
*family*; every replica is one series.  Families (``FAMILIES``):

* ``gauss``, ``student_t``, ``laplace``: Gaussian / Student-t (3 <= nu <= 8) / Laplace noise,
  AR(1)-correlated (0 <= phi <= 0.6), around a random daily shape (flat-topped business day
  whose edges rise over 1-5 h, a few harmonics, or two peaks; random phase, amplitude, trough)
  in the site's local time, with
  a slow multiplicative drift; levels log-uniform per metric, from 1e-3 s (GC pauses) to 1e10
  bytes/s (network); noise sd a random fraction of the level, optionally growing with the load;
* ``cpu_ratio``: CPU usage ratio in [0, 1], seasonal, Gaussian AR noise, clipped;
* ``poisson`` and ``small_counts``: integer counts per step, Poisson around a seasonal rate
  (3..200 and 0.1..3 per step);
* ``sparse``: mostly zero, bursts (0.5..4 a day, 2..20 min, 2..50 per step);
* ``ratio_low`` / ``ratio_high``: error ratio near 0 / hit ratio near 1, binomial over a
  seasonal request count with over-dispersion (quantised at 1/requests);
* ``flat``: integer gauges (open fds, goroutines) that stay flat with a little noise and step
  up or down rarely (0.1..0.5 a day per replica; the steps are benign and recorded).

Every series has its own scrape offset inside the step, 45% of series carry millisecond
timestamp jitter (sd 1..25 ms; the rest is aligned, as Prometheus' timestamp tolerance does),
and scrape gaps (0..3 runs a day, a few steps each, sometimes a 30-120 min outage).

**Incidents** (``KINDS``): spike, level shift up / down, ramp (leak), stuck at a bound, drop to
near zero, variance change, seasonal-shape change; magnitude in units of the series' own noise
sd at the incident (``MAGNITUDES``); durations ``DURATIONS_MIN``; starting by local day
(10:00-16:30) or night (00:30-05:00), after detect's 3-day warm-up and at least one scored
day (``min_scored_days``), on a random feasible day.  Stuck and drop have their natural
magnitude (to the bound; -85..-100 %): the effective magnitude is recorded for every incident
(``magnitude_peak`` and ``magnitude_mean``: the largest and the mean absolute change of the
expected value over the window in noise sds; for a variance change, the sd ratio).  An
incident hits one replica (``scope`` "replica") or every replica of the service ("service":
a site-wide drop, etc.).  40% of incidents follow a deployment event of their service; every
service also gets benign deployments.  One incident per service; clean services (no incident)
per family count false insights.  The noise sd is the generator's own (for counts sqrt of the
rate; for binomial ratios sqrt(p(1-p)/n + over-dispersion); for ``sparse`` the marginal sd of
the clean series over the 24 h before the incident), never an estimate from Vigil.

**Measured path**: the files a user has: long-format Parquet (or CSV) -> ``vigil ingest`` ->
``vigil events import`` -> ``vigil detect`` (one call per tenant: detect scores from its
warm-up, 3 days, to the end, causally, refitting daily) -> ``vigil insights --format json``;
plus the ``anomalies`` table the store keeps (and its ``scores`` for the diagnosis of misses).

**Scores** (per incident; ``window`` = [start, end + slack], slack = max(2 steps, 5 min)):

* *anomaly recall*: an anomaly interval of one of the incident's series overlaps the window;
  delay = its start (not before the incident start) - incident start;
* *insight recall*: an insight whose member series (``series``) include one of the incident's
  series and whose span [start, end (or data end while ongoing)] overlaps the window; delay =
  ``opened_at`` - incident start (0 if it opened before);
* *false insight*: an insight that overlaps no incident window (widened by 1 h each side) of a
  service among its members.  Rates per 1,000 series-days of the family of its service, where
  series-days count every series of the family over the scored span (after detect's warm-up);
  also split as insights on clean services per 1,000 clean series-days;
* *placebo*: the same two tests on the same series over the same clock window one day
  earlier, where nothing was injected: the share found by chance.

Misses are classified from the ``scores`` the store keeps (:func:`diagnose`).

``python bench/scenarios.py --help``: sizes, seed, families, kinds, steps, days, out dir;
``--quick`` is a smoke size (about a minute), the default (2 incidents per cell, 800) a few
minutes on the 2-core development machine (``--replicates 3``: 5.3 min at 88cc328, 18.5 min
at 8fbb826 under a load of 5-7); ``--src DIR`` measures another vigil source tree (a commit
exported with ``git archive``), ``--keep-store`` then ``--rescore`` scores a finished run again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
START_MS = 1_772_409_600_000  # 2026-03-02T00:00:00Z, a Monday

KINDS = ("spike", "shift_up", "shift_down", "ramp", "stuck", "drop", "variance", "seasonal")
NATURAL_KINDS = ("stuck", "drop")  # their magnitude is the natural one (recorded effective)
MAGNITUDES = (2.0, 3.0, 4.0, 6.0, 10.0)
DURATIONS_MIN = (5, 30, 60, 180, 480)
TODS = ("day", "night")
DAY_HOURS = (10.0, 16.5)  # local start hours of a "day" incident
NIGHT_HOURS = (0.5, 5.0)
DETECT_WARMUP_MS = 3 * DAY_MS  # vigil detect's default --warmup (BacktestConfig.warmup)
GRACE_MS = HOUR_MS  # false insights: incident windows are widened by this much on each side
DEPLOY_BEFORE_P = 0.4  # share of incidents right after a deployment of their service
BENIGN_DEPLOYS_PER_DAY = 0.2  # per service
JITTER_SHARE = 0.45  # series with millisecond timestamp jitter

DEFAULT_DAYS = {300: 8.0, 60: 6.0, 15: 5.5}
DEFAULT_STEP_WEIGHTS = {300: 0.78, 60: 0.15, 15: 0.07}
DEFAULT_CLEAN = {300: 4, 60: 1, 15: 1}  # clean services per family per step


@dataclass(frozen=True)
class Family:
    name: str
    law: str
    metrics: tuple[tuple[str, float, float], ...]  # name, log10 of the lowest/highest level
    kinds: tuple[str, ...]
    upper: float | None = None  # upper bound of the values (lower bound is 0 for all)
    sign: int = 1  # direction of spikes and ramps (-1: a hit ratio falls)
    node_metrics: tuple[str, ...] = ()  # metrics labelled by instance instead of pod


_ALL_BUT_STUCK = ("spike", "shift_up", "shift_down", "ramp", "drop", "variance", "seasonal")
_NO_STUCK_DROP = ("spike", "shift_up", "shift_down", "ramp", "variance", "seasonal")
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("gauss", "gauss", (("http_requests_per_second", -0.5, 3.7),
                              ("node_network_transmit_bytes_per_second", 5.5, 10.0),
                              ("container_cpu_usage_cores", -1.5, 0.9)), _ALL_BUT_STUCK,
           node_metrics=("node_network_transmit_bytes_per_second",)),
    Family("student_t", "student_t", (("http_request_duration_seconds_p99", -2.7, 0.7),
                                      ("grpc_server_handling_seconds_p95", -3.0, -0.3)),
           _NO_STUCK_DROP),
    Family("laplace", "laplace", (("container_memory_working_set_bytes", 7.5, 10.0),
                                  ("jvm_memory_heap_used_bytes", 8.0, 9.7),
                                  ("go_gc_pause_seconds_p99", -3.3, -1.5)), _NO_STUCK_DROP),
    Family("cpu_ratio", "cpu", (("container_cpu_usage_ratio", 0.0, 0.0),),
           ("spike", "shift_up", "shift_down", "ramp", "stuck", "variance", "seasonal"),
           upper=1.0),
    Family("poisson", "poisson", (("jobs_completed_count", 0.5, 2.3),
                                  ("webhook_deliveries_count", 0.5, 2.0)), _ALL_BUT_STUCK),
    Family("small_counts", "poisson", (("http_5xx_responses_count", -1.0, 0.5),
                                       ("db_deadlocks_count", -1.0, 0.3)),
           ("spike", "shift_up", "ramp", "drop", "variance")),
    Family("sparse", "sparse", (("app_exceptions_count", 0.3, 1.7),
                                ("kafka_consumer_rebalances_count", 0.3, 1.2)),
           ("spike", "shift_up", "ramp", "variance")),
    Family("ratio_low", "ratio_low", (("http_requests_error_ratio", -3.7, -1.7),
                                      ("rpc_failed_calls_ratio", -3.7, -2.0)),
           ("spike", "shift_up", "ramp", "stuck", "variance"), upper=1.0),
    Family("ratio_high", "ratio_high", (("cache_hit_ratio", -3.0, -1.3),
                                        ("slo_good_requests_ratio", -3.3, -2.0)),
           ("spike", "shift_down", "ramp", "stuck", "variance"), upper=1.0, sign=-1),
    Family("flat", "flat", (("process_open_fds", 1.0, 3.7), ("go_goroutines", 1.0, 3.5)),
           ("spike", "shift_up", "shift_down", "ramp", "variance")),
)}
SEASONAL_LAWS = ("gauss", "student_t", "laplace", "cpu", "poisson")
CONTINUOUS_LAWS = ("gauss", "student_t", "laplace", "cpu", "flat")

SITES = (("eu-west-1", 0.0), ("eu-central-1", 1.0), ("us-east-1", -5.0), ("us-west-2", -8.0),
         ("ap-south-1", 5.5), ("ap-northeast-1", 9.0), ("sa-east-1", -3.0))
NAMESPACES = ("checkout", "payments", "search", "platform", "media", "identity", "ml-serving",
              "messaging", "catalog", "analytics")
SERVICE_WORDS = ("cart", "ledger", "auth", "billing", "profile", "notify", "geo", "quote",
                 "inventory", "session", "feed", "pricing", "ranker", "mailer", "export",
                 "thumbnail", "invoice", "fraud", "tokens", "orders", "shipping", "reviews")
SERVICE_ROLES = ("api", "worker", "svc", "gateway", "consumer", "writer", "reader", "cache",
                 "proxy", "scheduler")
_ALNUM = "bcdfghjklmnpqrstvwxz2456789"


# ----------------------------------------------------------------------------- plan


@dataclass
class IncidentSpec:
    """One cell of the matrix to place; None fields are drawn at random (seeded)."""

    kind: str
    magnitude: float | None  # None for stuck / drop (natural)
    duration_min: int
    tod: str
    family: str | None = None
    step_s: int | None = None
    scope: str | None = None
    replicas: int | None = None
    deploy: bool | None = None
    metric: str | None = None


@dataclass
class Incident:
    id: str
    tenant: str
    step_s: int
    kind: str
    magnitude: float | None
    duration_min: int
    tod: str
    family: str
    metric: str
    scope: str
    replicas: int
    service: dict[str, str]
    series: list[dict[str, str]]
    start_ms: int
    end_ms: int
    local_hour: float
    noise_sd: float
    magnitude_peak: float
    magnitude_mean: float
    deploy_event: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def window(self) -> tuple[int, int]:
        """[start, end + slack]: the window an anomaly or insight must overlap."""
        return self.start_ms, self.end_ms + slack_ms(self.step_s)


def slack_ms(step_s: int) -> int:
    return max(2 * step_s * 1000, 5 * MINUTE_MS)


@dataclass
class Config:
    seed: int = 1
    steps: tuple[int, ...] = (300, 60, 15)
    days: dict[int, float] = field(default_factory=lambda: dict(DEFAULT_DAYS))
    step_weights: dict[int, float] = field(default_factory=lambda: dict(DEFAULT_STEP_WEIGHTS))
    clean_per_family: dict[int, int] = field(default_factory=lambda: dict(DEFAULT_CLEAN))
    kinds: tuple[str, ...] = KINDS
    families: tuple[str, ...] = tuple(FAMILIES)
    magnitudes: tuple[float, ...] = MAGNITUDES
    durations_min: tuple[int, ...] = DURATIONS_MIN
    tods: tuple[str, ...] = TODS
    replicates: int = 2
    max_replicas: int = 5
    min_scored_days: float = 1.0  # scored history (after detect's warm-up) before an incident
    fmt: str = "parquet"
    specs: list[IncidentSpec] | None = None  # explicit incidents instead of the matrix


def plan_matrix(cfg: Config, rng: np.random.Generator) -> list[IncidentSpec]:
    """The matrix kinds x magnitudes x durations x time of day, ``replicates`` times; stuck
    and drop (natural magnitude) are repeated len(magnitudes) times so that each kind has as
    many incidents.  Families, steps, scopes and replica counts are drawn at random."""
    specs: list[IncidentSpec] = []
    for kind in cfg.kinds:
        if not [f for f in cfg.families if kind in FAMILIES[f].kinds]:
            continue
        mags: list[float | None] = (
            [None] * len(cfg.magnitudes) if kind in NATURAL_KINDS else list(cfg.magnitudes))
        for mag in mags:
            for dur in cfg.durations_min:
                for tod in cfg.tods:
                    specs.extend(IncidentSpec(kind, mag, dur, tod) for _ in range(cfg.replicates))
    steps = np.array(cfg.steps)
    weights = np.array([cfg.step_weights.get(int(s), 0.0) for s in steps], dtype=float)
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(steps), 1 / len(steps))
    for spec in specs:
        spec.step_s = int(rng.choice(steps, p=weights))
    return specs


def _fill_spec(spec: IncidentSpec, cfg: Config, rng: np.random.Generator) -> IncidentSpec:
    fams = [f for f in cfg.families if spec.kind in FAMILIES[f].kinds]
    if spec.family is None:
        if not fams:
            raise ValueError(f"no selected family supports incident kind {spec.kind!r}")
        spec.family = str(rng.choice(fams))
    elif spec.kind not in FAMILIES[spec.family].kinds:
        raise ValueError(f"family {spec.family!r} does not support incident kind {spec.kind!r}")
    if spec.replicas is None:
        spec.replicas = int(rng.integers(1, cfg.max_replicas + 1))
    if spec.scope is None:
        p_service = 0.6 if spec.kind == "drop" else 0.2
        spec.scope = "service" if rng.random() < p_service else "replica"
    if spec.deploy is None:
        spec.deploy = bool(rng.random() < DEPLOY_BEFORE_P)
    return spec


# ----------------------------------------------------------------------------- shapes


def _vm(h: np.ndarray, centre: float, kappa: float) -> np.ndarray:
    """A smooth periodic bump over the hour of day (von Mises), 1 at ``centre``."""
    return np.exp(kappa * (np.cos(2 * np.pi * (h - centre) / 24.0) - 1.0))


def draw_daily_shape(rng: np.random.Generator) -> dict[str, Any]:
    kind = str(rng.choice(["business", "harmonics", "two_peaks"]))
    if kind == "business":
        # edges rise 10 -> 90 % in about 1 to 5 hours (people arriving, not a switch)
        return {"kind": kind, "centre": rng.uniform(11.5, 16.5), "width": rng.uniform(7, 14),
                "sharp": rng.uniform(0.7, 5.0)}
    if kind == "harmonics":
        return {"kind": kind, "amps": [1.0, rng.uniform(0, 0.5), rng.uniform(0, 0.25)],
                "phases": [rng.uniform(12, 20), rng.uniform(0, 12), rng.uniform(0, 8)]}
    return {"kind": kind, "c1": rng.uniform(7, 11), "k1": rng.uniform(2, 12),
            "c2": rng.uniform(17, 22), "k2": rng.uniform(2, 12), "w2": rng.uniform(0.4, 1.3)}


def _raw_shape(p: dict[str, Any], h: np.ndarray) -> np.ndarray:
    if p["kind"] == "business":
        x = np.cos(2 * np.pi * (h - p["centre"]) / 24.0) - np.cos(np.pi * p["width"] / 24.0)
        return 1.0 / (1.0 + np.exp(-p["sharp"] * x * 4.0))
    if p["kind"] == "harmonics":
        out = np.zeros_like(h, dtype=float)
        for j, (a, ph) in enumerate(zip(p["amps"], p["phases"], strict=True), start=1):
            out += a * np.cos(2 * np.pi * j * (h - ph) / 24.0)
        return out
    return _vm(h, p["c1"], p["k1"]) + p["w2"] * _vm(h, p["c2"], p["k2"])


def daily_shape(p: dict[str, Any], h: np.ndarray) -> np.ndarray:
    """The shape normalised to [0, 1] over the day (``h``: local hour, any real)."""
    grid = np.linspace(0, 24, 1441)
    ref = _raw_shape(p, grid)
    lo, hi = float(ref.min()), float(ref.max())
    return (_raw_shape(p, np.mod(h, 24.0)) - lo) / max(hi - lo, 1e-12)


def ar1(z: np.ndarray, phi: float) -> np.ndarray:
    """AR(1) filter along the last axis with unit marginal variance (truncated kernel)."""
    if phi <= 0:
        return z
    out = z.copy()
    term = z
    coef = 1.0
    for _ in range(1, 80):
        coef *= phi
        if coef < 1e-9:
            break
        term = np.concatenate([np.zeros_like(z[..., :1]), term[..., :-1]], axis=-1)
        out = out + coef * term
    return out * math.sqrt(1 - phi * phi)


def _unit_noise(rng: np.random.Generator, law: str, shape: tuple[int, int],
                nu: float) -> np.ndarray:
    if law == "student_t":
        return rng.standard_t(nu, size=shape) / math.sqrt(nu / (nu - 2.0))
    if law == "laplace":
        return rng.laplace(0.0, 1.0 / math.sqrt(2.0), size=shape)
    return rng.standard_normal(shape)


# ----------------------------------------------------------------------------- services


@dataclass
class Service:
    tenant: str
    step_s: int
    family: str
    metric: str
    site: str
    tz_h: float
    namespace: str
    name: str
    instances: list[str]
    spec: IncidentSpec | None
    index: int

    def labels(self) -> list[dict[str, str]]:
        key = "instance" if self.metric in FAMILIES[self.family].node_metrics else "pod"
        return [{"__name__": self.metric, "site": self.site, "namespace": self.namespace,
                 "service": self.name, "job": f"{self.namespace}/{self.name}", key: inst}
                for inst in self.instances]

    def group(self) -> dict[str, str]:
        return {"site": self.site, "namespace": self.namespace, "service": self.name}


@dataclass
class Generated:
    """One service's data: ``ts`` int64 ms and ``y`` (NaN: no sample) ``[replicas, T]``;
    with ``keep``: the clean expected value ``mu``, noise sd ``sd``, the draw without the
    incident ``y_clean`` (same noise where the law allows) and the incident's ``mu_inc``."""

    ts: np.ndarray
    y: np.ndarray
    incident: Incident | None
    params: dict[str, Any]
    benign: list[dict[str, Any]]
    mu: np.ndarray | None = None
    sd: np.ndarray | None = None
    y_clean: np.ndarray | None = None
    mu_inc: np.ndarray | None = None


def _pod_name(rng: np.random.Generator, service: str) -> str:
    a = "".join(rng.choice(list(_ALNUM), size=int(rng.integers(9, 11))))
    b = "".join(rng.choice(list(_ALNUM), size=5))
    return f"{service}-{a}-{b}"


def _instance_name(rng: np.random.Generator) -> str:
    return f"10.{rng.integers(0, 64)}.{rng.integers(0, 256)}.{rng.integers(2, 255)}:9100"


def _tod_hours(tod: str) -> tuple[float, float]:
    return DAY_HOURS if tod == "day" else NIGHT_HOURS


def place_start(rng: np.random.Generator, tod: str, tz_h: float, earliest: int,
                latest: int) -> tuple[int, float]:
    """A start time at a random local hour of ``tod`` on a random feasible day."""
    for _ in range(200):
        hour = float(rng.uniform(*_tod_hours(tod)))
        offset = round((hour - tz_h) * HOUR_MS)
        days = [d for d in range(-2, 60)
                if earliest <= START_MS + d * DAY_MS + offset <= latest]
        if days:
            d = int(rng.choice(days))
            start = START_MS + d * DAY_MS + offset
            return start - start % 1000, hour
    raise ValueError("no room for the incident: use more --days or shorter durations")


class Generator:
    """Builds one tenant (one step) of the fleet; everything is drawn from ``seed``."""

    def __init__(self, cfg: Config, step_s: int, specs: list[IncidentSpec]) -> None:
        self.cfg = cfg
        self.step_s = step_s
        self.step_ms = step_s * 1000
        self.tenant = f"s{step_s}"
        self.days = float(cfg.days[step_s])
        self.n_steps = round(self.days * DAY_MS / self.step_ms)
        self.end_ms = START_MS + self.n_steps * self.step_ms
        self.rng = np.random.default_rng([cfg.seed, step_s, 0])
        self.sites = [SITES[i] for i in sorted(self.rng.choice(
            len(SITES), size=int(self.rng.integers(2, 5)), replace=False))]
        self.services = self._services(specs)

    def scored_start(self) -> int:
        first = START_MS - START_MS % self.step_ms
        return first + DETECT_WARMUP_MS

    def _services(self, specs: list[IncidentSpec]) -> list[Service]:
        rng = self.rng
        todo: list[tuple[str, IncidentSpec | None]] = []
        for planned in specs:
            _fill_spec(planned, self.cfg, rng)
            assert planned.family is not None
            todo.append((planned.family, planned))
        for fam in self.cfg.families:
            todo.extend((fam, None) for _ in range(self.cfg.clean_per_family.get(self.step_s, 0)))
        used: set[tuple[str, str, str]] = set()
        out: list[Service] = []
        for index, (fam, spec) in enumerate(todo):
            site, tz = self.sites[int(rng.integers(len(self.sites)))]
            while True:
                ns = str(rng.choice(NAMESPACES))
                name = f"{rng.choice(SERVICE_WORDS)}-{rng.choice(SERVICE_ROLES)}"
                if (site, ns, name) not in used:
                    used.add((site, ns, name))
                    break
            family = FAMILIES[fam]
            metric = family.metrics[int(rng.integers(len(family.metrics)))][0]
            if spec is not None and spec.metric is not None:
                if spec.metric not in [m for m, _, _ in family.metrics]:
                    raise ValueError(f"metric {spec.metric!r} is not one of family {fam!r}")
                metric = spec.metric
            k = spec.replicas if spec is not None and spec.replicas else int(
                rng.integers(1, self.cfg.max_replicas + 1))
            node = metric in family.node_metrics
            insts = [_instance_name(rng) if node else _pod_name(rng, name) for _ in range(k)]
            out.append(Service(self.tenant, self.step_s, fam, metric, site, tz, ns, name, insts,
                               spec, index))
        return out

    # --- one service ----------------------------------------------------------------------

    def generate(self, svc: Service, keep: bool = False) -> Generated:
        rng = np.random.default_rng([self.cfg.seed, self.step_s, 1, svc.index])
        fam = FAMILIES[svc.family]
        k, n_t = len(svc.instances), self.n_steps
        # timestamps: a scrape offset per series, ms jitter for some, all on the step grid
        base = START_MS + np.arange(n_t, dtype=np.int64) * self.step_ms
        offsets = rng.integers(0, self.step_ms, size=k)
        jitter_sd = np.where(rng.random(k) < JITTER_SHARE, rng.uniform(1, 25, size=k), 0.0)
        jit = np.rint(rng.standard_normal((k, n_t)) * jitter_sd[:, None]).astype(np.int64)
        ts = base[None, :] + offsets[:, None] + jit
        hours = (ts / HOUR_MS + svc.tz_h)
        params: dict[str, Any] = {"offsets_ms": offsets.tolist(),
                                  "jitter_sd_ms": np.round(jitter_sd, 2).tolist()}
        mu, sd, extra = self._latent(fam, svc, rng, ts, hours, params)
        benign: list[dict[str, Any]] = []
        inc: Incident | None = None
        mu_inc, mult, stuck = mu, np.ones_like(mu), None
        if svc.spec is not None:
            inc, mu_inc, mult, stuck = self._incident(svc, fam, rng, ts, hours, mu, sd, extra,
                                                      params)
        self._benign_changes(fam, svc, rng, ts, mu, mu_inc, extra, inc, benign)
        noise_seed = [self.cfg.seed, self.step_s, 2, svc.index]
        y = self._observe(fam, np.random.default_rng(noise_seed), mu_inc, sd, mult, extra)
        if stuck is not None:
            y = np.where(np.isnan(stuck), y, stuck)
        y_clean = (self._observe(fam, np.random.default_rng(noise_seed), mu, sd,
                                 np.ones_like(mu), extra) if keep else None)
        gaps = self._gaps(rng, k, n_t, ts, inc)
        y = np.where(gaps, np.nan, y)
        if y_clean is not None:
            y_clean = np.where(gaps, np.nan, y_clean)
        return Generated(ts, y, inc, params, benign, mu if keep else None,
                         sd if keep else None, y_clean, mu_inc if keep else None)

    def _latent(self, fam: Family, svc: Service, rng: np.random.Generator, ts: np.ndarray,
                hours: np.ndarray, params: dict[str, Any]
                ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Expected value ``mu`` and noise sd ``sd`` ``[k, T]`` of the clean series."""
        k, n_t = ts.shape
        lo, hi = next((a, b) for m, a, b in fam.metrics if m == svc.metric)
        level = 10 ** rng.uniform(lo, hi)
        shape_p = draw_daily_shape(rng)
        phase = rng.uniform(-10, 10, size=(k, 1)) / 60.0  # replicas: minutes apart
        shape = daily_shape(shape_p, hours + phase)
        share = rng.uniform(0.85, 1.15, size=(k, 1))
        # slow drift: a random walk over hourly knots, shared by the replicas
        knots = int(self.days * 24) + 3
        walk = np.cumsum(rng.standard_normal(knots)) * rng.uniform(0, 0.04) / math.sqrt(24)
        drift = np.exp(np.interp((ts - START_MS) / HOUR_MS, np.arange(knots) - 1, walk))
        trough = rng.uniform(0.1, 0.8)
        extra: dict[str, Any] = {"shape": shape_p, "phase_h": phase[:, 0].tolist(),
                                 "nu": rng.uniform(3, 8), "phi": rng.uniform(0, 0.6)}
        law = fam.law
        if law == "gauss":
            mu = level * share * drift * (trough + (1 - trough) * shape)
            gamma = rng.uniform(0, 1)
            cv = 10 ** rng.uniform(-2, -1)
            sd = cv * level * share * (mu / (level * share)) ** gamma
            extra["gamma"] = gamma
        elif law in ("student_t", "laplace"):
            amp = rng.uniform(0.05, 1.0) if law == "student_t" else rng.uniform(0.0, 0.5)
            mu = level * share * drift * (1 + amp * shape)
            cv = 10 ** (rng.uniform(-1.7, -0.8) if law == "student_t" else
                        rng.uniform(-2.5, -1.0))
            sd = cv * mu
            if svc.metric.endswith("_bytes"):
                extra["quantum"] = 4096.0
        elif law == "cpu":
            base_lo = rng.uniform(0.02, 0.35)
            span = rng.uniform(0.03, 0.55)
            mu = np.minimum(0.95, (base_lo + span * shape) * drift)
            sd = np.full((k, n_t), rng.uniform(0.003, 0.04))
        elif law == "poisson":
            mu = level * share * drift * (trough * 0.5 + (1 - trough * 0.5) * shape)
            mu = mu * (self.step_s / 60.0) ** 0.5  # longer steps count more
            sd = np.sqrt(mu)
        elif law == "sparse":
            mu = self._bursts(rng, k, ts, level, extra)
            sd = np.zeros_like(mu)  # the noise unit is set per incident (module doc)
        elif law in ("ratio_low", "ratio_high"):
            requests = 10 ** rng.uniform(1.2, 3.5) * (self.step_s / 60.0)
            n_req = np.maximum(1.0, np.rint(requests * share * drift * (trough + (1 - trough)
                                                                          * shape)))
            p0 = 10 ** rng.uniform(lo, hi)
            kappa = 10 ** rng.uniform(0.7, 2.0)
            extra.update(requests=n_req, kappa=kappa, p0=p0)
            var = p0 * (1 - p0) / n_req + p0 * p0 / kappa
            sd = np.sqrt(var)
            mu = np.full((k, n_t), p0 if law == "ratio_low" else 1.0 - p0)
        elif law == "flat":
            lvl = np.rint(level * share)
            mu = np.repeat(lvl, n_t, axis=1).astype(float)
            sd = np.repeat(np.maximum(0.4, lvl * rng.uniform(0.001, 0.01)), n_t, axis=1)
        else:  # pragma: no cover - every family law is handled above
            raise ValueError(law)
        params.update({"level": level, "trough": trough,
                       **{key: v for key, v in extra.items() if key != "requests"}})
        return mu, sd, extra

    def _bursts(self, rng: np.random.Generator, k: int, ts: np.ndarray, level: float,
                extra: dict[str, Any]) -> np.ndarray:
        base = 10 ** rng.uniform(-3.5, -1.5)
        rate_day = rng.uniform(0.5, 4.0)
        lam = np.full(ts.shape, base)
        bursts: list[list[int]] = []
        for r in range(k):
            n_b = rng.poisson(rate_day * self.days)
            for _ in range(n_b):
                t0 = int(rng.integers(ts[r, 0], ts[r, -1]))
                dur = int(rng.uniform(2, 20) * MINUTE_MS)
                height = level * 10 ** rng.uniform(-0.3, 0.3) * (self.step_s / 60.0) ** 0.5
                sel = (ts[r] >= t0) & (ts[r] < t0 + max(dur, self.step_ms))
                lam[r, sel] += height
                bursts.append([r, t0, dur])
        extra["bursts"] = bursts
        extra["burst_base"] = base
        return lam

    def _incident(self, svc: Service, fam: Family, rng: np.random.Generator, ts: np.ndarray,
                  hours: np.ndarray, mu: np.ndarray, sd: np.ndarray, extra: dict[str, Any],
                  params: dict[str, Any]
                  ) -> tuple[Incident, np.ndarray, np.ndarray, np.ndarray | None]:
        spec = svc.spec
        assert spec is not None and spec.scope is not None
        k = len(svc.instances)
        dur_ms = spec.duration_min * MINUTE_MS
        tail = slack_ms(self.step_s) + 2 * HOUR_MS  # room after the end to see it close
        earliest = self.scored_start() + int(self.cfg.min_scored_days * DAY_MS)
        start, local_hour = place_start(rng, spec.tod, svc.tz_h, earliest,
                                        self.end_ms - dur_ms - tail)
        end = start + dur_ms
        targets = list(range(k)) if spec.scope == "service" else [int(rng.integers(k))]
        win = (ts >= start) & (ts < end)
        hit = np.zeros((k, 1), dtype=bool)
        hit[targets] = True
        mask = win & hit
        tau = np.clip((ts - start + self.step_ms) / dur_ms, 0.0, 1.0)  # last sample: 1
        # the noise unit at the incident
        if fam.law == "sparse":
            before = (ts >= start - DAY_MS) & (ts < start) & hit
            lam = mu[before]
            noise = float(math.sqrt(max(lam.mean() + lam.var(), 1e-12)))
        else:
            noise = float(np.median(sd[mask]))
        m = spec.magnitude
        detail: dict[str, Any] = {}
        mu_inc = mu.copy()
        mult = np.ones_like(mu)
        stuck: np.ndarray | None = None
        upper = fam.upper
        kind = spec.kind
        sign = -1 if kind == "shift_down" else (fam.sign if kind in ("spike", "ramp") else 1)
        if kind in ("spike", "shift_up", "shift_down", "ramp", "seasonal"):
            assert m is not None
            if kind == "spike":
                form = str(rng.choice(["pulse", "decay", "triangle"]))
                tau0 = np.clip((ts - start) / dur_ms, 0.0, 1.0)
                if form == "pulse":
                    prof = np.ones_like(tau0)
                elif form == "decay":
                    prof = np.exp(-tau0 * rng.uniform(2, 4))
                else:
                    peak = rng.uniform(0.1, 0.4)
                    prof = np.where(tau0 < peak, 0.5 + 0.5 * tau0 / peak,
                                    1 - 0.9 * (tau0 - peak) / (1 - peak))
                detail["form"] = form
            elif kind == "ramp":
                curve = rng.uniform(0.7, 1.5)
                prof = tau ** curve
                detail["curve"] = curve
            elif kind == "seasonal":
                shift_h = rng.choice([-1, 1]) * rng.uniform(2, 8)
                sp = extra["shape"]
                diff = daily_shape(sp, hours - shift_h) - daily_shape(sp, hours)
                ref = np.linspace(0, 24, 1441)
                scale = float(np.max(np.abs(daily_shape(sp, ref - shift_h)
                                            - daily_shape(sp, ref))))
                prof = diff / max(scale, 1e-9)
                detail["shift_hours"] = float(shift_h)
            else:
                prof = np.ones_like(mu)
            mu_inc = np.where(mask, mu + sign * m * noise * prof, mu)
        elif kind == "variance":
            assert m is not None
            mult = np.where(mask, m, 1.0)
        elif kind == "drop":
            frac = float(rng.uniform(0.85, 1.0))
            mu_inc = np.where(mask, mu * (1 - frac), mu)
            if fam.law == "gauss":
                mult = np.where(mask, (1 - frac) ** extra.get("gamma", 0.5), 1.0)
            detail["drop_fraction"] = frac
        elif kind == "stuck":
            if fam.law == "cpu":
                bound = 1.0 if rng.random() < 0.75 else 0.0
            else:
                bound = float(rng.choice([0.0, 1.0]))
            stuck = np.full_like(mu, np.nan)
            stuck[mask] = bound
            if fam.law == "cpu" and bound == 1.0 and rng.random() < 0.5:
                stuck[mask] = 1.0 - np.abs(rng.normal(0, 0.001, size=int(mask.sum())))
            detail["bound"] = bound
        # effective magnitude from the expected values (clipped to the bounds)
        lo_b, hi_b = 0.0, (upper if upper is not None else np.inf)
        clean_e = np.clip(mu, lo_b, hi_b)
        if kind == "stuck":
            inc_e = np.where(mask, detail["bound"], clean_e)
        else:
            inc_e = np.clip(mu_inc, lo_b, hi_b)
        delta = np.abs(inc_e - clean_e)[mask] / max(noise, 1e-300)
        if kind == "variance":
            assert m is not None
            peak_m = mean_m = float(m)
        else:
            peak_m, mean_m = float(delta.max()), float(delta.mean())
        labels = svc.labels()
        inc = Incident(
            id=f"{svc.tenant}-inc-{svc.index:04d}", tenant=svc.tenant, step_s=self.step_s,
            kind=kind, magnitude=m, duration_min=spec.duration_min, tod=spec.tod,
            family=svc.family, metric=svc.metric, scope=spec.scope, replicas=k,
            service=svc.group(), series=[labels[i] for i in targets], start_ms=int(start),
            end_ms=int(end), local_hour=round(local_hour, 3), noise_sd=noise,
            magnitude_peak=round(peak_m, 4), magnitude_mean=round(mean_m, 4),
            deploy_event=bool(spec.deploy), detail=detail)
        inc.detail["targets"] = targets
        return inc, mu_inc, mult, stuck

    def _benign_changes(self, fam: Family, svc: Service, rng: np.random.Generator,
                        ts: np.ndarray, mu: np.ndarray, mu_inc: np.ndarray,
                        extra: dict[str, Any], inc: Incident | None,
                        benign: list[dict[str, Any]]) -> None:
        """Rare level steps of the flat family (benign, recorded), kept 2 h away from the
        incident window so that a detection there is the incident's."""
        if fam.law != "flat":
            return
        rate = rng.uniform(0.1, 0.5)
        for r in range(ts.shape[0]):
            for _ in range(rng.poisson(rate * self.days)):
                t0 = int(rng.integers(ts[r, 0], ts[r, -1]))
                if inc is not None and inc.start_ms - 2 * HOUR_MS <= t0 <= inc.end_ms + 2 * HOUR_MS:
                    continue
                size = float(np.rint(mu[r, 0] * rng.normal(0, 0.12)))
                if size == 0:
                    size = float(rng.choice([-1.0, 1.0]))
                after = ts[r] >= t0
                new = np.maximum(1.0, mu[r, after] + size) - mu[r, after]
                mu[r, after] += new
                if mu_inc is not mu:
                    mu_inc[r, after] += new
                benign.append({"series": r, "time_ms": t0, "size": size})

    def _observe(self, fam: Family, rng: np.random.Generator, mu: np.ndarray, sd: np.ndarray,
                 mult: np.ndarray, extra: dict[str, Any]) -> np.ndarray:
        law = fam.law
        shape = mu.shape
        if law in CONTINUOUS_LAWS:
            z = ar1(_unit_noise(rng, "gauss" if law in ("cpu", "flat") else law, shape,
                                extra["nu"]), extra["phi"] if law != "flat" else 0.0)
            y = mu + sd * mult * z
            if law == "cpu":
                return np.clip(y, 0.0, 1.0)
            if law == "flat":
                return np.maximum(0.0, np.rint(y))
            if law == "gauss":
                return np.maximum(y, 0.0)
            floor = 0.05 * float(np.median(mu))
            y = np.maximum(y, floor)
            q = extra.get("quantum")
            return np.rint(y / q) * q if q else y
        if law in ("poisson", "sparse"):
            lam = np.maximum(mu, 0.0)
            over = mult > 1
            if over.any():  # over-dispersion: var = m^2 * lam (gamma-Poisson mixture)
                v = np.where(over, (mult ** 2 - 1) / np.maximum(lam, 1e-9), 0.0)
                g = rng.gamma(np.where(over, 1 / np.maximum(v, 1e-12), 1.0),
                              np.where(over, v, 1.0))
                lam = np.where(over, lam * g, lam)
            return rng.poisson(lam).astype(float)
        # binomial ratios: errors (or misses) of requests
        n_req = extra["requests"]
        kappa = extra["kappa"]
        p = mu if law == "ratio_low" else 1.0 - mu
        p = np.clip(p, 0.0, 1.0)
        p = p * rng.gamma(kappa, 1.0 / kappa, size=shape)
        over = mult > 1
        if over.any():
            p = p + np.where(over, rng.standard_normal(shape) * np.sqrt(mult ** 2 - 1) * sd, 0)
        bad = rng.binomial(n_req.astype(np.int64), np.clip(p, 0.0, 1.0))
        ratio = bad / n_req
        return ratio if law == "ratio_low" else 1.0 - ratio

    def _gaps(self, rng: np.random.Generator, k: int, n_t: int, ts: np.ndarray,
              inc: Incident | None) -> np.ndarray:
        """Scrape gaps (True: missing); never inside an incident window of a hit series."""
        gaps = np.zeros((k, n_t), dtype=bool)
        steps_min = max(1, MINUTE_MS // self.step_ms)
        for r in range(k):
            for _ in range(rng.poisson(rng.uniform(0, 3) * self.days)):
                at = int(rng.integers(n_t))
                gaps[r, at:at + int(rng.geometric(1 / (2 * steps_min + 1)))] = True
            if rng.random() < 0.1:
                at = int(rng.integers(n_t))
                gaps[r, at:at + int(rng.uniform(30, 120) * MINUTE_MS / self.step_ms)] = True
        if inc is not None:
            for r in inc.detail["targets"]:
                gaps[r, (ts[r] >= inc.start_ms) & (ts[r] < inc.end_ms)] = False
        return gaps

    def events(self, incidents: dict[int, Incident]) -> list[dict[str, Any]]:
        """Deployments: right before the incidents that follow one, plus benign ones."""
        rng = np.random.default_rng([self.cfg.seed, self.step_s, 3])
        out: list[dict[str, Any]] = []
        for svc in self.services:
            grp = svc.group()
            version = [1, int(rng.integers(0, 20)), int(rng.integers(0, 30))]
            times = [int(rng.integers(START_MS, self.end_ms))
                     for _ in range(rng.poisson(BENIGN_DEPLOYS_PER_DAY * self.days))]
            inc = incidents.get(svc.index)
            if inc is not None and inc.deploy_event:
                lead = int(rng.uniform(30_000, 8 * MINUTE_MS))
                times.append(inc.start_ms - lead)
                inc.detail["deploy_lead_s"] = lead / 1000
            for t in sorted(times):  # nothing in an event tells which one caused an incident
                version[2] += 1
                v = ".".join(map(str, version))
                out.append({"time": _rfc3339(t), "kind": "deployment", "labels": grp,
                            "summary": f"{svc.name} {v} rolled out in {svc.site}",
                            "attributes": {"version": v}})
        out.sort(key=lambda e: e["time"])
        return out


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ----------------------------------------------------------------------------- writing


_LABEL_COLUMNS = ("__name__", "site", "namespace", "service", "job", "pod", "instance")


def _long_table(labels: list[dict[str, str]], gen: Generated) -> pa.Table:
    keep = ~np.isnan(gen.y)
    counts = keep.sum(axis=1)
    rows = np.repeat(np.arange(len(labels)), counts)
    cols: dict[str, Any] = {"timestamp": pa.array(gen.ts[keep], pa.int64()),
                            "value": pa.array(gen.y[keep], pa.float64())}
    for name in _LABEL_COLUMNS:
        values = [lab.get(name) for lab in labels]
        cols[name] = pa.DictionaryArray.from_arrays(
            pa.array(rows.astype(np.int32)), pa.array(values, pa.string())
        ).cast(pa.string())
    return pa.table(cols)


def generate_fleet(cfg: Config, out: Path, keep: bool = False,
                   say: Callable[[str], None] = print) -> dict[str, Any]:
    """Write ``out/data/<tenant>.<fmt>``, ``out/events/<tenant>.jsonl`` and
    ``out/truth.json``; returns the truth (with ``generated`` per tenant when ``keep``)."""
    rng = np.random.default_rng([cfg.seed, 99])
    specs = list(cfg.specs) if cfg.specs is not None else plan_matrix(cfg, rng)
    for step_s in cfg.steps:
        if cfg.days[step_s] < min_days(cfg, step_s):
            raise ValueError(f"{cfg.days[step_s]:g} days for step {step_s} s is too short "
                             f"(>= {min_days(cfg, step_s):.2f}: see min_days)")
    for spec in specs:
        if spec.step_s is None:
            spec.step_s = cfg.steps[0]
        if spec.step_s not in cfg.steps:
            raise ValueError(f"incident step {spec.step_s} s is not among --steps {cfg.steps}")
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "events").mkdir(parents=True, exist_ok=True)
    truth: dict[str, Any] = {"seed": cfg.seed, "start": _rfc3339(START_MS), "tenants": {},
                             "series": [], "incidents": [], "benign_steps": [],
                             "config": _config_json(cfg)}
    kept: dict[str, list[tuple[Service, Generated]]] = {}
    for step_s in cfg.steps:
        gen = Generator(cfg, step_s, [s for s in specs if s.step_s == step_s])
        path = out / "data" / f"{gen.tenant}.{cfg.fmt}"
        writer: pq.ParquetWriter | None = None
        csv_parts: list[pa.Table] = []
        incidents: dict[int, Incident] = {}
        n_rows = 0
        t0 = time.perf_counter()
        for svc in gen.services:
            g = gen.generate(svc, keep=keep)
            labels = svc.labels()
            table = _long_table(labels, g)
            n_rows += table.num_rows
            if cfg.fmt == "parquet":
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema, compression="zstd")
                writer.write_table(table)
            else:
                csv_parts.append(table)
            if g.incident is not None:
                incidents[svc.index] = g.incident
            for lab in labels:
                truth["series"].append({"tenant": gen.tenant, "labels": lab,
                                        "family": svc.family, "service_index": svc.index,
                                        "clean": svc.spec is None})
            for b in g.benign:
                truth["benign_steps"].append({"tenant": gen.tenant, "series": labels[b["series"]],
                                              "time": _rfc3339(b["time_ms"]), "size": b["size"]})
            if keep:
                kept.setdefault(gen.tenant, []).append((svc, g))
        if writer is not None:
            writer.close()
        if cfg.fmt == "csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(pa.concat_tables(csv_parts), path)
        events = gen.events(incidents)
        truth["incidents"].extend(asdict(incidents[i]) for i in sorted(incidents))
        with open(out / "events" / f"{gen.tenant}.jsonl", "w") as fh:
            for e in events:
                fh.write(json.dumps(e, sort_keys=True) + "\n")
        truth["tenants"][gen.tenant] = {
            "step_s": step_s, "days": gen.days, "start_ms": START_MS, "end_ms": gen.end_ms,
            "scored_start_ms": gen.scored_start(), "services": len(gen.services),
            "series": sum(len(s.instances) for s in gen.services), "rows": n_rows,
            "incidents": len(incidents), "events": len(events),
            "sites": [s for s, _ in gen.sites], "data": str(path.relative_to(out)),
            "events_file": f"events/{gen.tenant}.jsonl"}
        say(f"  {gen.tenant}: {len(gen.services)} services, "
            f"{truth['tenants'][gen.tenant]['series']} series, {n_rows:,} samples, "
            f"{len(incidents)} incidents, {len(events)} events "
            f"({time.perf_counter() - t0:.1f} s)")
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    if keep:
        truth["generated"] = kept
    return truth


def _config_json(cfg: Config) -> dict[str, Any]:
    d = asdict(cfg)
    d["specs"] = None if cfg.specs is None else [asdict(s) for s in cfg.specs]
    return {k: ({str(a): b for a, b in v.items()} if isinstance(v, dict) else v)
            for k, v in d.items()}


# ----------------------------------------------------------------------------- running vigil


def vigil_binary(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    local = ROOT / ".venv" / "bin" / "vigil"
    if local.exists():
        return str(local)
    found = shutil.which("vigil")
    if not found:
        raise SystemExit("vigil is not installed: run bash scripts/install.sh or pass --vigil")
    return found


def _cli(vigil: str, args: Sequence[str], log: Path, src: Path | None = None) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    if src is not None:  # measure another source tree of vigil (e.g. a commit's export)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    t0 = time.perf_counter()
    res = subprocess.run([vigil, *args], capture_output=True, text=True, env=env, check=False)
    with open(log, "a") as fh:
        fh.write(f"$ vigil {' '.join(args)}  # rc {res.returncode}, "
                 f"{time.perf_counter() - t0:.1f} s\n{res.stdout[-4000:]}{res.stderr[-4000:]}\n")
    if res.returncode != 0:
        raise RuntimeError(f"vigil {' '.join(args)} failed ({res.returncode}):\n"
                           f"{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return res.stdout


def run_vigil(out: Path, truth: dict[str, Any], *, store: Path, workers: int = 1,
              vigil: str | None = None, src: Path | None = None,
              say: Callable[[str], None] = print) -> dict[str, Any]:
    """ingest -> events import -> detect -> insights, per tenant, as a user runs them."""
    exe = vigil_binary(vigil)
    log = out / "vigil.log"
    results: dict[str, Any] = {}
    for tenant, info in truth["tenants"].items():
        base = ["--store", str(store), "--tenant", tenant]
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        _cli(exe, ["ingest", str(out / info["data"]), *base], log, src)
        times["ingest"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _cli(exe, ["events", "import", str(out / info["events_file"]), *base], log, src)
        times["events"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        detect_out = _cli(exe, ["detect", *base, "--workers", str(workers)], log, src)
        times["detect"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        text = _cli(exe, ["insights", *base, "--format", "json"], log, src)
        times["insights"] = time.perf_counter() - t0
        insights = json.loads(text)
        (out / f"insights-{tenant}.json").write_text(json.dumps(insights, indent=1))
        try:
            detect_summary = json.loads(detect_out)
        except json.JSONDecodeError:
            detect_summary = {"raw": detect_out[-2000:]}
        results[tenant] = {"times": times, "detect": detect_summary, "insights": insights}
        say(f"  {tenant}: ingest {times['ingest']:.0f} s, detect {times['detect']:.0f} s, "
            f"{len(insights)} insights")
    return results


def read_store_records(store: Path, truth: dict[str, Any]) -> dict[str, Any]:
    """Per tenant: the anomaly intervals the store keeps, and the scores of the incident series
    around their windows (for the diagnosis of misses)."""
    import pyarrow.compute as pc

    try:
        from vigil.store import Store
    except ImportError:  # run by a python without vigil installed: this checkout's
        sys.path.insert(0, str(ROOT / "src"))
        from vigil.store import Store

    st = Store(store)
    out: dict[str, Any] = {}
    by_tenant: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for inc in truth["incidents"]:
        by_tenant[inc["tenant"]].append(inc)
    for tenant in truth["tenants"]:
        anoms = st.read_table(tenant, "anomalies")
        rows = [] if anoms is None else anoms.select(
            ["labels", "start", "end", "peak_score"]).to_pylist()
        cat = st.catalog(tenant)
        ids = {_key(lab): int(sid) for lab, sid in
               zip(cat["labels"].to_pylist(), cat["series_id"].to_pylist(), strict=True)}
        wanted = {}
        for inc in by_tenant[tenant]:
            for lab in inc["series"]:
                sid = ids.get(_key(lab))
                if sid is not None:
                    wanted[sid] = _key(lab)
        scores: dict[str, dict[str, list]] = {}
        if wanted:
            table = _scores_table(st, tenant, list(wanted))
            if table is not None:
                table = table.filter(pc.is_in(table["series_id"],
                                              value_set=pa.array(list(wanted), pa.int64())))
                ts = table["timestamp"].cast(pa.int64()).to_numpy() // 1000
                sid = table["series_id"].to_numpy()
                cols = {c: table[c].to_numpy(zero_copy_only=False) for c in
                        ("value", "expected", "lower", "upper", "anomaly_score")}
                order = np.lexsort((ts, sid))
                sid_sorted = sid[order]
                cuts = np.flatnonzero(np.diff(sid_sorted)) + 1
                for sel in np.split(order, cuts):
                    if sel.size:
                        scores[wanted[int(sid[sel[0]])]] = {
                            "t": ts[sel], **{c: cols[c][sel] for c in cols}}
        out[tenant] = {"anomalies": rows, "scores": scores}
    return out


def _scores_table(st: Any, tenant: str, series_ids: list[int]) -> pa.Table | None:
    """The ``scores`` rows of some series: through the table's files (the store's reader
    would load every series) where the store's layout allows, else the whole table."""
    try:
        import pyarrow.compute as pc

        from vigil.store.layout import table_key
        from vigil.store.txn import dataset, open_table

        dt = open_table(st.layout, tenant, st._head(tenant), table_key("scores"))
        if dt is None:
            return None
        ds = dataset(dt)
        flt = pc.field("series_id").isin(series_ids)
        return ds.to_table(filter=flt, columns=["series_id", "timestamp", "value", "expected",
                                                "lower", "upper", "anomaly_score"])
    except (ImportError, AttributeError, TypeError):
        return st.read_table(tenant, "scores")


def _key(labels: dict[str, str] | str) -> str:
    """One text per label set (the catalog's and our JSON spell it differently)."""
    parsed: dict[str, str] = json.loads(labels) if isinstance(labels, str) else labels
    return json.dumps({k: v for k, v in sorted(parsed.items()) if v}, sort_keys=True)


# ----------------------------------------------------------------------------- scoring


def _parse_ms(text: str | None) -> int | None:
    if text is None:
        return None
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _overlap(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 <= b1 and a1 >= b0


def score(truth: dict[str, Any], results: dict[str, Any],
          records: dict[str, Any]) -> dict[str, Any]:
    """Per-incident outcomes, the detectability rows and the false-insight rates."""
    fam_of_service: dict[tuple[str, str], str] = {}
    clean_service: dict[tuple[str, str], bool] = {}
    for s in truth["series"]:
        svc = _svc_key(s["tenant"], s["labels"])
        fam_of_service[svc] = s["family"]
        clean_service[svc] = s["clean"]
    incidents = truth["incidents"]
    inc_by_service = {_svc_key(i["tenant"], i["service"]): i for i in incidents}
    per_incident: list[dict[str, Any]] = []
    for inc in incidents:
        tenant = inc["tenant"]
        end_ms = truth["tenants"][tenant]["end_ms"]
        w0, w1 = inc["start_ms"], inc["end_ms"] + slack_ms(inc["step_s"])
        keys = {_key(lab) for lab in inc["series"]}
        step_ms = inc["step_s"] * 1000
        hits, found_ins = _window_hits(records[tenant]["anomalies"],
                                       results[tenant]["insights"], keys, w0, w1, end_ms,
                                       step_ms)
        # placebo: the same series and clock time one day before, where nothing was injected
        placebo = _window_hits(records[tenant]["anomalies"], results[tenant]["insights"], keys,
                               w0 - DAY_MS, w1 - DAY_MS, end_ms, step_ms)
        first_anom = min((max(a["start"], w0 - w0 % step_ms) for a in hits), default=None)
        opened = min((_parse_ms(i["opened_at"]) or 0 for i in found_ins), default=None)
        cause_first = None
        lead = inc["detail"].get("deploy_lead_s")
        if inc["deploy_event"] and found_ins and lead is not None:
            first = min(found_ins, key=lambda i: _parse_ms(i["opened_at"]) or 0)
            deploy_ms = inc["start_ms"] - round(lead * 1000)
            top = first.get("events") or []
            cause_first = bool(top) and abs((_parse_ms(top[0]["time"]) or 0) - deploy_ms) < 1000
        row = {k: inc[k] for k in ("id", "tenant", "step_s", "kind", "magnitude",
                                   "duration_min", "tod", "family", "metric", "scope",
                                   "replicas", "magnitude_peak", "magnitude_mean",
                                   "deploy_event", "start_ms", "end_ms", "noise_sd")}
        row.update(
            series=[_key(x) for x in inc["series"]],
            anomaly=bool(hits),
            anomaly_delay_min=None if first_anom is None
            else max(0, first_anom - w0) / MINUTE_MS,
            insight=bool(found_ins),
            insight_delay_min=None if opened is None else max(0, opened - w0) / MINUTE_MS,
            insight_ids=[i["id"] for i in found_ins],
            placebo_anomaly=bool(placebo[0]),
            placebo_insight=bool(placebo[1]),
            cause_ranked_first=cause_first,
            intervals=[{"start": a["start"], "end": a["end"], "peak": a["peak_score"]}
                       for a in hits],
        )
        row["diagnosis"] = diagnose(row, records[tenant]["scores"], inc)
        per_incident.append(row)
    false = false_insights(truth, results, records, fam_of_service, clean_service,
                           inc_by_service)
    return {"incidents": per_incident, "false": false}


def _window_hits(anomalies: list[dict[str, Any]], insights: list[dict[str, Any]],
                 keys: set[str], w0: int, w1: int, end_ms: int, step_ms: int
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Anomaly intervals of the series ``keys`` overlapping [w0, w1], and the insights with
    one of those series among their members whose span overlaps it.  Intervals and spans
    name the start of their columns: a column covers [t, t + step)."""
    hits = [a for a in anomalies
            if _overlap(a["start"], a["end"] + step_ms - 1, w0, w1)
            and _key(a["labels"]) in keys]
    found = []
    for ins in insights:
        s0 = _parse_ms(ins["start"]) or 0
        s1 = (_parse_ms(ins.get("end")) or end_ms) + step_ms - 1
        if _overlap(s0, s1, w0, w1) and {_key(x) for x in ins.get("series", [])} & keys:
            found.append(ins)
    return hits, found


def _svc_key(tenant: str, labels: dict[str, str]) -> tuple[str, str]:
    return tenant, "/".join(labels.get(k, "") for k in ("site", "namespace", "service"))


def _persistence_evidence() -> float:
    """The insight rule's persistence evidence (score x steps) of the measured Vigil."""
    try:
        from vigil.insights.grouping import EvidenceConfig
    except ImportError:  # an older Vigil without it: the value it had
        return 36.0
    return float(EvidenceConfig().persistence_evidence)


def diagnose(row: dict[str, Any], scores: dict[str, Any], inc: dict[str, Any]) -> dict[str, Any]:
    """What the store's scores say about one incident: peak score in the window, flagged
    steps, when the flags stopped, the longest anomaly interval, and a class for misses:

    * ``within band`` (peak score < 0.5), ``below threshold`` (0.5..1), ``guarded`` (a guard
      capped a score > 1 at 0.99): no anomaly;
    * ``absorbed``: flagged, but the flags of every hit series stopped more than 3 steps
      before the end of an incident of >= 3 h (the model took the change as the new normal)
      and no insight;
    * ``little evidence``: flagged, but the incident's intervals carry less persistence
      evidence (flagged steps x the interval's peak score, summed) than the insight rule asks
      (:class:`vigil.insights.grouping.EvidenceConfig`), and it hits fewer than 4 series;
    * ``burst under 4``: the same on 4 or more series (whose densest hour stayed under 4
      anomalous series on average);
    * ``other``: none of these (enough evidence, yet no insight overlapping the window).

    ``band_half_width_sd``: the median half-width of Vigil's band over the hour before the
    incident, in the incident's noise sds; ``lower_band_below_zero``: the share of that hour
    whose lower band edge is below 0 (a drop to zero cannot leave such a band)."""
    step_ms = inc["step_s"] * 1000
    w0, w1 = inc["start_ms"], inc["end_ms"] + slack_ms(inc["step_s"])
    peak, flagged, n, capped = 0.0, 0, 0, 0
    first_flag: int | None = None
    last_flag_inside: int | None = None
    halves: list[np.ndarray] = []
    lowers: list[np.ndarray] = []
    for key in row["series"]:
        sc = scores.get(key)
        if not sc:
            continue
        t = np.asarray(sc["t"])
        s = np.nan_to_num(np.asarray(sc["anomaly_score"], dtype=float))
        sel = (t + step_ms > w0) & (t <= w1)  # columns [t, t + step) meeting the window
        if not sel.any():
            continue
        pre = (t >= w0 - HOUR_MS) & (t + step_ms <= w0)  # the band held just before
        halves.append((np.asarray(sc["upper"])[pre] - np.asarray(sc["lower"])[pre]) / 2)
        lowers.append(np.asarray(sc["lower"])[pre])
        peak = max(peak, float(s[sel].max()))
        flagged += int((s[sel] > 1).sum())
        capped += int((s[sel] == 0.99).sum())
        n += int(sel.sum())
        over = t[sel][s[sel] > 1]
        if over.size:
            first_flag = int(over.min()) if first_flag is None else min(first_flag,
                                                                        int(over.min()))
        inside = (t + step_ms > w0) & (t < inc["end_ms"]) & (s > 1)
        if inside.any():
            last = int(t[inside].max())
            last_flag_inside = last if last_flag_inside is None else max(last_flag_inside, last)
    longest = max(((a["end"] - a["start"]) / MINUTE_MS for a in row["intervals"]), default=0.0)
    # steps x peak of the strongest interval (the evidence unit of a persistence rule counted
    # in score x grid steps)
    evidence = max((((a["end"] - a["start"]) // step_ms + 1) * a["peak"]
                    for a in row["intervals"]), default=0.0)
    ipeak = max((a["peak"] for a in row["intervals"]), default=0.0)
    total_evidence = sum(((a["end"] - a["start"]) // step_ms + 1) * a["peak"]
                         for a in row["intervals"])
    long_incident = inc["duration_min"] >= 180
    absorbed = (last_flag_inside is not None
                and last_flag_inside < inc["end_ms"] - 3 * step_ms)
    if row["insight"]:
        cls = "found"
    elif not row["anomaly"]:
        if n == 0:
            cls = "no scores"
        elif capped:
            cls = "guarded"
        elif peak >= 0.5:
            cls = "below threshold"
        else:
            cls = "within band"
    elif long_incident and absorbed:
        cls = "absorbed"
    elif total_evidence < _persistence_evidence():
        cls = "little evidence" if len(row["series"]) < 4 else "burst under 4"
    else:
        cls = "other"
    half = np.concatenate(halves) if halves else np.zeros(0)
    low = np.concatenate(lowers) if lowers else np.zeros(0)
    band_sd = (float(np.nanmedian(half)) / inc["noise_sd"]
               if half.size and np.isfinite(half).any() and inc["noise_sd"] > 0 else None)
    return {"class": cls, "peak_score": round(peak, 3), "flagged_steps": flagged,
            "band_half_width_sd": None if band_sd is None else round(band_sd, 2),
            "lower_band_below_zero": round(float(np.mean(low < 0)), 3) if low.size else None,
            "scored_steps": n, "guard_capped_steps": capped,
            "flagged_fraction": round(flagged / n, 3) if n else None,
            "first_flag_min": None if first_flag is None else (first_flag - w0) / MINUTE_MS,
            "flags_stop_min": None if last_flag_inside is None
            else (last_flag_inside - w0) / MINUTE_MS + inc["step_s"] / 60,
            "longest_interval_min": longest, "interval_peak": round(ipeak, 3),
            "interval_evidence": round(evidence, 2)}


def false_insights(truth: dict[str, Any], results: dict[str, Any], records: dict[str, Any],
                   fam_of_service: dict[tuple[str, str], str],
                   clean_service: dict[tuple[str, str], bool],
                   inc_by_service: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    days: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in truth["series"]:
        info = truth["tenants"][s["tenant"]]
        d = (info["end_ms"] - info["scored_start_ms"]) / DAY_MS
        days[s["family"]]["all"] += d
        if s["clean"]:
            days[s["family"]]["clean"] += d
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    listed: list[dict[str, Any]] = []
    for tenant, res in results.items():
        end_ms = truth["tenants"][tenant]["end_ms"]
        for ins in res["insights"]:
            services = {_svc_key(tenant, s) for s in ins.get("series", [])}
            s0 = _parse_ms(ins["start"]) or 0
            s1 = (_parse_ms(ins.get("end")) or end_ms) + truth["tenants"][tenant]["step_s"] * 1000
            related = False
            for svc in services:
                inc = inc_by_service.get(svc)
                if inc and _overlap(s0, s1, inc["start_ms"] - GRACE_MS,
                                    inc["end_ms"] + slack_ms(inc["step_s"]) + GRACE_MS):
                    related = True
            if related:
                continue
            fams = {fam_of_service.get(svc, "?") for svc in services}
            only_clean = all(clean_service.get(svc, False) for svc in services)
            for fam in fams:
                counts[fam]["all"] += 1
                if only_clean:
                    counts[fam]["clean"] += 1
            listed.append({"tenant": tenant, "id": ins["id"], "families": sorted(fams),
                           "clean": only_clean, "start": ins["start"], "end": ins.get("end"),
                           "metrics": ins.get("metrics"), "summary": ins.get("summary"),
                           "evidence": ins.get("evidence"), "kind": ins.get("kind")})
    # anomaly intervals on clean series (the anomaly-level false rate)
    clean_keys: dict[str, str] = {}
    for s in truth["series"]:
        if s["clean"]:
            clean_keys[_key(s["labels"])] = s["family"]
    clean_intervals: dict[str, int] = defaultdict(int)
    for rec in records.values():
        for a in rec["anomalies"]:
            clean_fam = clean_keys.get(_key(a["labels"]))
            if clean_fam is not None:
                clean_intervals[clean_fam] += 1
    per_family = {}
    for fam in sorted(days):
        d_all, d_clean = days[fam]["all"], days[fam]["clean"]
        per_family[fam] = {
            "series_days": round(d_all, 2), "clean_series_days": round(d_clean, 2),
            "false_insights": counts[fam]["all"],
            "false_per_1000_series_days": _rate(counts[fam]["all"], d_all),
            "clean_false_insights": counts[fam]["clean"],
            "clean_false_per_1000_clean_series_days": _rate(counts[fam]["clean"], d_clean),
            "clean_anomaly_intervals": clean_intervals[fam],
            "clean_intervals_per_1000_clean_series_days": _rate(clean_intervals[fam], d_clean),
        }
    total_days = sum(v["all"] for v in days.values())
    total_false = len(listed)
    return {"per_family": per_family, "insights": listed, "total": total_false,
            "total_per_1000_series_days": _rate(total_false, total_days)}


def _rate(n: int, days: float) -> float | None:
    return None if days <= 0 else round(1000.0 * n / days, 3)


def _median(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return None if not vals else float(statistics.median(vals))


def _frac(rows: list[dict[str, Any]], key: str) -> str:
    return f"{sum(r[key] for r in rows)}/{len(rows)}" if rows else "-"


def _num(x: float | None, fmt: str = ".0f") -> str:
    return "-" if x is None else format(x, fmt)


def _mag_label(m: float | None) -> str:
    return "natural" if m is None else f"{m:g}"


def detectability_rows(per_incident: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in per_incident:
        cells[(r["kind"], _mag_label(r["magnitude"]), r["duration_min"])].append(r)
    rows = []
    for kind in KINDS:
        keys = sorted((k for k in cells if k[0] == kind),
                      key=lambda k: (k[1] == "natural", float(k[1]) if k[1] != "natural"
                                     else 0.0, k[2]))
        for key in keys:
            rs = cells[key]
            day = [r for r in rs if r["tod"] == "day"]
            night = [r for r in rs if r["tod"] == "night"]
            rows.append({
                "kind": kind, "magnitude": key[1], "duration_min": key[2], "n": len(rs),
                "anomaly_found": sum(r["anomaly"] for r in rs),
                "insight_found": sum(r["insight"] for r in rs),
                "day": [sum(r["anomaly"] for r in day), sum(r["insight"] for r in day), len(day)],
                "night": [sum(r["anomaly"] for r in night), sum(r["insight"] for r in night),
                          len(night)],
                "median_delay_anomaly_min": _median(r["anomaly_delay_min"] for r in rs),
                "median_delay_insight_min": _median(r["insight_delay_min"] for r in rs),
                "median_magnitude_peak": _median(r["magnitude_peak"] for r in rs),
                "median_magnitude_mean": _median(r["magnitude_mean"] for r in rs),
            })
    return rows


def marginal(per_incident: list[dict[str, Any]], attr: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in per_incident:
            if r["kind"] == kind:
                value = r[attr]
                groups[_mag_label(value) if attr == "magnitude" else str(value)].append(r)
        for value, rs in groups.items():
            out.setdefault(kind, {})[value] = {
                "n": len(rs), "anomaly": sum(r["anomaly"] for r in rs),
                "insight": sum(r["insight"] for r in rs)}
    return out


def _dur_label(minutes: int) -> str:
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"


def _effective_magnitude(row: dict[str, Any]) -> float:
    """An incident's magnitude in noise sds: the matrix cell's, or for the kinds with a
    natural magnitude (stuck, drop) the recorded ``magnitude_peak`` (the largest absolute
    change of the expected value over the window)."""
    mag = row.get("magnitude")
    if mag is None:
        mag = row.get("magnitude_peak")
    return float(mag) if mag is not None else 0.0


def render_markdown(summary: dict[str, Any]) -> str:
    per = summary["incidents"]
    lines = [f"Scenario matrix, seed {summary['seed']}: {len(per)} incidents, "
             f"{summary['series']} series in {len(summary['tenants'])} tenants "
             f"({', '.join(f'{t}: {v}' for t, v in summary['tenants'].items())}).", ""]
    vig = summary.get("vigil") or {}
    if vig:
        dirty = vig.get("uncommitted_src") or []
        lines += [f"Vigil measured: revision {vig.get('revision')} ({vig.get('src')}"
                  + (f"; uncommitted changes in {', '.join(dirty)}" if dirty else "") + ").", ""]
    tot_a = sum(r["anomaly"] for r in per)
    tot_i = sum(r["insight"] for r in per)
    pl_a = sum(r["placebo_anomaly"] for r in per)
    pl_i = sum(r["placebo_insight"] for r in per)
    lines.append(f"Overall: anomaly recall {tot_a}/{len(per)}, insight recall {tot_i}/{len(per)}"
                 f" (placebo, the same series and window one day earlier: {pl_a} and {pl_i});"
                 f" false insights {summary['false']['total']} "
                 f"({_num(summary['false']['total_per_1000_series_days'], '.2f')} per 1,000 "
                 "series-days).")
    causes = [r["cause_ranked_first"] for r in per if r["cause_ranked_first"] is not None]
    lines.append(f"Incidents right after a deployment and found as an insight: {len(causes)}; "
                 f"the deployment ranked first cause in {sum(causes)}.")
    lines += ["", "**Per kind** (found / incidents):", "",
              "| kind | n | anomaly | insight | insight, scope replica | insight, scope service "
              "| median delay to anomaly (min) | median delay to insight (min) "
              "| placebo: anomaly / insight |",
              "|---|---|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        rs = [r for r in per if r["kind"] == kind]
        if not rs:
            continue
        rep = [r for r in rs if r["scope"] == "replica"]
        svc = [r for r in rs if r["scope"] == "service"]
        lines.append(
            f"| {kind} | {len(rs)} | {_frac(rs, 'anomaly')} | {_frac(rs, 'insight')} | "
            f"{_frac(rep, 'insight')} | {_frac(svc, 'insight')} | "
            f"{_num(_median(r['anomaly_delay_min'] for r in rs))} | "
            f"{_num(_median(r['insight_delay_min'] for r in rs))} | "
            f"{_frac(rs, 'placebo_anomaly')} / {_frac(rs, 'placebo_insight')} |")
    # the issue's target cells: magnitude >= 4 noise sds (stuck and drop: the effective
    # magnitude recorded, magnitude_peak) and >= 30 minutes
    target = [r for r in per if r["duration_min"] >= 30 and _effective_magnitude(r) >= 4]
    lines += ["", "**Target cells** (magnitude >= 4 noise sds, for stuck and drop the effective "
              "magnitude; duration >= 30 min): anomaly / insight found of n, and the insight "
              "share", "", "| kind | n | anomaly | insight | insight share |",
              "|---|---|---|---|---|"]
    for kind in KINDS:
        rs = [r for r in target if r["kind"] == kind]
        if rs:
            share = sum(r["insight"] for r in rs) / len(rs)
            lines.append(f"| {kind} | {len(rs)} | {_frac(rs, 'anomaly')} | "
                         f"{_frac(rs, 'insight')} | {share:.2f} |")
    lines.append(f"| all | {len(target)} | {_frac(target, 'anomaly')} | "
                 f"{_frac(target, 'insight')} | "
                 f"{sum(r['insight'] for r in target) / max(len(target), 1):.2f} |")
    for attr, title, order in (
        ("magnitude", "magnitude (noise sds; stuck/drop: natural)",
         [_mag_label(m) for m in MAGNITUDES] + ["natural"]),
        ("duration_min", "duration", [str(d) for d in DURATIONS_MIN]),
        ("step_s", "step (s)", ["300", "60", "15"]),
        ("tod", "time of day", list(TODS)),
        ("family", "family", list(FAMILIES)),
    ):
        marg = marginal(per, attr)
        cols = [c for c in order if any(c in v for v in marg.values())]
        head = [_dur_label(int(c)) if attr == "duration_min" else c for c in cols]
        lines += ["", f"**Kind x {title}**: anomaly / insight found of n", "",
                  "| kind | " + " | ".join(head) + " |", "|---" * (len(cols) + 1) + "|"]
        for kind in KINDS:
            if kind not in marg:
                continue
            cells = []
            for c in cols:
                v = marg[kind].get(c)
                cells.append("" if v is None else f"{v['anomaly']} / {v['insight']} of {v['n']}")
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += ["", "**Detectability matrix** (kind x magnitude x duration; found / n; day and "
              "night: anomaly / insight of n; delays in minutes from the incident start; "
              "effective magnitude = median peak change of the expected value in noise sds)", "",
              "| kind | magnitude | duration | n | anomaly | insight | day | night | "
              "delay anomaly | delay insight | effective magnitude |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        d, nt = row["day"], row["night"]
        lines.append(
            f"| {row['kind']} | {row['magnitude']} | {_dur_label(row['duration_min'])} | "
            f"{row['n']} | {row['anomaly_found']}/{row['n']} | {row['insight_found']}/{row['n']} "
            f"| {d[0]} / {d[1]} of {d[2]} | {nt[0]} / {nt[1]} of {nt[2]} | "
            f"{_num(row['median_delay_anomaly_min'])} | {_num(row['median_delay_insight_min'])} "
            f"| {_num(row['median_magnitude_peak'], '.1f')} |")
    lines += ["", "**False insights per family** (false: overlaps no incident window +- 1 h of a "
              "service among its members; per 1,000 series-days after detect's warm-up)", "",
              "| family | series-days | false insights | per 1,000 series-days | clean series-days "
              "| on clean services | per 1,000 clean series-days | anomaly intervals on clean "
              "series per 1,000 series-days |", "|---|---|---|---|---|---|---|---|"]
    for fam, v in summary["false"]["per_family"].items():
        lines.append(
            f"| {fam} | {v['series_days']:.0f} | {v['false_insights']} | "
            f"{_num(v['false_per_1000_series_days'], '.2f')} | {v['clean_series_days']:.0f} | "
            f"{v['clean_false_insights']} | "
            f"{_num(v['clean_false_per_1000_clean_series_days'], '.2f')} | "
            f"{_num(v['clean_intervals_per_1000_clean_series_days'], '.1f')} |")
    bands = [r["diagnosis"]["band_half_width_sd"] for r in per
             if r["diagnosis"]["band_half_width_sd"] is not None]
    missed = [r["diagnosis"]["band_half_width_sd"] for r in per if not r["anomaly"]
              and r["diagnosis"]["band_half_width_sd"] is not None]
    if bands:
        lines += ["", f"Band half-width over the hour before each incident, in noise sds: median "
                  f"{_num(_median(bands), '.1f')} over all incidents, "
                  f"{_num(_median(missed), '.1f')} over those with no anomaly (a Gaussian "
                  "band at 1e-4 two-sided is 3.9)."]
    classes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in per:
        classes[r["kind"]][r["diagnosis"]["class"]] += 1
    names = sorted({c for v in classes.values() for c in v})
    lines += ["", "**Why incidents were missed at insight level** (from the store's scores; "
              "no anomaly: 'within band' peak score < 0.5, 'below threshold' 0.5..1, 'guarded' "
              "a guard capped a score > 1; anomaly but no insight: 'absorbed' the flags "
              f"stopped before the end of a >= 3 h incident, 'little evidence' the intervals "
              f"carry less than {_persistence_evidence():g} score-steps of persistence evidence "
              "on < 4 series, 'burst under 4' the same on >= 4 series, 'other')", "",
              "| kind | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for kind in KINDS:
        if kind in classes:
            lines.append(f"| {kind} | " + " | ".join(str(classes[kind].get(c, 0))
                                                     for c in names) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def _int_map(text: str | None, default: dict[int, Any], cast: Callable[[str], Any]
             ) -> dict[int, Any]:
    if not text:
        return dict(default)
    out = dict(default)
    for part in text.split(","):
        k, _, v = part.partition("=")
        out[int(k)] = cast(v)
    return out


def config_from_args(args: argparse.Namespace) -> Config:
    cfg = Config(seed=args.seed)
    if args.quick:
        cfg.steps = (300,)
        cfg.days = {300: 7.0}
        cfg.magnitudes = (3.0, 6.0, 10.0)
        cfg.durations_min = (30, 60, 180)
        cfg.clean_per_family = {300: 2}
    if args.steps:
        cfg.steps = tuple(int(s) for s in args.steps.split(","))
    cfg.days = _int_map(args.days, cfg.days, float)
    cfg.step_weights = _int_map(args.step_weights, cfg.step_weights, float)
    cfg.clean_per_family = _int_map(args.clean, cfg.clean_per_family, int)
    if args.kinds:
        cfg.kinds = tuple(args.kinds.split(","))
    if args.families:
        cfg.families = tuple(args.families.split(","))
    if args.magnitudes:
        cfg.magnitudes = tuple(float(m) for m in args.magnitudes.split(","))
    if args.durations:
        cfg.durations_min = tuple(int(d) for d in args.durations.split(","))
    if args.tods:
        cfg.tods = tuple(args.tods.split(","))
    cfg.replicates = args.replicates or (1 if args.quick else 2)
    cfg.fmt = args.format
    for k in cfg.kinds:
        if k not in KINDS:
            raise SystemExit(f"unknown kind {k!r}: expected some of {', '.join(KINDS)}")
    for f in cfg.families:
        if f not in FAMILIES:
            raise SystemExit(f"unknown family {f!r}: expected some of {', '.join(FAMILIES)}")
    for s in cfg.steps:
        if s not in cfg.days:
            raise SystemExit(f"no --days for step {s}")
        need = min_days(cfg, s)
        if cfg.days[s] < need:
            raise SystemExit(f"--days {cfg.days[s]:g} for step {s} s is too short: incidents "
                             f"start after detect's 3-day warm-up and {cfg.min_scored_days:g} "
                             f"scored day(s), and need a whole day of room for any local hour "
                             f"(>= {need:.2f} days)")
    return cfg


def min_days(cfg: Config, step_s: int) -> float:
    """Days a tenant needs so that an incident of any duration fits at any local hour."""
    tail = slack_ms(step_s) + 2 * HOUR_MS + max(cfg.durations_min) * MINUTE_MS
    return (DETECT_WARMUP_MS + tail) / DAY_MS + cfg.min_scored_days + 1.0


def run(cfg: Config, out: Path, *, workers: int = 1, vigil: str | None = None,
        src: Path | None = None, keep_store: bool = False,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate, run Vigil, score; writes ``out/results.json`` and ``out/detectability.md``."""
    t_all = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    store = out / "store"
    if store.exists():
        shutil.rmtree(store)
    (out / "vigil.log").write_text("")
    say(f"generating into {out}")
    t0 = time.perf_counter()
    truth = generate_fleet(cfg, out, say=say)
    t_gen = time.perf_counter() - t0
    say("running vigil (ingest, events import, detect, insights)")
    results = run_vigil(out, truth, store=store, workers=workers, vigil=vigil, src=src,
                        say=say)
    summary = summarise(out, truth, results, t_gen)
    summary["times"]["total_s"] = round(time.perf_counter() - t_all, 1)
    summary["vigil"] = _vigil_source(src)
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "detectability.md").write_text(render_markdown(summary))
    if not keep_store:
        shutil.rmtree(store, ignore_errors=True)
    return summary


def rescore(out: Path) -> dict[str, Any]:
    """Score a finished run again (``--keep-store``) from its truth, insights and store."""
    truth = json.loads((out / "truth.json").read_text())
    results = {t: {"insights": json.loads((out / f"insights-{t}.json").read_text()),
                   "times": {}} for t in truth["tenants"]}
    old = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() \
        else {}
    summary = summarise(out, truth, results, 0.0)
    summary["times"] = old.get("times", {})
    summary["vigil"] = old.get("vigil", {})
    summary["date"] = old.get("date", summary["date"])
    summary["git"] = old.get("git", summary["git"])
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "detectability.md").write_text(render_markdown(summary))
    return summary


def summarise(out: Path, truth: dict[str, Any], results: dict[str, Any],
              t_gen: float) -> dict[str, Any]:
    records = read_store_records(out / "store", truth)
    scored = score(truth, results, records)
    summary = {
        "seed": truth["seed"], "config": truth["config"],
        "tenants": {t: v["series"] for t, v in truth["tenants"].items()},
        "series": len(truth["series"]), "incidents": scored["incidents"],
        "rows": detectability_rows(scored["incidents"]), "false": scored["false"],
        "marginals": {a: marginal(scored["incidents"], a)
                      for a in ("magnitude", "duration_min", "tod", "step_s", "scope",
                                "family")},
        "times": {"generate_s": round(t_gen, 1),
                  **{t: {k: round(v, 1) for k, v in r["times"].items()}
                     for t, r in results.items()}},
        "git": _git_sha(), "date": datetime.now(tz=UTC).strftime("%Y-%m-%d"),
    }
    return summary


def _vigil_source(src: Path | None) -> dict[str, Any]:
    """Which vigil was measured: the source tree, and for this checkout its commit and the
    files under src/ that differ from it (another engineer may be editing them)."""
    if src is not None:
        stamp = src / "REVISION"
        return {"src": str(src), "revision": stamp.read_text().strip() if stamp.exists()
                else None}
    try:
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        dirty = []
    return {"src": str(ROOT / "src"), "revision": _git_sha(),
            "uncommitted_src": [line[3:] for line in dirty if line.strip()]}


def _git_sha() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Independent scenario generator and detectability benchmark (module doc).")
    p.add_argument("--out", type=Path, default=Path("bench-out/scenarios"),
                   help="output folder (data, truth, results, table)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quick", action="store_true",
                   help="smoke size (~1 min): 5-min step only, 7 days, magnitudes 3, 6, 10, "
                        "durations 30 min, 1 h, 3 h, one incident per cell")
    p.add_argument("--steps", help="scrape steps in seconds, e.g. 300,60,15")
    p.add_argument("--days", help="days per step, e.g. 300=8,60=6,15=5.5")
    p.add_argument("--step-weights", help="share of the incidents per step, e.g. 300=0.8,60=0.2")
    p.add_argument("--clean", help="clean services per family per step, e.g. 300=4,60=1")
    p.add_argument("--kinds", help=f"incident kinds (default all: {','.join(KINDS)})")
    p.add_argument("--families", help=f"families (default all: {','.join(FAMILIES)})")
    p.add_argument("--magnitudes", help="magnitudes in noise sds, e.g. 2,3,4,6,10")
    p.add_argument("--durations", help="durations in minutes, e.g. 5,30,60,180,480")
    p.add_argument("--tods", help="day,night")
    p.add_argument("--replicates", type=int,
                   help="incidents per matrix cell (default 2; --quick: 1)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p.add_argument("--workers", type=int, default=1, help="vigil detect --workers")
    p.add_argument("--vigil", help="the vigil executable (default .venv/bin/vigil)")
    p.add_argument("--src", type=Path,
                   help="measure the vigil package in this source folder (put first on "
                        "PYTHONPATH of the vigil commands), e.g. a commit exported with "
                        "git archive; a file REVISION in it names the commit")
    p.add_argument("--keep-store", action="store_true", help="keep out/store")
    p.add_argument("--generate-only", action="store_true", help="write the fleet and stop")
    p.add_argument("--rescore", action="store_true",
                   help="score the run in --out again (it must have kept its store)")
    args = p.parse_args(argv)
    if args.rescore:
        print(render_markdown(rescore(args.out)))
        return 0
    cfg = config_from_args(args)
    if args.generate_only:
        generate_fleet(cfg, args.out)
        return 0
    summary = run(cfg, args.out, workers=args.workers, vigil=args.vigil, src=args.src,
                  keep_store=args.keep_store)
    print(render_markdown(summary))
    print(f"wrote {args.out / 'detectability.md'} and {args.out / 'results.json'} "
          f"(total {summary['times']['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
