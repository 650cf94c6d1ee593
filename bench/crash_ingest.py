"""Crash test of ``vigil serve``: SIGKILL under load, restart, count acknowledged samples lost.

A writer keeps posting remote-write requests (each of fresh, unique timestamps) while the server
is SIGKILLed at random moments ``--kills`` times and restarted each time.  Every request answered
2xx is remembered; at the end the server is stopped gracefully and the store is read: every
acknowledged sample must be there with its exact value.

    python bench/crash_ingest.py [--kills 10] [--series 500] [--seed 0]

Prints the counts and exits 1 if any acknowledged sample is missing or wrong.
"""

from __future__ import annotations

import argparse
import http.client
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

START = 1_767_225_600_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(work: Path, port: int) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "--config",
                          str(work / "vigil.yaml"), "--log-level", "warning"],
                         stdout=subprocess.DEVNULL, stderr=open(work / "vigil.log", "ab"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return p
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("vigil did not start; see vigil.log")


class Writer(threading.Thread):
    def __init__(self, port: int, series: int, per: int) -> None:
        super().__init__(daemon=True)
        from vigil.remote import encode_write_request

        self.encode = encode_write_request
        self.port, self.series, self.per = port, series, per
        self.labels = [{"__name__": "crash_metric", "pod": f"p{i}"} for i in range(series)]
        self.acked: list[tuple[int, np.ndarray]] = []  # (request no, values)
        self.failed = 0
        self.stop = threading.Event()

    def request(self, k: int) -> tuple[bytes, np.ndarray]:
        sid = np.repeat(np.arange(self.series), self.per)
        ts = START + (k * self.per + np.tile(np.arange(self.per), self.series)) * 1000
        values = (k * 1_000_003 + np.arange(len(sid))).astype(np.float64)
        return self.encode(self.labels, sid, ts, values), values

    def run(self) -> None:
        k = 0
        headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
        while not self.stop.is_set():
            body, values = self.request(k)
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                c.request("POST", "/api/v1/write", body=body, headers=headers)
                status = c.getresponse().status
                if 200 <= status < 300:
                    self.acked.append((k, values))
                    k += 1  # a failed request is retried with the same samples, like Prometheus
                else:
                    self.failed += 1
            except OSError:
                self.failed += 1
                time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--series", type=int, default=500)
    ap.add_argument("--per", type=int, default=4, help="samples per series per request")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="vigil-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (work / "vigil.yaml").write_text(
        f"listen: 127.0.0.1:{port}\nstore: {work}/store\n"
        "schedule: {infer_every: 1h, checkpoint_every: 1s}\n")
    server = start(work, port)
    writer = Writer(port, args.series, args.per)
    writer.start()
    for i in range(args.kills):
        time.sleep(rng.uniform(0.3, 3.0))
        server.send_signal(signal.SIGKILL)
        server.wait()
        print(f"kill {i + 1}/{args.kills}: {len(writer.acked)} requests acknowledged so far",
              flush=True)
        server = start(work, port)
    time.sleep(1.0)
    writer.stop.set()
    writer.join()
    server.send_signal(signal.SIGTERM)
    server.wait(120)

    from vigil.series import series_id
    from vigil.store import Store

    table = Store(work / "store").select("default", None)
    ids = {series_id(ls): i for i, ls in enumerate(writer.labels)}
    got: dict[tuple[int, int], float] = {}
    for s, t, v in zip(table["series_id"].to_numpy(), table["timestamp"].to_numpy(),
                       table["value"].to_numpy(), strict=True):
        got[(ids[int(s)], int(t))] = float(v)
    missing = wrong = 0
    sid = np.repeat(np.arange(args.series), args.per)
    for k, values in writer.acked:
        ts = START + (k * args.per + np.tile(np.arange(args.per), args.series)) * 1000
        for s, t, v in zip(sid, ts, values, strict=True):
            have = got.get((int(s), int(t)))
            if have is None:
                missing += 1
            elif have != v:
                wrong += 1
    acked = len(writer.acked) * args.series * args.per
    print(f"{args.kills} SIGKILLs; {acked:,} samples acknowledged in {len(writer.acked):,} "
          f"requests ({writer.failed} requests failed while the server was down); "
          f"stored {len(got):,}; acknowledged but missing: {missing}; wrong value: {wrong}")
    sys.exit(1 if missing or wrong else 0)


if __name__ == "__main__":
    main()
