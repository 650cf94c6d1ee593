"""M4 Hourly scorer: metric definitions, Naive2 reference figures, loader, default forecaster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vigil.benchmarks import m4

DATA = Path("/work/shared/data/m4")
needs_data = pytest.mark.skipif(
    not (DATA / "Hourly-train.csv").is_file(), reason="M4 Hourly data not available"
)


def test_smape_and_mase_definitions() -> None:
    actual = np.array([[100.0, 200.0], [0.0, 0.0]])
    fc = np.array([[110.0, 180.0], [0.0, 0.0]])
    expected = (200 * 10 / 210 + 200 * 20 / 380) / 2
    assert m4.smape(actual, fc)[0] == pytest.approx(expected)
    assert m4.smape(actual, fc)[1] == 0.0  # 0/0 counts as a perfect point
    train = np.tile(np.arange(24, dtype=np.float64), 3)[None, :]
    train[0, 24:] += 2.0  # seasonal naive in-sample errors: 2 on day 2, 0 on day 3
    assert m4.seasonal_naive_mae(train)[0] == pytest.approx(1.0)
    assert m4.mase(actual[:1], fc[:1], train)[0] == pytest.approx(15.0)


def test_seasonality_test_and_indices() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(24 * 10)
    pattern = 1.0 + 0.3 * np.sin(2 * np.pi * t / 24)
    x = np.vstack([100 * pattern + rng.normal(0, 1, len(t)), 100 + rng.normal(0, 1, len(t))])
    assert m4.seasonality_test(x).tolist() == [True, False]
    assert not m4.seasonality_test(x[:, :70]).any()  # shorter than three seasons
    si = m4.seasonal_indices(x[:1])
    assert si.mean() == pytest.approx(1.0)
    assert np.abs(si[0] - pattern[:24]).max() < 0.02


def test_loader_right_aligns(tmp_path: Path) -> None:
    head = '"V1",' + ",".join(f'"V{i}"' for i in range(2, 8))
    (tmp_path / "Hourly-train.csv").write_text(
        head + '\n"H1",1,2,3,4,5,6\n"H2",7,8,9,,,\n', encoding="utf-8"
    )
    test_head = '"V1",' + ",".join(f'"V{i}"' for i in range(2, 50))
    rows = "\n".join(f'"H{k}",' + ",".join(["1"] * 48) for k in (1, 2))
    (tmp_path / "Hourly-test.csv").write_text(test_head + "\n" + rows + "\n", encoding="utf-8")
    data = m4.load_m4_hourly(tmp_path)
    assert data.names == ["H1", "H2"]
    assert data.lengths.tolist() == [6, 3]
    assert np.array_equal(data.train[1, 3:], [7, 8, 9]) and np.isnan(data.train[1, :3]).all()
    batch = data.batch()
    assert batch.values.shape == (2, 6) and batch.step == m4.HOUR_MS


def test_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"Hourly-train\.csv"):
        m4.load_m4_hourly(tmp_path)
    (tmp_path / "Hourly-train.csv").write_text('"V1","V2"\n"H1",1\n', encoding="utf-8")
    (tmp_path / "Hourly-test.csv").write_text('"V1","V2"\n"H9",1\n', encoding="utf-8")
    with pytest.raises(ValueError, match="different series"):
        m4.load_m4_hourly(tmp_path)
    (tmp_path / "Hourly-test.csv").write_text('"V1","V2"\n"H1",1\n', encoding="utf-8")
    with pytest.raises(ValueError, match="48 values"):
        m4.load_m4_hourly(tmp_path)


@needs_data
def test_naive2_reference_figures() -> None:
    data = m4.load_m4_hourly(DATA)
    assert data.train.shape[0] == 414
    res = m4.evaluate(data, m4.naive2(data.train, data.lengths))
    assert round(res["smape"], 3) == 18.383
    assert round(res["mase"], 3) == 2.395
    assert res["owa"] == pytest.approx(1.0)
    snaive = m4.evaluate(data, m4.seasonal_naive(data.train))
    assert snaive["owa"] == pytest.approx(0.6275, abs=5e-4)  # seasonal naive
    with pytest.raises(ValueError, match="expected \\(414, 48\\)"):
        m4.evaluate(data, np.zeros((414, 24)))
    bad = m4.seasonal_naive(data.train)
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="1 non-finite"):
        m4.evaluate(data, bad)


@needs_data
@pytest.mark.slow
def test_default_forecaster_beats_target() -> None:
    res = m4.run_m4(DATA, verbose=False)
    assert res["n_series"] == 414
    assert res["owa"] < 0.604  # statsforecast MSTL measured 0.604 on this data
