"""Per-series models (vectorised across series) and their shared pieces.

* :mod:`vigil.models.base` — the ``Model`` interface and ``Scores``;
* :mod:`vigil.models.seasonal` — ``SeasonalBaseline`` (robust seasonal profile + level);
* :mod:`vigil.models.peer` — ``PeerModel`` (each series against its replicas) and
  ``peer_groups``;
* :mod:`vigil.models.changepoint` — CUSUM level-shift detection (``cusum_scan``);
* :mod:`vigil.models.calibration` — tail probabilities and ``anomaly_score``;
* :mod:`vigil.models.guards` — direction / minimum deviation / duration guards;
* :mod:`vigil.models.seasonality` — seasonality detection and profiles;
* :mod:`vigil.models.persist` — ``save_model`` / ``load_model`` (npz + digest).

Names below are imported lazily (numba kernels load on first use, not on ``import vigil``).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SeasonalBaseline": "vigil.models.seasonal",
    "PeerModel": "vigil.models.peer",
    "peer_groups": "vigil.models.peer",
    "Guards": "vigil.models.guards",
    "CusumParams": "vigil.models.changepoint",
    "Changepoints": "vigil.models.changepoint",
    "cusum_scan": "vigil.models.changepoint",
    "save_model": "vigil.models.persist",
    "load_model": "vigil.models.persist",
    "Model": "vigil.models.base",
    "Scores": "vigil.models.base",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vigil.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
