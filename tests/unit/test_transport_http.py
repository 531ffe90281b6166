"""The lab's HTTP seam: faults applied, records written, timeouts honoured in both worlds."""

import httpx
import pytest

from labkit.core.clock import LoopClock, run_on_fresh_loop
from labkit.core.faults import ErrorStatus, FaultPlan, Hang, Latency, Reset
from labkit.core.timeline import Timeline
from labkit.shop.catalog import load_catalog
from labkit.shop.services import shop_apps
from labkit.transport.hosting import host


def call(plan, path="/users/u-1", *, backend="inprocess", timeout=None, target="user"):
    async def main():
        tl = Timeline(LoopClock())
        async with host(shop_apps(load_catalog()), backend=backend, timeline=tl, faults=plan) as h:
            client = h.client(target, source="test", timeout=timeout)
            try:
                response = await client.get(path)
                return tl, response.status_code, None
            except httpx.HTTPError as exc:
                return tl, None, exc

    return run_on_fresh_loop(main, virtual=backend == "inprocess")


def kinds(tl):
    return [r.kind for r in tl]


def test_a_clean_call_is_recorded_as_sent_then_received():
    tl, status, _ = call(FaultPlan())
    assert status == 200
    assert kinds(tl) == ["request.sent", "response.received"]
    sent, received = tl.records
    assert sent.fields["target"] == "user" and sent.fields["path"] == "/users/u-1"
    assert received.fields["call"] == sent.fields["call"]
    assert received.fields["bytes"] > 0


def test_latency_fault_moves_virtual_time_by_exactly_its_delay():
    tl, status, _ = call(FaultPlan().add("user", Latency(ms=120)))
    assert status == 200
    assert kinds(tl) == ["request.sent", "fault.injected", "response.received"]
    assert tl.records[-1].fields["latency_ms"] == pytest.approx(120)


def test_error_fault_answers_without_reaching_the_service():
    tl, status, _ = call(FaultPlan().add("user", ErrorStatus(503)))
    assert status == 503
    assert tl.records[1].fields == {"call": "c1", "target": "user", "fault": "error", "status": 503}


def test_reset_fault_raises_a_transport_error_and_records_the_failure():
    tl, status, exc = call(FaultPlan().add("user", Reset()))
    assert status is None and isinstance(exc, httpx.RemoteProtocolError)
    assert tl.records[-1].kind == "request.failed" and tl.records[-1].fields["error"] == "reset"


def test_read_timeout_is_enforced_in_process_at_the_deadline():
    """httpx.ASGITransport ignores timeouts; the lab's transport makes them bite."""
    tl, _, exc = call(FaultPlan().add("user", Hang()), timeout=0.3)
    assert isinstance(exc, httpx.ReadTimeout)
    failed = tl.records[-1]
    assert failed.kind == "request.failed" and failed.fields["error"] == "timeout"
    assert failed.fields["latency_ms"] == pytest.approx(300)


def test_faults_target_only_their_service():
    tl, status, _ = call(FaultPlan().add("product", ErrorStatus(500)), path="/users/u-1")
    assert status == 200 and "fault.injected" not in kinds(tl)


@pytest.mark.live
def test_live_backend_serves_over_loopback_with_the_same_records():
    tl, status, _ = call(FaultPlan().add("user", ErrorStatus(502, probability=0.0)), backend="live")
    assert status == 200
    assert kinds(tl) == ["request.sent", "response.received"]


@pytest.mark.live
def test_live_backend_honours_timeouts_on_injected_hangs():
    tl, _, exc = call(FaultPlan().add("user", Hang(seconds=5)), backend="live", timeout=0.2)
    assert isinstance(exc, httpx.ReadTimeout)
    assert 180 <= tl.records[-1].fields["latency_ms"] < 2000
