import pytest

from insights_helpers import STEP, burst, deployment, t
from vigil.insights import InsightConfig, build_insights
from vigil.insights.causes import label_overlap


def build(anoms, events):
    return build_insights(anoms, events, config=InsightConfig(step_ms=STEP), now=t(3000))


def test_same_service_deployment_before_onset_ranks_first():
    events = [
        deployment("auth", 290, event_id="evt-auth"),  # same site, another service, closer
        deployment("cart", 280, event_id="evt-cart"),  # same service
        {"event_id": "evt-global", "time": t(295), "kind": "infrastructure", "labels": {},
         "summary": "network change", "attributes": {}},
    ]
    ins = build(burst("cart", 300, 400), events).insights[0]
    ids = [c.event_id for c in ins.events]
    assert ids[0] == "evt-cart" and set(ids) == {"evt-cart", "evt-auth", "evt-global"}
    assert [c.rank for c in ins.events] == [1, 2, 3]
    assert ins.events[0].score > ins.events[1].score
    assert "same service" in ins.events[0].reason
    assert "cart v2" in ins.summary and "after deployment" in ins.summary


def test_other_site_and_too_early_or_late_events_are_not_candidates():
    events = [
        deployment("cart", 280, site="site-2", event_id="evt-other-site"),
        deployment("cart", 300 - 3 * 60, event_id="evt-too-early"),  # beyond the 2 h lookback
        deployment("cart", 330, event_id="evt-after"),  # 30 min after the onset
    ]
    ins = build(burst("cart", 300, 400), events).insights[0]
    assert ins.events == []


def test_closer_deployment_of_the_service_beats_an_older_one():
    events = [deployment("cart", 200, "v2", event_id="old"),
              deployment("cart", 290, "v3", event_id="new")]
    ins = build(burst("cart", 300, 400), events).insights[0]
    assert [c.event_id for c in ins.events] == ["new", "old"]


def test_a_deployment_that_precedes_no_anomaly_creates_nothing():
    res = build([], [deployment("cart", 100)])
    assert res.insights == []
    res = build(burst("auth", 300, 400), [deployment("cart", 290)])
    assert [i.group["service"] for i in res.insights] == ["auth"]  # no cart insight


def test_effect_size_separates_equal_candidates():
    import numpy as np

    from vigil.insights.inputs import values_from_arrays

    anoms = burst("cart", 300, 400)
    ids = [a["series_id"] for a in anoms]
    n = 600 // 5
    values = np.ones((len(ids), n))
    values[:, 300 // 5:] = 5.0  # the level shifts at minute 300
    fn = values_from_arrays(ids, t(0), STEP, values)
    cfg = InsightConfig(step_ms=STEP)
    # one deployment at the shift, one 60 min earlier where nothing moved
    events = [deployment("cart", 300, "v3", event_id="at-shift"),
              deployment("cart", 240, "v2", event_id="before")]
    ins = build_insights(anoms, events, config=cfg, values=fn, now=t(600)).insights[0]
    assert ins.events[0].event_id == "at-shift"
    assert "shifted" in ins.events[0].reason
    assert ins.effect["http_request_duration_p99_seconds"] == pytest.approx(5.0)


def test_label_overlap_order():
    scope = {"site": "site-1", "service": "cart", "namespace": "shop"}
    same = label_overlap({"site": "site-1", "service": "cart"}, scope)
    site = label_overlap({"site": "site-1"}, scope)
    glob = label_overlap({}, scope)
    assert same and site and glob and same[0] > site[0] > glob[0]
    assert label_overlap({"site": "site-2", "service": "cart"}, scope) is None
