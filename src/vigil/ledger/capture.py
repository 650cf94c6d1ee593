"""Decision records of the engine, built where the data is: inside each partition's worker.

A worker replays its partition (:func:`vigil.engine.replay.replay_partition`) with a
:class:`FitObserver` that keeps the state of the current fit and digests the state row of
every series flagged in its segment.  :func:`partition_entries` then turns the partition's
anomaly intervals and at-risk exhaustion forecasts into record bodies (without the chain
fields, which the parent adds when it appends them).

**The replay unit** of a decision is the series' placement group (``vigil.engine.partition``:
peers and paired limit series, the rows that can influence one another) over the window the
worker replayed.  The record names those series ids, the window and the digests of the values
as stored and as fed to the model (earlier anomalies masked by ``vigil detect``, do-not-learn
suppressions), so ``vigil ledger replay`` can reload exactly that and re-run it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vigil.batch import SeriesBatch
from vigil.engine.limits import LimitPair
from vigil.engine.partition import PLACEMENT_BY, placement_ids
from vigil.engine.records import anomaly_records, exhaustion_records
from vigil.engine.replay import ModelFactory, ReplayConfig
from vigil.engine.runway import ExhaustionRecords, RunwayConfig
from vigil.ledger.canonical import (
    INPUT_ENCODING,
    arrays_digest,
    canonical_json,
    input_digest,
    sha256_hex,
)
from vigil.models.base import Model, Scores
from vigil.timeparse import format_ms

RISK_PROBABILITY = 0.5  # an exhaustion forecast at or above this is a decision (risk)
ANOMALY_ABOVE = 1.0  # anomaly_score above this is anomalous (the engine's rule)
_PADDED = ("prof_", "madrel_")  # per-row tables padded to the widest row of a block


@dataclass(frozen=True)
class LedgerSpec:
    """What a worker needs to know to write decisions (it travels in the partition job)."""

    run_id: str
    command: str  # "backtest" or "detect"


@dataclass(frozen=True)
class Window:
    """The replayed window of a partition or of one decision's group."""

    tenant: str
    start: int
    end: int
    step: int
    keep_from: int
    merge_gap_steps: int
    mask_previous: bool
    replay: ReplayConfig
    model_in: str | None = None  # a saved model was continued instead of fitted
    # where that model was fitted: (fit window start, first column scored after the fit)
    fit_origin: tuple[int, int] | None = None


def replay_to_json(cfg: ReplayConfig) -> dict[str, Any]:
    out = asdict(cfg)
    out["limit_pairs"] = [p.as_dict() for p in cfg.limit_pairs]
    return out


def replay_from_json(data: dict[str, Any]) -> ReplayConfig:
    runway = data.get("runway")
    pairs = tuple(LimitPair.from_dict(p) for p in data.get("limit_pairs") or ())
    return ReplayConfig(**{**data, "runway": RunwayConfig(**runway) if runway else None,
                           "limit_pairs": pairs})


def rule_json(rule: Any) -> dict[str, Any]:
    """A suppression rule as the dict ``parse_suppressions`` reads back."""
    return {"id": rule.id, "selector": rule.selector_text, "mute": rule.mute,
            "do_not_learn": rule.do_not_learn,
            "start": None if rule.start is None else format_ms(rule.start),
            "end": None if rule.end is None else format_ms(rule.end), "reason": rule.reason}


def row_state(state: dict[str, np.ndarray], row: int, n: int) -> dict[str, np.ndarray]:
    """One series' share of a model state, independent of which rows shared its batch:
    per-row arrays give their row, 0-d entries stay; tables padded to a block's widest row
    (seasonal ``prof_``/``madrel_``) are cut to the row's ``period_``; batch-local peer
    group numbers (``group_``) are left out (the group is named by the input's series)."""
    out: dict[str, np.ndarray] = {}
    for key, arr in state.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "group_":
            continue
        if arr.ndim == 0:
            out[key] = arr
            continue
        if arr.shape[0] != n:
            out[key] = arr
            continue
        value = arr[row]
        if leaf in _PADDED and arr.ndim == 2:
            period = state.get(key[: -len(leaf)] + "period_")
            if period is not None:
                value = value[: max(int(period[row]), 1)]
        out[key] = value
    return out


