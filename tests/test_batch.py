"""SeriesBatch alignment rule: last sample within [t_k, t_k + step), NaN for gaps."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.batch import SeriesBatch, batch_from_long


def test_last_sample_in_each_step_wins_and_gaps_are_nan():
    sid = np.array([7, 7, 7, 3, 7])
    ts = np.array([0, 40, 10, 100, 250])
    val = np.array([1.0, 2.0, 3.0, 9.0, 5.0])
    b = batch_from_long(sid, ts, val, start=0, end=300, step=100)
    assert b.series_ids.tolist() == [3, 7]
    np.testing.assert_array_equal(b.values[0], [np.nan, 9.0, np.nan])
    # series 7: step 0 holds ts 0, 10, 40 -> the last by timestamp (40 -> 2.0)
    np.testing.assert_array_equal(b.values[1], [2.0, np.nan, 5.0])
    assert b.timestamps().tolist() == [0, 100, 200]
    assert b.end == 300


def test_explicit_order_and_out_of_range_samples_ignored():
    b = batch_from_long(
        np.array([1, 2, 5]), np.array([-1, 50, 300]), np.array([1.0, 2.0, 3.0]),
        start=0, end=300, step=100, order=np.array([2, 1, 4]),
    )
    assert b.series_ids.tolist() == [2, 1, 4]
    np.testing.assert_array_equal(b.values, [[2.0, np.nan, np.nan], [np.nan] * 3, [np.nan] * 3])


def test_validation_messages():
    with pytest.raises(ValueError, match="step=0 ms is invalid"):
        batch_from_long(np.array([1]), np.array([0]), np.array([1.0]), start=0, end=10, step=0)
    with pytest.raises(ValueError, match="is empty"):
        batch_from_long(np.array([1]), np.array([0]), np.array([1.0]), start=10, end=10, step=1)
    with pytest.raises(ValueError, match="2 rows but 1 series ids"):
        SeriesBatch(np.array([1]), 0, 1, np.zeros((2, 3)))


@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 999), st.floats(allow_nan=False)),
        max_size=60,
    ),
)
def test_round_trip_through_long_on_grid(samples):
    # one sample per (series, grid point): the batch holds exactly the samples given
    cells = {(s, t * 10): v for s, t, v in samples}
    sid = np.array([k[0] for k in cells], dtype=np.int64)
    ts = np.array([k[1] for k in cells], dtype=np.int64)
    val = np.array(list(cells.values()), dtype=float)
    b = batch_from_long(sid, ts, val, start=0, end=10_000, step=10)
    long = b.to_long()
    got = {
        (s, t): v
        for s, t, v in zip(
            long["series_id"].to_pylist(), long["timestamp"].to_pylist(), long["value"].to_pylist(),
            strict=True,
        )
    }
    assert got == cells


def test_rows_and_columns_views():
    b = batch_from_long(
        np.array([1, 2]), np.array([0, 10]), np.array([1.0, 2.0]), start=0, end=40, step=10,
        labels=[{"__name__": "a"}, {"__name__": "b"}],
    )
    sub = b.rows(np.array([1]))
    assert sub.series_ids.tolist() == [2] and sub.labels == [{"__name__": "b"}]
    tail = b.columns(1, 4)
    assert tail.start == 10 and tail.n_steps == 3
    np.testing.assert_array_equal(tail.values[1], [2.0, np.nan, np.nan])
