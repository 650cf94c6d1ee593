"""Writing decisions: the engine's (from the workers), insights, feedback and suppressions.

Everything here appends through :func:`vigil.ledger.chain.append` (one store operation and
one signed checkpoint per batch of records).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from vigil.ledger.canonical import canonical_json, input_digest, sha256_hex
from vigil.ledger.capture import LedgerSpec
from vigil.ledger.chain import append, read_records

INSIGHT_EXCLUDED = ("related",)  # links to other insights: not part of one insight's decision


def new_run(command: str) -> LedgerSpec:
    return LedgerSpec("run-" + uuid.uuid4().hex[:16], command)


def record_engine(store: Any, tenant: str, decisions: Sequence[Mapping[str, Any]]
                  ) -> list[dict[str, str]]:
    """Append the workers' anomaly and exhaustion records (already sorted)."""
    return append(store, tenant, decisions)


def latest_ids(store: Any, tenant: str, kinds: Sequence[str]) -> dict[str, str]:
    """subject -> id of its latest record among ``kinds``."""
    table = read_records(store, tenant, ["subject", "id"], kinds=kinds)
    return dict(zip(table.column("subject").to_pylist(), table.column("id").to_pylist(),
                    strict=True))


def insight_digest(obj: Mapping[str, Any]) -> str:
    return sha256_hex(canonical_json({k: v for k, v in obj.items()
                                      if k not in INSIGHT_EXCLUDED}))


def _recorded_insights(store: Any, tenant: str) -> dict[str, str]:
    """insight id -> digest of its latest recorded version."""
    table = read_records(store, tenant, ["body"], kinds=["insight"])
    out: dict[str, str] = {}
    for body in table.column("body").to_pylist():
        rec = json.loads(body)
        out[rec["insight_id"]] = rec["outputs"]["insight_sha256"]
    return out


