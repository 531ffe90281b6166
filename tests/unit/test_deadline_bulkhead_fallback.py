"""Deadlines that travel, bulkheads that isolate, fallbacks that answer."""

import pytest

import labkit
from labkit.core.clock import ManualClock, run_on_fresh_loop
from labkit.core.errors import BadParameter
from labkit.patterns.bulkhead import Bulkhead
from labkit.patterns.deadline import DEADLINE_HEADER, Deadline
from labkit.patterns.fallback import Fallback


def test_deadline_counts_down_on_its_clock_and_writes_the_rest_as_a_header():
    clock = ManualClock()
    deadline = Deadline.within(1.0, clock)
    clock.advance(0.25)
    assert deadline.remaining() == pytest.approx(0.75)
    assert deadline.header() == {DEADLINE_HEADER: "750.000"}
    clock.advance(1)
    assert deadline.expired and deadline.header() == {DEADLINE_HEADER: "0.000"}


def test_without_propagation_work_goes_on_after_the_deadline():
    s = labkit.run("deadline", propagate=False).summary
    assert s["client_outcomes"] == {"timeout": 3}
    assert s["product_calls"] == 15  # all five products fetched for every request
    assert s["product_calls_started_after_deadline"] == 3
    assert s["work_after_deadline_ms"] == pytest.approx(3 * 500)


def test_with_propagation_no_work_happens_after_the_deadline():
    s = labkit.run("deadline", propagate=True).summary
    assert s["client_outcomes"] == {"timeout": 3}
    assert s["work_after_deadline_ms"] == 0
    assert s["abandoned_by_order_service"] == 3
    assert s["product_calls"] == 12


def test_a_budget_that_fits_succeeds_either_way():
    for propagate in (True, False):
        s = labkit.run("deadline", propagate=propagate, budget_ms=2000).summary
        assert s["client_outcomes"] == {"200": 3}


def test_shared_pool_lets_a_slow_dependency_starve_a_healthy_one():
    shared = labkit.run("bulkhead", pools="shared").summary
    isolated = labkit.run("bulkhead", pools="isolated").summary
    assert shared["user"]["rejected"] > 0 and shared["user_success_rate"] < 0.8
    assert isolated["user"]["rejected"] == 0 and isolated["user_success_rate"] == 1
    assert isolated["product"]["rejected"] > 0  # the slow one is contained, not cured


def test_bulkhead_refuses_beyond_its_slots_and_waits_when_allowed():
    import asyncio

    async def main(wait_s):
        pool = Bulkhead("p", 2, max_wait_s=wait_s)

        async def work():
            await asyncio.sleep(1)
            return "done"

        return await asyncio.gather(*(pool.call(work) for _ in range(3)), return_exceptions=True)

    no_wait = run_on_fresh_loop(lambda: main(0), virtual=True)
    assert no_wait[:2] == ["done", "done"] and type(no_wait[2]).__name__ == "BulkheadFull"
    assert run_on_fresh_loop(lambda: main(1.5), virtual=True) == ["done"] * 3
    with pytest.raises(BadParameter):
        Bulkhead("p", 0)


def test_fallback_serves_the_last_good_value_with_its_age_then_the_default():
    clock = ManualClock()

    async def main():
        cache = Fallback("cache", clock=clock, default="nobody")

        async def ok():
            return "Ada"

        async def down():
            raise ConnectionError

        first = await cache.call("u-1", ok)
        clock.advance(12)
        stale = await cache.call("u-1", down)
        unknown = await cache.call("u-2", down)
        return first, stale, unknown

    first, stale, unknown = run_on_fresh_loop(main, virtual=True)
    assert (first.value, first.source) == ("Ada", "live")
    assert (stale.value, stale.source, stale.age_s) == ("Ada", "cache", 12)
    assert (unknown.value, unknown.source) == ("nobody", "default")


def test_breaker_with_cached_fallback_answers_every_call():
    s = labkit.run("circuit_breaker", fallback="cache").summary
    assert s["served_by_fallback"] == s["rejected"] + s["failures"]
    assert s["successes"] + s["served_by_fallback"] == s["calls"]


def test_a_slow_call_rate_opens_the_breaker_although_no_call_fails():
    slow = dict(policy="sliding_window", failure="slow", slow_latency_ms=400)
    counted = labkit.run("circuit_breaker", slow_call_ms=300, **slow).summary
    ignored = labkit.run("circuit_breaker", slow_call_ms=0, **slow).summary
    assert counted["failures"] == ignored["failures"] == 0
    assert counted["transitions"][0]["to"] == "open"
    assert counted["transitions"][0]["counts"]["slow_rate"] == 1.0
    assert ignored["transitions"] == []
