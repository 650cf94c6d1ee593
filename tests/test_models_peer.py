"""PeerModel: deviant replicas, new series priors, grouping."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.batch import SeriesBatch
from vigil.models.peer import PeerModel, peer_groups

HOUR = 3_600_000
START = 1_700_006_400_000


def _replicas(n_groups: int, size: int, t_len: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(n_groups), size).astype(np.int64)
    t = np.arange(t_len)
    load = rng.uniform(20, 40, n_groups)[group][:, None] + 8 * np.sin(2 * np.pi * t / 24)
    return load + rng.normal(0, 1.5, (len(group), t_len)), group


def _batch(x: np.ndarray, first: int, stop: int, labels: list | None = None) -> SeriesBatch:
    ids = np.arange(x.shape[0], dtype=np.int64)
    return SeriesBatch(ids, START + first * HOUR, HOUR, x[:, first:stop], labels or [])


def test_stuck_pod_among_replicas_is_flagged() -> None:
    x, group = _replicas(40, 5, 600, 0)
    x[7, 450:] = 100.0  # one pod stuck at 100% while its replicas are around 30%
    model = PeerModel().fit(_batch(x, 0, 400), group=group)
    s = model.score(_batch(x, 400, 600))
    assert (s.anomaly_score[7, 50:] > 1).all()
    assert np.mean(s.anomaly_score[7, :50] > 1) < 0.05
    others = np.delete(np.arange(len(group)), 7)
    assert np.mean(s.anomaly_score[others] > 1) < 2e-3  # its replicas are not dragged along
    np.testing.assert_allclose(s.expected[7, 50:], x[[5, 6, 8, 9], 450:].mean(axis=0), atol=3.0)
    assert not s.warming_up.any()


def test_new_series_scored_from_first_point() -> None:
    x, group = _replicas(3, 4, 300, 1)
    x[5, :250] = np.nan  # pod 5 appears at step 250 (a new replica)
    x[5, 251] = 90.0  # its second point is anomalous against its peers
    model = PeerModel(min_history=10).fit(_batch(x, 0, 240), group=group)
    s = model.score(_batch(x, 240, 300))
    k0 = 10
    assert np.isnan(s.anomaly_score[5, :k0]).all()
    assert np.isfinite(s.anomaly_score[5, k0]) and s.anomaly_score[5, k0] < 1
    assert s.anomaly_score[5, k0 + 1] > 1
    assert s.warming_up[5, : k0 + 10].all() and not s.warming_up[5, k0 + 10 :].any()
    assert np.isfinite(s.p_value[5, k0:]).all()
    assert not s.warming_up[np.arange(12) != 5].any()


def test_groups_from_labels_and_min_peers() -> None:
    x, _ = _replicas(2, 3, 100, 2)
    labels = [{"__name__": "cpu", "job": f"j{i // 3}", "pod": f"p{i}"} for i in range(6)]
    g = peer_groups(labels, ["__name__", "job"])
    assert g.tolist() == [0, 0, 0, 1, 1, 1]
    x[3:5, 80:] = np.nan  # group 1 left with one observed member: no peers to compare with
    model = PeerModel(group_by=["__name__", "job"], min_history=5).fit(_batch(x, 0, 60, labels))
    assert model.group_.tolist() == g.tolist()
    s = model.score(_batch(x, 60, 100, labels))
    assert np.isnan(s.anomaly_score[5, 20:]).all() and np.isnan(s.expected[5, 20:]).all()
    assert np.isfinite(s.anomaly_score[:3]).all()


def test_forecast_is_nan() -> None:
    x, group = _replicas(1, 3, 50, 3)
    model = PeerModel().fit(_batch(x, 0, 50), group=group)
    assert np.isnan(model.forecast(4)).all() and model.forecast(4).shape == (3, 4, 3)
    with pytest.raises(ValueError, match="horizon=0 is invalid"):
        model.forecast(0)


def test_errors() -> None:
    x, _ = _replicas(1, 3, 50, 4)
    with pytest.raises(ValueError, match="peer model needs groups"):
        PeerModel().fit(_batch(x, 0, 50))
    with pytest.raises(ValueError, match=r"group has shape \(2,\)"):
        PeerModel().fit(_batch(x, 0, 50), group=np.array([0, 1]))
    with pytest.raises(ValueError, match="group_by is empty"):
        peer_groups([{"__name__": "a"}], [])
    with pytest.raises(ValueError, match="is not fitted"):
        PeerModel().score(_batch(x, 0, 5))
    for params, msg in [
        ({"min_history": 0}, "min_history=0 is invalid"),
        ({"min_peers": 0}, "min_peers=0 is invalid"),
        ({"offset_rate": -0.1}, "offset_rate=-0.1 is invalid"),
        ({"huber": 0.5}, "huber=0.5 is invalid"),
        ({"scale_floor": 2.0}, "scale_floor=2.0 is invalid"),
        ({"alpha": 1.0}, "alpha=1.0 is invalid"),
    ]:
        with pytest.raises(ValueError, match=msg):
            PeerModel(**params)  # type: ignore[arg-type]
