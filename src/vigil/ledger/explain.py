"""``vigil explain INSIGHT_ID``: the "show your work" of one insight, from the ledger.

Everything shown comes from signed records: the insight's latest decision (its evidence,
ranked candidate causes, recommendations, the feedback and suppressions applied) and its
member decisions (each anomaly's data window, expected band, score, p-value, thresholds and
guards, model and state digest; each exhaustion risk's probability and crossing times).
"""

from __future__ import annotations

import json
from typing import Any

from vigil.ledger.capture import input_record_body
from vigil.ledger.chain import find_record, read_records

MAX_MEMBERS = 12


def latest_insight_record(store: Any, tenant: str, insight_id: str) -> dict[str, Any]:
    table = read_records(store, tenant, ["id", "subject"], kinds=["insight"])
    subjects = table.column("subject").to_pylist()
    ids = table.column("id").to_pylist()
    hits = [(s, i) for s, i in zip(subjects, ids, strict=True)
            if s == f"insight:{insight_id}"] or [
        (s, i) for s, i in zip(subjects, ids, strict=True)
        if s.startswith(f"insight:{insight_id}")]
    if not hits:
        raise KeyError(f"no insight {insight_id!r} in the decision ledger of tenant "
                       f"{tenant!r} (insights built before the ledger existed, or by a run "
                       "with the ledger off, have no record)")
    names = {s for s, _ in hits}
    if len(names) > 1:
        raise ValueError(f"{insight_id!r} matches {len(names)} insights: give more of the id")
    return find_record(store, tenant, hits[-1][1])


def _why_first(events: list[dict[str, Any]]) -> str:
    if not events:
        return "no change event in the candidate window: no cause is suggested"
    top = events[0]
    if len(events) == 1:
        return (f"{top['event_id']} is the only candidate (score {top['score']:.3f}: "
                f"{top['reason']})")
    second = events[1]
    return (f"{top['event_id']} ranked first with score {top['score']:.3f} against "
            f"{second['score']:.3f} for {second['event_id']}: score = label overlap x kind "
            f"weight x precedence x effect; {top['reason']} (runner-up: {second['reason']})")


def explain(store: Any, tenant: str, insight_id: str) -> dict[str, Any]:
    """The explanation as a JSON-able dict (see the module doc)."""
    rec = latest_insight_record(store, tenant, insight_id)
    ins = rec["outputs"]["insight"]
    members = []
    for mid in rec["members"][:MAX_MEMBERS]:
        m = find_record(store, tenant, mid)
        inp, out = input_record_body(m, store, tenant), m["outputs"]
        entry: dict[str, Any] = {
            "decision": mid, "kind": m["kind"], "series": m["series"],
            "window": {"start": inp["start_time"], "end": inp["end_time"],
                       "step_ms": inp["step"], "series_in_group": len(inp["series_ids"]),
                       "values_sha256": inp["values_sha256"]},
            "model": {k: m["model"].get(k) for k in ("name", "version", "config_sha256",
                                                    "state_sha256", "fitted_at")},
            "thresholds": m["thresholds"], "outputs": out,
        }
        members.append(entry)
    considered = rec.get("events_considered", [])
    return {
        "insight": {k: ins[k] for k in ("id", "kind", "severity", "status", "summary", "start",
                                        "end", "onset", "opened_at", "group", "metrics")},
        "decision": {"id": rec["id"], "seq": rec["seq"], "action": rec["action"],
                     "decided_at": rec["decided_at"], "hash": rec["hash"]},
        "evidence": ins["evidence"], "sensitivity": ins["sensitivity"],
        "feedback_applied": rec["input"]["feedback"],
        "suppressions": {"muted_by": ins["muted_by"], "do_not_learn_by": ins["do_not_learn_by"],
                         "rules": rec["input"]["suppressions"]},
        "members": members, "members_total": len(rec["members"]),
        "events_considered": considered, "why_top_cause": _why_first(considered),
        "recommendations": ins["recommendations"],
        "forecast": ins.get("forecast"),
    }


def render(ex: dict[str, Any]) -> str:
    """Plain text for the terminal."""
    ins, dec = ex["insight"], ex["decision"]
    lines = [f"{ins['id']} ({ins['kind']}, {ins['severity']}, {ins['status']}): "
             f"{ins['summary']}",
             f"  decision {dec['id']} (seq {dec['seq']}, {dec['action']}, decided "
             f"{dec['decided_at']})",
             f"  onset {ins['onset']}, opened {ins['opened_at']}, group "
             f"{json.dumps(ins['group'])}", "",
             "Evidence: " + ", ".join(f"{k} {v:g}" for k, v in ex["evidence"].items())
             + f"; thresholds x{ex['sensitivity']:g} from feedback"
             + (f" ({len(ex['feedback_applied'])} records)" if ex["feedback_applied"] else "")]
    sup = ex["suppressions"]
    if sup["muted_by"] or sup["do_not_learn_by"]:
        lines.append(f"Suppressions: muted by {sup['muted_by']}, do-not-learn "
                     f"{sup['do_not_learn_by']}")
    lines += ["", f"Member decisions ({ex['members_total']}, first {len(ex['members'])}):"]
    for m in ex["members"]:
        s, w, o = m["series"], m["window"], m["outputs"]
        name = s["labels"].get("__name__", "")
        pod = s["labels"].get("pod") or s["labels"].get("instance") or s["labels"].get("node")
        lines.append(f"  {m['decision']} {m['kind']} {name} {pod or ''}")
        lines.append(f"    data window {w['start']} .. {w['end']} step {w['step_ms'] // 1000}"
                     f" s, {w['series_in_group']} series in its group, values sha256 "
                     f"{w['values_sha256'][:16]}…")
        if m["kind"] == "anomaly":
            p = o["peak"]
            lines.append(f"    {o['start_time']} .. {o['end_time']} ({o['steps']} steps); "
                         f"at the peak {p['time']}: value {p['value']:.4g}, expected "
                         f"{p['expected']:.4g}, band [{p['lower']:.4g}, {p['upper']:.4g}], "
                         f"score {p['anomaly_score']:.3g} (> 1 is anomalous), p-value "
                         f"{p['p_value']:.3g}")
            th = m["thresholds"]["alarm"]
            lines.append(f"    thresholds and guards: {json.dumps(th, sort_keys=True)}; "
                         f"model {m['model']['name']} {m['model']['version']} state "
                         f"{str(m['model']['state_sha256'])[:16]}… fitted "
                         f"{m['model']['fitted_at']}")
        else:
            lines.append(f"    at {o['evaluated_time']}: probability {o['probability']:.2f} "
                         f"of reaching {o['limit']:.4g}; crossing p50 {o['crossing_p50']} "
                         f"(80% {o['crossing_lo']} .. {o['crossing_hi']}); risk from "
                         f"p >= {m['thresholds']['risk_probability_at_least']}")
    lines += ["", f"Events considered ({len(ex['events_considered'])}):"]
    for e in ex["events_considered"][:10]:
        lines.append(f"  {e['rank']}. {e['event_id']} {e['kind']} at {e['time']}: score "
                     f"{e['score']:.3f}; {e['reason']}")
    lines += [f"Why first: {ex['why_top_cause']}", "", "Recommendations:"]
    for r in ex["recommendations"] or []:
        lines.append(f"  {r['action']} (rule {r['rule_id']} v{r['rule_version']})")
        lines += [f"    evidence: {e}" for e in r["evidence"]]
    if not ex["recommendations"]:
        lines.append("  none: no rule of the catalog matched")
    return "\n".join(lines)
