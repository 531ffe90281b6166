"""An interactive circuit-breaker lab that keeps its state between clicks.

A :class:`~labkit.scenarios.circuit_breaker` run plays a whole minute at once. A person at a
playground page or a notebook wants to poke instead: send one call, take the service down,
send twenty, skip past the open timeout, bring the service back, and see the breaker react
each time. :class:`BreakerSession` holds the breaker, the service's health and one timeline
across those steps. Each step runs on a fresh virtual-time loop, and a :class:`SessionClock`
carries the time over from one step to the next, so the session's history is one continuous
story.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from labkit.core.clock import run_on_fresh_loop
from labkit.core.faults import ErrorStatus, FaultPlan, Latency, Outage
from labkit.core.params import resolve
from labkit.core.result import Result
from labkit.core.timeline import Timeline
from labkit.patterns.circuit_breaker import CircuitBreaker, CircuitOpen
from labkit.patterns.request_response import UserClient
from labkit.scenarios import circuit_breaker as scenario
from labkit.shop.catalog import load_catalog
from labkit.shop.services import user_app
from labkit.transport.hosting import host


class SessionClock:
    """Time that runs on whichever loop is attached and keeps counting across loops."""

    def __init__(self) -> None:
        self._base = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._origin = 0.0

    def attach(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._origin = self._loop.time()

    def detach(self) -> None:
        self._base = self.now()
        self._loop = None

    def skip(self, seconds: float) -> None:
        self._base += seconds

    def now(self) -> float:
        if self._loop is None:
            return self._base
        return self._base + self._loop.time() - self._origin

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class BreakerSession:
    """A user service, a caller with a breaker in front, and the knobs to break things."""

    def __init__(self, seed: int = 0, **params: Any) -> None:
        self.params = resolve(scenario.PARAMS, params, owner="circuit_breaker")
        self.seed = seed
        self.clock = SessionClock()
        self.timeline = Timeline(self.clock)
        self.breaker = CircuitBreaker(
            "user-breaker",
            clock=self.clock,
            policy=scenario.make_policy(self.params),
            timeline=self.timeline,
        )
        self.down = False
        self.error_rate = 0.0
        self.latency_ms = float(self.params["latency_ms"])
        self.outcomes: Counter[str] = Counter()
        self._steps = 0
        self.catalog = load_catalog()

    # -- the knobs -------------------------------------------------------------------------------
    def take_down(self) -> None:
        self.down = True
        self.timeline.record("operator", "service.taken_down", target="user")

    def bring_back(self) -> None:
        self.down = False
        self.timeline.record("operator", "service.brought_back", target="user")

    def set_health(
        self, *, error_rate: float | None = None, latency_ms: float | None = None
    ) -> None:
        if error_rate is not None:
            self.error_rate = resolve(
                scenario.PARAMS, {"error_rate": error_rate}, owner="circuit_breaker"
            )["error_rate"]
        if latency_ms is not None:
            self.latency_ms = resolve(
                scenario.PARAMS, {"latency_ms": latency_ms}, owner="circuit_breaker"
            )["latency_ms"]

    def skip(self, seconds: float) -> None:
        """Let time pass with no calls (the breaker's open timeout runs out meanwhile)."""
        if seconds < 0:
            raise ValueError("time does not run backwards")
        self.clock.skip(seconds)

    def skip_past_open_timeout(self) -> float:
        """Skip just far enough for an open breaker to accept a trial call; returns the skip."""
        storage = self.breaker._storage
        if self.breaker.state != "open" or storage.opened_clock is None:
            return 0.0
        wait = max(0.0, storage.opened_clock + storage.reset_timeout - self.clock.now())
        self.skip(wait)
        return wait

    # -- calls ---------------------------------------------------------------------------------
    def _plan(self) -> FaultPlan:
        self._steps += 1
        plan = FaultPlan(self.seed * 100_003 + self._steps)
        plan.add("user", Latency(self.latency_ms, self.latency_ms / 4))
        if self.down:
            plan.add("user", Outage())
        if self.error_rate:
            plan.add("user", ErrorStatus(503, self.error_rate))
        return plan

    def send(self, calls: int = 1, *, every_s: float = 0.2) -> Counter[str]:
        """Send ``calls`` lookups, one every ``every_s`` seconds; returns how they ended."""
        if not 1 <= calls <= 10_000:
            raise ValueError("send between 1 and 10000 calls")
        plan = self._plan()
        ended: Counter[str] = Counter()

        async def main() -> None:
            self.clock.attach()
            try:
                async with host(
                    {"user": user_app(self.catalog)}, timeline=self.timeline, faults=plan
                ) as services:
                    client = UserClient(
                        services.client("user", source="caller"),
                        timeout_s=self.params["timeout_ms"] / 1000,
                    )
                    tasks = []
                    for i in range(calls):
                        if i:
                            await asyncio.sleep(every_s)
                        tasks.append(asyncio.create_task(self._one(client, ended)))
                    await asyncio.gather(*tasks)
            finally:
                self.clock.detach()

        run_on_fresh_loop(main, virtual=True)
        self.outcomes.update(ended)
        return ended

    async def _one(self, client: UserClient, ended: Counter[str]) -> None:
        try:
            await self.breaker.call(client.get_user, "u-1")
        except CircuitOpen:
            ended["rejected"] += 1
        except Exception:
            ended["failed"] += 1
        else:
            ended["succeeded"] += 1

    # -- what to show ----------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self.breaker.state

    def result(self) -> Result:
        """The session so far as a Result, for the same charts as a full run."""
        summary = scenario.summarize(
            self.timeline,
            self.breaker,
            sum(self.outcomes.values()),
            Counter({"succeeded": self.outcomes["succeeded"]}),
            Counter(),
            self.params,
        )
        summary["service"] = "down" if self.down else "up"
        return Result(
            "circuit_breaker", dict(self.params), self.seed, "inprocess", summary, self.timeline
        )
