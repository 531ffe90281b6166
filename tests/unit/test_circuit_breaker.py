"""Each trip policy, step by step, on a manual clock: no real waiting anywhere."""

import asyncio

import pytest

import labkit
from labkit.core.clock import LoopClock, ManualClock, run_on_fresh_loop
from labkit.core.errors import BadParameter
from labkit.core.timeline import Timeline
from labkit.patterns.breaker_policies import (
    ConsecutiveFailures,
    GoBreaker,
    SlidingWindow,
    TooManyRequests,
)
from labkit.patterns.circuit_breaker import CircuitBreaker, CircuitOpen


class Boom(Exception):
    pass


def ok():
    return "ok"


def boom():
    raise Boom


def make(policy, clock=None):
    clock = clock or ManualClock()
    return CircuitBreaker("b", clock=clock, policy=policy, timeline=Timeline(clock)), clock


def outcome(breaker, fn):
    try:
        breaker.call(fn)
    except CircuitOpen:
        return "rejected"
    except Boom:
        return "failure"
    return "success"


# -- pybreaker's own rule ---------------------------------------------------------------------
def test_consecutive_failures_open_and_a_success_resets_the_count():
    b, _ = make(ConsecutiveFailures(fail_max=3, reset_timeout=30))
    assert [outcome(b, f) for f in (boom, boom, ok, boom, boom)] == ["failure"] * 2 + [
        "success"
    ] + ["failure"] * 2
    assert b.state == "closed" and b.counts["consecutive_failures"] == 2
    assert outcome(b, boom) == "failure"
    assert b.state == "open"


def test_rejected_calls_are_not_counted_and_the_timeout_leads_to_half_open():
    b, clock = make(ConsecutiveFailures(fail_max=2, reset_timeout=30, success_threshold=2))
    outcome(b, boom), outcome(b, boom)
    before = b.counts
    assert [outcome(b, boom) for _ in range(5)] == ["rejected"] * 5
    assert b.counts == before
    clock.advance(29.999)
    assert b.state == "open"
    clock.advance(0.001)
    assert b.state == "half-open"
    assert outcome(b, ok) == "success" and b.state == "half-open"
    assert outcome(b, ok) == "success" and b.state == "closed"
    assert [(t.from_state, t.to_state) for t in b.transitions] == [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ]
    assert b.transitions[1].previous_lasted_s == pytest.approx(30)


def test_a_half_open_failure_reopens_for_a_whole_new_timeout():
    b, clock = make(ConsecutiveFailures(fail_max=1, reset_timeout=10))
    outcome(b, boom)
    clock.advance(10)
    assert outcome(b, boom) == "failure" and b.state == "open"
    assert b.transitions[-1].reason == "a trial call failed"
    clock.advance(9.5)
    assert outcome(b, ok) == "rejected"
    clock.advance(0.5)
    assert outcome(b, ok) == "success" and b.state == "closed"


# -- gobreaker's settings ---------------------------------------------------------------------
def test_syllabus_ready_to_trip_needs_ten_requests_and_half_failures():
    b, _ = make(GoBreaker.syllabus())
    for fn in (boom,) * 9:
        outcome(b, fn)
    assert b.state == "closed" and b.counts["requests"] == 9  # 9 failures, but only 9 requests
    outcome(b, ok)  # 10 requests, 9 failures, but the last one succeeded: no trip on success
    assert b.state == "closed"
    outcome(b, boom)
    assert b.state == "open"
    opened = b.transitions[-1]
    assert opened.counts == {
        "requests": 11,
        "total_successes": 1,
        "total_failures": 10,
        "consecutive_successes": 0,
        "consecutive_failures": 1,
    }


def test_interval_clears_closed_counts_every_interval():
    b, clock = make(GoBreaker(max_requests=1, interval=10, timeout=30))
    for _ in range(5):
        outcome(b, boom)
    assert b.counts["consecutive_failures"] == 5
    clock.advance(10)
    outcome(b, boom)
    assert b.counts == {
        "requests": 1,
        "total_successes": 0,
        "total_failures": 1,
        "consecutive_successes": 0,
        "consecutive_failures": 1,
    }
    assert b.state == "closed"  # the default rule needs more than 5 in a row


