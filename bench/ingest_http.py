"""Remote-write ingest benchmark: ``vigil serve`` (WAL on, fsync before 204) side by side with
Debian's ``victoria-metrics`` receiving the same load on the same machine.

1. **Load generator**: ``--clients`` processes post pre-encoded remote-write requests (``--series``
   series x ``--samples-per-series`` samples each, protobuf + snappy, like Prometheus' queue
   shards) for ``--seconds`` to each server in turn; reports samples/s acknowledged, request
   latency p50/p99, the server's CPU seconds per million samples and its peak RSS.
2. **A real Prometheus** (``--prometheus``): Prometheus scrapes a synthetic exporter of
   ``--exporter-series`` series every second and remote-writes to Vigil and VictoriaMetrics at
   once (two ``remote_write`` entries: the same load); reports samples/s each received.

    python bench/ingest_http.py [--seconds 20] [--clients 2] [--series 2000]
                                [--samples-per-series 5] [--prometheus]

The scheduler is set to score rarely (``infer_every: 1h``): this measures ingest alone.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"nothing answers on port {port}{path}")


def bodies(series: int, per_series: int, n: int, seed: int) -> list[bytes]:
    """``n`` distinct requests (timestamps advance) of ``series`` x ``per_series`` samples."""
    from vigil.remote import encode_write_request

    labels = [{"__name__": "bench_metric", "job": "bench", "instance": f"host-{i % 50}",
               "pod": f"pod-{seed}-{i}"} for i in range(series)]
    rng = np.random.default_rng(seed)
    sid = np.repeat(np.arange(series), per_series)
    out = []
    for k in range(n):
        ts = 1_767_225_600_000 + (k * per_series + np.tile(np.arange(per_series), series)) * 15000
        out.append(encode_write_request(labels, sid, ts, rng.normal(100, 10, len(sid))))
    return out


def client(port: int, path: str, payloads: list[bytes], samples_each: int, seconds: float,
           queue: mp.Queue) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
               "X-Prometheus-Remote-Write-Version": "0.1.0"}
    lat, ok, bad = [], 0, 0
    stop = time.monotonic() + seconds
    i = 0
    while time.monotonic() < stop:
        t0 = time.perf_counter()
        conn.request("POST", path, body=payloads[i % len(payloads)], headers=headers)
        resp = conn.getresponse()
        resp.read()
        lat.append(time.perf_counter() - t0)
        if 200 <= resp.status < 300:
            ok += samples_each
        else:
            bad += 1
        i += 1
    queue.put((ok, bad, lat))


def load(port: int, path: str, args: argparse.Namespace, proc: psutil.Process) -> dict:
    samples_each = args.series * args.samples_per_series
    payloads = [bodies(args.series, args.samples_per_series, 8, seed) for seed in
                range(args.clients)]
    queue: mp.Queue = mp.Queue()
    cpu0 = sum(p.cpu_times().user + p.cpu_times().system for p in [proc, *proc.children(True)])
    t0 = time.perf_counter()
    workers = [mp.Process(target=client, args=(port, path, payloads[c], samples_each,
                                               args.seconds, queue))
               for c in range(args.clients)]
    for w in workers:
        w.start()
    peak = 0.0
    results = []
    while len(results) < len(workers):
        try:
            results.append(queue.get(timeout=0.2))
        except Exception:
            pass
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [proc, *proc.children(True)]))
        except psutil.NoSuchProcess:
            pass
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    cpu = sum(p.cpu_times().user + p.cpu_times().system for p in [proc, *proc.children(True)])
    ok = sum(r[0] for r in results)
    lat = np.concatenate([r[2] for r in results]) * 1000
    return {"samples_per_s": ok / wall, "samples": ok, "errors": sum(r[1] for r in results),
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "cpu_s_per_M": (cpu - cpu0) / max(ok, 1) * 1e6, "peak_rss_gib": peak / 2**30}


def start_vigil(work: Path, port: int) -> subprocess.Popen:
    cfg = work / "vigil.yaml"
    cfg.write_text(f"listen: 127.0.0.1:{port}\nstore: {work}/vigil-store\n"
                   "schedule: {infer_every: 1h, checkpoint_every: 5s}\n"
                   "limits: {max_active_series: 10000000}\n")
    p = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "--config", str(cfg),
                          "--log-level", "warning"], stdout=subprocess.DEVNULL,
                         stderr=open(work / "vigil.log", "wb"))
    wait_http(port, "/healthz")
    return p


def start_vm(work: Path, port: int) -> subprocess.Popen:
    p = subprocess.Popen(["victoria-metrics", f"-storageDataPath={work}/vm-data",
                          f"-httpListenAddr=127.0.0.1:{port}", "-retentionPeriod=100y"],
                         stdout=subprocess.DEVNULL, stderr=open(work / "vm.log", "wb"))
    wait_http(port, "/health")
    return p


def stop(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()


class Exporter(BaseHTTPRequestHandler):
    text = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.text)

    def log_message(self, *a: object) -> None:
        pass


def prometheus_run(work: Path, args: argparse.Namespace, vigil_port: int, vm_port: int) -> None:
    n = args.exporter_series
    Exporter.text = "".join(f'synthetic_gauge{{idx="{i}",grp="{i % 97}"}} {i % 13}.5\n'
                            for i in range(n)).encode()
    exp_port, prom_port = free_port(), free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", exp_port), Exporter)
    import threading

    threading.Thread(target=srv.serve_forever, daemon=True).start()
    (work / "prom.yml").write_text(f"""
