"""Deadlines that travel: pass the remaining time budget down the call chain.

A gateway that promises an answer within 1 s sets a **deadline**: "1 s from now". When it calls
a service, it should tell that service how much of the budget is left, and that service should
tell the next one, in the spirit of gRPC's ``grpc-timeout`` header. Then every hop can stop
working the moment the answer is no longer wanted.

Without that, a timeout at the top only stops the *waiting* at the top. Below it, services
keep fetching, computing and calling others for an answer nobody will read: wasted work,
exactly when the system is slow and can least afford it.

Here the budget travels in the ``x-deadline-ms`` header (milliseconds left, measured when the
request is sent). :class:`DeadlineContext` reads it on the way in; :func:`outgoing_headers`
writes what is left on the way out; :class:`Deadline` answers "how long is left?".
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from labkit.core.clock import Clock

DEADLINE_HEADER = "x-deadline-ms"

current_deadline: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "labkit_deadline", default=None
)


@dataclass(frozen=True)
class Deadline:
    """A point in time (on ``clock``) after which the answer is no longer wanted."""

    at: float
    clock: Clock

    @classmethod
    def within(cls, seconds: float, clock: Clock) -> Deadline:
        return cls(clock.now() + seconds, clock)

    def remaining(self) -> float:
        return self.at - self.clock.now()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def header(self) -> dict[str, str]:
        """The header that hands the rest of the budget to the next hop."""
        return {DEADLINE_HEADER: f"{max(0.0, self.remaining()) * 1000:.3f}"}


def outgoing_headers() -> dict[str, str]:
    """Headers for a call made while serving a request: the caller's remaining budget, if any."""
    deadline = current_deadline.get()
    return deadline.header() if deadline is not None else {}


class DeadlineContext:
    """ASGI middleware: turn an incoming ``x-deadline-ms`` into :data:`current_deadline`.

    A request that arrives with its budget already spent is refused with 504 at once: there is
    no point starting work whose answer is already too late.
    """

    def __init__(self, app: Any, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = None
        for name, value in scope.get("headers", ()):
            if name == DEADLINE_HEADER.encode():
                deadline = Deadline.within(float(value) / 1000, self.clock)
        if deadline is not None and deadline.expired:
            await _send_json(send, 504, b'{"error":"deadline already passed"}')
            return
        token = current_deadline.set(deadline)
        try:
            await self.app(scope, receive, send)
        finally:
            current_deadline.reset(token)


async def _send_json(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
