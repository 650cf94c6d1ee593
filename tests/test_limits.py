import numpy as np

from vigil.engine.limits import forward_fill, limit_matrix, limit_rows

NAN = np.nan


def test_pairing_by_prefix_unit_and_labels():
    labels = [
        {"__name__": "container_memory_working_set_bytes", "pod": "a"},
        {"__name__": "container_memory_limit_bytes", "pod": "a"},
        {"__name__": "container_memory_working_set_bytes", "pod": "b"},  # no limit for b
        {"__name__": "container_memory_limit_bytes", "pod": "c"},
        {"__name__": "http_requests_per_second", "pod": "a"},
    ]
    assert limit_rows(labels).tolist() == [1, -1, -1, -1, -1]


def test_limit_matrix_is_causal_and_explicit():
    labels = [
        {"__name__": "container_memory_working_set_bytes", "pod": "a"},
        {"__name__": "container_memory_limit_bytes", "pod": "a"},
        {"__name__": "node_disk_usage_ratio", "node": "n1"},
    ]
    values = np.array([[1, 2, 3, 4], [NAN, 10, NAN, 20], [0.1, 0.2, 0.3, 0.4]], dtype=float)
    lim = limit_matrix(labels, values)
    np.testing.assert_array_equal(lim[0], [NAN, 10, 10, 20])  # never a later limit
    np.testing.assert_array_equal(lim[1], [NAN] * 4)
    np.testing.assert_array_equal(lim[2], [1.0] * 4)


def test_forward_fill():
    v = np.array([[NAN, 1, NAN, NAN, 2], [3, NAN, NAN, NAN, NAN]])
    np.testing.assert_array_equal(forward_fill(v), [[NAN, 1, 1, 1, 2], [3, 3, 3, 3, 3]])


def test_stock_exporter_pairs_join_across_jobs():
    from vigil.engine.limits import LimitPair, pair_rows

    ctr = {"namespace": "shop", "pod": "cart-1", "container": "app"}
    labels = [
        {"__name__": "container_memory_working_set_bytes", "job": "kubelet", **ctr},
        {"__name__": "kube_pod_container_resource_limits", "job": "kube-state-metrics",
         "resource": "memory", "unit": "byte", **ctr},
        {"__name__": "kube_pod_container_resource_limits", "job": "kube-state-metrics",
         "resource": "cpu", "unit": "core", **ctr},
        {"__name__": "container_cpu_usage_seconds_total", "job": "kubelet", "vigil_view": "rate",
         **ctr},
        {"__name__": "container_spec_memory_limit_bytes", "job": "kubelet", **ctr},
        {"__name__": "node_filesystem_size_bytes", "device": "/dev/sda1", "mountpoint": "/"},
        {"__name__": "node_filesystem_size_bytes", "device": "/dev/sda1", "mountpoint": "/",
         "vigil_view": "used"},
        {"__name__": "node_cpu_usage_ratio", "instance": "n1"},
    ]
    got = [(u, lim) for u, lim, _ in pair_rows(labels)]
    assert got == [(0, 1), (0, 4), (3, 2), (6, 5)]
    values = np.array([
        [1.0, 2, 3, 4, 5],
        [NAN, 8, NAN, NAN, 9],      # kube-state-metrics memory limit
        [2.0, 2, 2, 2, 2],          # cpu limit (cores)
        [0.5, 0.6, 0.7, 0.8, 0.9],  # cpu rate
        [7.0, 7, 0, 0, 0],          # cAdvisor spec limit; 0 = unlimited
        [100.0] * 5, [40.0, 50, 60, 70, 80], [0.2] * 5,
    ])
    lim = limit_matrix(labels, values)
    # KSM's limit wins where known; before it is seen, cAdvisor's spec limit stands in
    np.testing.assert_array_equal(lim[0], [7, 8, 8, 8, 9])
    np.testing.assert_array_equal(lim[3], [2] * 5)
    np.testing.assert_array_equal(lim[6], [100] * 5)
    np.testing.assert_array_equal(lim[7], [NAN] * 5)  # no default bound on usage ratios
    # cAdvisor's 0 is "unlimited": it does not carry an earlier limit forward
    only_spec = limit_matrix(labels[:1] + labels[4:5], values[[0, 4]])
    np.testing.assert_array_equal(only_spec[0], [7, 7, NAN, NAN, NAN])
    # user pairs extend the table
    extra = LimitPair.from_dict({"usage": "queue_depth", "limit": "queue_capacity",
                                 "on": ["queue"]})
    q = [{"__name__": "queue_depth", "queue": "a", "pod": "x"},
         {"__name__": "queue_capacity", "queue": "a"}]
    assert limit_matrix(q, np.array([[1.0], [50.0]]), pairs=(extra,))[0, 0] == 50.0
    import pytest

    with pytest.raises(ValueError, match=r"limit pair .* is invalid"):
        LimitPair.from_dict({"usage": "x"})
