from insights_helpers import STEP, burst, forecast, pod, t
from vigil.insights import InsightConfig, insights_from_json, insights_to_json, run_pipeline
from vigil.insights.pipeline import notifications

CFG = InsightConfig(step_ms=STEP)
MEM = "container_memory_working_set_bytes"


def test_reactive_insight_is_ongoing_then_closes_after_the_quiet_period():
    anoms = burst("cart", 100, 200)
    live = run_pipeline(anoms, config=CFG, now=t(230))
    ins = live.insights[0]
    assert ins.status == "ongoing" and ins.end is None
    assert [n["action"] for n in live.notifications] == ["opened"]
    later = run_pipeline(anoms, config=CFG, now=t(400), previous=live.insights)
    closed = later.insights[0]
    assert closed.id == ins.id and closed.status == "closed" and closed.end == t(200)
    assert [n["action"] for n in later.notifications] == ["closed"]
    again = run_pipeline(anoms, config=CFG, now=t(500), previous=later.insights)
    assert again.notifications == []  # nothing changed: nothing sent


def test_evidence_is_causal():
    # one pod at peak 6: persistence evidence 6 per 5-min step, 36 reached at the 6th step
    anoms = burst("cart", 100, 200, pods=1, peak=6.0)
    early = run_pipeline(anoms, config=CFG, now=t(120))  # five steps seen: not enough yet
    assert early.insights == []
    ins = run_pipeline(anoms, config=CFG, now=t(300)).insights[0]
    assert ins.opened_at == t(125)
    # six pods together at peak 5: 30 per step, open at their second step
    many = run_pipeline(burst("cart", 100, 200), config=CFG, now=t(300)).insights[0]
    assert many.opened_at == t(105)


def forecasts(pods=3, risky_from=0, risky_to=600, end=900, cross=1500):
    out = []
    for i in range(pods):
        labels = pod("cart", i, MEM)
        for at in range(0, end + 1, 60):
            at_risk = risky_from <= at <= risky_to
            p = 0.9 if at_risk else 0.1
            out.append(forecast(labels, 1000 + i, at, p, cross - at // 10 if at_risk else None))
    return out


def test_proactive_one_insight_per_resource_updates_and_closes():
    res = run_pipeline([], exhaustion=forecasts(), config=CFG, now=t(900))
    assert len(res.insights) == 1
    ins = res.insights[0]
    assert ins.kind == "proactive" and ins.status == "closed"
    assert ins.start == t(0) and ins.end == t(660)  # first evaluation below 0.3
    assert ins.group["__name__"] == MEM and len(ins.series) == 3
    assert ins.forecast is not None and ins.forecast.crossing_time_p50 == t(1500 - 60)
    assert ins.first_forecast is not None and ins.first_forecast.crossing_time_p50 == t(1500)
    assert "reaches the 954 MiB limit" in ins.summary
    assert any(r.rule_id == "memory-near-limit" for r in ins.recommendations)


def test_proactive_hysteresis_keeps_it_open_between_thresholds():
    recs = forecasts(pods=1, risky_to=300, end=600)
    for r in recs:
        if r["evaluated_at"] > t(300):
            r["probability"] = 0.4  # below opening, above closing
    ins = run_pipeline([], exhaustion=recs, config=CFG, now=t(600)).insights[0]
    assert ins.status == "ongoing" and ins.end is None


def test_contract_round_trip_and_fields():
    anoms = burst("cart", 100, 200)
    res = run_pipeline(anoms, exhaustion=forecasts(), config=CFG, now=t(900))
    text = insights_to_json(res.insights)
    back = insights_from_json(text)
    assert back == res.insights
    import json

    for obj in json.loads(text):
        for key in ("id", "kind", "severity", "status", "start", "end", "summary", "series",
                    "anomalies", "events", "recommendations"):
            assert key in obj
        assert obj["start"].endswith("Z")
        assert all("__name__" in s for s in obj["series"])
        if obj["kind"] == "proactive":
            f = obj["forecast"]
            assert {"labels", "limit", "probability", "crossing_time_p50", "crossing_time_lo",
                    "crossing_time_hi"} <= set(f)


def test_notifications_report_updates_of_ongoing_insights():
    old = run_pipeline(burst("cart", 100, 140, pods=6, peak=4.0), config=CFG, now=t(150))
    new = run_pipeline(burst("cart", 100, 140, pods=6, peak=4.0)
                       + burst("cart", 120, 200, pods=14, peak=30.0)[6:], config=CFG,
                       now=t(210), previous=old.insights)
    got = notifications(old.insights, new.insights, t(210))
    assert [n["action"] for n in got] == ["updated"]
    assert "more series" in got[0]["reason"]
