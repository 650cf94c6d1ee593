"""Guards: direction, minimum deviations, duration."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vigil.models.guards import GUARD_CAP, Guards, apply_guards


def _apply(g: Guards, y: np.ndarray, e: np.ndarray, s: np.ndarray, d: int = 0) -> np.ndarray:
    out, _ = apply_guards(y, e, s, np.full(y.shape[0], d, np.int8), g, np.zeros(y.shape[0]))
    return out


def test_direction() -> None:
    y = np.array([[12.0, 8.0, 12.0]])
    e = np.full((1, 3), 10.0)
    s = np.array([[3.0, 3.0, 0.5]])
    g = Guards(min_rel_dev=0.0)
    assert _apply(g, y, e, s, 1).tolist() == [[3.0, GUARD_CAP, 0.5]]  # up: the drop is capped
    assert _apply(g, y, e, s, -1).tolist() == [[GUARD_CAP, 3.0, 0.5]]
    assert _apply(g, y, e, s, 0).tolist() == [[3.0, 3.0, 0.5]]


def test_direction_codes_from_metric_names() -> None:
    g = Guards(direction="both", directions={"*_errors_total": "up", "free_*": "down"})
    labels = [{"__name__": "http_errors_total"}, {"__name__": "free_bytes"}, {"__name__": "cpu"}]
    assert g.direction_codes(labels, 3).tolist() == [1, -1, 0]
    assert Guards(direction="up").direction_codes([], 2).tolist() == [1, 1]
    with pytest.raises(ValueError, match="2 label sets for 3 series"):
        g.direction_codes(labels[:2], 3)


def test_min_abs_and_rel_dev() -> None:
    y = np.array([[100.5, 105.0, 0.002, np.nan]])
    e = np.array([[100.0, 100.0, 0.0, 1.0]])
    s = np.array([[5.0, 5.0, 5.0, np.nan]])
    out = _apply(Guards(min_rel_dev=0.01), y, e, s)
    assert out[0, :3].tolist() == [GUARD_CAP, 5.0, 5.0] and np.isnan(out[0, 3])
    out = _apply(Guards(min_rel_dev=0.0, min_abs_dev=1.0), y, e, s)
    assert out[0, :3].tolist() == [GUARD_CAP, 5.0, GUARD_CAP]


def test_duration_and_carry_over() -> None:
    s = np.array([[2.0, 0.1, 2.0, 2.0, 0.1, 0.1, 0.1, 2.0, 2.0, 2.0]])
    y, e = s * 10 + 100, np.full_like(s, 100.0)
    g = Guards(min_rel_dev=0.0, min_duration=2, window=3)
    out = _apply(g, y, e, s)
    assert (out[0] > 1).tolist() == [
        False,
        False,
        True,
        True,
        False,
        False,
        False,
        False,
        True,
        True,
    ]
    hist = np.zeros(1)
    parts = []
    for a, b in [(0, 3), (3, 4), (4, 10)]:
        o, hist = apply_guards(y[:, a:b], e[:, a:b], s[:, a:b], np.zeros(1, np.int8), g, hist)
        parts.append(o)
    assert np.array_equal(np.hstack(parts), out)


def test_errors_and_dict_roundtrip() -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"direction": "left"}, "direction='left' is invalid"),
        ({"directions": {"x*": "sideways"}}, r"directions\['x\*'\]='sideways' is invalid"),
        ({"min_abs_dev": -1.0}, "min_abs_dev=-1.0 is invalid"),
        ({"min_rel_dev": -0.1}, "min_rel_dev=-0.1 is invalid"),
        ({"rel_eps": 0.0}, "rel_eps=0.0 is invalid"),
        ({"window": 64}, "window=64 is invalid"),
        ({"window": 3, "min_duration": 4}, "min_duration=4 is invalid"),
        ({"colour": 1}, r"unknown guard settings \['colour'\]"),
    ]
    for d, msg in bad:
        with pytest.raises(ValueError, match=msg):
            Guards.from_dict(d)
    g = Guards(direction="up", directions={"a*": "down"}, min_duration=2, window=5)
    assert Guards.from_dict(g.to_dict()) == g
