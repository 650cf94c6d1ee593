"""/metrics text: the per-series lines parse back (prometheus_client's parser) to the series'
own labels, metric name in ``for``, with quotes, backslashes and newlines escaped."""

import json

import numpy as np
import pyarrow as pa
from prometheus_client.parser import text_string_to_metric_families

from vigil.serve.exposition import LiveMetrics


def scores(labels: list[dict[str, str]], score: list[float], ts: int = 1_767_225_600_000):
    n = len(labels)
    return pa.table({
        "series_id": np.arange(n), "labels": [json.dumps(x) for x in labels],
        "timestamp": pa.array(np.full(n, ts), pa.timestamp("ms", tz="UTC")),
        "value": np.ones(n), "expected": np.ones(n), "lower": np.zeros(n),
        "upper": [np.inf] + [2.0] * (n - 1), "anomaly_score": score, "p_value": np.ones(n),
        "warming_up": [True] + [False] * (n - 1)})


def test_series_lines_parse_back_with_their_labels() -> None:
    tricky = 'a "quoted" \\ back\nslash'
    labels = [{"__name__": "http_latency", "pod": "p0", "note": tricky},
              {"__name__": "cpu", "pod": "p1"}]
    live = LiveMetrics()
    live.scores("t", scores(labels, [0.5, float("nan")]))
    fams = {f.name: f for f in text_string_to_metric_families(live.render("t").decode())}
    score = fams["vigil_anomaly_score"].samples
    assert len(score) == 1  # NaN scores are not exposed
    assert score[0].labels == {"for": "http_latency", "pod": "p0", "note": tricky}
    assert score[0].value == 0.5
    upper = {s.labels["pod"]: s.value for s in fams["vigil_yhat_upper"].samples}
    assert upper == {"p0": float("inf"), "p1": 2.0}
    warming = fams["vigil_warming_up_series"].samples[0]
    assert warming.labels == {"tenant": "t"} and warming.value == 1.0
    assert live.render("other").decode().count("vigil_anomaly_score{") == 0


def test_newer_scores_replace_older_ones() -> None:
    live = LiveMetrics()
    labels = [{"__name__": "cpu", "pod": "p0"}]
    live.scores("t", scores(labels, [0.5]))
    live.scores("t", scores(labels, [3.0], ts=1_767_225_900_000))
    fams = {f.name: f for f in text_string_to_metric_families(live.render("t").decode())}
    assert [s.value for s in fams["vigil_anomaly_score"].samples] == [3.0]
    assert fams["vigil_last_scored_timestamp_seconds"].samples[0].value == 1_767_225_900.0
