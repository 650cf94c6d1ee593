"""Save and load a model's learned state as one ``.npz`` file (no pickle).

The file holds the model's ``state()`` arrays plus one text entry ``__meta__`` (JSON):

    {"format": "vigil-model", "format_version": 1,
     "name": model.name, "class": "vigil.models.seasonal:SeasonalBaseline",
     "model_version": model.version, "code_version": vigil.__version__,
     "params": model.params(), "sha256": <digest of the arrays>}

The digest is SHA-256 over the arrays in key order, each as ``key NUL dtype NUL shape NUL``
followed by its C-order bytes, so a truncated or edited file is refused.  Loading imports the
class named in the file (only modules under ``vigil.``), checks that its ``name`` and
``version`` match, and rebuilds it with ``from_state(params, state)``: it works in any process.
Files are written to a temporary name and renamed, so readers never see a partial file.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import vigil
from vigil.batch import SeriesBatch
from vigil.models.base import Model

FORMAT = "vigil-model"
FORMAT_VERSION = 1
_META = "__meta__"


def state_digest(state: dict[str, np.ndarray]) -> str:
    """SHA-256 hex digest of a state dict (see module doc)."""
    h = hashlib.sha256()
    for key in sorted(state):
        arr = np.ascontiguousarray(state[key])
        if arr.dtype.hasobject:
            raise ValueError(
                f"state array {key!r} has dtype object: expected numeric, bool or fixed-width "
                "text arrays"
            )
        h.update(f"{key}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def save_model(model: Model, path: str | os.PathLike[str]) -> str:
    """Write ``model`` to ``path`` (an ``.npz`` file); returns the state digest."""
    state = {k: np.asarray(v) for k, v in model.state().items()}
    bad = [k for k in state if k.startswith("__") or not k]
    if bad:
        raise ValueError(f"state keys {bad} are invalid: expected names not starting with '__'")
    cls = type(model)
    digest = state_digest(state)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": model.name,
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "model_version": model.version,
        "code_version": vigil.__version__,
        "params": model.params(),
        "sha256": digest,
    }
    text = json.dumps(meta, sort_keys=True)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            arrays: dict[str, Any] = {**state, _META: np.array(text)}
            np.savez(fh, **arrays)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return digest


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``__meta__`` JSON of a saved model."""
    with np.load(path, allow_pickle=False) as z:
        if _META not in z.files:
            raise ValueError(f"{path} has no {_META} entry: not a model saved by vigil")
        meta: dict[str, Any] = json.loads(str(z[_META]))
    return meta


class ModelVersionMismatch(ValueError):
    """A saved model of another model version (its state schema may differ): refit it."""


def load_model(path: str | os.PathLike[str], expected_name: str | None = None) -> Model:
    """Rebuild the model saved at ``path``, verifying format, class, version and digest."""
    with np.load(path, allow_pickle=False) as z:
        if _META not in z.files:
            raise ValueError(f"{path} has no {_META} entry: not a model saved by vigil")
        meta = json.loads(str(z[_META]))
        state = {k: z[k] for k in z.files if k != _META}
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format {meta.get('format')!r} v{meta.get('format_version')}: "
            f"expected {FORMAT!r} v{FORMAT_VERSION}; refit the model with this vigil"
        )
    if expected_name is not None and meta["name"] != expected_name:
        raise ValueError(f"{path} holds model {meta['name']!r}: expected {expected_name!r}")
    digest = state_digest(state)
    if digest != meta["sha256"]:
        raise ValueError(
            f"{path} is corrupt: state digest {digest[:12]}… differs from the recorded "
            f"{meta['sha256'][:12]}…; refit the model or restore the file"
        )
    cls = _resolve(str(meta["class"]))
    if cls.name != meta["name"] or cls.version != meta["model_version"]:
        raise ModelVersionMismatch(
            f"{path} holds {meta['name']!r} version {meta['model_version']!r} but this vigil "
            f"({vigil.__version__}) has {cls.name!r} version {cls.version!r}; refit the model"
        )
    return cls.from_state(meta["params"], state)


def _resolve(spec: str) -> type[Model]:
    module, _, qualname = spec.partition(":")
    if not module.startswith("vigil.") or not qualname:
        raise ValueError(
            f"model class {spec!r} is invalid: expected 'vigil.<module>:<Class>' "
            "(only vigil's own models are loaded)"
        )
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, Model)):
        raise ValueError(f"model class {spec!r} is not a vigil Model in this vigil version")
    return obj


class StatefulModel(Model):
    """A ``Model`` whose state is the attributes named in ``_STATE`` (arrays with a leading
    series axis, plus the 0-d ``step_`` and ``end_``; ``series_ids_`` the fitted rows), with
    ``state``/``set_state`` and the checks every ``score`` needs."""

    _STATE: ClassVar[tuple[str, ...]]
    series_ids_: np.ndarray
    step_: int
    end_: int

    def state(self) -> dict[str, np.ndarray]:
        self._check_fitted()
        return {k: np.array(getattr(self, k)) for k in self._STATE}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        missing = [k for k in self._STATE if k not in state]
        if missing:
            raise ValueError(f"{self.name} state lacks {missing}: expected {list(self._STATE)}")
        for k in self._STATE:
            setattr(self, k, np.array(state[k]))
        self.step_, self.end_ = int(self.step_), int(self.end_)

    def _check_fitted(self) -> None:
        if not hasattr(self, self._STATE[-1]):
            raise ValueError(f"{self.name} is not fitted: call fit(batch) or load a saved state")

    def _check_batch(self, batch: SeriesBatch) -> None:
        self._check_fitted()
        self.check_continues(batch, self.end_, self.step_)
        n_inf = int(np.isinf(batch.values).sum())
        if n_inf:
            raise ValueError(
                f"{self.name}: batch values hold {n_inf} infinite entries: expected finite "
                "numbers or NaN (missing); map +/-Inf to NaN (or drop them) at ingestion"
            )
        if batch.n_series != len(self.series_ids_) or not np.array_equal(
            batch.series_ids, self.series_ids_
        ):
            raise ValueError(
                f"{self.name}: batch has {batch.n_series} series that differ from the "
                f"{len(self.series_ids_)} fitted ones (ids or order); score the same rows in "
                "the same order, or refit"
            )
