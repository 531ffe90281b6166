"""The sidecar: first-match routing and the weighted split, load balancing with a slow
instance, outlier ejection on virtual time, retries and fault injection."""

import random
from collections import Counter

import pytest

import labkit
from labkit.core.clock import ManualClock
from labkit.core.timeline import Timeline
from labkit.patterns.load_balancing import Endpoint, LeastRequest, make_balancer
from labkit.patterns.mesh_config import OutlierDetection
from labkit.patterns.outlier_detection import OutlierDetector


def _within(share: float, target: float) -> bool:
    return abs(share - target) <= 2.0


def test_syllabus_split_is_90_10_and_beta_testers_never_reach_their_route():
    s = labkit.run("service_mesh", config="syllabus", requests=2000, seed=3).summary
    assert s["routes_used"] == {"0": 2000}  # http[1] never matched
    beta = s["beta_testers"]
    assert beta.get("v1", 0) > beta.get("v2", 0)  # beta testers are split like everyone
    assert _within(s["share_percent"]["v1"], 90) and _within(s["share_percent"]["v2"], 10)
    assert len(s["lint"]) == 1 and "spec.http[1]" in s["lint"][0]


def test_10000_seeded_requests_after_the_reorder():
    s = labkit.run(
        "service_mesh", config="fixed", requests=10_000, rate_per_s=1000, seed=11
    ).summary
    assert s["beta_testers"] == {"v2": 1000}  # 100% of beta testers reach v2
    others = s["others"]
    total = sum(others.values())
    assert total == 9000
    assert _within(100 * others["v1"] / total, 90) and _within(100 * others["v2"] / total, 10)
    assert s["status_counts"] == {"200": 10_000} and s["lint"] == []


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    a = labkit.run("service_mesh", requests=300, seed=1).summary["per_instance"]
    b = labkit.run("service_mesh", requests=300, seed=1).summary["per_instance"]
    c = labkit.run("service_mesh", requests=300, seed=2).summary["per_instance"]
    assert a == b and a != c


def test_canary_weight_moves_the_split():
    s = labkit.run("service_mesh", config="fixed", canary_weight=50, requests=2000).summary
    assert _within(100 * s["others"]["v2"] / sum(s["others"].values()), 50)


def test_least_request_sends_a_slow_instance_fewer_requests_and_cuts_p95():
    common = dict(
        config="least_request", slow_instance="order-v1-1", slow_factor=10, v1_instances=5,
        requests=2000, rate_per_s=1000, seed=5,
    )  # fmt: skip
    rr = labkit.run("service_mesh", lb="ROUND_ROBIN", **common).summary
    lr = labkit.run("service_mesh", lb="LEAST_REQUEST", **common).summary
    assert rr["per_instance"]["order-v1-1"] == 400  # round robin: its full fifth
    assert lr["per_instance"]["order-v1-1"] < rr["per_instance"]["order-v1-1"] / 3
    assert lr["latency_ms"]["p95"] < rr["latency_ms"]["p95"]
    assert rr["latency_ms"]["p95"] == pytest.approx(100.0)


def test_round_robin_takes_turns_and_power_of_two_avoids_the_busy_endpoint():
    eps = [Endpoint(f"e{i}") for i in range(4)]
    rr = make_balancer("ROUND_ROBIN", random.Random(0))
    assert Counter(rr.pick(eps).name for _ in range(400)) == {f"e{i}": 100 for i in range(4)}
    eps[0].active = 50
    lr = LeastRequest(random.Random(0))
    assert all(lr.pick(eps).name != "e0" for _ in range(500))  # loses every draw it is in
    assert isinstance(make_balancer("LEAST_CONN", random.Random(0)), LeastRequest)
    with pytest.raises(labkit.UnknownName):
        make_balancer("FASTEST", random.Random(0))


def _detector(hosts: int = 4, **policy):  # type: ignore[no-untyped-def]
    clock = ManualClock()
    tl = Timeline(clock)
    eps = [Endpoint(f"e{i}") for i in range(hosts)]
    settings = dict(
        consecutive_5xx_errors=3, interval=1.0, base_ejection_time=10.0, max_ejection_percent=50
    )
    settings.update(policy)
    return OutlierDetector(OutlierDetection(**settings), eps, tl), eps, clock, tl


