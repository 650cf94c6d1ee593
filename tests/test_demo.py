"""`vigil demo` end to end on a small fleet (the default fleet is timed by hand: see the issue)."""

import json

import pytest
from typer.testing import CliRunner

from vigil.cli import app


@pytest.mark.slow
def test_demo_end_to_end_small_fleet(tmp_path):
    store, out = tmp_path / "store", tmp_path / "demo"
    runner = CliRunner()
    res = runner.invoke(app, ["demo", "--store", str(store), "--out", str(out), "--sites", "1",
                              "--services", "1", "--days", "5", "--seed", "3"])
    assert res.exit_code == 0, res.output
    for stage in ("simulate", "ingest", "backtest", "insights", "report"):
        assert f"{stage} " in res.output.split("stage times:")[1]
    assert "Insights against the truth" in res.output
    assert "report:" in res.output
    summary = json.loads((out / "backtest" / "summary.json").read_text())
    truth = summary["insight_truth"]
    assert {"recall", "false_insights_per_1000_series_days", "median_delay_minutes",
            "cause_ranked_first", "median_crossing_error", "per_kind"} <= set(truth)
    found = json.loads((out / "backtest" / "insights.json").read_text())
    html = (out / "report.html").read_text()
    for ins in found:
        assert f'id="{ins["id"]}"' in html
    # the store holds them too: the insight commands work against it
    res = runner.invoke(app, ["insights", "--store", str(store), "--tenant", "demo",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    assert [i["id"] for i in json.loads(res.output)] == [i["id"] for i in found]
    if found:
        one = found[0]["id"]
        res = runner.invoke(app, ["insight", one[:12], "--store", str(store), "--tenant",
                                  "demo"])
        assert res.exit_code == 0 and json.loads(res.output)["id"] == one
        res = runner.invoke(app, ["feedback", one, "--label", "expected", "--note", "ok",
                                  "--store", str(store), "--tenant", "demo"])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["feedback", one, "--label", "bogus", "--store", str(store),
                                  "--tenant", "demo"])
        assert res.exit_code != 0
