import pytest

from insights_helpers import STEP, burst, t
from vigil.insights import InsightConfig, run_pipeline
from vigil.insights.feedback import feedback, sensitivity_factors

CFG = InsightConfig(step_ms=STEP)
# one pod for 60 min (13 steps) at peak 3.0: persistence evidence 3 per step reaches 36 at the
# 12th step, but not the 36 x 1.5 = 54 of a desensitised group
WEAK = burst("cart", 100, 160, pods=1, peak=3.0)
STRONG = burst("auth", 100, 160, pods=10, peak=8.0)


def test_false_positive_makes_the_group_less_sensitive_and_is_reversible():
    first = run_pipeline(WEAK + STRONG, config=CFG, now=t(3000))
    cart = next(i for i in first.insights if i.group["service"] == "cart")
    records = [feedback(cart, "false_positive", "noisy", time_ms=1)]
    factors = sensitivity_factors(records)
    assert factors == {cart.group_key: 1.5}
    second = run_pipeline(WEAK + STRONG, config=CFG, now=t(3000), feedback=records)
    assert {i.group["service"] for i in second.insights} == {"auth"}
    assert second.stats["groups_desensitised"] == 1
    # a later label replaces the false positive: the rule is undone
    records.append(feedback(cart, "true_positive", time_ms=2))
    third = run_pipeline(WEAK + STRONG, config=CFG, now=t(3000), feedback=records)
    assert {i.group["service"] for i in third.insights} == {"auth", "cart"}


def test_factor_compounds_per_insight_and_is_capped():
    recs = [feedback(f"ins-{i}", "false_positive", time_ms=i, group_key="g") for i in range(9)]
    assert sensitivity_factors(recs[:2]) == {"g": pytest.approx(2.25)}
    assert sensitivity_factors(recs) == {"g": 5.0}
    assert sensitivity_factors([feedback("ins-1", "expected", time_ms=1, group_key="g")]) == {}


def test_bad_labels_are_rejected():
    with pytest.raises(ValueError, match="false_positive, expected, true_positive"):
        feedback("ins-1", "wrong", time_ms=1, group_key="g")
    with pytest.raises(ValueError, match="group_key"):
        feedback("ins-1", "expected", time_ms=1)


def test_feedback_is_stored_and_applied_through_the_store(tmp_path):
    from vigil.insights.persist import add_feedback, load_insights, read_feedback, refresh_insights
    from vigil.store import Store

    store = Store(tmp_path)
    refresh_insights(store, "t1", config=InsightConfig(tenant="t1", step_ms=STEP),
                     anomalies=WEAK + STRONG, exhaustion=[], now=t(3000))
    stored = load_insights(store, "t1")
    cart = next(i for i in stored if i.group["service"] == "cart")
    add_feedback(store, "t1", cart.id[:10], "false_positive", "not real", time_ms=5)
    assert read_feedback(store, "t1")[0]["insight_id"] == cart.id
    refresh_insights(store, "t1", config=InsightConfig(tenant="t1", step_ms=STEP),
                     anomalies=WEAK + STRONG, exhaustion=[], now=t(3000))
    assert {i.group["service"] for i in load_insights(store, "t1")} == {"auth"}
    with pytest.raises(ValueError, match="no insight"):
        add_feedback(store, "t1", "ins-nope", "expected", "", time_ms=6)
