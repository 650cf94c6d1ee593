"""``vigil ledger replay``: reload a decision's inputs from the store and re-run it.

* **anomaly / exhaustion**: the recorded series (the decision's placement group) over the
  recorded window are loaded again; their digest is compared with ``values_sha256`` (a
  mismatch means the stored samples changed since: the replay says so and which series
  differ); earlier anomalies are masked again (``vigil detect``) and the recorded do-not-learn
  suppressions applied, and the result compared with ``effective_sha256``; then the recorded
  model class, version and parameters replay the group with the recorded schedule
  (:func:`vigil.engine.replay.replay_partition`), and the decision is rebuilt exactly as the
  worker built it.  The outputs (and the model's state digest) must be equal bit for bit.
* **insight**: the insight pipeline runs again on the recorded inputs (its anomalies, its
  resource's forecasts, feedback and suppression rules as recorded; change events and member
  values from the store, digests checked) at the recorded ``now`` with the recorded
  configuration, and the rebuilt insight must have the recorded digest.  Its inputs are
  themselves decisions (``members``), each replayable.
* **feedback / suppression**: a human's decision, nothing to compute: the replay says so.
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass, replace
from typing import Any

import numpy as np

from vigil.batch import SeriesBatch
from vigil.engine.limits import limit_matrix
from vigil.engine.replay import replay_partition
from vigil.ledger.canonical import arrays_digest, canonical_json, input_digest
from vigil.ledger.capture import (
    FitObserver,
    LedgerSpec,
    Window,
    input_record_body,
    partition_entries,
    rebuild_factory,
    replay_from_json,
)
from vigil.ledger.chain import find_record
from vigil.timeparse import format_ms

COMPARED = ("series", "input", "model", "replay", "thresholds", "outputs")


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out
    if canonical_json(a) != canonical_json(b):
        return [f"{path}: recorded {json.dumps(a)[:120]}, replayed {json.dumps(b)[:120]}"]
    return []


def replay_decision(store: Any, tenant: str, ident: str) -> dict[str, Any]:
    """Re-run one decision; ``{"id", "kind", "status": "match" | "mismatch" | "inputs changed"
    | "not replayable", "messages": [...]}``."""
    rec = find_record(store, tenant, ident)
    kind = rec["kind"]
    if kind in ("anomaly", "exhaustion"):
        return _replay_engine(store, tenant, rec)
    if kind == "insight":
        return _replay_insight(store, tenant, rec)
    if kind == "input":
        return {"id": rec["id"], "kind": kind, "status": "not replayable",
                "messages": ["an input record is the data of a group of decisions (they refer "
                             "to it by its digest): replay one of those decisions instead"]}
    return {"id": rec["id"], "kind": kind, "status": "not replayable",
            "messages": [f"a {kind} decision is a person's input, not a computation: it is "
                         "kept and verified, there is nothing to re-run"]}


def _result(rec: dict[str, Any], status: str, messages: list[str]) -> dict[str, Any]:
    from vigil.ledger.chain import code_digest

    if status == "mismatch" and rec.get("code_sha256") != code_digest():
        messages = [f"note: this vigil's code (sources digest {code_digest()[:12]}…) is not "
                    f"the one that made the decision ({str(rec.get('code_sha256'))[:12]}…, "
                    f"version {rec.get('code_version')}); a changed model or rule explains a "
                    "mismatch", *messages]
    return {"id": rec["id"], "kind": rec["kind"], "subject": rec["subject"],
            "status": status, "messages": messages}


def replay_many(store: Any, tenant: str, idents: list[str] | None = None
                ) -> list[dict[str, Any]]:
    """Replay many decisions (default: every one of the tenant), re-running each recorded
    input group once for all the decisions it made."""
    from vigil.ledger.chain import read_records

    if idents is None:  # input records are data the decisions refer to, not decisions
        recs = [{**json.loads(b), "id": i, "hash": h} for b, i, h in zip(
            *(read_records(store, tenant, [c]).column(c).to_pylist()
              for c in ("body", "id", "hash")), strict=True)]
        recs = [r for r in recs if r["kind"] != "input"]
    else:
        recs = [find_record(store, tenant, i) for i in idents]
    groups: dict[bytes, list[dict[str, Any]]] = {}
    out: dict[str, dict[str, Any]] = {}
    for rec in recs:
        if rec["kind"] in ("anomaly", "exhaustion"):
            key = canonical_json([rec["input"], rec["replay"], rec["run"],
                                  rec["model"].get("detector", rec["model"])["config_sha256"]])
            groups.setdefault(key, []).append(rec)
        elif rec["kind"] == "insight":
            out[rec["id"]] = _replay_insight(store, tenant, rec)
        else:
            out[rec["id"]] = replay_decision(store, tenant, rec["id"])
    for members in groups.values():
        for res in _replay_engine_group(store, tenant, members):
            out[res["id"]] = res
    return [out[r["id"]] for r in recs]


def _replay_engine(store: Any, tenant: str, rec: dict[str, Any]) -> dict[str, Any]:
    return _replay_engine_group(store, tenant, [rec])[0]


def _replay_engine_group(store: Any, tenant: str, recs: list[dict[str, Any]]
                         ) -> list[dict[str, Any]]:
    """Replay decisions that share one recorded input group and schedule."""
    rec = recs[0]

    def every(status: str, messages: list[str]) -> list[dict[str, Any]]:
        return [_result(r, status, messages) for r in recs]

    from vigil.engine.stream import masked_history
    from vigil.insights.suppress import exclusion_mask, parse_suppressions

    try:
        inp = input_record_body(rec, store, tenant)
    except (KeyError, ValueError) as exc:
        return every("inputs changed", [str(exc)])
    if inp.get("continued_model") and not inp.get("fit_origin"):
        return every("not replayable", [
            "this decision continued a saved model whose fit is not recorded (made before "
            "fit_origin was recorded); replay re-runs recorded fits only"])
    ids = np.array([int(s) for s in inp["series_ids"]], dtype=np.int64)
    start, end, step, keep = inp["start"], inp["end"], inp["step"], inp["keep_from"]
    batch = store.load_batch(tenant, None, start, end, step, series_ids=ids)
    messages: list[str] = []
    if not np.array_equal(batch.series_ids, ids):
        missing = sorted(set(ids.tolist()) - set(batch.series_ids.tolist()))
        return every("inputs changed", [
            f"the input data changed: {len(missing)} of the {len(ids)} recorded series have "
            f"no samples in {inp['start_time']}..{inp['end_time']} any more "
            f"(e.g. {missing[:3]}); the decision cannot be reproduced"])
    digest = input_digest(batch.series_ids, start, step, batch.values)
    if digest != inp["values_sha256"]:
        return every("inputs changed", [
            f"the input data changed: the stored values of the decision's window "
            f"{inp['start_time']}..{inp['end_time']} hash to {digest[:16]}…, the decision "
            f"recorded {inp['values_sha256'][:16]}…; the samples were altered or added after "
            f"the decision. Replay refuses to compare outputs computed from other "
            "data"])
    values = batch.values
    if inp["mask_previous"] and keep > 0:
        head = masked_history(store, tenant, values[:, :keep], batch.series_ids, start, step)
        values = np.concatenate([head, values[:, keep:]], axis=1)
    if input_digest(batch.series_ids, start, step, values) != inp["effective_sha256"]:
        return every("inputs changed", [
            "the stored samples match, but the earlier anomalies masked from the fit (the "
            "tenant's anomalies table) changed since the decision; cannot reproduce"])
    rules = parse_suppressions(inp["suppressions"], "recorded suppressions")
    exclude = None
    if rules:
        exclude = exclusion_mask(batch.labels, start, step, batch.n_steps, rules)
        if arrays_digest({"exclude": exclude}) != inp["exclude_sha256"]:
            messages.append("the recorded suppressions give another do-not-learn mask")
        exclude = exclude if exclude.any() else None
    info = rec["model"] if rec["kind"] == "anomaly" else rec["model"]["detector"]
    try:
        factory = rebuild_factory(info)
    except ValueError as exc:
        return every("not replayable", [str(exc)])
    cfg = replay_from_json({k: v for k, v in rec["replay"].items() if k != "merge_gap_steps"})
    if inp.get("shards"):  # the decision's giant peer group was sharded: same shards again
        batch = SeriesBatch(batch.series_ids, batch.start, batch.step, batch.values,
                            batch.labels, np.array(inp["shards"], dtype=np.int64))
    run = batch.with_values(values)
    limits = (limit_matrix(batch.labels, batch.values, pairs=cfg.pairs())
              if cfg.forecast_every_steps > 0 else None)
    observer = FitObserver()
    model, origin = None, None
    if inp.get("continued_model"):
        origin = (int(inp["fit_origin"]["start"]), int(inp["fit_origin"]["fitted_at"]))
        try:
            model = continued_model(store, tenant, ids, origin, start + keep * step, step,
                                    factory, cfg, rules, inp["mask_previous"], batch.shard)
        except ValueError as exc:
            return every("inputs changed", [str(exc)])
        messages.append(f"the model was refitted as recorded (on {format_ms(origin[0])}.."
                        f"{format_ms(origin[1])}) and continued up to the decision's window, "
                        "as the service's ticks continued it")
    scores, _, ex = replay_partition(run, cfg, factory, limits, exclude, model, observer)
    window = Window(tenant, start, end, step, keep, rec["replay"]["merge_gap_steps"],
                    inp["mask_previous"], cfg, inp.get("continued_model"), origin)
    run_info = rec["run"] or {"id": "", "command": ""}
    spec = LedgerSpec(run_info["id"], run_info["command"])
    wanted = {r["subject"] for r in recs}
    again = {e["subject"]: e for e in partition_entries(
        spec, window, batch, values, exclude, scores, ex, observer, factory, rules,
        only=wanted.__contains__)}
    results = []
    for r in recs:
        got = again.get(r["subject"])
        if got is None:
            results.append(_result(r, "mismatch", [
                f"the replay made no {r['kind']} decision {r['subject']}: the recorded "
                "outputs are not reproduced", *messages]))
            continue
        diffs = []
        for key in COMPARED:
            diffs += _diff(r.get(key), got.get(key), key)
        if diffs:
            results.append(_result(r, "mismatch", diffs[:20] + messages))
        else:
            results.append(_result(r, "match", [
                f"re-ran {info['name']} {info['version']} on {len(ids)} series over "
                f"{inp['start_time']}..{inp['end_time']}: inputs, model state and outputs "
                "identical bit for bit", *messages]))
    return results


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    """A (nested) config dataclass from its ``asdict`` form."""
    default = cls()
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value, current = data[f.name], getattr(default, f.name)
        if is_dataclass(current) and isinstance(value, dict):
            value = _from_dict(type(current), value)
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _replay_insight(store: Any, tenant: str, rec: dict[str, Any]) -> dict[str, Any]:
    from vigil.insights.build import InsightConfig
    from vigil.insights.inputs import values_from_arrays
    from vigil.insights.model import insight_from_json, insight_to_json
    from vigil.insights.pipeline import run_pipeline
    from vigil.insights.suppress import parse_suppressions
    from vigil.ledger.record import (
        events_digest,
        events_in,
        forecasts_from_columns,
        insight_digest,
    )

    inp = rec["input"]
    recorded = insight_from_json(rec["outputs"]["insight"])
    ids = np.array([int(s) for s in inp["series_ids"]], dtype=np.int64)
    batch = store.load_batch(tenant, None, inp["start"], inp["end"], inp["step"],
                             series_ids=ids)
    messages = []
    if input_digest(batch.series_ids, inp["start"], inp["step"], batch.values) != inp[
            "values_sha256"]:
        return _result(rec, "inputs changed", [
            "the input data changed: the stored values of the insight's series no longer "
            "match the recorded digest (samples altered or added after the decision); the "
            "effect sizes and onset cannot be reproduced"])
    config = _from_dict(InsightConfig, inp["config"])
    events = events_in(store, tenant, recorded, config)
    if events_digest(events) != inp["events_sha256"]:
        return _result(rec, "inputs changed", [
            "the change events in the insight's candidate window differ from those the "
            "decision considered (events were added or altered since)"])
    forecasts = forecasts_from_columns(inp["forecasts"]) if inp["forecasts"] else []
    result = run_pipeline(
        [{"series_id": a.series_id, "labels": a.labels, "start": a.start, "end": a.end,
          "peak_score": a.peak_score} for a in recorded.anomalies],
        [dict(e, labels=e["labels"], attributes=e["attributes"]) for e in events],
        forecasts, now=inp["now"], suppressions=parse_suppressions(inp["suppressions"]),
        feedback=inp["feedback"], config=config,
        values=values_from_arrays(batch.series_ids, inp["start"], inp["step"], batch.values))
    hit = [i for i in result.insights if i.id == rec["insight_id"]]
    if not hit:
        return _result(rec, "mismatch", [
            f"the pipeline re-run on the recorded inputs builds no insight "
            f"{rec['insight_id']} ({len(result.insights)} others)"])
    obj = insight_to_json(hit[0])
    if insight_digest(obj) != rec["outputs"]["insight_sha256"]:
        diffs = _diff({k: v for k, v in rec["outputs"]["insight"].items() if k != "related"},
                      {k: v for k, v in obj.items() if k != "related"}, "insight")
        return _result(rec, "mismatch", diffs[:20])
    messages.append(f"re-ran the insight pipeline on the recorded inputs at "
                    f"{recorded.last_seen}: the insight is identical "
                    f"({len(rec['members'])} member decisions, each replayable)")
    return _result(rec, "match", messages)


def continued_model(store: Any, tenant: str, ids: np.ndarray, origin: tuple[int, int],
                    begin: int, step: int, factory: Any, cfg: Any, rules: list[Any],
                    mask_previous: bool, shard: np.ndarray | None = None) -> Any:
    """The state a continued model had at ``begin``: fitted on ``[origin start, fitted_at)``
    exactly as the run that fitted it (earlier anomalies masked), then scored up to ``begin``
    (scoring is causal and chunk-invariant, so the service's tick boundaries do not matter)."""
    from vigil.engine.stream import masked_history
    from vigil.insights.suppress import exclusion_mask

    o_start, fitted = origin
    warm = (fitted - o_start) // step
    if warm < 1 or begin < fitted:
        raise ValueError(f"the recorded fit {format_ms(o_start)}..{format_ms(fitted)} does not "
                         f"precede the decision's window at {format_ms(begin)}")
    batch = store.load_batch(tenant, None, o_start, begin, step, series_ids=ids)
    if not np.array_equal(batch.series_ids, ids):
        raise ValueError(
            "the input data changed: some of the recorded series have no samples over the "
            f"model's fit and continuation {format_ms(o_start)}..{format_ms(begin)} any more")
    values = batch.values
    if mask_previous:
        head = masked_history(store, tenant, values[:, :warm], batch.series_ids, o_start, step)
        values = np.concatenate([head, values[:, warm:]], axis=1)
    exclude = None
    if rules:
        exclude = exclusion_mask(batch.labels, o_start, step, batch.n_steps, rules)
        exclude = exclude if exclude.any() else None
    ocfg = replace(cfg, warmup_steps=warm, refit_every_steps=max(batch.n_steps, 1),
                   forecast_every_steps=0, horizon_steps=0)
    run = SeriesBatch(batch.series_ids, o_start, step, values, batch.labels, shard)
    _, model, _ = replay_partition(run, ocfg, factory, None, exclude)
    return model
