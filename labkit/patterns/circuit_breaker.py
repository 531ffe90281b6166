"""The circuit breaker: stop calling a service that is failing, and give it time to recover.

Like the fuse box in a house. While **closed**, calls go through and the breaker counts
failures. When its trip policy says "enough", it **opens**: calls fail at once, without
touching the sick service, so callers stop waiting and the service stops drowning. After a
timeout it goes **half-open** and lets a few trial calls through: if they succeed it closes,
if one fails it opens again for another timeout.

:class:`CircuitBreaker` is pybreaker underneath, extended only through pybreaker's own
extension points:

* a **storage** (:class:`ClockStorage`) that ties pybreaker's wall-clock ``opened_at`` to the
  lab's injected clock, so a 30 s open timeout passes instantly on virtual time;
* a **listener** per trip policy (see :mod:`labkit.patterns.breaker_policies`);
* a **listener** that writes every transition, with how long the previous state lasted and the
  counters that decided it, to the timeline (the part Hystrix's dashboard never showed).

It also works in asyncio, where a plain ``@pybreaker.CircuitBreaker`` decorator on an
``async def`` counts nothing (it sees a coroutine object, a "success"): ``await
breaker.call(async_fn)`` runs the coroutine inside ``breaker.calling()``.

When *not* to use one: for a call that has a cheap, always-correct alternative (just use it),
or in front of a service whose failures are per-request (a 404 is not a sick service).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import pybreaker

from labkit.core.clock import Clock
from labkit.core.timeline import Timeline
from labkit.patterns.breaker_policies import NEVER, ConsecutiveFailures, Policy

T = TypeVar("T")
State = Literal["closed", "open", "half-open"]
CircuitOpen = pybreaker.CircuitBreakerError

_KIND = {"closed": "breaker.closed", "open": "breaker.opened", "half-open": "breaker.half_opened"}


class ClockStorage(pybreaker.CircuitMemoryStorage):
    """pybreaker's memory storage, with ``opened_at`` kept on the lab's clock.

    pybreaker decides "has the open timeout passed?" as ``datetime.now(UTC) < opened_at +
    reset_timeout``. This storage remembers the *clock* time of opening, decides the question
    on the injected clock (virtual or real), and hands pybreaker a datetime far enough in the
    past or the future that pybreaker's own comparison gives the same answer. Deciding here
    keeps virtual runs exact: a trial at precisely ``opened + timeout`` always goes through,
    whatever the wall clock's microseconds say.
    """

    def __init__(self, clock: Clock, reset_timeout: float) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self.clock = clock
        self.reset_timeout = reset_timeout
        self.opened_clock: float | None = None

    def timeout_elapsed(self) -> bool:
        if self.opened_clock is None:
            return True
        return self.clock.now() - self.opened_clock >= self.reset_timeout - 1e-9

    @property
    def opened_at(self) -> datetime | None:
        if self.opened_clock is None:
            return None
        wall = datetime.now(UTC)
        day = timedelta(days=1)
        timeout = timedelta(seconds=self.reset_timeout)
        return wall - timeout - day if self.timeout_elapsed() else wall + day

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:
        self.opened_clock = self.clock.now()


@dataclass(frozen=True)
class Transition:
    """One change of state: when, from what, to what, why, and the counters at that moment."""

    t: float
    from_state: str
    to_state: str
    previous_lasted_s: float
    counts: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


class CircuitBreaker:
    """A pybreaker circuit breaker on the lab's clock, with a trip policy and a visible history.

    ``await breaker.call(async_fn, *args)`` or ``breaker.call(plain_fn, *args)``. A call
    rejected while open (or over the half-open limit) raises :data:`CircuitOpen` and is not
    counted by any policy.
    """

    def __init__(
        self,
        name: str = "breaker",
        *,
        clock: Clock,
        policy: Policy | None = None,
        timeline: Timeline | None = None,
        exclude: Iterable[type[BaseException] | Callable[[BaseException], bool]] = (),
    ) -> None:
        self.name = name
        self.clock = clock
        self.policy = policy or ConsecutiveFailures()
        self.policy.bind(clock)
        self.policy.on_transition = self._on_transition
        self.timeline = timeline
        self._record = timeline is not None and timeline.enabled
        self.transitions: list[Transition] = []
        self._since = clock.now()
        self._forced = False
        self._disabled = False
        self._generation = 0
        self._reason = ""
        settings = self.policy.pybreaker_settings()
        self._storage = ClockStorage(clock, settings["reset_timeout"])
        self._cb = pybreaker.CircuitBreaker(
            **settings,
            success_threshold=NEVER,
            exclude=[*exclude, _is_cancellation],
            listeners=[self.policy],
            state_storage=self._storage,
            name=name,
            throw_new_error_on_trip=False,
        )

    # -- state -------------------------------------------------------------------------------
    @property
    def state(self) -> State:
        """``closed``, ``open`` or ``half-open`` (open past its timeout turns half-open)."""
        current = self._cb.current_state
        if current == pybreaker.STATE_OPEN and not self._forced and self._timeout_elapsed():
            self._reason = "open timeout elapsed"
            self._cb.half_open()
            current = self._cb.current_state
        self.policy.refresh(self._cb)
        return current  # type: ignore[return-value]

    @property
    def counts(self) -> dict[str, Any]:
        """The counters the trip policy is looking at right now."""
        return self.policy.counts(self._cb)

    def _timeout_elapsed(self) -> bool:
        return self._storage.opened_clock is not None and self._storage.timeout_elapsed()

    # -- calls ---------------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` through the breaker; for an ``async def`` this returns an awaitable."""
        if _is_async(getattr(fn, "__func__", None) or getattr(fn, "func", None) or fn):
            return self._call_async(fn, *args, **kwargs)
        return self._call_sync(fn, *args, **kwargs)

    def _call_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._disabled:
            return fn(*args, **kwargs)
        if self._forced:
            raise CircuitOpen("forced open")
        if not self._record:  # the lean path: pybreaker and the policy, nothing else
            return self._cb.call(fn, *args, **kwargs)
        started = self.clock.now()
        try:
            result = self._cb.call(fn, *args, **kwargs)
        except pybreaker.CircuitBreakerError:
            self._note("rejected", started)
            raise
        except BaseException as exc:
            self._note("failure", started, exc)
            raise
        self._note("success", started)
        return result

    async def _call_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if self._disabled:
            return await fn(*args, **kwargs)
        if self._forced:
            raise CircuitOpen("forced open")
        started = self.clock.now() if self._record else 0.0
        late: BaseException | None = None
        try:
            with self._cb.calling():
                generation = self._generation  # after admission, which may itself half-open
                try:
                    result = await fn(*args, **kwargs)
                except Exception as exc:
                    if self._generation == generation:
                        raise
                    late = exc  # see below
                if self._generation != generation:
                    # The call began before the breaker changed state (it was let through while
                    # closed, say, and ended after the breaker opened). Like gobreaker, ignore
                    # its outcome: counting it would reopen an open breaker and restart its
                    # timeout. Leaving the block normally keeps pybreaker from counting a
                    # failure; the policy is told to ignore the "success" that follows.
                    self.policy.ignore_next = True
        except pybreaker.CircuitBreakerError:
            if self._record:
                self._note("rejected", started)
            raise
        except BaseException as exc:
            if self._record:
                self._note("failure", started, exc)
            raise
        if late is not None:
            if self._record:
                self._note("failure", started, late)
            raise late
        if self._record:
            self._note("success", started)
        return result

    def _note(self, outcome: str, started: float, exc: BaseException | None = None) -> None:
        assert self.timeline is not None
        fields: dict[str, Any] = {
            "breaker": self.name,
            "outcome": outcome,
            "state": self._cb.current_state,
            "duration_ms": round((self.clock.now() - started) * 1000, 3),
        }
        if exc is not None:
            fields["error"] = type(exc).__name__
        self.timeline.record(self.name, f"call.{_PAST[outcome]}", **fields)

    # -- manual control ----------------------------------------------------------------------
    def force_open(self) -> None:
        """Open and stay open, whatever the timeout, until :meth:`reset` (an operator's switch)."""
        self._forced = True
        self._reason = "forced open"
        if self._cb.current_state != pybreaker.STATE_OPEN:
            self._cb.open()

    def disable(self) -> None:
        """Let every call through and count nothing, until :meth:`reset`."""
        self._disabled = True
        if self._record:
            assert self.timeline is not None
            self.timeline.record(self.name, "breaker.disabled", breaker=self.name)

    def reset(self) -> None:
        """Back to closed with empty counters; undoes :meth:`force_open` and :meth:`disable`."""
        self._forced = self._disabled = False
        self._reason = "reset"
        self.policy.clear()
        if self._cb.current_state != pybreaker.STATE_CLOSED:
            self._cb.close()
        self._storage.reset_counter()

    # -- history ---------------------------------------------------------------------------------
    def _on_transition(self, old: str, new: str) -> None:
        now = self.clock.now()
        reason = self._reason or _DEFAULT_REASON.get(new, "")
        if new == "open" and old == "half-open" and not self._reason:
            reason = "a trial call failed"
        self._reason = ""
        counts = self.policy.counts(self._cb)
        transition = Transition(now, old, new, round(now - self._since, 6), counts, reason)
        self._since = now
        self._generation += 1
        self.transitions.append(transition)
        if self._record:
            assert self.timeline is not None
            self.timeline.record(
                self.name,
                _KIND[new],
                breaker=self.name,
                from_state=old,
                to_state=new,
                previous_lasted_s=transition.previous_lasted_s,
                reason=reason,
                counts=transition.counts,
            )


_DEFAULT_REASON = {
    "open": "trip policy",
    "half-open": "open timeout elapsed",
    "closed": "trial calls succeeded",
}
_PAST = {"success": "succeeded", "failure": "failed", "rejected": "rejected"}


@functools.lru_cache(maxsize=1024)
def _is_async(fn: Callable[..., Any]) -> bool:
    """Is ``fn`` an ``async def``? Cached: ``inspect`` takes longer than a breaker call."""
    return inspect.iscoroutinefunction(fn)


def _is_cancellation(exc: BaseException) -> bool:
    """A caller giving up (task cancelled) says nothing about the service's health."""
    import asyncio

    return isinstance(exc, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt)
