import re

import numpy as np
import pyarrow as pa

from insights_helpers import STEP, burst, deployment, forecast, pod, t
from vigil.insights import InsightConfig, run_pipeline
from vigil.report import TableSource, member_ids, render_report


def _scores_table(series_ids, n_steps=400):
    rows = []
    for sid in series_ids:
        ts = t(0) + np.arange(n_steps, dtype=np.int64) * STEP
        v = np.sin(np.arange(n_steps) / 10.0) + 5
        rows.append(pa.table({"series_id": pa.array([sid] * n_steps, pa.int64()),
                              "timestamp": pa.array(ts, pa.timestamp("ms", tz="UTC")),
                              "value": v, "expected": np.full(n_steps, 5.0),
                              "lower": np.full(n_steps, 4.0), "upper": np.full(n_steps, 6.0)}))
    return pa.concat_tables(rows)


def test_report_holds_every_insight_with_a_chart():
    anoms = burst("cart", 300, 400) + burst("auth", 600, 700, metric="http_error_ratio")
    mem = pod("cart", 0, "container_memory_working_set_bytes")
    ex = [forecast(mem, 42, at, 0.9, 1900) for at in range(900, 1300, 60)]
    events = [deployment("cart", 290)]
    res = run_pipeline(anoms, events, ex, config=InsightConfig(step_ms=STEP), now=t(1300))
    kinds = sorted(i.kind for i in res.insights)
    assert kinds == ["proactive", "reactive", "reactive"]
    source = TableSource(_scores_table(member_ids(res.insights)))
    html = render_report(res.insights, source, events)
    sections = re.findall(r'<section class="insight" id="(ins-[0-9a-f]+)">(.*?)</section>',
                          html, re.S)
    assert sorted(s for s, _ in sections) == sorted(i.id for i in res.insights)
    for _, body in sections:
        assert '<svg class="chart"' in body
        assert 'class="value"' in body and 'class="band"' in body
    by_id = dict(sections)
    reactive = next(i for i in res.insights if i.group["service"] == "cart"
                    and i.kind == "reactive")
    assert 'class="anomaly"' in by_id[reactive.id]
    assert 'class="event"' in by_id[reactive.id]  # the deployment marker
    proactive = next(i for i in res.insights if i.kind == "proactive")
    assert 'class="cone"' in by_id[proactive.id] and 'class="limit"' in by_id[proactive.id]
    # self-contained: nothing is fetched
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html


def test_an_insight_without_series_data_still_gets_a_chart():
    res = run_pipeline(burst("cart", 300, 400), config=InsightConfig(step_ms=STEP), now=t(900))
    html = render_report(res.insights, TableSource(_scores_table([12345])), [])
    assert html.count('<svg class="chart"') == 4  # up to four members, each drawn empty


def test_a_forecast_without_crossing_times_still_draws():
    """A proactive forecast may carry no crossing time (p50/lo/hi None): the chart shows the
    limit and no cone instead of failing."""
    import numpy as np

    from vigil.report.svg import ChartData, Cone, chart_svg

    t = np.arange(10) * 300_000
    svg = chart_svg(ChartData("mem", t, np.linspace(1, 5, 10),
                              cone=Cone(int(t[-1]), 5.0, 8.0, None, None, None)))
    assert 'class="limit"' in svg and 'class="cone"' not in svg
