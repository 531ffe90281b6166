"""Request-reply through a broker: one answer per request, shared by the responders; fast
failure with nobody listening; a failed responder costs its caller the whole timeout."""

import pytest

import labkit


def test_responders_share_the_requests_and_each_is_answered_once():
    s = labkit.run("request_reply", requests=20, responders=2).summary
    assert s["answered"] == 20 and s["timed_out"] == s["no_responders"] == 0
    assert s["answered_by"] == {"user-1": 10, "user-2": 10}
    assert s["latency_ms"]["max"] == pytest.approx(5.0)  # one lookup, on virtual time


def test_nobody_listening_fails_at_once_and_a_failing_responder_costs_the_timeout():
    none = labkit.run("request_reply", responders=0).summary
    assert none["no_responders"] == 20 and none["answered"] == 0
    failing = labkit.run("request_reply", failing_share=0.3, seed=4).summary
    assert 0 < failing["timed_out"] < 20
    assert failing["answered"] + failing["timed_out"] == 20
    assert failing["latency_ms"]["max"] == pytest.approx(200.0)  # the client's whole timeout
    late = labkit.run("request_reply", responder_latency_ms=300, timeout_ms=200).summary
    assert late["timed_out"] == 20


@pytest.mark.broker
@pytest.mark.parametrize("backend", ["nats", "rabbitmq"])
def test_the_same_on_a_real_broker(backend):
    s = labkit.run("request_reply", backend=backend, requests=10, responders=2).summary
    assert s["answered"] == 10 and sum(s["answered_by"].values()) == 10
    assert labkit.run("request_reply", backend=backend, responders=0).summary["no_responders"] == 20


def test_bad_values_are_refused_by_name():
    with pytest.raises(labkit.BadParameter, match="responders"):
        labkit.run("request_reply", responders=9)
    with pytest.raises(labkit.UnknownName, match="backend"):
        labkit.run("request_reply", backend="kafka")
