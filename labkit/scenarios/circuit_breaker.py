"""Experiment: a caller behind a circuit breaker while its dependency goes down and comes back.

For ``duration_s`` the caller looks a user up ``rate_per_s`` times a second (each call started
on schedule, whether or not the previous one has finished, as real traffic would). Between
``outage_start_s`` and ``outage_end_s`` the user service is down, throwing errors or slow,
as ``failure`` says. The breaker's policy and settings are parameters; so is the fallback that
answers while the breaker is open. A 60-second run takes a fraction of a second: time is
virtual.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from labkit.core.faults import ErrorStatus, FaultPlan, Latency, Outage
from labkit.core.params import Param
from labkit.patterns.breaker_policies import (
    POLICIES,
    ConsecutiveFailures,
    Counts,
    GoBreaker,
    Policy,
    SlidingWindow,
)
from labkit.patterns.circuit_breaker import CircuitBreaker, CircuitOpen
from labkit.patterns.fallback import FALLBACKS, Fallback
from labkit.patterns.request_response import UserClient, UserDetails
from labkit.scenarios.base import RunContext
from labkit.shop.catalog import load_catalog
from labkit.shop.services import user_app
from labkit.transport.hosting import HTTP_BACKENDS, host

TITLE = "Circuit breaker"
BACKENDS = HTTP_BACKENDS
FAILURES = ("down", "errors", "slow")

PARAMS = [
    Param("policy", "consecutive", "trip policy", choices=tuple(POLICIES)),
    Param("duration_s", 60.0, "length of the run", minimum=1, maximum=3600, unit="s"),
    Param("rate_per_s", 5.0, "calls per second", minimum=0.1, maximum=200),
    Param("failure", "down", "what goes wrong in the window", choices=FAILURES),
    Param("outage_start_s", 10.0, "when the trouble starts", minimum=0, unit="s"),
    Param("outage_end_s", 30.0, "when it ends", minimum=0, unit="s"),
    Param(
        "error_rate",
        0.8,
        "share of calls failing in the window (failure=errors)",
        minimum=0,
        maximum=1,
    ),
    Param("latency_ms", 20.0, "normal latency of the user service", minimum=0, unit="ms"),
    Param(
        "slow_latency_ms", 1000.0, "latency in the window when failure=slow", minimum=0, unit="ms"
    ),
    Param("timeout_ms", 500.0, "the caller's deadline per call", minimum=1, unit="ms"),
    Param(
        "open_timeout_s",
        30.0,
        "how long the breaker stays open before a trial",
        minimum=0,
        unit="s",
    ),
    Param(
        "half_open_calls",
        1,
        "trial calls that must succeed to close (max_requests)",
        minimum=1,
        maximum=100,
    ),
    Param("fail_max", 5, "consecutive: failures in a row that trip", minimum=1, maximum=1000),
    Param(
        "interval_s",
        0.0,
        "gobreaker: clear closed-state counts every so often (0: never)",
        minimum=0,
        unit="s",
    ),
    Param(
        "minimum_calls",
        10,
        "gobreaker/sliding window: calls needed before a rate counts",
        minimum=1,
        maximum=10000,
    ),
    Param(
        "failure_ratio",
        0.5,
        "gobreaker/sliding window: failure ratio that trips",
        minimum=0.01,
        maximum=1,
    ),
    Param("window", "count", "sliding window: by calls or by seconds", choices=("count", "time")),
    Param("window_size", 20.0, "sliding window: calls (count) or seconds (time)", minimum=1),
    Param(
        "slow_call_ms",
        0.0,
        "sliding window: calls slower than this count as slow (0: off)",
        minimum=0,
        unit="ms",
    ),
    Param("fallback", "none", "what to answer when a call fails or is rejected", choices=FALLBACKS),
    Param("breaker", True, "put the breaker in front of the calls at all"),
]

PLACEHOLDER = UserDetails("u-1", "(name unavailable)", "")


def make_policy(p: dict[str, Any]) -> Policy:
    """The trip policy the parameters describe."""
    if p["policy"] == "consecutive":
        return ConsecutiveFailures(p["fail_max"], p["open_timeout_s"], p["half_open_calls"])
    if p["policy"] == "gobreaker":
        minimum, ratio = p["minimum_calls"], p["failure_ratio"]

        def ready_to_trip(c: Counts) -> bool:
            return c.requests >= minimum and c.total_failures / c.requests >= ratio

        return GoBreaker(p["half_open_calls"], p["interval_s"], p["open_timeout_s"], ready_to_trip)
    return SlidingWindow(
        window=p["window"],
        size=p["window_size"],
        minimum_calls=p["minimum_calls"],
        failure_rate=p["failure_ratio"],
        slow_call_s=p["slow_call_ms"] / 1000 if p["slow_call_ms"] else None,
        wait_s=p["open_timeout_s"],
        half_open_calls=p["half_open_calls"],
    )


def fault_plan(p: dict[str, Any], seed: int) -> FaultPlan:
    window = {"start_s": p["outage_start_s"], "end_s": max(p["outage_end_s"], p["outage_start_s"])}
    plan = FaultPlan(seed).add("user", Latency(p["latency_ms"], p["latency_ms"] / 4))
    if p["failure"] == "down":
        plan.add("user", Outage(), **window)
    elif p["failure"] == "errors":
        plan.add("user", ErrorStatus(503, p["error_rate"]), **window)
    else:
        plan.add("user", Latency(p["slow_latency_ms"]), **window)
    return plan


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    clock = tl.clock
    breaker = CircuitBreaker("user-breaker", clock=clock, policy=make_policy(p), timeline=tl)
    fallback: Fallback[UserDetails] = Fallback(p["fallback"], clock=clock, default=PLACEHOLDER)
    outcomes: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    total = max(1, int(p["duration_s"] * p["rate_per_s"]))
    async with host(
        {"user": user_app(load_catalog())},
        backend=ctx.backend,
        timeline=tl,
        faults=fault_plan(p, ctx.seed),
    ) as services:
        client = UserClient(
            services.client("user", source="caller"), timeout_s=p["timeout_ms"] / 1000
        )

        async def lookup() -> UserDetails:
            if not p["breaker"]:
                return await client.get_user("u-1")
            return await breaker.call(client.get_user, "u-1")

        async def one_call() -> None:
            try:
                answer = await fallback.call("u-1", lookup)
            except CircuitOpen:
                outcomes["rejected"] += 1
                return
            except Exception:
                outcomes["failed"] += 1
                return
            outcomes["succeeded" if answer.source == "live" else "fallback"] += 1
            sources[answer.source] += 1

        tasks = []
        for i in range(total):
            delay = i / p["rate_per_s"] - clock.now()
            if delay > 0:
                await clock.sleep(delay)
            tasks.append(asyncio.create_task(one_call()))
        await asyncio.gather(*tasks)
    return summarize(tl, breaker, total, outcomes, sources, p)


def summarize(tl, breaker, total, outcomes, sources, p) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    downstream = len(tl.of_kind("request.sent"))
    time_in: Counter[str] = Counter()
    for t in breaker.transitions:
        time_in[t.from_state] += t.previous_lasted_s
    last = breaker.transitions[-1] if breaker.transitions else None
    end = tl.clock.now()
    current = last.to_state if last else "closed"
    time_in[current] += end - (last.t if last else 0.0)
    rejected_by_breaker = len(tl.of_kind("call.rejected"))
    return {
        "policy": p["policy"] if p["breaker"] else "no breaker",
        "calls": total,
        "successes": outcomes["succeeded"],
        "failures": total - outcomes["succeeded"] - rejected_by_breaker,
        "rejected": rejected_by_breaker,
        "served_by_fallback": sum(v for k, v in sources.items() if k != "live"),
        "downstream_calls": downstream,
        "spared_calls": total - downstream,
        "transitions": [
            {
                "t_s": round(t.t, 3),
                "from": t.from_state,
                "to": t.to_state,
                "reason": t.reason,
                "previous_lasted_s": t.previous_lasted_s,
                "counts": t.counts,
            }
            for t in breaker.transitions
        ],
        "time_in_state_s": {k: round(v, 3) for k, v in sorted(time_in.items())},
        "final_state": breaker.state,
    }
