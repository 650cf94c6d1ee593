"""The independent scenario generator (``bench/scenarios.py``) and what Vigil finds in it.

(a) every incident kind at a clearly detectable magnitude (10 noise sds, or the natural one for
stuck / drop), lasting 1 h and 3 h, starting by day, is found at insight level through the
user's path (files -> ``vigil ingest`` -> ``vigil events import`` -> ``vigil detect`` ->
``vigil insights``); (b) the clean services of every family open no insight; (c) the
generator is deterministic per seed and its ground truth is consistent with its data.

(a) and (b) measure Vigil, so they can fail when Vigil misses; the failure message carries the
store's diagnosis (peak score, flagged steps, class).  The cases Vigil still misses (issue 10
is open) are listed in ``KNOWN_MISSES`` and marked **strict** xfail: each still runs and
still asserts, a fix that makes one pass turns it into a failure until it is removed from the
list, and a case that regresses fails.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("vigil_bench_scenarios",
                                                  ROOT / "bench" / "scenarios.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


sc = _load_bench()

# one typical series per kind: (family, metric)
CANONICAL = {
    "spike": ("student_t", "http_request_duration_seconds_p99"),
    "shift_up": ("gauss", "http_requests_per_second"),
    "shift_down": ("gauss", "container_cpu_usage_cores"),
    "ramp": ("laplace", "container_memory_working_set_bytes"),
    "stuck": ("cpu_ratio", "container_cpu_usage_ratio"),
    "drop": ("gauss", "http_requests_per_second"),
    "variance": ("gauss", "http_requests_per_second"),
    "seasonal": ("gauss", "http_requests_per_second"),
}
DURATIONS = (60, 180)


def _detectable_config() -> Any:
    specs = [
        sc.IncidentSpec(kind, None if kind in sc.NATURAL_KINDS else 10.0, dur, "day",
                        family=family, metric=metric, step_s=300,
                        scope="service" if kind == "drop" else "replica", replicas=3,
                        deploy=False)
        for kind, (family, metric) in CANONICAL.items() for dur in DURATIONS
    ]
    return sc.Config(seed=5, steps=(300,), days={300: 7.0}, clean_per_family={300: 2},
                     max_replicas=3, specs=specs)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("scenarios")
    summary: dict[str, Any] = sc.run(_detectable_config(), out, workers=1,
                                     say=lambda _msg: None)
    return summary


# measured at the commit that added this list (seed 5, 5-min steps, 7 days); issue 10.
# spike 3 h: flagged 16 steps at peak 2.08 (evidence 33 of the 36 the insight rule needs)
KNOWN_MISSES = {("spike", 60), ("spike", 180), ("shift_up", 60), ("shift_down", 60),
                ("ramp", 60),
                ("ramp", 180), ("variance", 60), ("seasonal", 60),
                ("clean", "sparse"), ("clean", "flat")}


def _known_miss(request: pytest.FixtureRequest, key: tuple[str, Any]) -> None:
    if key in KNOWN_MISSES:
        request.applymarker(pytest.mark.xfail(
            strict=True, reason=f"{key}: still missed (issue 10 open, see docs/benchmarks.md)"))


@pytest.mark.parametrize("duration", DURATIONS, ids=lambda d: f"{d}min")
@pytest.mark.parametrize("kind", list(CANONICAL))
def test_detectable_incident_found_as_insight(measured: dict[str, Any], kind: str,
                                              duration: int,
                                              request: pytest.FixtureRequest) -> None:
    _known_miss(request, (kind, duration))
    rows = [r for r in measured["incidents"]
            if r["kind"] == kind and r["duration_min"] == duration]
    assert len(rows) == 1
    row = rows[0]
    assert row["insight"], (
        f"{kind} ({row['family']} {row['metric']}, {duration} min, scope {row['scope']}, "
        f"{row['magnitude_peak']:.1f} sds) opened no insight: anomaly interval found="
        f"{row['anomaly']}, intervals {row['intervals']}, diagnosis {row['diagnosis']}")


@pytest.mark.parametrize("family", list(sc.FAMILIES))
def test_clean_series_stay_quiet(measured: dict[str, Any], family: str,
                                 request: pytest.FixtureRequest) -> None:
    _known_miss(request, ("clean", family))
    per = measured["false"]["per_family"][family]
    assert per["clean_series_days"] > 0
    noisy = [i for i in measured["false"]["insights"] if i["clean"] and family in i["families"]]
    assert per["clean_false_insights"] == 0, (
        f"{len(noisy)} insights on clean {family} services "
        f"({per['clean_series_days']:.0f} series-days): "
        + "; ".join(f"{i['start']} {i['metrics']} {i['evidence']}" for i in noisy[:5]))


# ----------------------------------------------------------------------------- (c) generator


def _matrix_config(seed: int) -> Any:
    return sc.Config(seed=seed, steps=(300, 60), days={300: 6.0, 60: 5.5},
                     step_weights={300: 0.75, 60: 0.25}, magnitudes=(2.0, 10.0),
                     durations_min=(5, 180), clean_per_family={300: 1, 60: 0}, replicates=1)


def test_generator_is_deterministic_per_seed(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    say = lambda _msg: None  # noqa: E731
    sc.generate_fleet(_matrix_config(11), a, say=say)
    sc.generate_fleet(_matrix_config(11), b, say=say)
    sc.generate_fleet(_matrix_config(12), c, say=say)
    assert (a / "truth.json").read_text() == (b / "truth.json").read_text()
    for name in ("s300", "s60"):
        assert pq.read_table(a / "data" / f"{name}.parquet").equals(
            pq.read_table(b / "data" / f"{name}.parquet"))
        assert (a / "events" / f"{name}.jsonl").read_text() == \
            (b / "events" / f"{name}.jsonl").read_text()
    assert not pq.read_table(a / "data" / "s300.parquet").equals(
        pq.read_table(c / "data" / "s300.parquet"))


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("fleet")
    truth: dict[str, Any] = sc.generate_fleet(_matrix_config(3), out, keep=True,
                                              say=lambda _msg: None)
    truth["out"] = out
    return truth


def _incidents(kept: dict[str, Any]) -> list[tuple[Any, Any, Any]]:
    """(service, generated, incident) of every incident."""
    return [(svc, gen, gen.incident) for items in kept["generated"].values()
            for svc, gen in items if gen.incident is not None]


def test_matrix_is_covered(kept: dict[str, Any]) -> None:
    incs = kept["incidents"]
    cells = {(i["kind"], i["magnitude"], i["duration_min"], i["tod"]) for i in incs}
    for kind in sc.KINDS:
        mags = [None] if kind in sc.NATURAL_KINDS else [2.0, 10.0]
        for m in mags:
            for d in (5, 180):
                for tod in sc.TODS:
                    assert (kind, m, d, tod) in cells
    for i in incs:
        assert i["kind"] in sc.FAMILIES[i["family"]].kinds
    assert {s["family"] for s in kept["series"] if s["clean"]} == set(sc.FAMILIES)


def test_incident_windows_inside_the_data(kept: dict[str, Any]) -> None:
    series = {sc._key(s["labels"]) for s in kept["series"]}
    for svc, gen, inc in _incidents(kept):
        tenant = kept["tenants"][inc.tenant]
        assert inc.start_ms >= tenant["scored_start_ms"] + sc.DAY_MS  # a scored day before
        assert inc.end_ms + sc.slack_ms(inc.step_s) + sc.HOUR_MS <= tenant["end_ms"]
        assert inc.end_ms - inc.start_ms == inc.duration_min * sc.MINUTE_MS
        lo, hi = sc.DAY_HOURS if inc.tod == "day" else sc.NIGHT_HOURS
        assert lo <= inc.local_hour <= hi
        local = ((inc.start_ms / sc.HOUR_MS) + svc.tz_h) % 24
        assert abs(local - inc.local_hour) < 1e-3
        assert len(inc.series) == (inc.replicas if inc.scope == "service" else 1)
        for r, lab in zip(inc.detail["targets"], inc.series, strict=True):
            assert sc._key(lab) in series
            assert lab == svc.labels()[r]
            inside = (gen.ts[r] >= inc.start_ms) & (gen.ts[r] < inc.end_ms)
            assert inside.sum() >= 1 and np.isfinite(gen.y[r, inside]).all()


def test_magnitudes_in_noise_units(kept: dict[str, Any]) -> None:
    checked = 0
    for svc, gen, inc in _incidents(kept):
        fam = sc.FAMILIES[svc.family]
        rows = inc.detail["targets"]
        win = (gen.ts[rows] >= inc.start_ms) & (gen.ts[rows] < inc.end_ms)
        y, y0 = gen.y[rows][win], gen.y_clean[rows][win]
        mu, mu_inc, sd = gen.mu[rows][win], gen.mu_inc[rows][win], gen.sd[rows][win]
        assert inc.noise_sd > 0
        if fam.law != "sparse":
            assert inc.noise_sd == pytest.approx(float(np.median(sd)))
        if inc.magnitude is not None and inc.kind != "variance":
            assert inc.magnitude_peak <= inc.magnitude * (1 + 1e-9)
        if inc.kind == "shift_up" and fam.upper is None:
            # unbounded in the direction of the shift: the nominal magnitude exactly
            assert inc.magnitude_peak == pytest.approx(inc.magnitude, rel=1e-3)
        if inc.kind == "stuck":
            assert np.all(np.abs(y - inc.detail["bound"]) <= 0.01)
        if inc.kind == "drop":
            frac = inc.detail["drop_fraction"]
            assert 0.85 <= frac <= 1.0
            assert np.allclose(mu_inc, mu * (1 - frac))
        if fam.law not in sc.CONTINUOUS_LAWS:
            continue
        quantum = 1.0 if fam.law == "flat" else 0.0
        tol = 0.1 * inc.magnitude_peak + 2 * quantum / inc.noise_sd + 1e-6
        if inc.kind in ("spike", "shift_up", "shift_down", "ramp", "seasonal") \
                and fam.law != "cpu":
            # same noise draw with and without the incident: the change is the overlay
            change = np.abs(y - y0) / inc.noise_sd
            assert change.max() == pytest.approx(inc.magnitude_peak, abs=tol)
            assert change.mean() == pytest.approx(inc.magnitude_mean, abs=tol)
            checked += 1
        if inc.kind == "variance" and fam.law in ("gauss", "student_t", "laplace"):
            ratio = np.abs(y - mu) / np.maximum(np.abs(y0 - mu), 1e-300)
            assert float(np.median(ratio)) == pytest.approx(inc.magnitude, rel=0.1)
            checked += 1
    assert checked >= 10


def test_noise_sd_is_the_series_noise(kept: dict[str, Any]) -> None:
    """The recorded noise unit is the spread of the clean series around its expected value."""
    for items in kept["generated"].values():
        for svc, gen in items:
            fam = sc.FAMILIES[svc.family]
            if fam.law == "sparse":
                continue
            for r in range(gen.y.shape[0]):
                ok = np.isfinite(gen.y_clean[r])
                mu, sd = gen.mu[r, ok], gen.sd[r, ok]
                z = (gen.y_clean[r, ok] - mu) / sd
                if fam.law == "cpu":  # away from the clipped bounds
                    z = z[(mu > 4 * sd) & (mu < 1 - 4 * sd)]
                spread = float(np.std(z))
                assert 0.75 <= spread <= 1.33, (svc.family, svc.metric, r, spread)


def test_deployment_events_precede_their_incidents(kept: dict[str, Any]) -> None:
    out: Path = kept["out"]
    for tenant in kept["tenants"]:
        events = [json.loads(line) for line in
                  (out / "events" / f"{tenant}.jsonl").read_text().splitlines()]
        for e in events:
            assert e["kind"] == "deployment" and set(e["labels"]) == {"site", "namespace",
                                                                      "service"}
            assert set(e["attributes"]) == {"version"}  # nothing tells the cause apart
        for inc in (i for i in kept["incidents"] if i["tenant"] == tenant):
            times = [sc._parse_ms(e["time"]) for e in events if e["labels"] == inc["service"]]
            before = [t for t in times if inc["start_ms"] - 10 * sc.MINUTE_MS <= t
                      < inc["start_ms"]]
            if inc["deploy_event"]:
                assert before