def forecast_columns(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Exhaustion records as columns (labels once per series)."""
    labels: dict[str, dict[str, str]] = {}
    cols: dict[str, list[Any]] = {k: [] for k in (
        "series_id", "evaluated_at", "limit", "probability", "crossing_p50", "crossing_lo",
        "crossing_hi")}
    for r in records:
        sid = str(int(r["series_id"]))
        lab = r["labels"]
        labels[sid] = json.loads(lab) if isinstance(lab, str) else dict(lab)
        cols["series_id"].append(sid)
        for k in ("evaluated_at", "crossing_p50", "crossing_lo", "crossing_hi"):
            cols[k].append(None if r[k] is None else int(r[k]))
        cols["limit"].append(float(r["limit"]))
        cols["probability"].append(float(r["probability"]))
    return {"labels": labels, **cols}


def forecasts_from_columns(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    from vigil.ledger.canonical import read_float

    out = []
    for i, sid in enumerate(data["series_id"]):
        out.append({"series_id": int(sid), "labels": data["labels"][sid],
                     "evaluated_at": data["evaluated_at"][i],
                     "limit": read_float(data["limit"][i]),
                     "probability": read_float(data["probability"][i]),
                     **{k: data[k][i] for k in ("crossing_p50", "crossing_lo", "crossing_hi")}})
    return out


def insight_series_ids(ins: Any) -> list[int]:
    from vigil.series import series_id

    ids = {a.series_id for a in ins.anomalies}
    ids |= {series_id(s) for s in ins.series}
    if ins.forecast is not None:
        ids.add(ins.forecast.series_id)
    return sorted(ids)


def events_digest(events: Sequence[Mapping[str, Any]]) -> str:
    return sha256_hex(canonical_json(list(events)))


def events_in(store: Any, tenant: str, ins: Any, config: Any) -> list[dict[str, Any]]:
    """The stored change events inside the insight's candidate window (canonical rows)."""
    causes = config.causes
    lookback = causes.proactive_lookback_ms if ins.kind == "proactive" else causes.lookback_ms
    table = store.events(tenant, ins.onset - lookback, ins.onset + causes.after_tolerance_ms
                         + 1)
    return [{k: (json.loads(v) if k in ("labels", "attributes") and isinstance(v, str) else v)
             for k, v in row.items() if k != "seq"} for row in table.to_pylist()]


def considered(ins: Any, events: Sequence[Mapping[str, Any]], config: Any,
               values: Any) -> list[dict[str, Any]]:
    """Every candidate cause with its score and reason (the insight keeps the top few)."""
    from dataclasses import replace

    from vigil.insights.causes import rank_causes, series_by_weight
    from vigil.insights.inputs import to_events
    from vigil.insights.model import cause_to_json
    from vigil.series import series_id

    if ins.kind == "reactive":
        ranked = series_by_weight(ins.anomalies)
    else:
        first = [(ins.forecast.series_id, ins.forecast.labels)] if ins.forecast else []
        others = sorted(((series_id(s), s) for s in ins.series), key=lambda kv: sorted(
            kv[1].items()))
        ranked = first + [(s, ls) for s, ls in others if not first or s != first[0][0]]
    cands = rank_causes(to_events(list(events)), onset=ins.onset, group=ins.group,
                        series=ranked, until=ins.last_seen, proactive=ins.kind == "proactive",
                        values=values, config=replace(config.causes, top=1_000_000))
    return [cause_to_json(c) for c in cands]


def record_insights(store: Any, tenant: str, spec: LedgerSpec | None, result: Any, *,
                    config: Any, now: int, window: tuple[int, int, int],
                    exhaustion: Sequence[Mapping[str, Any]] | None = None
                    ) -> list[dict[str, str]]:
    """One ``insight`` decision per insight whose content changed since its last record."""
    from vigil.insights.inputs import values_from_arrays
    from vigil.insights.model import insight_to_json
    from vigil.insights.persist import raw_suppressions, read_feedback
    from vigil.insights.recommend import load_catalog

    if not result.insights:
        return []
    before = _recorded_insights(store, tenant)
    changed = []
    for ins in result.insights:
        obj = insight_to_json(ins)
        digest = insight_digest(obj)
        if before.get(ins.id) != digest:
            changed.append((ins, obj, digest))
    if not changed:
        return []
    if exhaustion is None:
        table = store.read_table(tenant, "exhaustion")
        exhaustion = [] if table is None else table.to_pylist()
    members = latest_ids(store, tenant, ["anomaly", "exhaustion"])
    actions = {n["insight_id"]: n["action"] for n in result.notifications}
    feedback = read_feedback(store, tenant)
    rules = raw_suppressions(store, tenant)
    catalog = sha256_hex(canonical_json([asdict(r) for r in load_catalog()]))
    start, end, step = window
    entries = []
    # one read of every changed insight's series (a read per insight scans the samples
    # once per insight: minutes on a tenant of 20,000 series); rows are independent, so each
    # insight's rows of it are exactly what a read of its own series gives
    wanted = [np.array(insight_series_ids(ins), dtype=np.int64) for ins, _, _ in changed]
    everything = store.load_batch(tenant, None, start, end, step,
                                  series_ids=np.unique(np.concatenate(wanted)))
    for (ins, obj, digest), ids in zip(changed, wanted, strict=True):
        batch = everything.rows(np.flatnonzero(np.isin(everything.series_ids, ids)))
        values = values_from_arrays(batch.series_ids, batch.start, step, batch.values)
        events = events_in(store, tenant, ins, config)
        subjects = [f"anomaly:{a.series_id}:{a.start}" for a in ins.anomalies]
        forecasts: list[Mapping[str, Any]] = []
        if ins.kind == "proactive":
            group = ins.group
            forecasts = [r for r in exhaustion if all(
                (json.loads(r["labels"]) if isinstance(r["labels"], str) else r["labels"]
                 ).get(k) == v for k, v in group.items())]
            subjects += [f"exhaustion:{int(r['series_id'])}:{int(r['evaluated_at'])}"
                         for r in forecasts if r["probability"] >= 0.5]
        entries.append({
            "kind": "insight", "subject": f"insight:{ins.id}", "insight_id": ins.id,
            "action": actions.get(ins.id, "changed"),
            "run": None if spec is None else {"id": spec.run_id,
                                              "command": spec.command},
            "members": sorted({members[s] for s in subjects if s in members}),
            "members_missing": len([s for s in subjects if s not in members]),
            "input": {
                "now": now, "start": start, "end": end, "step": step,
                "series_ids": [str(s) for s in batch.series_ids.tolist()],
                "values_sha256": input_digest(batch.series_ids, start, step, batch.values),
                "forecasts": forecast_columns(forecasts) if forecasts else None,
                "events_sha256": events_digest(events),
                "feedback": [r for r in feedback if r.get("group_key") == ins.group_key],
                "suppressions": rules, "rules_sha256": catalog,
                "config": asdict(config),
            },
            "events_considered": considered(ins, events, config, values),
            "outputs": {"insight": obj, "insight_sha256": digest},
        })
    return append(store, tenant, entries)


def record_feedback(store: Any, tenant: str, rec: Mapping[str, Any]) -> list[dict[str, str]]:
    return append(store, tenant, [{
        "kind": "feedback", "subject": f"feedback:{rec['insight_id']}",
        "insight_id": rec["insight_id"], "outputs": {"feedback": dict(rec)}}])


def record_suppressions(store: Any, tenant: str, before: Sequence[Mapping[str, Any]],
                        after: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One ``suppression`` decision per rule added, changed or removed."""
    old = {str(r.get("id")): dict(r) for r in before}
    new = {str(r.get("id")): dict(r) for r in after}
    entries = []
    for rid in sorted(set(old) | set(new)):
        if old.get(rid) == new.get(rid):
            continue
        action = "added" if rid not in old else "removed" if rid not in new else "changed"
        entries.append({"kind": "suppression", "subject": f"suppression:{rid}",
                        "outputs": {"action": action, "rule": new.get(rid, old.get(rid)),
                                    "previous": old.get(rid)}})
    return append(store, tenant, entries)