def test_ejected_after_consecutive_5xx_for_base_time_times_ejections_then_returns():
    det, eps, clock, tl = _detector()
    bad = eps[0]
    for _ in range(2):
        det.observe(bad, 503, clock.now())
    det.observe(bad, 200, clock.now())  # a success resets the run
    for _ in range(2):
        det.observe(bad, 503, clock.now())
    assert bad in det.available(clock.now())
    det.observe(bad, None, clock.now())  # no answer counts like a 5xx
    assert bad not in det.available(clock.now())
    clock.advance(9.5)
    assert bad not in det.available(clock.now())
    clock.advance(0.5)  # 10 s = 10 s x 1 ejection, at an interval sweep
    assert bad in det.available(clock.now())
    for _ in range(3):  # fails again at once: out for 2 x 10 s this time
        det.observe(bad, 500, clock.now())
    clock.advance(19.5)
    assert bad not in det.available(clock.now())
    clock.advance(0.5)
    assert bad in det.available(clock.now())
    ejected = [r.fields for r in tl.of_kind("instance.ejected")]
    assert [(e["ejections"], e["seconds"]) for e in ejected] == [(1, 10.0), (2, 20.0)]
    assert [r.t for r in tl.of_kind("instance.returned")] == [10.0, 30.0]


def test_max_ejection_percent_is_never_exceeded():
    det, eps, clock, tl = _detector(hosts=4, max_ejection_percent=50)
    for ep in eps:  # every host fails
        for _ in range(3):
            det.observe(ep, 503, clock.now())
    assert len(det.ejected()) == 2  # 2 of 4 = 50%; a third would be 75%
    assert len(tl.of_kind("ejection.refused")) == 2
    det10, eps10, clock10, _ = _detector(hosts=4, max_ejection_percent=10)  # Istio's default
    for _ in range(5):
        det10.observe(eps10[0], 503, clock10.now())
    assert det10.ejected() == []  # one host of four is 25% > 10%: nothing is ejected


def test_mesh_outlier_detection_ejects_a_down_instance_and_lets_it_back():
    s = labkit.run(
        "service_mesh", config="outlier", failing_instance="order-v1-2", fail_from_s=0,
        fail_until_s=12, requests=3000, rate_per_s=100,
    ).summary  # fmt: skip
    first, *_ = s["ejections"]
    assert first["instance"] == "order-v1-2" and first["seconds"] == 10.0
    assert s["returns"][0]["instance"] == "order-v1-2"
    assert s["status_counts"] == {"200": 3000}  # retries hid the few failures
    assert s["retries"] >= 3
    assert s["per_instance"]["order-v1-2"] > 0  # it served again after its return


def test_retries_move_to_another_instance_and_without_retries_callers_see_errors():
    common = dict(failing_instance="order-v1-1", fail_until_s=1000, requests=300, v1_instances=3)
    with_retries = labkit.run("service_mesh", config="outlier", **common).summary
    assert with_retries["status_counts"] == {"200": 300}
    no_retry = labkit.run("service_mesh", config="least_request", lb="ROUND_ROBIN", **common)
    assert no_retry.summary["status_counts"]["503"] == 100  # a third of the calls fail


def test_fault_injection_delays_and_aborts_the_configured_share_and_aborts_are_not_retried():
    s = labkit.run("service_mesh", config="faults", requests=2000, seed=4).summary
    aborted = s["status_counts"]["503"]
    assert 0.18 * 2000 < aborted < 0.22 * 2000  # 20% aborted
    assert s["retries"] == 0  # the fault filter answers before the router: no retry
    assert s["latency_ms"]["p95"] >= 2000  # 10% wait the fixed 2 s delay
    assert s["faults_injected"] > aborted


def test_a_bad_instance_name_or_config_is_one_clear_error():
    with pytest.raises(labkit.UnknownName, match="order-v9-9"):
        labkit.run("service_mesh", slow_instance="order-v9-9")
    with pytest.raises(labkit.UnknownName, match="mesh config"):
        labkit.run("service_mesh", config="nope")
    with pytest.raises(labkit.BadParameter, match=r"spec.http\[1\].route\[1\].weight"):
        labkit.run(
            "service_mesh",
            config=(labkit.core.paths.data_dir() / "mesh" / "fixed.yaml")
            .read_text()
            .replace("weight: 10", "weight: -10"),
        )


def test_mesh_figures_draw_what_the_timeline_says():
    from labkit import viz

    fixed = labkit.run("service_mesh", config="fixed", requests=500)
    fig = viz.subset_traffic(fixed)
    by_subset = {t.name: dict(zip(t.x, t.y, strict=True)) for t in fig.data}
    assert by_subset["subset v2"]["beta testers"] == fixed.summary["beta_testers"]["v2"]
    assert "subset v1" in by_subset and by_subset["subset v1"]["beta testers"] == 0
    out = labkit.run(
        "service_mesh", config="outlier", failing_instance="order-v1-2", fail_until_s=12,
        requests=2000, rate_per_s=100,
    )  # fmt: skip
    spans = viz.mesh.ejection_spans(out)
    assert spans[0]["instance"] == "order-v1-2" and spans[0]["end"] - spans[0]["start"] >= 10
    assert len(viz.ejection_timeline(out).layout.shapes) == len(spans)
    both = {"ROUND_ROBIN": fixed, "LEAST_REQUEST": fixed}
    assert len(viz.lb_comparison(both).data) == 4


