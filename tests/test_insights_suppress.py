import numpy as np
import pytest

from insights_helpers import STEP, burst, t
from vigil.insights import InsightConfig, run_pipeline
from vigil.insights.suppress import exclusion_mask, parse_suppressions


def run(anoms, rules, previous=()):
    return run_pipeline(anoms, suppressions=parse_suppressions(rules), previous=previous,
                        config=InsightConfig(step_ms=STEP), now=t(3000))


def test_mute_keeps_the_insight_but_does_not_notify():
    rules = [{"id": "quiet-cart", "selector": '{service="cart"}', "mute": True}]
    res = run(burst("cart", 100, 200) + burst("auth", 100, 200), rules)
    by = {i.group["service"]: i for i in res.insights}
    assert by["cart"].muted_by == ["quiet-cart"] and by["cart"].muted
    assert not by["auth"].muted
    notified = {n["insight_id"] for n in res.notifications}
    assert by["auth"].id in notified and by["cart"].id not in notified


def test_do_not_learn_is_kept_apart_from_mute():
    rules = [{"id": "maint", "selector": '{site="site-1"}', "mute": False,
              "do_not_learn": True, "start": t(0), "end": t(500)}]
    res = run(burst("cart", 100, 200), rules)
    ins = res.insights[0]
    assert ins.do_not_learn_by == ["maint"] and not ins.muted
    assert [n["insight_id"] for n in res.notifications] == [ins.id, ins.id]  # opened, closed
    assert res.exclusions == [{"rule_id": "maint", "selector": '{site="site-1"}',
                               "start": t(0), "end": t(500)}]


def test_time_window_limits_a_rule():
    rules = [{"id": "night", "selector": '{service="cart"}', "start": t(1000), "end": t(1100)}]
    res = run(burst("cart", 100, 200) + burst("cart", 1020, 1080), rules)
    muted = sorted((i.start, i.muted) for i in res.insights)
    assert muted == [(t(100), False), (t(1020), True)]


def test_a_rule_must_match_every_member_series():
    rules = [{"id": "one-pod", "selector": '{pod="cart-0"}'}]
    res = run(burst("cart", 100, 200), rules)
    assert not res.insights[0].muted


def test_exclusion_mask_covers_rule_rows_and_window():
    rules = parse_suppressions([{"id": "x", "selector": '{service="cart"}', "mute": False,
                                 "do_not_learn": True, "start": t(10), "end": t(20)}])
    labels = [{"__name__": "m", "service": "cart"}, {"__name__": "m", "service": "auth"}]
    mask = exclusion_mask(labels, t(0), STEP, 6, rules)
    assert mask.tolist() == [[False, False, True, True, False, False], [False] * 6]
    assert mask.dtype == np.bool_


@pytest.mark.parametrize("rule, message", [
    ({"id": "a", "selector": "{service="}, "a"),
    ({"id": "a", "selector": '{service="x"}', "mute": False}, "would do nothing"),
    ({"id": "a", "selector": '{service="x"}', "start": t(10), "end": t(5)}, "not after"),
    ({"id": "a", "selector": '{service="x"}', "colour": "red"}, "unknown key"),
    ({"selector": '{service="x"}'}, "'id'"),
])
def test_invalid_rules_are_rejected_clearly(rule, message):
    with pytest.raises(ValueError, match=message):
        parse_suppressions([rule])
