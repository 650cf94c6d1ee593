"""The real thing, on loopback: node-exporter -> Prometheus -> remote_write -> ``vigil serve``;
Vigil's /metrics scraped back by Prometheus; an incident replayed through remote-write becomes
an insight that arrives in Alertmanager (checked through Alertmanager's API).

Binaries come from Debian's packages (``bash scripts/install.sh --test`` installs them).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from vigil.remote import encode_write_request

pytestmark = pytest.mark.slow
BINARIES = ("prometheus", "prometheus-node-exporter", "prometheus-alertmanager",
            "victoria-metrics")
missing = [b for b in BINARIES if shutil.which(b) is None]
if missing:  # pragma: no cover - CI installs them
    pytest.skip(f"{missing} not installed: run bash scripts/install.sh --test as root",
                allow_module_level=True)

TOKEN = "sim-token-0123456789abcdef"
STEP_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float, procs: list[Any]) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{p.args[0]} exited with {p.returncode} while waiting for "
                                     f"{what}:\n{_tail(p)}")
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def _tail(p: Any) -> str:
    path = getattr(p, "log_path", None)
    return Path(path).read_text(errors="replace")[-3000:] if path else ""


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{name}.log"
        p = subprocess.Popen(list(args), stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                             cwd=tmp_path)
        p.log_path = log  # type: ignore[attr-defined]
        procs.append(p)
        return p

    yield start
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def simulated_fleet(now_s: int) -> tuple[list[dict[str, str]], np.ndarray, np.ndarray,
                                         np.ndarray, int]:
    """Two services x 10 pods, request rate with a daily cycle, 2 days at 1-minute steps ending
    now; the pods of 'checkout' triple their latency for the last 90 minutes."""
    rng = np.random.default_rng(3)
    steps = 2 * 1440
    end = now_s // STEP_S * STEP_S
    ts = (end - (steps - 1) * STEP_S + np.arange(steps) * STEP_S) * 1000
    day = np.sin(2 * np.pi * (ts / 1000 % 86400) / 86400)
    labels, series, tss, vals = [], [], [], []
    for svc in ("checkout", "search"):
        for pod in range(10):
            k = len(labels)
            labels.append({"__name__": "http_request_duration_p99_seconds", "site": "eu-1",
                           "namespace": "shop", "service": svc, "pod": f"{svc}-{pod}"})
            v = 0.20 + 0.05 * day + rng.normal(0, 0.005, steps)
            if svc == "checkout":
                v[-90:] *= 3.0
                if pod == 0:
                    v[-3:] *= 4.0  # and one pod spikes again in the last minutes
            series.append(np.full(steps, k))
            tss.append(ts)
            vals.append(v)
    return labels, np.concatenate(series), np.concatenate(tss), np.concatenate(vals), int(ts[-90])


def test_prometheus_to_vigil_to_alertmanager(tmp_path: Path, spawn: Any) -> None:
    am_port, vigil_port, ne_port, prom_port, vm_port = (free_port() for _ in range(5))
    vigil_url = f"http://127.0.0.1:{vigil_port}"
    (tmp_path / "am.yml").write_text(
        "route: {receiver: 'null', group_wait: 1s, group_interval: 1s}\n"
        "receivers: [{name: 'null'}]\n")
    am = spawn("alertmanager", "prometheus-alertmanager", f"--config.file={tmp_path}/am.yml",
               f"--storage.path={tmp_path}/am-data", f"--web.listen-address=127.0.0.1:{am_port}",
               "--cluster.listen-address=")
    (tmp_path / "vigil.yaml").write_text(f"""
listen: 127.0.0.1:{vigil_port}
store: {tmp_path}/store
tenants:
  prom: {{basic_auth: {{username: prom, password: prom-secret}}}}
  sim: {{bearer_token: {TOKEN}}}
  pulled: {{bearer_token: pulled-token-0123456789}}
readers:
  - {{url: "http://127.0.0.1:{prom_port}", queries: [node_load1, "up", node_cpu_seconds_total],
     step: 1s, every: 2s, lookback: 30s, tenant: pulled}}
schedule: {{warmup: 1d, fit_window: 2d, fit_every: 1d, infer_every: 2s, delay: 1s,
           checkpoint_every: 1s}}
