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
