"""When does a circuit breaker trip? Three answers, each a pybreaker listener.

pybreaker's own rule is *consecutive* failures. Two other families are common, and both are
written here through pybreaker's extension points instead of as a second breaker:

* :class:`ConsecutiveFailures`: pybreaker as it is. ``fail_max`` failures in a row open it;
  after ``reset_timeout`` one trial call is let through (half-open); ``success_threshold``
  successes close it. Any success in between resets the count.
* :class:`GoBreaker`: the settings of Go's ``sony/gobreaker`` used in the syllabus. Counts
  (requests, total and consecutive successes and failures) are kept per *generation* and
  cleared on every state change and every ``interval`` while closed; ``ready_to_trip(counts)``
  decides; half-open admits ``max_requests`` calls and rejects the rest; ``max_requests``
  successes in a row close it; any half-open failure reopens it.
* :class:`SlidingWindow`: the Resilience4j / Hystrix / Polly family. The failure *rate* over
  the last N calls (or the last N seconds) trips it, but only once ``minimum_calls`` have been
  seen, so two failures out of two calls at start-up do not open anything. Slow calls can count
  as failures. (Unlike Resilience4j, which decides after all half-open trials, here any
  half-open failure reopens at once: that is pybreaker's half-open rule.)

Each policy gets the breaker's clock so intervals and windows run on virtual time.
"""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pybreaker

from labkit.core.clock import Clock
from labkit.core.errors import BadParameter

_call_started: contextvars.ContextVar[float] = contextvars.ContextVar("breaker_call_started")

#: pybreaker's consecutive-failure rule, switched off when a policy decides by itself.
NEVER = 2**62


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise BadParameter(name, value, "must be at least 0" if allow_zero else "must be above 0")


