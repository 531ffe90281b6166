"""The gateway's two choices (sequential/concurrent, fail/degrade), checked as numbers."""

import json

import pytest

import labkit
from labkit.core.errors import BadParameter


def test_sequential_waits_for_the_sum_and_concurrent_for_the_slowest():
    seq = labkit.run("gateway", mode="sequential", items=5, product_latency_ms=50)
    conc = labkit.run("gateway", mode="concurrent", items=5, product_latency_ms=50)
    assert seq.summary["latency_ms"]["min"] >= 5 * 50
    assert conc.summary["latency_ms"]["max"] < 2 * 50
    # the same work happens downstream either way
    assert seq.summary["downstream_ms_per_request"] == conc.summary["downstream_ms_per_request"]


def test_the_same_seed_gives_the_same_json():
    params = {
        "mode": "concurrent",
        "product_jitter_ms": 30,
        "product_error_rate": 0.2,
        "partial": "degrade",
        "requests": 20,
    }
    a = labkit.run("gateway", seed=11, **params).to_json()
    b = labkit.run("gateway", seed=11, **params).to_json()
    c = labkit.run("gateway", seed=12, **params).to_json()
    assert a == b
    assert a != c
    assert set(json.loads(a)) >= {"pattern", "params", "seed", "summary", "timeline"}


def test_one_failing_product_fails_the_whole_page_in_the_syllabus_version():
    s = labkit.run("gateway", mode="sequential", partial="fail", failing_product=3).summary
    assert s["status_counts"] == {"500": 5}
    # it stopped at the third product: order, user, p-1, p-2, p-3
    assert s["downstream_calls"] == 5 * 5


def test_degrading_gateway_answers_with_the_failed_part_marked():
    r = labkit.run("gateway", mode="concurrent", partial="degrade", failing_product=3, requests=1)
    assert r.summary["status_counts"] == {"200": 1} and r.summary["degraded"] == 1
    failed = [rec for rec in r.timeline.of_kind("response.received") if rec.fields["status"] == 503]
    assert [rec.fields["target"] for rec in failed] == ["product"]


def test_concurrent_fail_mode_answers_500_too():
    s = labkit.run("gateway", mode="concurrent", partial="fail", failing_product=1).summary
    assert s["status_counts"] == {"500": 5}


def test_every_downstream_call_is_a_child_of_the_client_request():
    r = labkit.run("gateway", requests=2, mode="concurrent")
    sent = r.timeline.of_kind("request.sent")
    roots = [rec.fields["call"] for rec in sent if rec.actor == "client"]
    children = [rec for rec in sent if rec.actor == "gateway"]
    assert len(roots) == 2 and len(children) == 14
    assert {rec.fields["parent"] for rec in children} == set(roots)


def test_mobile_bff_sends_fewer_bytes_than_the_web_view():
    web = labkit.run("gateway", bff="web").summary["response_bytes"]
    mobile = labkit.run("gateway", bff="mobile").summary["response_bytes"]
    assert mobile < web / 2


def test_a_slow_call_past_its_deadline_is_a_timeout_and_degrades():
    s = labkit.run(
        "gateway",
        product_latency_ms=300,
        call_timeout_ms=100,
        partial="degrade",
        mode="concurrent",
        requests=1,
    ).summary
    assert s["degraded"] == 1 and s["latency_ms"]["max"] == pytest.approx(110)


def test_bad_settings_are_refused_before_anything_runs():
    with pytest.raises(BadParameter, match="items=13"):
        labkit.run("gateway", items=13)


@pytest.mark.live
def test_live_mode_gives_the_same_shape_of_records():
    r = labkit.run("gateway", backend="live", mode="concurrent", product_latency_ms=5, requests=2)
    assert r.backend == "live" and r.summary["status_counts"] == {"200": 2}
    sent = r.timeline.of_kind("request.sent")
    assert len(sent) == 2 * 8
    assert all(rec.fields["parent"] for rec in sent if rec.actor == "gateway")
