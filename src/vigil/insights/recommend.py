"""Recommendations: a versioned catalog of rules mapping insight patterns to actions.

A catalog is YAML: ``catalog`` (name), ``version`` (int) and ``rules``, each with ``id``,
``version``, ``description``, ``when`` (conditions, all must hold) and ``actions``.  Conditions:

* ``kind``: ``reactive`` or ``proactive``;
* ``metrics_any``: metric names, one of which the insight involves;
* ``metrics_all``: metric names the insight all involves;
* ``selector``: a PromQL series selector some member series matches;
* ``direction``: ``up`` or ``down``: the measured effect (during / before) of a matched metric
  is >= 1.15 or <= 0.87 (needs values; unknown effects never match);
* ``cause_kind``: the kind of the top-ranked candidate cause (e.g. ``deployment``);
* ``single_pod``: true when every member series belongs to one pod;
* ``min_series``: at least this many member series.

An action's ``text`` is a template (or a list of alternatives, the first that can be filled
wins) with ``{placeholders}``: scope, site, namespace, service, pod, node, metric, change, limit,
crossing_time, cause_summary, cause_time, cause_event_id, version, previous_version.  An action
whose placeholders are not all known is left out; ``needs_cause_kind`` keeps an action only
when the top cause has that kind.  A rule fires when at least one of its actions renders, and
the recommendation cites the rule id, its version and the evidence that fired it.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vigil.insights.model import Insight, Recommendation
from vigil.insights.text import change_words, day_hhmm, format_limit, friendly_metric, scope_phrase
from vigil.selector import Selector, SelectorError, parse_selector

RULE_KEYS = {"id", "version", "description", "when", "actions"}
WHEN_KEYS = {"kind", "metrics_any", "metrics_all", "selector", "direction", "cause_kind",
             "single_pod", "min_series"}
ACTION_KEYS = {"text", "needs_cause_kind"}
UP, DOWN = 1.15, 0.87


class RuleError(ValueError):
    """A recommendation catalog that does not follow the documented layout."""


@dataclass(frozen=True)
class Action:
    texts: tuple[str, ...]
    needs_cause_kind: str | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    version: int
    description: str
    when: dict[str, Any]
    actions: tuple[Action, ...]
    source: str
    selector: Selector | None = None


def default_catalog_path() -> Any:
    return resources.files("vigil.insights").joinpath("rules.yaml")


def _fail(source: str, where: str, problem: str) -> RuleError:
    return RuleError(f"{source}: {where}: {problem}")


def parse_catalog(data: object, source: str) -> list[Rule]:
    """Validate a decoded catalog; raises :class:`RuleError` naming the file, rule and key."""
    if not isinstance(data, Mapping) or not isinstance(data.get("rules"), list):
        raise _fail(source, "catalog", "expected a mapping with 'catalog', 'version' and a "
                    "'rules' list")
    unknown = set(data) - {"catalog", "version", "rules"}
    if unknown:
        raise _fail(source, "catalog", f"unknown key(s) {sorted(unknown)}; allowed: catalog, "
                    "version, rules")
    rules = []
    seen: set[str] = set()
    for i, raw in enumerate(data["rules"]):
        where = f"rule {i}"
        if not isinstance(raw, Mapping):
            raise _fail(source, where, "expected a mapping")
        rid = raw.get("id")
        if not isinstance(rid, str) or not rid:
            raise _fail(source, where, "'id' must be a non-empty string")
        where = f"rule {rid!r}"
        if rid in seen:
            raise _fail(source, where, "duplicate id in one file; give each rule its own id")
        seen.add(rid)
        extra = set(raw) - RULE_KEYS
        if extra:
            raise _fail(source, where, f"unknown key(s) {sorted(extra)}; allowed: "
                        f"{', '.join(sorted(RULE_KEYS))}")
        version = raw.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise _fail(source, where, f"version={version!r} must be an integer >= 1")
        when = raw.get("when") or {}
        if not isinstance(when, Mapping):
            raise _fail(source, where, "'when' must be a mapping of conditions")
        extra = set(when) - WHEN_KEYS
        if extra:
            raise _fail(source, where, f"unknown condition(s) {sorted(extra)}; allowed: "
                        f"{', '.join(sorted(WHEN_KEYS))}")
        if when.get("kind") not in (None, "reactive", "proactive"):
            raise _fail(source, where, f"kind={when['kind']!r} must be reactive or proactive")
        if when.get("direction") not in (None, "up", "down"):
            raise _fail(source, where, f"direction={when['direction']!r} must be up or down")
        for key in ("metrics_any", "metrics_all"):
            if key in when and (not isinstance(when[key], list)
                                or not all(isinstance(m, str) for m in when[key])):
                raise _fail(source, where, f"{key} must be a list of metric names")
        selector = None
        if "selector" in when:
            try:
                selector = parse_selector(str(when["selector"]))
            except SelectorError as exc:
                raise _fail(source, where, f"selector: {exc}") from None
        actions = []
        for j, act in enumerate(raw.get("actions") or []):
            if isinstance(act, str):
                act = {"text": act}
            if not isinstance(act, Mapping) or set(act) - ACTION_KEYS or "text" not in act:
                raise _fail(source, f"{where} action {j}", "expected {text: ..., "
                            "needs_cause_kind: ...} with text a string or a list of strings")
            texts = act["text"] if isinstance(act["text"], list) else [act["text"]]
            for text in texts:
                _check_template(str(text), source, f"{where} action {j}")
            actions.append(Action(tuple(str(t) for t in texts), act.get("needs_cause_kind")))
        if not actions:
            raise _fail(source, where, "no actions: give at least one action text")
        rules.append(Rule(rid, version, str(raw.get("description", "")), dict(when),
                          tuple(actions), source, selector))
    return rules


PLACEHOLDERS = {"scope", "site", "namespace", "service", "pod", "node", "metric", "change",
                "limit", "crossing_time", "cause_summary", "cause_time", "cause_event_id",
                "version", "previous_version"}


def _check_template(text: str, source: str, where: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise _fail(source, where, f"template {text!r} is malformed ({exc})") from None
    bad = names - PLACEHOLDERS
    if bad:
        raise _fail(source, where, f"unknown placeholder(s) {sorted(bad)} in {text!r}; "
                    f"allowed: {', '.join(sorted(PLACEHOLDERS))}")


def load_catalog(extra_paths: Sequence[str | Path] = (), *, include_default: bool = True
                 ) -> list[Rule]:
    """The package catalog plus user files; a later rule with the same id replaces one before."""
    sources: list[tuple[str, str]] = []
    if include_default:
        sources.append(("vigil/insights/rules.yaml", default_catalog_path().read_text("utf-8")))
    for path in extra_paths:
        p = Path(path)
        try:
            sources.append((str(p), p.read_text(encoding="utf-8")))
        except OSError as exc:
            raise RuleError(f"{p}: cannot read the rule file ({exc.strerror}); check the path"
                            ) from None
    by_id: dict[str, Rule] = {}
    for name, text in sources:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RuleError(f"{name}: not valid YAML ({exc})") from None
        for rule in parse_catalog(data, name):
            by_id.pop(rule.id, None)
            by_id[rule.id] = rule
    return list(by_id.values())


def context(ins: Insight) -> dict[str, str]:
    """Placeholder values known for an insight."""
    ctx: dict[str, str] = {}
    for key in ("site", "namespace", "service", "node"):
        if key in ins.group:
            ctx[key] = ins.group[key]
    pods = {s["pod"] for s in ins.series if "pod" in s}
    nodes = {s["node"] for s in ins.series if "node" in s}
    if len(pods) == 1:
        ctx["pod"] = next(iter(pods))
    if len(nodes) == 1:
        ctx["node"] = next(iter(nodes))
    ctx["scope"] = scope_phrase(ins.group, ins.series, pods_word=ins.kind == "proactive")
    if ins.metrics:
        ctx["metric"] = friendly_metric(ins.metrics[0])
    f = ins.forecast
    if f is not None:
        ctx["limit"] = format_limit(f.labels.get("__name__", ""), f.limit)
        if f.crossing_time_p50 is not None:
            ctx["crossing_time"] = day_hhmm(f.crossing_time_p50) + " UTC"
    if ins.events:
        top = ins.events[0]
        ctx["cause_summary"] = top.summary or f"{top.kind} {top.event_id}"
        ctx["cause_time"] = day_hhmm(top.time) + " UTC"
        ctx["cause_event_id"] = top.event_id
        for key in ("version", "previous_version"):
            if key in top.attributes:
                ctx[key] = str(top.attributes[key])
    return ctx


def _matches(rule: Rule, ins: Insight) -> tuple[list[str], str | None] | None:
    """The evidence lines when every condition holds (and the matched metric), else None."""
    w = rule.when
    ev: list[str] = []
    matched: str | None = ins.metrics[0] if ins.metrics else None
    if "kind" in w:
        if ins.kind != w["kind"]:
            return None
        ev.append(f"kind {ins.kind}")
    if "metrics_any" in w:
        hits = [m for m in ins.metrics if m in w["metrics_any"]]
        if not hits:
            return None
        matched = hits[0]
        ev.append(f"involves {', '.join(hits)}")
    if "metrics_all" in w:
        if not set(w["metrics_all"]) <= set(ins.metrics):
            return None
        ev.append(f"involves all of {', '.join(w['metrics_all'])}")
    if rule.selector is not None:
        hit = next((s for s in ins.series if rule.selector.matches(s)), None)
        if hit is None:
            return None
        ev.append(f"series {hit.get('__name__', '')} matches {rule.selector}")
    if "direction" in w:
        names = [m for m in ins.metrics if m in w.get("metrics_any", ins.metrics)]
        ratios = [(m, ins.effect[m]) for m in names if m in ins.effect]
        ok = [(m, r) for m, r in ratios if (r >= UP if w["direction"] == "up" else r <= DOWN)]
        if not ok:
            return None
        matched = ok[0][0]
        ev.append(f"{ok[0][0]} {change_words(ok[0][1])} (during / before {ok[0][1]:.3g})")
    if "cause_kind" in w:
        if not ins.events or ins.events[0].kind != w["cause_kind"]:
            return None
        top = ins.events[0]
        ev.append(f"top cause {top.kind} {top.event_id} ({top.summary}; score {top.score})")
    if w.get("single_pod"):
        pods = {s.get("pod") for s in ins.series}
        if len(pods) != 1 or None in pods:
            return None
        ev.append(f"only pod {next(iter(pods))} is anomalous")
    if "min_series" in w:
        if len(ins.series) < int(w["min_series"]):
            return None
        ev.append(f"{len(ins.series)} series")
    if ins.forecast is not None and ins.forecast.crossing_time_p50 is not None:
        ev.append(f"forecast: {ins.forecast.labels.get('__name__', '')} reaches "
                  f"{ins.forecast.limit:g} at {day_hhmm(ins.forecast.crossing_time_p50)} UTC "
                  f"(probability {ins.forecast.probability:.2f})")
    return ev, matched


def recommend(ins: Insight, rules: Sequence[Rule]) -> list[Recommendation]:
    """Every rule that fires for ``ins``, in catalog order (one recommendation per action)."""
    base = context(ins)
    out = []
    for rule in rules:
        got = _matches(rule, ins)
        if got is None:
            continue
        evidence, metric = got
        ctx = dict(base)
        if metric is not None:
            ctx["metric"] = friendly_metric(metric)
            if metric in ins.effect:
                ctx["change"] = change_words(ins.effect[metric])
        top_kind = ins.events[0].kind if ins.events else None
        for act in rule.actions:
            if act.needs_cause_kind is not None and act.needs_cause_kind != top_kind:
                continue
            text = _render(act.texts, ctx)
            if text is not None:
                out.append(Recommendation(rule.id, rule.version, text, list(evidence)))
    return out


def _render(texts: Sequence[str], ctx: Mapping[str, str]) -> str | None:
    for text in texts:
        names = {n for _, n, _, _ in string.Formatter().parse(text) if n is not None}
        if names <= set(ctx):
            return text.format(**{n: ctx[n] for n in names})
    return None
