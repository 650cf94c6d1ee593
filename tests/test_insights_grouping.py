from insights_helpers import STEP, anomaly, burst, pod, t
from vigil.insights import InsightConfig, build_insights
from vigil.insights.grouping import GroupingConfig, cluster_anomalies
from vigil.insights.inputs import to_anomalies


def build(anoms, **kw):
    return build_insights(anoms, config=InsightConfig(step_ms=STEP, **kw), now=t(2000))


def test_pods_of_one_service_merge_into_one_insight():
    res = build(burst("cart", 100, 160, pods=8))
    assert len(res.insights) == 1
    ins = res.insights[0]
    assert ins.group == {"site": "site-1", "namespace": "shop", "service": "cart"}
    assert len(ins.series) == 8 and ins.metrics == ["http_request_duration_p99_seconds"]
    assert ins.kind == "reactive" and ins.start == t(100)


def test_other_services_and_sites_stay_apart():
    anoms = burst("cart", 100, 160) + burst("auth", 100, 160) + burst("cart", 100, 160,
                                                                      site="site-2")
    groups = sorted(tuple(sorted(i.group.items())) for i in build(anoms).insights)
    assert len(groups) == 3


def test_gap_and_transitive_merge():
    a = burst("cart", 100, 130)
    b = burst("cart", 140, 170)  # 10 min after a: merges
    c = burst("cart", 240, 270)  # 70 min after b: a new cluster
    clusters = cluster_anomalies(to_anomalies(a + b + c), GroupingConfig())
    assert [len(cl.anomalies) for cl in clusters] == [12, 6]
    # chained: each link within the gap, the whole much longer than the gap
    chain = [anomaly(pod("cart", i % 4), 100 + 20 * i, 110 + 20 * i) for i in range(6)]
    assert len(cluster_anomalies(to_anomalies(chain), GroupingConfig())) == 1


def test_a_long_interval_bridges_only_its_first_hour():
    long = [anomaly(pod("cart", 0, "container_cpu_usage_cores"), 0, 3000, 3.5)]
    later = burst("cart", 1500, 1600)
    clusters = cluster_anomalies(to_anomalies(long + later), GroupingConfig())
    assert len(clusters) == 2
    unlimited = cluster_anomalies(to_anomalies(long + later), GroupingConfig(bridge_ms=None))
    assert len(unlimited) == 1


def test_node_series_group_by_node():
    disk = [anomaly({"__name__": "node_disk_usage_ratio", "site": "site-1", "node": f"n{i}"},
                    100, 400, 5.0) for i in range(2)]
    res = build(disk)
    assert sorted(i.group["node"] for i in res.insights) == ["n0", "n1"]


def test_weak_evidence_opens_nothing():
    one_blip = [anomaly(pod("cart", 0), 100, 110, 2.0)]
    res = build(one_blip)
    assert res.insights == [] and res.stats["clusters_below_evidence"] == 1


def test_ids_are_stable_and_differ_per_group():
    a = build(burst("cart", 100, 160) + burst("auth", 100, 160)).insights
    b = build(list(reversed(burst("auth", 100, 160) + burst("cart", 100, 160)))).insights
    assert [i.id for i in a] == [i.id for i in b]
    assert len({i.id for i in a}) == 2 and all(i.id.startswith("ins-") for i in a)


def test_severity_grows_with_breadth_and_duration():
    small = build(burst("cart", 100, 160, pods=6, peak=3.0)).insights[0]
    big = build(burst("cart", 100, 400, pods=14, peak=20.0)).insights[0]
    order = ("low", "medium", "high")
    assert order.index(big.severity) > order.index(small.severity)