global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: synthetic
    static_configs: [{{targets: ["127.0.0.1:{exp_port}"]}}]
remote_write:
  - url: http://127.0.0.1:{vigil_port}/api/v1/write
    queue_config: {{max_samples_per_send: 5000, batch_send_deadline: 1s, capacity: 20000}}
  - url: http://127.0.0.1:{vm_port}/api/v1/write
    queue_config: {{max_samples_per_send: 5000, batch_send_deadline: 1s, capacity: 20000}}
""")
    prom = subprocess.Popen(["prometheus", f"--config.file={work}/prom.yml",
                             f"--storage.tsdb.path={work}/prom-data",
                             f"--web.listen-address=127.0.0.1:{prom_port}",
                             "--storage.remote.flush-deadline=5s"],
                            stdout=subprocess.DEVNULL, stderr=open(work / "prom.log", "wb"))
    wait_http(prom_port, "/-/ready")
    time.sleep(5)

    def counts() -> tuple[float, float]:
        import httpx

        v = [ln for ln in httpx.get(f"http://127.0.0.1:{vigil_port}/metrics").text.splitlines()
             if ln.startswith("vigil_samples_ingested_total")]
        vm = [ln for ln in httpx.get(f"http://127.0.0.1:{vm_port}/metrics").text.splitlines()
              if ln.startswith('vm_rows_inserted_total{type="promremotewrite"}')]
        return (sum(float(x.split()[-1]) for x in v), sum(float(x.split()[-1]) for x in vm))

    a0, t0 = counts(), time.perf_counter()
    time.sleep(args.seconds)
    a1, wall = counts(), time.perf_counter() - t0
    stop(prom)
    srv.shutdown()
    v_rate, vm_rate = (a1[0] - a0[0]) / wall, (a1[1] - a0[1]) / wall
    print(f"\nreal Prometheus ({n:,} series scraped every 1 s = {n:,} samples/s offered, "
          f"remote-written to both at once, {wall:.0f} s):")
    print(f"  vigil           {v_rate:12,.0f} samples/s received")
    print(f"  victoria-metrics{vm_rate:12,.0f} samples/s received")
    print(f"  ratio vigil/VM  {v_rate / max(vm_rate, 1):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--samples-per-series", type=int, default=5)
    ap.add_argument("--prometheus", action="store_true")
    ap.add_argument("--exporter-series", type=int, default=50_000)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    if shutil.which("victoria-metrics") is None:
        sys.exit("victoria-metrics is not installed: bash scripts/install.sh --test (as root)")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vigil-bench-http-"))
    work.mkdir(parents=True, exist_ok=True)
    vigil_port, vm_port = free_port(), free_port()
    vigil, vm = start_vigil(work, vigil_port), start_vm(work, vm_port)
    per = args.series * args.samples_per_series
    print(f"load: {args.clients} clients x {args.seconds:.0f} s, {per:,} samples per request "
          f"({args.series:,} series x {args.samples_per_series}), machine: "
          f"{psutil.cpu_count()} cores")
    try:
        res = {"vigil": load(vigil_port, "/api/v1/write", args, psutil.Process(vigil.pid)),
               "victoria-metrics": load(vm_port, "/api/v1/write", args, psutil.Process(vm.pid))}
        print(f"{'server':18} {'samples/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'CPU s/M':>8} "
              f"{'peak RSS':>9} {'errors':>6}")
        for name, r in res.items():
            print(f"{name:18} {r['samples_per_s']:12,.0f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} "
                  f"{r['cpu_s_per_M']:8.2f} {r['peak_rss_gib']:8.2f}G {r['errors']:6d}")
        ratio = res["vigil"]["samples_per_s"] / res["victoria-metrics"]["samples_per_s"]
        print(f"vigil / victoria-metrics throughput: {ratio:.2f}x")
        if args.prometheus:
            prometheus_run(work, args, vigil_port, vm_port)
    finally:
        stop(vigil)
        stop(vm)


if __name__ == "__main__":
    main()
