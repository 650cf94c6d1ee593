"""``vigil serve`` SIGKILLed under remote-write load loses no acknowledged sample
(bench/crash_ingest.py with a few kills; the benchmark runs more)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "crash_ingest.py"), "--kills", "3",
                          "--series", "200", "--seed", "1", "--workdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert "acknowledged but missing: 0; wrong value: 0" in last
    acked = int(last.split(" samples acknowledged")[0].split("; ")[-1].replace(",", ""))
    assert acked > 0, last