def test_counts_are_cleared_on_every_state_change():
    b, clock = make(GoBreaker(max_requests=2, timeout=5))
    for _ in range(6):
        outcome(b, boom)
    assert b.state == "open" and b.counts["requests"] == 0
    clock.advance(5)
    assert b.state == "half-open" and b.counts["requests"] == 0


def test_half_open_admits_at_most_max_requests_and_rejects_the_next():
    async def main():
        clock = LoopClock()
        b = CircuitBreaker("b", clock=clock, policy=GoBreaker(max_requests=3, timeout=1))
        for _ in range(6):
            with pytest.raises(Boom):
                await b.call(_async_boom)
        await asyncio.sleep(1)
        assert b.state == "half-open"
        results = await asyncio.gather(
            *(b.call(_slow_ok) for _ in range(4)), return_exceptions=True
        )
        return b, results

    b, results = run_on_fresh_loop(main, virtual=True)
    assert results[:3] == ["ok"] * 3
    assert isinstance(results[3], TooManyRequests)
    assert b.state == "closed"


def test_any_half_open_failure_reopens_gobreaker():
    b, clock = make(GoBreaker(max_requests=5, timeout=2))
    for _ in range(6):
        outcome(b, boom)
    clock.advance(2)
    assert [outcome(b, f) for f in (ok, ok, boom)] == ["success", "success", "failure"]
    assert b.state == "open"


# -- sliding window ---------------------------------------------------------------------------
def test_sliding_window_waits_for_minimum_calls_then_trips_on_the_rate():
    b, _ = make(SlidingWindow(size=10, minimum_calls=4, failure_rate=0.5))
    outcome(b, boom), outcome(b, boom), outcome(b, boom)
    assert b.state == "closed"  # 3 of 3 failed, but fewer than 4 calls seen
    outcome(b, ok)
    assert b.state == "open"  # 3 of 4 = 0.75
    assert b.transitions[-1].counts["failure_rate"] == 0.75


def test_count_window_forgets_old_calls():
    b, _ = make(SlidingWindow(size=4, minimum_calls=4, failure_rate=0.5))
    for fn in (boom, ok, ok, ok, ok, boom):
        outcome(b, fn)
    assert b.counts["calls_in_window"] == 4 and b.counts["failures_in_window"] == 1


def test_time_window_forgets_calls_older_than_its_span():
    b, clock = make(SlidingWindow(window="time", size=10, minimum_calls=3, failure_rate=0.6))
    outcome(b, boom), outcome(b, boom)
    clock.advance(11)
    outcome(b, boom), outcome(b, ok)
    assert b.counts["calls_in_window"] == 2 and b.state == "closed"


def test_slow_calls_count_toward_the_slow_rate():
    async def main():
        clock = LoopClock()
        b = CircuitBreaker(
            "b",
            clock=clock,
            policy=SlidingWindow(
                size=5, minimum_calls=5, failure_rate=1.0, slow_call_s=0.05, slow_call_rate=0.6
            ),
        )
        for _ in range(5):
            await b.call(_slow_ok)
        return b

    b = run_on_fresh_loop(main, virtual=True)
    assert b.state == "open"
    assert b.transitions[-1].counts["slow_rate"] == 1.0


# -- the public face --------------------------------------------------------------------------
def test_async_failures_are_counted_unlike_a_plain_pybreaker_decorator():
    async def main():
        b = CircuitBreaker("b", clock=LoopClock(), policy=ConsecutiveFailures(fail_max=2))
        for _ in range(2):
            with pytest.raises(Boom):
                await b.call(_async_boom)
        return b.state

    assert run_on_fresh_loop(main, virtual=True) == "open"


