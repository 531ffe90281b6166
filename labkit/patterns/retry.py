"""Retries with backoff: try again, but not all at once and not forever.

A transient failure (a timeout, a refused connection, a 503) often goes away if you wait a
little. So retry, waiting longer each time (**exponential backoff**), and add randomness
(**jitter**) so that a crowd of clients that failed together does not come back together.
The AWS study "Exponential Backoff and Jitter" measured it: without jitter, clients retry in
waves that collide again; with *full jitter* the same crowd needs far fewer calls.

Do **not** retry what cannot succeed: a 400 (your request is wrong) or a 404 fails the same
way every time, and each retry is wasted load. And cap the total: a **retry budget** (gRPC's
retry throttling) stops retrying when most recent calls fail, so retries cannot multiply the
load on a service that is already down.

tenacity provides the retry loop, the stop rules and an injectable ``sleep`` (so schedules
run on virtual time). It has no seeded jitter, no equal or decorrelated jitter and no budget:
those are written here as tenacity strategies.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import tenacity
from tenacity.wait import wait_base

from labkit.core.clock import Clock
from labkit.core.errors import BadParameter, UnknownName
from labkit.core.timeline import Timeline
from labkit.patterns.request_response import DownstreamError

T = TypeVar("T")

BACKOFFS = (
    "none", "fixed", "exponential", "full_jitter", "equal_jitter", "decorrelated_jitter",
)  # fmt: skip


def _ceiling(base: float, cap: float, attempt: int) -> float:
    return min(cap, base * 2 ** (attempt - 1))


class FullJitter(wait_base):
    """Sleep a uniform time between 0 and the exponential ceiling (AWS "full jitter")."""

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self.base, self.cap, self.rng = base, cap, rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.rng.uniform(0, _ceiling(self.base, self.cap, retry_state.attempt_number))


class EqualJitter(wait_base):
    """Half the exponential ceiling, plus a uniform random half (AWS "equal jitter")."""

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self.base, self.cap, self.rng = base, cap, rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        half = _ceiling(self.base, self.cap, retry_state.attempt_number) / 2
        return half + self.rng.uniform(0, half)


class DecorrelatedJitter(wait_base):
    """Each sleep uniform between ``base`` and three times the previous one, capped."""

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self.base, self.cap, self.rng = base, cap, rng
        self.previous = base

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        self.previous = min(self.cap, self.rng.uniform(self.base, self.previous * 3))
        return self.previous


def backoff(name: str, *, base: float, cap: float, rng: random.Random) -> wait_base:
    """A fresh tenacity wait strategy by name (one per call: decorrelated jitter has state)."""
    if base < 0:
        raise BadParameter("base", base, "must be at least 0")
    if cap < base:
        raise BadParameter("cap", cap, f"must be at least base ({base:g})")
    if name == "none":
        return tenacity.wait_none()
    if name == "fixed":
        return tenacity.wait_fixed(base)
    if name == "exponential":
        return tenacity.wait_exponential(multiplier=base, max=cap)
    if name == "full_jitter":
        return FullJitter(base, cap, rng)
    if name == "equal_jitter":
        return EqualJitter(base, cap, rng)
    if name == "decorrelated_jitter":
        return DecorrelatedJitter(base, cap, rng)
    raise UnknownName("backoff", name, BACKOFFS)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: timeouts, refused or reset connections, 429 and 5xx answers."""
    if not isinstance(exc, DownstreamError):
        return False
    if exc.reason in ("timeout", "unavailable"):
        return True
    return (
        exc.reason == "status"
        and exc.status is not None
        and (exc.status == 429 or exc.status >= 500)
    )


def is_any_error(exc: BaseException) -> bool:
    """The naive rule: retry everything, 400s included."""
    return isinstance(exc, Exception)


class RetryBudget:
    """gRPC-style retry throttling: a token bucket that failures drain and successes refill.

    Every failed attempt takes one token, every success gives back ``token_ratio``. Retries are
    allowed only while more than half of ``max_tokens`` remain, so when most calls fail the
    clients stop adding retries to the load.
    """

    def __init__(self, max_tokens: float = 10.0, token_ratio: float = 0.1) -> None:
        if max_tokens <= 0:
            raise BadParameter("max_tokens", max_tokens, "must be above 0")
        if not 0 < token_ratio <= 1:
            raise BadParameter("token_ratio", token_ratio, "must lie between 0 (excluded) and 1")
        self.max_tokens, self.token_ratio = max_tokens, token_ratio
        self.tokens = max_tokens

    def on_success(self) -> None:
        self.tokens = min(self.max_tokens, self.tokens + self.token_ratio)

    def on_failure(self) -> None:
        self.tokens = max(0.0, self.tokens - 1)

    def allows_retry(self) -> bool:
        return self.tokens > self.max_tokens / 2


async def call_with_retry(
    fn: Callable[[], Awaitable[T]],
    *,
    wait: wait_base,
    max_attempts: int,
    clock: Clock,
    retry_on: Callable[[BaseException], bool] = is_transient,
    budget: RetryBudget | None = None,
    timeline: Timeline | None = None,
    actor: str = "client",
) -> T:
    """Call ``fn`` until it succeeds, a failure is not worth retrying, or attempts run out."""
    if max_attempts < 1:
        raise BadParameter("max_attempts", max_attempts, "must be at least 1")

    def should_retry(exc: BaseException) -> bool:
        if budget is not None:
            budget.on_failure()
        if not retry_on(exc):
            return False
        if budget is not None and not budget.allows_retry():
            if timeline is not None:
                timeline.record(actor, "retry.throttled", tokens=round(budget.tokens, 3))
            return False
        return True

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if timeline is not None and state.next_action is not None:
            timeline.record(actor, "retry.scheduled", attempt=state.attempt_number,
                            sleep_ms=round(state.next_action.sleep * 1000, 3))  # fmt: skip

    retrying = tenacity.AsyncRetrying(
        wait=wait,
        stop=tenacity.stop_after_attempt(max_attempts),
        retry=tenacity.retry_if_exception(should_retry),
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )

    async def attempt() -> T:  # tenacity awaits only what it sees is a coroutine function
        return await fn()

    result: Any = await retrying(attempt)
    if budget is not None:
        budget.on_success()
    return result