def _ratio(name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise BadParameter(name, value, "must lie between 0 (excluded) and 1")


class Policy(pybreaker.CircuitBreakerListener):
    """Base of the trip policies: settings for pybreaker, counts to show, hooks to count."""

    name = "policy"
    clock: Clock
    #: successful half-open trial calls that close the breaker
    close_after = 1
    trial_successes = 0

    def bind(self, clock: Clock) -> None:
        self.clock = clock

    def pybreaker_settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def counts(self, cb: pybreaker.CircuitBreaker) -> dict[str, Any]:
        """The numbers that decide the next transition (shown at every transition)."""
        raise NotImplementedError

    def clear(self) -> None:
        """Forget all counts (on reset)."""

    # pybreaker calls the listener hooks below. It changes state *before* it tells listeners
    # about the call that caused the change, so a call that reopened the breaker would be
    # counted in the fresh state: ``_changed`` stops that. Closing after enough half-open
    # successes is done here, not by pybreaker (its ``success_threshold`` is set out of
    # reach), so that the transition is recorded with the counters that decided it.
    _changed = False
    _half_open = False

    def before_call(self, cb, func, *args, **kwargs):  # type: ignore[no-untyped-def]
        self._changed = False
        self.admit(cb)

    #: set by the breaker for a call that began in an earlier state: its outcome is ignored
    ignore_next = False

    def success(self, cb):  # type: ignore[no-untyped-def]
        if self.ignore_next:
            self.ignore_next = False
            return
        if self._changed:
            return
        self.observe(cb, failed=False)
        if self._half_open:
            self.trial_successes += 1
            if self.trial_successes >= self.close_after:
                cb.close()

    def failure(self, cb, exc):  # type: ignore[no-untyped-def]
        if not self._changed:
            self.observe(cb, failed=True)

    #: told of every transition *before* counts are cleared (the breaker records it)
    on_transition: Callable[[str, str], None] | None = None

    def state_change(self, cb, old_state, new_state):  # type: ignore[no-untyped-def]
        new = new_state.name if new_state is not None else ""
        if self.on_transition is not None:
            self.on_transition(old_state.name if old_state else "closed", new)
        self._changed = True
        self._half_open = new == pybreaker.STATE_HALF_OPEN
        self.trial_successes = 0
        self.on_state_change(new)

    def admit(self, cb: pybreaker.CircuitBreaker) -> None:
        """Before a call that the state lets through; raise to reject it uncounted."""

    def refresh(self, cb: pybreaker.CircuitBreaker) -> None:
        """Bring time-based bookkeeping up to date (called whenever the state is read)."""

    def observe(self, cb: pybreaker.CircuitBreaker, *, failed: bool) -> None:
        """After a call; may open the breaker with ``cb.open()``."""

    def on_state_change(self, new_state: str) -> None:
        """After every transition."""


class ConsecutiveFailures(Policy):
    """pybreaker's own rule: ``fail_max`` failures in a row open the breaker."""

    name = "consecutive"

    def __init__(self, fail_max: int = 5, reset_timeout: float = 60.0, success_threshold: int = 1):
        if fail_max < 1:
            raise BadParameter("fail_max", fail_max, "must be at least 1")
        _positive("reset_timeout", reset_timeout, allow_zero=True)
        if success_threshold < 1:
            raise BadParameter("success_threshold", success_threshold, "must be at least 1")
        self.fail_max, self.reset_timeout = fail_max, reset_timeout
        self.success_threshold = self.close_after = success_threshold

    def pybreaker_settings(self) -> dict[str, Any]:
        return {
            "fail_max": self.fail_max,
            "reset_timeout": self.reset_timeout,
        }

    def counts(self, cb: pybreaker.CircuitBreaker) -> dict[str, Any]:
        return {
            "consecutive_failures": cb.fail_counter,
            "half_open_successes": self.trial_successes,
        }


@dataclass
class Counts:
    """gobreaker's ``Counts``: what ``ready_to_trip`` sees."""

    requests: int = 0
    total_successes: int = 0
    total_failures: int = 0
    consecutive_successes: int = 0
    consecutive_failures: int = 0

    def on_success(self) -> None:
        self.total_successes += 1
        self.consecutive_successes += 1
        self.consecutive_failures = 0

    def on_failure(self) -> None:
        self.total_failures += 1
        self.consecutive_failures += 1
        self.consecutive_successes = 0


def gobreaker_default_trip(counts: Counts) -> bool:
    """gobreaker's default: more than five failures in a row."""
    return counts.consecutive_failures > 5


def syllabus_trip(counts: Counts) -> bool:
    """The syllabus' rule: at least 10 requests and a failure ratio of at least 0.5."""
    return counts.requests >= 10 and counts.total_failures / counts.requests >= 0.5


class TooManyRequests(pybreaker.CircuitBreakerError):
    """Half-open and already ``max_requests`` trial calls in: this one is rejected."""


class GoBreaker(Policy):
    """gobreaker's settings: ``max_requests``, ``interval``, ``timeout``, ``ready_to_trip``."""

    name = "gobreaker"

    def __init__(
        self,
        max_requests: int = 1,
        interval: float = 0.0,
        timeout: float = 60.0,
        ready_to_trip: Callable[[Counts], bool] = gobreaker_default_trip,
    ) -> None:
        if max_requests < 1:
            raise BadParameter("max_requests", max_requests, "must be at least 1")
        _positive("interval", interval, allow_zero=True)
        _positive("timeout", timeout, allow_zero=True)
        self.max_requests, self.interval, self.timeout = max_requests, interval, timeout
        self.close_after = max_requests
        self.ready_to_trip = ready_to_trip
        self.state_counts = Counts()
        self._expiry: float | None = None

    @classmethod
    def syllabus(cls) -> GoBreaker:
        """The syllabus' settings: 5 half-open requests, 10 s interval, 30 s timeout."""
        return cls(max_requests=5, interval=10.0, timeout=30.0, ready_to_trip=syllabus_trip)

    def bind(self, clock: Clock) -> None:
        super().bind(clock)
        self.clear()  # gobreaker starts its first generation when it is made

    def pybreaker_settings(self) -> dict[str, Any]:
        return {
            "fail_max": NEVER,
            "reset_timeout": self.timeout,
        }

    def counts(self, cb: pybreaker.CircuitBreaker) -> dict[str, Any]:
        return asdict(self.state_counts)

    def clear(self) -> None:
        self.state_counts = Counts()
        self._expiry = self.clock.now() + self.interval if self.interval else None

    def refresh(self, cb: pybreaker.CircuitBreaker) -> None:
        # like gobreaker's currentState(): a closed generation past its interval ends, and a
        # new one starts now, whether a call or a look at the state noticed it
        closed = cb.current_state == pybreaker.STATE_CLOSED
        if closed and self._expiry is not None and self.clock.now() >= self._expiry:
            self.clear()

    def admit(self, cb: pybreaker.CircuitBreaker) -> None:
        self.refresh(cb)
        if (
            cb.current_state == pybreaker.STATE_HALF_OPEN
            and self.state_counts.requests >= self.max_requests
        ):
            raise TooManyRequests("half-open: too many trial requests")
        self.state_counts.requests += 1

    def observe(self, cb: pybreaker.CircuitBreaker, *, failed: bool) -> None:
        if not failed:
            self.state_counts.on_success()
            return
        self.state_counts.on_failure()
        if cb.current_state == pybreaker.STATE_CLOSED and self.ready_to_trip(self.state_counts):
            cb.open()

    def on_state_change(self, new_state: str) -> None:
        self.clear()


class SlidingWindow(Policy):
    """Failure rate over the last ``size`` calls (``window="count"``) or seconds (``"time"``)."""

    name = "sliding_window"

    def __init__(
        self,
        window: str = "count",
        size: float = 20,
        minimum_calls: int = 10,
        failure_rate: float = 0.5,
        slow_call_s: float | None = None,
        slow_call_rate: float = 1.0,
        wait_s: float = 60.0,
        half_open_calls: int = 3,
    ) -> None:
        if window not in ("count", "time"):
            raise BadParameter("window", window, "must be count or time")
        _positive("size", size)
        if minimum_calls < 1:
            raise BadParameter("minimum_calls", minimum_calls, "must be at least 1")
        _ratio("failure_rate", failure_rate)
        _ratio("slow_call_rate", slow_call_rate)
        if slow_call_s is not None:
            _positive("slow_call_s", slow_call_s)
        _positive("wait_s", wait_s, allow_zero=True)
        if half_open_calls < 1:
            raise BadParameter("half_open_calls", half_open_calls, "must be at least 1")
        self.window, self.size, self.minimum_calls = window, size, minimum_calls
        self.failure_rate, self.slow_call_s, self.slow_call_rate = (
            failure_rate,
            slow_call_s,
            slow_call_rate,
        )
        self.wait_s, self.half_open_calls = wait_s, half_open_calls
        self.close_after = half_open_calls
        self.outcomes: deque[tuple[float, bool, bool]] = deque()  # (time, failed, slow)

    def pybreaker_settings(self) -> dict[str, Any]:
        return {
            "fail_max": NEVER,
            "reset_timeout": self.wait_s,
        }

    def _trim(self) -> None:
        if self.window == "count":
            while len(self.outcomes) > self.size:
                self.outcomes.popleft()
        else:
            horizon = self.clock.now() - self.size
            while self.outcomes and self.outcomes[0][0] <= horizon:
                self.outcomes.popleft()

    def counts(self, cb: pybreaker.CircuitBreaker) -> dict[str, Any]:
        self._trim()
        calls = len(self.outcomes)
        failed = sum(1 for _, f, _ in self.outcomes if f)
        slow = sum(1 for _, _, s in self.outcomes if s)
        return {
            "calls_in_window": calls,
            "failures_in_window": failed,
            "slow_in_window": slow,
            "failure_rate": round(failed / calls, 4) if calls else 0.0,
            "slow_rate": round(slow / calls, 4) if calls else 0.0,
        }

    def clear(self) -> None:
        self.outcomes.clear()

    def admit(self, cb: pybreaker.CircuitBreaker) -> None:
        _call_started.set(self.clock.now())

    def observe(self, cb: pybreaker.CircuitBreaker, *, failed: bool) -> None:
        if cb.current_state != pybreaker.STATE_CLOSED:
            return
        now = self.clock.now()
        slow = self.slow_call_s is not None and now - _call_started.get(now) >= self.slow_call_s
        self.outcomes.append((now, failed, slow))
        c = self.counts(cb)
        if c["calls_in_window"] < self.minimum_calls:
            return
        too_slow = self.slow_call_s is not None and c["slow_rate"] >= self.slow_call_rate
        if c["failure_rate"] >= self.failure_rate or too_slow:
            cb.open()

    def on_state_change(self, new_state: str) -> None:
        if new_state == pybreaker.STATE_CLOSED:
            self.outcomes.clear()


POLICIES: dict[str, type[Policy]] = {
    "consecutive": ConsecutiveFailures,
    "gobreaker": GoBreaker,
    "sliding_window": SlidingWindow,
}