def row_state_digest(state: dict[str, np.ndarray], row: int, n: int) -> str:
    return arrays_digest(row_state(state, row, n))


class FitObserver:
    """Keeps the state of the current fit; digests the state rows of flagged series."""

    def __init__(self) -> None:
        self.fit_cols: list[int] = []
        self._state: dict[str, np.ndarray] = {}
        self._n = 0
        self.digests: dict[tuple[int, int], str] = {}

    def fitted(self, col: int, model: Model) -> None:
        self.fit_cols.append(col)
        self._state = model.state()
        self._n = model_rows(self._state)

    def scored(self, col: int, stop: int, scores: Scores) -> None:
        fit = self.fit_cols[-1]
        for r in np.flatnonzero((scores.anomaly_score > ANOMALY_ABOVE).any(axis=1)).tolist():
            if (fit, r) not in self.digests:
                self.digests[(fit, r)] = row_state_digest(self._state, r, self._n)

    def state_at(self, row: int, col: int) -> tuple[int, str | None]:
        """The fit column before ``col`` and the digest of ``row``'s state at that fit."""
        fit = max((f for f in self.fit_cols if f <= col), default=self.fit_cols[0])
        return fit, self.digests.get((fit, row))


def model_rows(state: dict[str, np.ndarray]) -> int:
    """The series count of a state (the most common leading length of its arrays)."""
    lengths = [a.shape[0] for a in state.values() if np.ndim(a) >= 1]
    return max(set(lengths), key=lengths.count) if lengths else 0


def model_info(factory: ModelFactory) -> dict[str, Any]:
    model = factory()
    cls = type(model)
    params = model.params()
    return {"name": model.name, "version": model.version,
            "class": f"{cls.__module__}:{cls.__qualname__}", "params": params,
            "config_sha256": sha256_hex(canonical_json({
                "class": f"{cls.__module__}:{cls.__qualname__}", "version": model.version,
                "params": params}))}


def rebuild_factory(info: dict[str, Any]) -> ModelFactory:
    """The recorded model (class, version, parameters) as a factory; refuses another
    version of the code's model."""
    from vigil.models.persist import _resolve

    cls = _resolve(str(info["class"]))
    if cls.name != info["name"] or cls.version != info["version"]:
        raise ValueError(
            f"the decision was made by {info['name']!r} version {info['version']!r}; this "
            f"vigil has {cls.name!r} version {cls.version!r}: it cannot re-run that version")
    return functools.partial(cls, **info["params"])


def _f(x: Any) -> float:
    return float(x)


