"""The ledger survives SIGKILL like samples do: after a killed writer, the ledger verifies,
holds whole batches only, and the next writer continues the chain."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from vigil.ledger import chain
from vigil.store import Store

WRITER = Path(__file__).with_name("ledger_crash_writer.py")
SRC = Path(__file__).resolve().parents[1] / "src"


def test_killed_writers_leave_a_valid_ledger(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    rng = random.Random(3)
    store = Store(tmp_path)
    first = 0
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(WRITER), str(tmp_path), "t", str(first)],
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        done = [int(proc.stdout.readline())]  # at least one batch committed
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        done += [int(x) for x in out.split()]
        report = chain.verify(store, "t")
        assert report.ok, report.as_dict()
        batches = [json.loads(b)["outputs"]["batch"] for b in
                   chain.read_records(store, "t").column("body").to_pylist()]
        assert len(batches) % 3 == 0  # whole batches only
        last = batches[-1]
        assert last in (done[-1], done[-1] + 1)  # the batch in flight: all or nothing
        first = last + 1
    assert chain.verify(store, "t").checkpoints == first
