"""Suppression rules: mute insights, and tell the engine what not to learn as normal.

A rule has an ``id``, a PromQL ``selector`` (label matchers), optional ``start``/``end``
(RFC 3339 or epoch; a maintenance window; absent = always), a ``reason`` and two separate
switches:

* ``mute``: matching insights are kept (listed, evaluated, shown with ``muted_by``) but never
  notified;
* ``do_not_learn``: the engine should treat the matching series' points in the window as
  not normal (excluded from fitting).  :func:`learning_exclusions` exposes these as data and
  :func:`exclusion_mask` turns them into a ``[n_series, n_steps]`` mask.  Matching insights
  are tagged ``do_not_learn_by`` but still notified unless also muted.

An insight matches a rule when **every** member series matches the selector (so a rule never
hides evidence about series it does not name) and ``[start, last_seen]`` overlaps the window.

Config layout (YAML or JSON)::

    suppressions:
      - id: maint-site-2
        selector: '{site="site-2"}'
        start: 2026-01-10T02:00:00Z
        end: 2026-01-10T04:00:00Z
        mute: true
        do_not_learn: true
        reason: planned maintenance
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vigil.insights.model import Insight
from vigil.selector import Selector, SelectorError, parse_selector
from vigil.timeparse import parse_time

RULE_KEYS = {"id", "selector", "start", "end", "mute", "do_not_learn", "reason"}


@dataclass(frozen=True)
class Suppression:
    id: str
    selector: Selector
    selector_text: str
    mute: bool = True
    do_not_learn: bool = False
    start: int | None = None
    end: int | None = None
    reason: str = ""

    def in_window(self, lo: int, hi: int) -> bool:
        """Whether ``[lo, hi]`` overlaps the rule's window."""
        return (self.start is None or hi >= self.start) and (self.end is None or lo < self.end)


def _time(value: object, where: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime | date):  # YAML parses bare timestamps itself
        value = value.isoformat()
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{where}: {key}={value!r} is invalid: expected RFC 3339 or epoch")
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {key}: {exc}") from None


def parse_suppressions(data: object, source: str = "suppressions") -> list[Suppression]:
    """Validate a decoded config (``{"suppressions": [...]}`` or the list itself)."""
    if isinstance(data, Mapping):
        extra = set(data) - {"suppressions"}
        if extra:
            raise ValueError(f"{source}: unknown key(s) {sorted(extra)}; expected 'suppressions'")
        data = data.get("suppressions") or []
    if not isinstance(data, list):
        raise ValueError(f"{source}: expected a list of suppression rules")
    out = []
    seen: set[str] = set()
    for i, raw in enumerate(data):
        where = f"{source}: rule {i}"
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: expected a mapping with id, selector, mute...")
        extra = set(raw) - RULE_KEYS
        if extra:
            raise ValueError(f"{where}: unknown key(s) {sorted(extra)}; allowed: "
                             f"{', '.join(sorted(RULE_KEYS))}")
        rid = raw.get("id")
        if not isinstance(rid, str) or not rid:
            raise ValueError(f"{where}: 'id' must be a non-empty string")
        if rid in seen:
            raise ValueError(f"{where}: duplicate id {rid!r}; give each rule its own id")
        seen.add(rid)
        text = raw.get("selector")
        if not isinstance(text, str):
            raise ValueError(f"{where} ({rid}): 'selector' must be a PromQL selector string, "
                             "e.g. '{site=\"site-2\"}'")
        try:
            selector = parse_selector(text)
        except SelectorError as exc:
            raise ValueError(f"{where} ({rid}): {exc}") from None
        mute, learn = raw.get("mute", True), raw.get("do_not_learn", False)
        if not isinstance(mute, bool) or not isinstance(learn, bool):
            raise ValueError(f"{where} ({rid}): mute and do_not_learn must be true or false")
        if not mute and not learn:
            raise ValueError(f"{where} ({rid}): neither mute nor do_not_learn is set: the rule "
                             "would do nothing; set one of them")
        start = _time(raw.get("start"), f"{where} ({rid})", "start")
        end = _time(raw.get("end"), f"{where} ({rid})", "end")
        if start is not None and end is not None and end <= start:
            raise ValueError(f"{where} ({rid}): end {raw.get('end')} is not after start "
                             f"{raw.get('start')}")
        out.append(Suppression(rid, selector, text, mute, learn, start, end,
                               str(raw.get("reason", ""))))
    return out


def load_suppressions(path: str | Path) -> list[Suppression]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{p}: cannot read the suppression file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{p}: not valid YAML/JSON ({exc})") from None
    return parse_suppressions(data or [], str(p))


def _members(ins: Insight) -> list[Mapping[str, str]]:
    out: list[Mapping[str, str]] = list(ins.series)
    if not out and ins.forecast is not None:
        out.append(ins.forecast.labels)
    return out


def apply_suppressions(insights: Sequence[Insight], rules: Sequence[Suppression]
                       ) -> list[Insight]:
    """The insights with ``muted_by`` and ``do_not_learn_by`` set from the matching rules."""
    out = []
    for ins in insights:
        members = _members(ins)
        hits = [r for r in rules
                if members and r.in_window(ins.start, ins.last_seen)
                and all(r.selector.matches(s) for s in members)]
        out.append(replace(ins, muted_by=[r.id for r in hits if r.mute],
                           do_not_learn_by=[r.id for r in hits if r.do_not_learn]))
    return out


def learning_exclusions(rules: Sequence[Suppression]) -> list[dict[str, Any]]:
    """The (series matcher, window) pairs the engine must not learn as normal."""
    return [{"rule_id": r.id, "selector": r.selector_text, "start": r.start, "end": r.end}
            for r in rules if r.do_not_learn]


def exclusion_mask(labels: Sequence[Mapping[str, str]], start: int, step: int, n_steps: int,
                   rules: Sequence[Suppression]) -> np.ndarray:
    """``[n_series, n_steps]`` True where a do-not-learn rule covers the point (column k is
    ``[start + k*step, start + (k+1)*step)``; a window covers columns that start in it)."""
    if step <= 0 or n_steps < 0:
        raise ValueError(f"step={step} and n_steps={n_steps}: expected step > 0, n_steps >= 0")
    mask = np.zeros((len(labels), n_steps), dtype=bool)
    cols = start + np.arange(n_steps, dtype=np.int64) * step
    for r in rules:
        if not r.do_not_learn:
            continue
        rows = np.fromiter((r.selector.matches(ls) for ls in labels), dtype=bool,
                           count=len(labels))
        in_time = np.ones(n_steps, dtype=bool)
        if r.start is not None:
            in_time &= cols >= r.start
        if r.end is not None:
            in_time &= cols < r.end
        mask |= rows[:, None] & in_time[None, :]
    return mask
