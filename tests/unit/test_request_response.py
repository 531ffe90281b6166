"""The careful client turns every failure into one named reason; the naive one does not."""

import pytest

import labkit
from labkit.core.clock import LoopClock, run_on_fresh_loop
from labkit.core.faults import BadPayload, ErrorStatus, FaultPlan, Hang, Outage, Reset
from labkit.core.timeline import Timeline
from labkit.patterns.request_response import DownstreamError, NaiveUserClient, UserClient
from labkit.shop.catalog import load_catalog
from labkit.shop.services import shop_apps
from labkit.transport.hosting import host


def lookup(plan, *, naive=False, user_id="u-1"):
    async def main():
        tl = Timeline(LoopClock())
        async with host(shop_apps(load_catalog()), timeline=tl, faults=plan) as h:
            http = h.client("user", source="caller")
            client = NaiveUserClient(http) if naive else UserClient(http, timeout_s=0.5)
            try:
                return await client.get_user(user_id)
            except Exception as exc:
                return exc

    return run_on_fresh_loop(main, virtual=True)


def test_a_healthy_lookup_returns_the_user():
    user = lookup(FaultPlan())
    assert (user.id, user.name, user.email) == ("u-1", "Ada Park", "ada@example.test")


@pytest.mark.parametrize(
    ("fault", "reason", "cause"),
    [
        (ErrorStatus(503), "status", None),
        (Hang(), "timeout", "ReadTimeout"),
        (Reset(), "unavailable", "RemoteProtocolError"),
        (Outage(), "unavailable", "ConnectError"),
        (BadPayload(), "bad_payload", "JSONDecodeError"),
    ],
)
def test_each_failure_becomes_one_named_reason_with_its_cause_kept(fault, reason, cause):
    error = lookup(FaultPlan().add("user", fault))
    assert isinstance(error, DownstreamError)
    assert error.service == "user" and error.reason == reason
    if cause:
        assert type(error.__cause__).__name__ == cause


def test_an_unknown_user_is_not_found_not_a_crash():
    error = lookup(FaultPlan(), user_id="u-999")
    assert (
        isinstance(error, DownstreamError) and error.reason == "not_found" and error.status == 404
    )


def test_a_malformed_id_is_a_400_that_names_the_status():
    error = lookup(FaultPlan(), user_id="nobody")
    assert isinstance(error, DownstreamError) and error.reason == "status" and error.status == 400


def test_the_naive_client_crashes_on_an_error_body():
    error = lookup(FaultPlan().add("user", ErrorStatus(503)), naive=True)
    assert isinstance(error, KeyError)


def test_scenario_careful_client_waits_no_longer_than_its_deadline():
    careful = labkit.run("request_response", hang_rate=0.3, timeout_ms=200, seed=4)
    naive = labkit.run("request_response", hang_rate=0.3, client="naive", seed=4)
    assert careful.summary["outcomes"]["timeout"] > 0
    assert careful.summary["longest_wait_ms"] <= 200
    assert naive.summary["longest_wait_ms"] >= 30_000  # a hung call holds the naive caller
    assert naive.summary["outcomes"].get("timeout", 0) == 0


def test_scenario_counts_outcomes_that_add_up():
    r = labkit.run(
        "request_response",
        error_rate=0.2,
        reset_rate=0.1,
        bad_payload_rate=0.1,
        requests=200,
        seed=1,
    )
    s = r.summary
    assert sum(s["outcomes"].values()) == 200 == s["succeeded"] + s["failed"]
    assert {"ok", "status", "unavailable", "bad_payload"} <= set(s["outcomes"])
    assert len(r.timeline.of_kind("call.")) == 200


def test_down_service_refuses_every_call_at_once():
    s = labkit.run("request_response", down=True).summary
    assert s["outcomes"] == {"unavailable": 20}
    assert s["longest_wait_ms"] == 0


@pytest.mark.live
def test_grpc_and_http_compared_on_the_same_lookup():
    r = labkit.run("request_response", protocol="both", requests=50)
    assert r.backend == "live"
    http, grpc = r.summary["protocols"]["http+json"], r.summary["protocols"]["grpc+protobuf"]
    assert http["succeeded"] == grpc["succeeded"] == 50
    assert grpc["payload_bytes"] < http["payload_bytes"]
    assert {rec.fields.get("protocol", "http") for rec in r.timeline.of_kind("request.sent")} == {
        "http",
        "grpc",
    }
