"""Saving and loading model state (npz + digest), across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import vigil
from model_conformance import N_FIT, standard_batch
from vigil.models.persist import load_model, read_meta, save_model, state_digest
from vigil.models.seasonal import SeasonalBaseline


def _fitted() -> SeasonalBaseline:
    return SeasonalBaseline(alpha=0.005).fit(standard_batch(None, 0, N_FIT))


def test_loads_in_another_process(tmp_path: Path) -> None:
    model = _fitted()
    path = tmp_path / "m.npz"
    digest = save_model(model, path)
    meta = read_meta(path)
    assert meta["name"] == "seasonal_baseline" and meta["sha256"] == digest
    assert meta["class"] == "vigil.models.seasonal:SeasonalBaseline"
    assert meta["code_version"] == vigil.__version__ and meta["params"]["alpha"] == 0.005
    expected = model.score(standard_batch(None, N_FIT)).anomaly_score
    np.save(tmp_path / "expected.npy", expected)
    code = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from model_conformance import N_FIT, standard_batch\n"
        "from vigil.models.persist import load_model\n"
        "m = load_model(sys.argv[1])\n"
        "s = m.score(standard_batch(None, N_FIT)).anomaly_score\n"
        "e = np.load(sys.argv[1].replace('m.npz', 'expected.npy'))\n"
        "assert np.array_equal(s, e, equal_nan=True)\n"
        "print('same', type(m).__name__)\n"
    )
    tests_dir = str(Path(__file__).parent)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), tests_dir], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "same SeasonalBaseline"


def _rewrite(path: Path, meta_update: dict | None = None, tamper: str | None = None) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    meta.update(meta_update or {})
    arrays["__meta__"] = np.array(json.dumps(meta))
    if tamper:
        arrays[tamper] = arrays[tamper] + 1
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_refuses_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    save_model(_fitted(), path)
    _rewrite(path, tamper="rate_")
    with pytest.raises(ValueError, match="is corrupt: state digest"):
        load_model(path)
    save_model(_fitted(), path)
    with pytest.raises(ValueError, match="holds model 'seasonal_baseline': expected 'ets'"):
        load_model(path, expected_name="ets")
    _rewrite(path, {"model_version": "0"})
    with pytest.raises(ValueError, match="version '0' but this vigil"):
        load_model(path)
    _rewrite(path, {"class": "os:system"})
    with pytest.raises(ValueError, match="model class 'os:system' is invalid"):
        load_model(path)
    _rewrite(path, {"class": "vigil.models.seasonal:DAY_MS"})
    with pytest.raises(ValueError, match="is not a vigil Model"):
        load_model(path)
    _rewrite(path, {"format_version": 99})
    with pytest.raises(ValueError, match="expected 'vigil-model' v1"):
        load_model(path)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(2))
    with pytest.raises(ValueError, match="no __meta__ entry"):
        load_model(plain)
    with pytest.raises(ValueError, match="no __meta__ entry"):
        read_meta(plain)
    assert zipfile.is_zipfile(path)


def test_digest_and_state_errors() -> None:
    a = {"x": np.arange(3), "y": np.zeros((2, 2))}
    assert state_digest(a) == state_digest({"y": np.zeros((2, 2)), "x": np.arange(3)})
    assert state_digest(a) != state_digest({"x": np.arange(3).astype(np.int32), "y": a["y"]})
    with pytest.raises(ValueError, match="has dtype object"):
        state_digest({"x": np.array([None])})
    model = _fitted()
    with pytest.raises(ValueError, match="state lacks"):
        model.set_state({"rate_": np.zeros(1)})


class _BadKeys(SeasonalBaseline):
    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "__meta__": np.zeros(1)}


def test_save_refuses_reserved_keys(tmp_path: Path) -> None:
    model = _BadKeys().fit(standard_batch(None, 0, N_FIT))
    with pytest.raises(ValueError, match=r"state keys \['__meta__'\] are invalid"):
        save_model(model, tmp_path / "bad.npz")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_a_kept_model_of_another_version_is_refitted_not_fatal(tmp_path: Path) -> None:
    """After an upgrade that changes a model's state, the service's kept partition models are
    refitted (like missing ones) instead of failing the tick."""
    from vigil.engine.modelset import load_partition_model, save_partition_model

    model = _fitted()
    ids = np.asarray(model.state()["series_ids_"], dtype=np.int64)
    path = tmp_path / "part-00000.npz"
    save_partition_model(model, ids, path)
    assert load_partition_model(path, ids) is not None
    _rewrite(path, {"model_version": "0"})
    assert load_partition_model(path, ids) is None
    _rewrite(path, tamper="rate_")  # a damaged file is still an error, not a silent refit
    with pytest.raises(ValueError, match="is corrupt"):
        load_partition_model(path, ids)
