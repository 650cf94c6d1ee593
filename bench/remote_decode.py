"""Remote-write decode speed: Vigil's walker vs protobuf's parser on the same payloads.

    .venv/bin/python bench/remote_decode.py [--seconds 2]

Payload shapes: Prometheus' default (2,000 series x 1 sample per request, 8 labels each),
and denser requests (500 x 10, 100 x 100).  Each request is decoded end to end (snappy,
protobuf, label validation through the label cache, arrays) in a loop; the series repeat
across requests as they do in a real remote-write stream, so the label cache is warm.
Prints samples/s of each decoder and the ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vigil.remote import RemoteDecoder, encode_write_request


def payload(n_series: int, per_series: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    labels = [
        {
            "__name__": f"node_metric_{k % 50}",
            "instance": f"10.0.{k % 256}.{k // 256}:9100",
            "job": "node",
            "cluster": "prod-eu-1",
            "namespace": f"ns-{k % 17}",
            "pod": f"pod-{k:06d}",
            "container": "app",
            "mode": ["idle", "user", "system"][k % 3],
        }
        for k in range(n_series)
    ]
    series = np.repeat(np.arange(n_series), per_series)
    ts = 1_700_000_000_000 + np.tile(np.arange(per_series) * 15_000, n_series)
    values = rng.normal(100, 10, len(series)).round(3)
    return encode_write_request(labels, series, ts, values)


def rate(decoder: RemoteDecoder, body: bytes, seconds: float) -> float:
    decoder.decode(body)  # warm: compile, fill the label cache
    n = 0
    samples = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        samples += decoder.decode(body).n_samples
        n += 1
    return samples / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    print(f"{'shape':>16} {'bytes':>9} {'fast samples/s':>15} {'protobuf samples/s':>19} ratio")
    for n_series, per in ((2000, 1), (500, 10), (100, 100)):
        body = payload(n_series, per)
        fast = rate(RemoteDecoder(), body, args.seconds)
        ref = rate(RemoteDecoder(fast=False), body, args.seconds)
        print(
            f"{n_series:>7} x {per:<6} {len(body):>9} {fast:>15,.0f} {ref:>19,.0f} "
            f"{fast / ref:5.1f}x"
        )


if __name__ == "__main__":
    main()