def test_a_cancelled_caller_does_not_count_as_a_failure():
    async def main():
        b = CircuitBreaker("b", clock=LoopClock(), policy=ConsecutiveFailures(fail_max=1))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await b.call(_slow_ok)
        return b.state

    assert run_on_fresh_loop(main, virtual=True) == "closed"


def test_force_open_disable_and_reset():
    b, clock = make(ConsecutiveFailures(fail_max=1, reset_timeout=1))
    b.force_open()
    clock.advance(100)
    assert b.state == "open" and outcome(b, ok) == "rejected"
    b.reset()
    assert b.state == "closed" and outcome(b, ok) == "success"
    b.disable()
    assert [outcome(b, boom) for _ in range(3)] == ["failure"] * 3
    assert b.state == "closed"


def test_transitions_are_recorded_on_the_timeline_with_their_counts():
    b, _ = make(ConsecutiveFailures(fail_max=2, reset_timeout=5))
    outcome(b, boom), outcome(b, boom), outcome(b, ok)
    kinds = [r.kind for r in b.timeline]
    assert kinds == ["call.failed", "breaker.opened", "call.failed", "call.rejected"]
    opened = b.timeline.of_kind("breaker.opened")[0]
    assert opened.fields["counts"]["consecutive_failures"] == 2


@pytest.mark.parametrize(
    ("make_policy", "named"),
    [
        (lambda: ConsecutiveFailures(fail_max=0), "fail_max=0"),
        (lambda: ConsecutiveFailures(reset_timeout=-1), "reset_timeout=-1"),
        (lambda: GoBreaker(timeout=-5), "timeout=-5"),
        (lambda: SlidingWindow(failure_rate=1.5), "failure_rate=1.5"),
        (lambda: SlidingWindow(window="calls"), "window='calls'"),
    ],
)
def test_bad_settings_are_one_clear_error(make_policy, named):
    with pytest.raises(BadParameter) as info:
        make_policy()
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"fail_max": 0}, "fail_max=0"),
        ({"open_timeout_s": -1}, "open_timeout_s=-1"),
        ({"failure_ratio": 1.2}, "failure_ratio=1.2"),
        ({"policy": "hystrix"}, "policy='hystrix'"),
    ],
)
def test_bad_scenario_settings_are_refused_by_name(params, named):
    with pytest.raises(labkit.LabError) as info:
        labkit.run("circuit_breaker", **params)
    assert named in str(info.value)


async def _async_boom():
    await asyncio.sleep(0)
    raise Boom


async def _slow_ok():
    await asyncio.sleep(0.1)
    return "ok"


def test_calls_that_began_before_a_trip_do_not_reopen_it_when_they_fail_late():
    async def main():
        clock = LoopClock()
        b = CircuitBreaker(
            "b", clock=clock, policy=ConsecutiveFailures(fail_max=2, reset_timeout=30)
        )

        async def slow_boom():
            await asyncio.sleep(1)
            raise Boom

        async def fast_boom():
            raise Boom

        slow = asyncio.ensure_future(b.call(slow_boom))
        await asyncio.sleep(0)  # let it start: admitted while closed
        for _ in range(2):
            with pytest.raises(Boom):
                await b.call(fast_boom)
        assert b.state == "open"
        with pytest.raises(Boom):
            await slow  # its failure still reaches its caller...
        return b

    b = run_on_fresh_loop(main, virtual=True)
    assert [(t.from_state, t.to_state) for t in b.transitions] == [("closed", "open")]  # ...once


def test_the_call_that_half_opens_the_breaker_counts_as_a_trial():
    async def main():
        b = CircuitBreaker("b", clock=LoopClock(), policy=GoBreaker(max_requests=3, timeout=5))
        for _ in range(6):
            with pytest.raises(Boom):
                await b.call(_async_boom)
        await asyncio.sleep(5)  # nobody looks at the state: the next call half-opens it
        return [await b.call(_slow_ok) for _ in range(3)], b.state

    results, state = run_on_fresh_loop(main, virtual=True)
    assert results == ["ok"] * 3 and state == "closed"
