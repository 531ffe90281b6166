"""Backoff strategies, the retry rule, the budget, and the storm that justifies jitter."""

import random

import pytest
import tenacity

import labkit
from labkit.core.clock import LoopClock, run_on_fresh_loop
from labkit.core.errors import BadParameter, UnknownName
from labkit.core.timeline import Timeline
from labkit.patterns.request_response import DownstreamError
from labkit.patterns.retry import (
    RetryBudget,
    backoff,
    call_with_retry,
    is_any_error,
    is_transient,
)


def sleeps(name, attempts=6, base=0.1, cap=2.0, seed=1):
    wait = backoff(name, base=base, cap=cap, rng=random.Random(seed))
    out = []
    for n in range(1, attempts + 1):
        state = tenacity.RetryCallState(None, None, (), {})
        state.attempt_number = n
        out.append(round(wait(state), 6))
    return out


def test_exponential_doubles_up_to_the_cap():
    assert sleeps("exponential") == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert sleeps("fixed") == [0.1] * 6
    assert sleeps("none") == [0.0] * 6


def test_jitter_strategies_stay_inside_their_bands_and_repeat_for_a_seed():
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    full, equal = sleeps("full_jitter"), sleeps("equal_jitter")
    assert all(0 <= s <= c for s, c in zip(full, ceilings, strict=True))
    assert all(c / 2 <= s <= c for s, c in zip(equal, ceilings, strict=True))
    decorrelated = sleeps("decorrelated_jitter")
    assert all(0.1 <= s <= 2.0 for s in decorrelated)
    assert full == sleeps("full_jitter") and full != sleeps("full_jitter", seed=2)


def test_unknown_backoff_and_bad_bounds_are_refused():
    with pytest.raises(UnknownName, match="'linear'"):
        backoff("linear", base=0.1, cap=1, rng=random.Random())
    with pytest.raises(BadParameter, match=r"cap=0\.05"):
        backoff("exponential", base=0.1, cap=0.05, rng=random.Random())


def test_only_transient_failures_are_worth_retrying():
    assert is_transient(DownstreamError("s", "timeout", ""))
    assert is_transient(DownstreamError("s", "unavailable", ""))
    assert is_transient(DownstreamError("s", "status", "", status=503))
    assert is_transient(DownstreamError("s", "status", "", status=429))
    assert not is_transient(DownstreamError("s", "status", "", status=400))
    assert not is_transient(DownstreamError("s", "not_found", "", status=404))
    assert is_any_error(DownstreamError("s", "status", "", status=400))


def test_a_two_minute_schedule_plays_out_on_virtual_time():
    attempts = []

    async def main():
        clock = LoopClock()
        tl = Timeline(clock)

        async def flaky():
            attempts.append(clock.now())
            if len(attempts) < 8:
                raise DownstreamError("s", "unavailable", "down")
            return "ok"

        wait = backoff("exponential", base=1.0, cap=60.0, rng=random.Random(0))
        result = await call_with_retry(flaky, wait=wait, max_attempts=8, clock=clock, timeline=tl)
        return result, clock.now(), len(tl.of_kind("retry.scheduled"))

    result, ended, scheduled = run_on_fresh_loop(main, virtual=True)
    assert result == "ok" and scheduled == 7
    assert attempts == [0, 1, 3, 7, 15, 31, 63, 123]  # 1+2+4+8+16+32+60 seconds of waiting
    assert ended == 123


def test_a_400_is_not_retried_unless_the_rule_says_everything():
    def run(rule):
        calls = []

        async def main():
            async def bad_request():
                calls.append(1)
                raise DownstreamError("s", "status", "400", status=400)

            with pytest.raises(DownstreamError):
                await call_with_retry(
                    bad_request,
                    wait=tenacity.wait_none(),
                    max_attempts=5,
                    clock=LoopClock(),
                    retry_on=rule,
                )

        run_on_fresh_loop(main, virtual=True)
        return len(calls)

    assert run(is_transient) == 1
    assert run(is_any_error) == 5


def test_budget_stops_retries_once_half_the_tokens_are_gone():
    budget = RetryBudget(max_tokens=10, token_ratio=0.5)
    for _ in range(4):
        budget.on_failure()
    assert budget.allows_retry()
    budget.on_failure()
    assert not budget.allows_retry()
    budget.on_success(), budget.on_success()
    assert budget.allows_retry()


def test_retry_storm_no_jitter_makes_clearly_more_calls_than_full_jitter():
    """The AWS "Exponential Backoff and Jitter" result, on a seeded storm of 100 clients."""
    s = labkit.run("retry", compare=True, clients=100, seed=7).summary
    exp, full = s["policies"]["exponential"], s["policies"]["full_jitter"]
    # by how much: at least 30% more calls without jitter, and it still serves fewer clients
    assert exp["downstream_calls"] >= 1.3 * full["downstream_calls"]
    assert s["calls_exponential_vs_full_jitter"] >= 1.3
    assert full["successes"] == 100 and exp["successes"] < full["successes"]
    assert full["all_done_s"] is not None and exp["all_done_s"] is None


def test_retrying_400s_wastes_calls_the_transient_rule_saves():
    naive = labkit.run("retry", bad_request_share=0.2, retry_on="all").summary
    careful = labkit.run("retry", bad_request_share=0.2).summary
    assert careful["answered_400"] == 20  # each malformed request is sent once after recovery
    assert naive["answered_400"] > 3 * 20  # and again and again under the naive rule
    assert naive["downstream_calls"] - careful["downstream_calls"] >= naive["answered_400"] - 20


def test_retry_budget_caps_the_storm():
    plain = labkit.run("retry", backoff="exponential").summary
    budgeted = labkit.run("retry", backoff="exponential", budget=True).summary
    assert budgeted["downstream_calls"] < plain["downstream_calls"] / 5
    assert budgeted["throttled"] > 0
