"""Experiment: a retry storm. Many clients, one service that goes down and comes back.

``clients`` callers each want one user lookup at the same moment. The user service is down
for ``outage_s``, and once back it can serve only ``capacity_per_s`` calls a second. Every
client retries with the chosen backoff. Without jitter, the clients that failed together retry
together, hit the capacity limit together, and fail together again; with jitter they spread
out. ``compare=true`` runs every backoff on the same storm and reports them side by side.

Also here: a share of clients sending a malformed request (400) that the naive ``retry_on=all``
rule keeps retrying; a retry budget; and a circuit breaker in front of the retries.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from labkit.core.clock import LoopClock
from labkit.core.faults import Capacity, FaultPlan, Outage
from labkit.core.params import Param
from labkit.core.timeline import Timeline
from labkit.patterns.breaker_policies import SlidingWindow
from labkit.patterns.circuit_breaker import CircuitBreaker, CircuitOpen
from labkit.patterns.request_response import DownstreamError, UserClient
from labkit.patterns.retry import (
    BACKOFFS,
    RetryBudget,
    backoff,
    call_with_retry,
    is_any_error,
    is_transient,
)
from labkit.scenarios.base import RunContext
from labkit.shop.catalog import load_catalog
from labkit.shop.services import user_app
from labkit.transport.hosting import HTTP_BACKENDS, host

TITLE = "Retries with backoff (and the retry storm)"
BAD_ID = "u-abc"  # malformed: the user service answers 400, every time
BACKENDS = HTTP_BACKENDS

PARAMS = [
    Param("backoff", "full_jitter", "how long to wait between attempts", choices=BACKOFFS),
    Param("compare", False, "run every backoff on the same storm and compare them"),
    Param("clients", 100, "callers that each want one lookup, all at t=0", minimum=1, maximum=2000),
    Param("outage_s", 2.0, "the service is down from t=0 for this long", minimum=0, unit="s"),
    Param(
        "capacity_per_s",
        50.0,
        "calls per second the service can serve once back",
        minimum=1,
        unit="calls/s",
    ),
    Param("base_ms", 100.0, "first backoff step", minimum=0, unit="ms"),
    Param("cap_ms", 5000.0, "longest wait between attempts", minimum=1, unit="ms"),
    Param("max_attempts", 12, "attempts per client, the first included", minimum=1, maximum=100),
    Param("timeout_ms", 1000.0, "deadline per attempt", minimum=1, unit="ms"),
    Param(
        "retry_on",
        "transient",
        "which failures to retry: transient ones, or all (400s too)",
        choices=("transient", "all"),
    ),
    Param(
        "bad_request_share",
        0.0,
        "share of clients whose request is malformed (400)",
        minimum=0,
        maximum=1,
    ),
    Param("budget", False, "throttle retries with a token bucket (gRPC style)"),
    Param("breaker", False, "put one shared circuit breaker in front of the calls"),
]


async def main(ctx: RunContext) -> dict[str, Any]:
    p = ctx.params
    if not p["compare"]:
        return await storm(ctx, p["backoff"], ctx.timeline)
    policies: dict[str, Any] = {}
    for name in BACKOFFS:
        sub = Timeline(LoopClock(), enabled=ctx.timeline.enabled)
        policies[name] = await storm(ctx, name, sub)
        ctx.timeline.absorb(sub, backoff=name)
    exp, full = policies["exponential"], policies["full_jitter"]
    return {
        "clients": p["clients"],
        "policies": policies,
        "calls_exponential_vs_full_jitter": round(
            exp["downstream_calls"] / max(full["downstream_calls"], 1), 3
        ),
    }


async def storm(ctx: RunContext, backoff_name: str, tl: Timeline) -> dict[str, Any]:
    """One storm with one backoff; records go to ``tl``."""
    p = ctx.params
    clock = tl.clock
    rng = random.Random(f"{ctx.seed}:{backoff_name}")
    plan = FaultPlan(ctx.seed).add("user", Outage(0, p["outage_s"]))
    plan.add("user", Capacity(p["capacity_per_s"], burst=max(1.0, p["capacity_per_s"] / 10)))
    budget = RetryBudget() if p["budget"] else None
    breaker = (
        CircuitBreaker(
            "user-breaker",
            clock=clock,
            timeline=tl,
            policy=SlidingWindow(size=20, minimum_calls=10, wait_s=1.0),
        )
        if p["breaker"]
        else None
    )
    n_bad = round(p["clients"] * p["bad_request_share"])
    done_at: list[float] = []
    outcome: dict[str, int] = {"successes": 0, "failures": 0, "rejected": 0}
    retry_on = is_transient if p["retry_on"] == "transient" else is_any_error
    async with host(
        {"user": user_app(load_catalog())}, backend=ctx.backend, timeline=tl, faults=plan
    ) as services:
        client = UserClient(
            services.client("user", source="client"), timeout_s=p["timeout_ms"] / 1000
        )

        async def one(i: int) -> None:
            user_id = BAD_ID if i < n_bad else "u-1"

            async def attempt() -> Any:
                if breaker is None:
                    return await client.get_user(user_id)
                return await breaker.call(client.get_user, user_id)

            try:
                await call_with_retry(
                    attempt,
                    wait=backoff(
                        backoff_name,
                        base=p["base_ms"] / 1000,
                        cap=max(p["cap_ms"], p["base_ms"]) / 1000,
                        rng=rng,
                    ),
                    max_attempts=p["max_attempts"],
                    clock=clock,
                    retry_on=lambda e: retry_on(e) or isinstance(e, CircuitOpen),
                    budget=budget,
                    timeline=tl,
                    actor=f"client-{i}",
                )
            except CircuitOpen:
                outcome["rejected"] += 1
            except DownstreamError:
                outcome["failures"] += 1
            else:
                outcome["successes"] += 1
                done_at.append(clock.now())

        await asyncio.gather(*(one(i) for i in range(p["clients"])))
    sent = tl.of_kind("request.sent")
    good_clients = p["clients"] - n_bad
    answered_400 = sum(1 for r in tl.of_kind("response.received") if r.fields["status"] == 400)
    return {
        "backoff": backoff_name,
        "calls": p["clients"],
        **outcome,
        "downstream_calls": len(sent),
        "retries": len(tl.of_kind("retry.scheduled")),
        "throttled": len(tl.of_kind("retry.throttled")),
        "answered_400": answered_400,
        "all_done_s": round(max(done_at), 3) if len(done_at) == good_clients and done_at else None,
        "transitions": [
            {"t_s": round(t.t, 3), "from": t.from_state, "to": t.to_state}
            for t in (breaker.transitions if breaker else [])
        ],
    }