def partition_entries(
    spec: LedgerSpec,
    window: Window,
    batch: SeriesBatch,
    values: np.ndarray,
    exclude: np.ndarray | None,
    scores: Scores,
    ex: ExhaustionRecords,
    observer: FitObserver,
    factory: ModelFactory,
    suppressions: Sequence[Any] = (),
    only: Callable[[str], bool] | None = None,
) -> list[dict[str, Any]]:
    """Record bodies of a replayed partition: one per anomaly interval and one per exhaustion
    forecast at risk (probability >= 0.5).  ``batch`` holds the stored values, ``values``
    those fed to the model (after masking), ``scores`` cover every column of the batch."""
    k = window.keep_from
    kept = batch.columns(k, batch.n_steps)
    kept_scores = Scores(**{f: v[:, k:] for f, v in scores.__dict__.items()})
    anomalies = anomaly_records(kept, kept_scores, window.merge_gap_steps)
    begin = batch.start + k * batch.step
    forecasts = [r for r in exhaustion_records(batch, ex) if r["evaluated_at"] >= begin
                 and r["probability"] >= RISK_PROBABILITY]
    if not anomalies and not forecasts:
        return []
    row_of = {int(s): i for i, s in enumerate(batch.series_ids.tolist())}
    # the decision's input group: its placement group, joined with its limit series' group
    gids = placement_ids(list(batch.labels), window.replay.pairs(), batch.shard)
    info = model_info(factory)
    runway = window.replay.runway or RunwayConfig(
        horizon_steps=max(window.replay.horizon_steps, 1),
        window_steps=window.replay.trend_window_steps)
    runway_info = {"name": "runway", "version": "1",
                   "class": "vigil.engine.runway:exhaustion_at", "params": asdict(runway),
                   "config_sha256": sha256_hex(canonical_json(asdict(runway)))}
    replay_json = replay_to_json(window.replay)
    run = {"id": spec.run_id, "command": spec.command}
    inputs: dict[int, dict[str, Any]] = {}

    def group_input(row: int) -> dict[str, Any]:
        g = int(gids[row])
        if g not in inputs:
            rows = np.flatnonzero(gids == g)
            ids = batch.series_ids[rows]
            stored = input_digest(ids, batch.start, batch.step, batch.values[rows])
            fed = (stored if values is batch.values else
                   input_digest(ids, batch.start, batch.step, values[rows]))
            rules: list[dict[str, Any]] = []
            ex_digest = None
            if exclude is not None and exclude[rows].any():
                from vigil.insights.suppress import exclusion_mask

                labels = [batch.labels[r] for r in rows.tolist()]
                rules = [rule_json(rule) for rule in suppressions if exclusion_mask(
                    labels, batch.start, batch.step, batch.n_steps, [rule]).any()]
                ex_digest = arrays_digest({"exclude": exclude[rows]})
            lab = batch.labels[row]
            inputs[g] = {
                "start": batch.start, "end": batch.start + batch.n_steps * batch.step,
                "step": batch.step, "start_time": format_ms(batch.start),
                "end_time": format_ms(batch.start + batch.n_steps * batch.step),
                "keep_from": k, "placement": {p: lab[p] for p in PLACEMENT_BY if p in lab},
                "series_ids": [str(s) for s in ids.tolist()], "encoding": INPUT_ENCODING,
                **({"shards": batch.shard[rows].tolist()}
                   if batch.shard is not None and batch.shard[rows].any() else {}),
                "values_sha256": stored, "effective_sha256": fed,
                "mask_previous": window.mask_previous, "exclude_sha256": ex_digest,
                "suppressions": rules, "continued_model": window.model_in,
                **({"fit_origin": {"start": window.fit_origin[0],
                                   "fitted_at": window.fit_origin[1]}}
                   if window.fit_origin else {}),
            }
        return inputs[g]

    refs: dict[int, dict[str, Any]] = {}

    def input_ref(row: int) -> dict[str, Any]:
        """The group's input is kept once, in an ``input`` record named by its digest; each
        decision refers to it (a group of 10,000 series would otherwise repeat 10,000 ids in
        every anomaly it made)."""
        g = int(gids[row])
        if g not in refs:
            body = group_input(row)
            digest = sha256_hex(canonical_json(body))
            refs[g] = {"ref": f"input:{digest}", "sha256": digest,
                       "series": len(body["series_ids"])}
        return refs[g]

    out: list[dict[str, Any]] = []
    for a in anomalies:
        subject = f"anomaly:{a['series_id']}:{a['start']}"
        if only is not None and not only(subject):
            continue
        row = row_of[a["series_id"]]
        first = (a["start"] - batch.start) // batch.step
        last = (a["end"] - batch.start) // batch.step
        seg = {f: getattr(scores, f)[row, first:last + 1] for f in
               ("expected", "lower", "upper", "p_value", "anomaly_score", "warming_up")}
        peak = first + int(np.argmax(np.where(np.isnan(seg["anomaly_score"]), -np.inf,
                                              seg["anomaly_score"])))
        fit_col, state = observer.state_at(row, first)
        out.append({
            "kind": "anomaly", "subject": subject, "run": run,
            "series": {"id": str(a["series_id"]), "labels": dict(a["labels"])},
            "input": input_ref(row),
            "model": {**info, "state_sha256": state, "fitted_at": format_ms(
                batch.start + fit_col * batch.step), "state_scope": "series row at the fit "
                "before the interval's first step"},
            "replay": {**replay_json, "merge_gap_steps": window.merge_gap_steps},
            "thresholds": {"anomaly_score_above": ANOMALY_ABOVE,
                           "merge_gap_steps": window.merge_gap_steps,
                           "alarm": info["params"]},
            "outputs": {
                "start": a["start"], "end": a["end"], "start_time": format_ms(a["start"]),
                "end_time": format_ms(a["end"]), "steps": last - first + 1,
                "peak_score": _f(a["peak_score"]),
                "peak": {"time": format_ms(batch.start + peak * batch.step),
                         "value": _f(batch.values[row, peak]),
                         **{f: _f(getattr(scores, f)[row, peak]) for f in
                            ("expected", "lower", "upper", "p_value", "anomaly_score")},
                         "warming_up": bool(scores.warming_up[row, peak])},
                "scores_sha256": arrays_digest(seg),
            },
        })
    for r in forecasts:
        subject = f"exhaustion:{r['series_id']}:{r['evaluated_at']}"
        if only is not None and not only(subject):
            continue
        row = row_of[r["series_id"]]
        out.append({
            "kind": "exhaustion", "subject": subject, "run": run,
            "series": {"id": str(r["series_id"]), "labels": dict(r["labels"])},
            "input": input_ref(row),
            "model": {**runway_info, "state_sha256": None, "detector": info},
            "replay": {**replay_json, "merge_gap_steps": window.merge_gap_steps},
            "thresholds": {"risk_probability_at_least": RISK_PROBABILITY,
                           "horizon_steps": runway.horizon_steps,
                           "trend_window_steps": runway.window_steps},
            "outputs": {
                "evaluated_at": r["evaluated_at"],
                "evaluated_time": format_ms(r["evaluated_at"]), "limit": _f(r["limit"]),
                "probability": _f(r["probability"]),
                "crossing_p50": r["crossing_p50"], "crossing_lo": r["crossing_lo"],
                "crossing_hi": r["crossing_hi"],
                "quantiles": {"lo": "early crossing (10%)", "p50": "median",
                              "hi": "late crossing (90%)"},
            },
        })
    if only is None:  # the input records the decisions refer to (a replay compares refs only)
        for g, ref in sorted(refs.items(), key=lambda kv: kv[1]["ref"]):
            out.append({"kind": "input", "subject": ref["ref"], "run": run,
                        "input": inputs[g]})
    return out


def input_record_body(rec: dict[str, Any], store: Any, tenant: str) -> dict[str, Any]:
    """The input of an anomaly or exhaustion decision: inline (records written before input
    records existed) or the ``input`` record it refers to, checked against its digest."""
    inp = rec["input"]
    if "ref" not in inp:
        return dict(inp)
    from vigil.ledger.chain import read_records

    table = read_records(store, tenant, ["subject", "body"], kinds=["input"])
    for subject, body in zip(table.column("subject").to_pylist(),
                             table.column("body").to_pylist(), strict=True):
        if subject == inp["ref"]:
            full = json.loads(body)["input"]
            if sha256_hex(canonical_json(full)) != inp["sha256"]:
                raise ValueError(f"the input record {inp['ref']} does not hash to the digest "
                                 "the decision recorded: the ledger was altered")
            return dict(full)
    raise KeyError(f"the decision refers to input record {inp['ref']}, which the ledger "
                   "does not hold")