alertmanager: {{url: "http://127.0.0.1:{am_port}", resend_every: 5s}}
remote_write: {{url: "http://127.0.0.1:{vm_port}/api/v1/write"}}
""")
    vm = spawn("victoria-metrics", "victoria-metrics", f"-storageDataPath={tmp_path}/vm-data",
               f"-httpListenAddr=127.0.0.1:{vm_port}", "-search.latencyOffset=0s")
    vigil = spawn("vigil", sys.executable, "-m", "vigil.cli", "serve", "--config",
                  str(tmp_path / "vigil.yaml"), "--log-level", "info")
    ne = spawn("node-exporter", "prometheus-node-exporter",
               f"--web.listen-address=127.0.0.1:{ne_port}")
    procs = [am, vigil, ne, vm]
    wait_for("vigil /healthz", lambda: httpx.get(f"{vigil_url}/healthz").status_code == 200,
             120, procs)
    wait_for("alertmanager", lambda: httpx.get(
        f"http://127.0.0.1:{am_port}/api/v2/status").status_code == 200, 30, procs)

    (tmp_path / "prom.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ["127.0.0.1:{ne_port}"]}}]
  - job_name: vigil-sim
    honor_labels: true
    authorization: {{credentials: {TOKEN}}}
    static_configs: [{{targets: ["127.0.0.1:{vigil_port}"]}}]
remote_write:
  - url: {vigil_url}/api/v1/write
    basic_auth: {{username: prom, password: prom-secret}}
    queue_config: {{batch_send_deadline: 1s}}
    metadata_config: {{send: true, send_interval: 1s}}
""")
    prom = spawn("prometheus", "prometheus", f"--config.file={tmp_path}/prom.yml",
                 f"--storage.tsdb.path={tmp_path}/prom-data",
                 f"--web.listen-address=127.0.0.1:{prom_port}",
                 "--storage.remote.flush-deadline=5s")
    procs.append(prom)

    # the incident, replayed through remote-write (tenant 'sim', bearer token), with the
    # deployment that caused it
    labels, series, ts, values, onset = simulated_fleet(int(time.time()))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    deploy = {"time": onset - 3 * STEP_S * 1000, "kind": "deployment",
              "labels": {"site": "eu-1", "namespace": "shop", "service": "checkout"},
              "summary": "checkout v412", "attributes": {"version": "v412"}}
    r = httpx.post(f"{vigil_url}/api/v1/events", json=deploy, headers=auth)
    assert r.status_code == 200, r.text
    for chunk in np.array_split(np.arange(len(ts)), 4):
        body = encode_write_request(labels, series[chunk], ts[chunk], values[chunk])
        r = httpx.post(f"{vigil_url}/api/v1/write", content=body, headers={
            **auth, "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0"})
        assert r.status_code == 204, r.text

    # 1. Prometheus -> remote_write -> Vigil: node-exporter samples arrive in tenant 'prom'
    def prom_samples() -> float:
        text = httpx.get(f"{vigil_url}/metrics", auth=("prom", "prom-secret")).text
        line = next(x for x in text.splitlines()
                    if x.startswith('vigil_samples_ingested_total{tenant="prom"}'))
        return float(line.split()[-1])

    assert wait_for("node-exporter samples in vigil", prom_samples, 90, procs) > 100

    # 2. the incident becomes an insight, and the insight an alert in Alertmanager
    def alert() -> dict[str, Any] | None:
        alerts = httpx.get(f"http://127.0.0.1:{am_port}/api/v2/alerts").json()
        hits = [a for a in alerts if a["labels"].get("alertname") == "VigilInsight"
                and a["labels"].get("service") == "checkout"]
        return hits[0] if hits else None

    got = wait_for("the insight in alertmanager", alert, 240, procs)
    assert got["labels"]["vigil_tenant"] == "sim"
    assert got["labels"]["kind"] == "reactive"
    assert got["status"]["state"] == "active"
    assert "checkout" in got["annotations"]["summary"]
    assert "v412" in got["annotations"].get("top_cause", ""), got["annotations"]
    insight = httpx.get(got["annotations"]["link"], headers=auth).json()
    assert insight["id"] == got["labels"]["vigil_insight_id"]
    assert insight["events"][0]["summary"] == "checkout v412"
    # the other tenant sees nothing of it
    other = httpx.get(f"{vigil_url}/api/v1/insights", auth=("prom", "prom-secret")).json()
    assert all(i["id"] != insight["id"] for i in other)

    # 3. Prometheus scrapes the scores back: the spiking pod's score is above 1
    def scraped() -> list[Any]:
        q = 'vigil_anomaly_score{job="vigil-sim",service="checkout"}'
        res = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": q})
        return res.json()["data"]["result"]

    result = wait_for("vigil_anomaly_score in prometheus", scraped, 120, procs)
    assert {r["metric"]["for"] for r in result} == {"http_request_duration_p99_seconds"}
    assert len(result) == 10
    by_pod = {r["metric"]["pod"]: float(r["value"][1]) for r in result}
    assert by_pod["checkout-0"] > 1.0, by_pod
    band = httpx.get(f"http://127.0.0.1:{prom_port}/api/v1/query",
                     params={"query": 'vigil_yhat_upper{service="search"}'}).json()
    assert len(band["data"]["result"]) == 10

    # 4. the same scores remote-written to a long-term store (VictoriaMetrics), every step
    def in_vm() -> list[Any]:
        res = httpx.get(f"http://127.0.0.1:{vm_port}/api/v1/query", params={
            "query": 'count_over_time(vigil_anomaly_score{service="checkout"}[3h])'})
        return res.json()["data"]["result"]

    httpx.get(f"http://127.0.0.1:{vm_port}/internal/force_flush")
    vm_result = wait_for("vigil scores in victoria-metrics", in_vm, 120, procs)
    assert len(vm_result) == 10
    assert min(float(r["value"][1]) for r in vm_result) >= 90  # at least the incident's steps

    # 5. pull mode: the reader queries Prometheus' query_range into tenant 'pulled'
    from vigil.store import Store

    store = Store(tmp_path / "store")

    def pulled() -> bool:
        if "pulled" not in store.tenants():
            return False
        names = store.catalog("pulled").column("labels").to_pylist()
        return any('"__name__":"node_load1"' in x for x in names)

    wait_for("node_load1 pulled from prometheus", pulled, 120, procs)

    # 6. graceful shutdown flushes the WAL into the store (read before any WAL replay); uvicorn
    # re-raises SIGTERM once it has shut down, so the exit status is that signal's
    vigil.send_signal(signal.SIGTERM)
    assert vigil.wait(60) in (0, -signal.SIGTERM), _tail(vigil)
    assert "Traceback" not in _tail(vigil), _tail(vigil)
    assert store.stats("sim")["samples"] == len(ts)

    # 7. metric types: node-exporter's counters arrive typed through remote-write metadata
    # (tenant 'prom') and through the reader's /api/v1/metadata (tenant 'pulled'), and detect
    # scores node_cpu_seconds_total as its per-second rate, never the raw counter
    for tenant in ("prom", "pulled"):
        assert store.metric_types(tenant).get("node_cpu_seconds_total") == "counter", tenant
    from vigil.engine.backtest import BacktestConfig
    from vigil.engine.detect import detect_store
    from vigil.models.defaults import default_factory

    stats = store.stats("prom")
    warmup = (stats["max_timestamp"] - stats["min_timestamp"]) // 2000  # half the data, in s
    run = detect_store(store, "prom", default_factory(), ledger=False, config=BacktestConfig(
        warmup=f"{max(warmup, 2)}s", fit_window="1d", forecast_every="0"))
    scores = store.read_table("prom", "scores")
    assert scores is not None, run
    cpu = [x for x in set(scores["labels"].to_pylist()) if "node_cpu_seconds_total" in x]
    assert cpu and all('"vigil_view":"rate"' in x for x in cpu), cpu[:3]
    keep = np.isin(np.array(scores["labels"].to_pylist(), dtype=object), cpu)
    # CPU seconds per second of one cpu and mode: between 0 and 1 (a little slack for jitter)
    values = scores["value"].to_numpy(zero_copy_only=False)[keep]
    assert np.nanmin(values) >= 0 and np.nanmax(values) <= 1.5, (values.min(), values.max())
