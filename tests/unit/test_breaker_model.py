"""Hypothesis drives real breakers with random calls and clock jumps, checked against models.

Each model is a few lines of plain Python that say what the policy should do; the state
machine checks, after every step, that the lab's breaker (pybreaker underneath) agrees on the
state, on whether a call was let through, and on the counters.
"""

from dataclasses import asdict

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from labkit.core.clock import ManualClock
from labkit.patterns.breaker_policies import ConsecutiveFailures, Counts, GoBreaker
from labkit.patterns.circuit_breaker import CircuitBreaker, CircuitOpen


class Boom(Exception):
    pass


def _ok():
    return "ok"


def _boom():
    raise Boom


def attempt(breaker, succeed):
    try:
        breaker.call(_ok if succeed else _boom)
    except CircuitOpen:
        return "rejected"
    except Boom:
        return "failure"
    return "success"


class ConsecutiveModel:
    def __init__(self, fail_max, timeout, successes_to_close):
        self.fail_max, self.timeout, self.needed = fail_max, timeout, successes_to_close
        self.state, self.failures, self.trials, self.opened_at = "closed", 0, 0, None

    def refresh(self, now):
        if (
            self.state == "open" and now - self.opened_at >= self.timeout - 1e-9
        ):  # the breaker rounds to 1 ns
            self.state, self.trials = "half-open", 0

    def call(self, now, succeed):
        self.refresh(now)
        if self.state == "open":
            return "rejected"
        if succeed:
            self.failures = 0
            if self.state == "half-open":
                self.trials += 1
                if self.trials >= self.needed:
                    self.state = "closed"
            return "success"
        if self.state == "half-open":
            self.state, self.opened_at, self.failures = "open", now, self.failures + 1
            return "failure"
        self.failures += 1
        if self.failures >= self.fail_max:
            self.state, self.opened_at = "open", now
        return "failure"


class GoBreakerModel:
    """gobreaker's documented behaviour, for sequential calls."""

    def __init__(self, max_requests, interval, timeout, min_requests, ratio):
        self.max_requests, self.interval, self.timeout = max_requests, interval, timeout
        self.min_requests, self.ratio = min_requests, ratio
        self.state, self.counts, self.opened_at = "closed", Counts(), None
        self.expiry = interval if interval else None

    def trips(self):
        c = self.counts
        return c.requests >= self.min_requests and c.total_failures / c.requests >= self.ratio

    def to(self, state, now):
        self.state, self.counts = state, Counts()
        if state == "open":
            self.opened_at = now
        self.expiry = now + self.interval if state == "closed" and self.interval else None

    def refresh(self, now):
        if (
            self.state == "open" and now - self.opened_at >= self.timeout - 1e-9
        ):  # the breaker rounds to 1 ns
            self.to("half-open", now)
        if self.state == "closed" and self.expiry is not None and now >= self.expiry:
            self.counts, self.expiry = Counts(), now + self.interval

    def call(self, now, succeed):
        self.refresh(now)
        if self.state == "open":
            return "rejected"
        if self.state == "half-open" and self.counts.requests >= self.max_requests:
            return "rejected"
        self.counts.requests += 1
        if succeed:
            self.counts.on_success()
            if self.state == "half-open" and self.counts.consecutive_successes >= self.max_requests:
                self.to("closed", now)
            return "success"
        self.counts.on_failure()
        if self.state == "half-open" or self.trips():
            self.to("open", now)
        return "failure"


class ConsecutiveMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.clock = ManualClock()
        self.breaker = CircuitBreaker(
            "b", clock=self.clock,
            policy=ConsecutiveFailures(fail_max=3, reset_timeout=5, success_threshold=2),
        )  # fmt: skip
        self.model = ConsecutiveModel(3, 5, 2)

    @rule(succeed=st.booleans())
    def call(self, succeed):
        now = self.clock.now()
        assert attempt(self.breaker, succeed) == self.model.call(now, succeed)

    @rule(ms=st.integers(min_value=1, max_value=8000))
    def wait(self, ms):
        self.clock.advance(ms / 1000)

    @invariant()
    def same_state(self):
        self.model.refresh(self.clock.now())
        assert self.breaker.state == self.model.state
        if self.model.state == "closed":
            assert self.breaker.counts["consecutive_failures"] == self.model.failures


class GoBreakerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.clock = ManualClock()

        def ready(c):
            return c.requests >= 4 and c.total_failures / c.requests >= 0.5

        self.breaker = CircuitBreaker(
            "b", clock=self.clock,
            policy=GoBreaker(max_requests=2, interval=10, timeout=5, ready_to_trip=ready),
        )  # fmt: skip
        self.model = GoBreakerModel(2, 10, 5, 4, 0.5)

    @rule(succeed=st.booleans())
    def call(self, succeed):
        now = self.clock.now()
        assert attempt(self.breaker, succeed) == self.model.call(now, succeed)
        assert self.breaker.counts == asdict(self.model.counts)

    @rule(ms=st.integers(min_value=1, max_value=12000))
    def wait(self, ms):
        self.clock.advance(ms / 1000)

    @invariant()
    def same_state(self):
        self.model.refresh(self.clock.now())
        assert self.breaker.state == self.model.state


TestConsecutive = ConsecutiveMachine.TestCase
TestConsecutive.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestGoBreaker = GoBreakerMachine.TestCase
TestGoBreaker.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