def _mesh_run(yaml_text, plan_rules, calls, *, headers=None):  # type: ignore[no-untyped-def]
    """Serve three v1 instances behind a mesh configured by ``yaml_text``; make ``calls``."""
    from labkit.core.clock import LoopClock, run_on_fresh_loop
    from labkit.core.faults import FaultPlan
    from labkit.patterns.mesh_config import load_mesh_config
    from labkit.patterns.service_mesh import Instance, serve_mesh
    from labkit.shop.catalog import load_catalog
    from labkit.shop.services import order_app

    config = load_mesh_config(yaml_text)
    catalog = load_catalog()
    names = [f"order-v1-{k}" for k in (1, 2, 3)]
    members = [Instance(n, "order-service", {"version": "v1"}, order_app(catalog)) for n in names]

    async def main():  # type: ignore[no-untyped-def]
        tl = Timeline(LoopClock())
        plan = FaultPlan(0)
        for target, fault in plan_rules:
            plan.add(target, fault)
        statuses = []
        async with serve_mesh(config, members, timeline=tl, faults=plan) as (_, client):
            for _ in range(calls):
                r = await client.get("http://order-service/orders/o-1001", headers=headers or {})
                statuses.append((r.status_code, r.headers.get("x-mesh-instance")))
        return statuses, tl

    return run_on_fresh_loop(main, virtual=True)


ROUTE = """
kind: VirtualService
metadata: {name: order-service}
spec:
  hosts: [order-service]
  http:
  - route: [{destination: {host: order-service, subset: v1}}]
%s
---
kind: DestinationRule
metadata: {name: order-service}
spec:
  host: order-service
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets: [{name: v1, labels: {version: v1}}]
"""


def test_per_try_timeout_retries_a_hung_instance_on_another_one():
    from labkit.core.faults import Hang

    retries = "    retries: {attempts: 2, perTryTimeout: 200ms, retryOn: 5xx}"
    statuses, tl = _mesh_run(ROUTE % retries, [("order-v1-1", Hang(seconds=30))], 6)
    assert [s for s, _ in statuses] == [200] * 6
    assert all(instance != "order-v1-1" for _, instance in statuses)
    retried = tl.of_kind("mesh.retry")
    assert len(retried) >= 2 and {r.fields["reason"] for r in retried} == {"timeout"}
    answered = tl.of_kind("mesh.answered")
    assert max(r.fields["latency_ms"] for r in answered) < 300  # 200 ms try + backoff


def test_route_timeout_answers_504_and_retry_on_ignores_unlisted_failures():
    from labkit.core.faults import ErrorStatus, Hang

    statuses, tl = _mesh_run(ROUTE % "    timeout: 1s", [("order-v1-2", Hang(seconds=30))], 3)
    assert [s for s, _ in statuses] == [200, 504, 200]
    assert tl.of_kind("mesh.timeout")[0].fields["seconds"] == 1.0
    only_reset = "    retries: {attempts: 2, retryOn: reset}"
    statuses, tl = _mesh_run(ROUTE % only_reset, [("order-v1-1", ErrorStatus(503))], 3)
    assert [s for s, _ in statuses] == [503, 200, 200]  # a 503 is not a reset: no retry
    assert tl.of_kind("mesh.retry") == []


def test_header_prefix_regex_and_uri_matches_pick_their_routes():
    from labkit.patterns.mesh_config import load_mesh_config
    from labkit.patterns.service_mesh import Mesh

    text = """
kind: VirtualService
metadata: {name: s}
spec:
  hosts: [s]
  http:
  - match: [{headers: {end-user: {prefix: beta-}}}]
    route: [{destination: {host: s}}]
  - match: [{headers: {x-app: {regex: "ios|android"}}}, {uri: {prefix: /mobile}}]
    route: [{destination: {host: s}}]
  - match: [{uri: {exact: /orders/1}}]
    route: [{destination: {host: s}}]
"""
    mesh = Mesh(load_mesh_config(text), {}, send=None, timeline=Timeline())  # type: ignore[arg-type]

    def index(path, **headers):  # type: ignore[no-untyped-def]
        route = mesh.choose_route("s", "GET", path, headers)
        return None if route is None else route.index

    assert index("/x", **{"end-user": "beta-tester"}) == 0
    assert index("/x", **{"x-app": "android"}) == 1
    assert index("/x", **{"x-app": "android-tv"}) is None  # a regex must match the whole value
    assert index("/mobile/home") == 1
    assert index("/orders/1") == 2 and index("/orders/12") is None
