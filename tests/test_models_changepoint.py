"""CUSUM level-shift detection."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.models.changepoint import CusumParams, cusum_scan


def test_detects_shift_not_spike() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 300)) * 0.7
    z[0, 150:] += 3.0  # shift of 3 units
    z[1, 150] = 50.0  # one spike
    z[2, 150:] -= 10.0  # large downward shift
    cp, _, _ = cusum_scan(z)
    first0 = 150 + np.argmax(cp.flag[0, 150:] == 1)
    assert cp.flag[0, 150:].max() == 1 and first0 <= 155
    assert not (cp.flag[1] != 0).any()
    assert np.flatnonzero(cp.flag[2])[0] == 151 and cp.flag[2, 151] == -1  # 3 + 3 >= h = 6
    assert (cp.flag[:, :150] == 0).all()
    assert cp.statistic[2, 150] == pytest.approx(3.0 / 6.0)


def test_continuation_and_nan() -> None:
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2, 100)) + 1.5
    z[0, 10:20] = np.nan
    full, p_end, n_end = cusum_scan(z)
    a, p1, n1 = cusum_scan(z[:, :37])
    b, p2, n2 = cusum_scan(z[:, 37:], pos=p1, neg=n1)
    assert np.array_equal(full.statistic, np.hstack([a.statistic, b.statistic]), equal_nan=True)
    assert np.array_equal(full.flag, np.hstack([a.flag, b.flag]))
    assert np.array_equal(p_end, p2) and np.array_equal(n_end, n2)
    assert np.isnan(full.statistic[0, 10:20]).all()


def test_errors() -> None:
    with pytest.raises(ValueError, match="cusum k=-1 is invalid"):
        CusumParams(k=-1)
    with pytest.raises(ValueError, match="cusum h=0 is invalid"):
        CusumParams(h=0)
    with pytest.raises(ValueError, match=r"cusum clip=1\.0 is invalid"):
        CusumParams(k=1.0, clip=1.0)
    with pytest.raises(ValueError, match="z has shape"):
        cusum_scan(np.zeros(4))
    with pytest.raises(ValueError, match="CUSUM sums have shapes"):
        cusum_scan(np.zeros((2, 4)), pos=np.zeros(3))
    assert CusumParams.from_dict(CusumParams(h=5).to_dict()) == CusumParams(h=5)
