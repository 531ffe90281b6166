"""The one seam every HTTP call goes through: faults in, records out.

:class:`LabTransport` wraps any httpx transport (an in-process ``httpx.ASGITransport`` or a
real pooled connection to a uvicorn server) in the manner of Toxiproxy: it sits between the
caller and the service, applies the fault plan to each call, and writes ``request.sent``,
``response.received`` / ``request.failed`` records to the timeline.

It also makes timeouts mean the same thing in both worlds. ``httpx.ASGITransport`` ignores
``httpx.Timeout``; here the *read* timeout of a request bounds the whole call (fault delays
included), on the run's clock, and surfaces as ``httpx.ReadTimeout`` just as a socket would.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import httpx

from labkit.core.faults import Effect, FaultPlan
from labkit.core.timeline import Timeline

CALL_HEADER = "x-labkit-call"

#: The id of the call being served right now, so that calls made while serving it are its children.
current_call: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "labkit_current_call", default=None
)

_BAD_BODY = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"


class LabTransport(httpx.AsyncBaseTransport):
    """An httpx transport that applies faults and records every call on a timeline."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        target: str,
        source: str,
        timeline: Timeline,
        faults: FaultPlan | None = None,
        detach: bool = False,
    ) -> None:
        self.inner = inner
        self.target = target
        self.source = source
        self.timeline = timeline
        self.faults = faults or FaultPlan()
        #: In-process, ``detach=True`` runs the service in its own task, so that a caller who
        #: gives up does not cancel the service's work (a real server never hears about it; over
        #: real sockets nothing is needed). It costs a task per call, so only experiments about
        #: work done after a caller left (deadlines) turn it on.
        self.detach = detach and isinstance(inner, httpx.ASGITransport)
        self._serving: set[asyncio.Task[httpx.Response]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeline = self.timeline
        clock = timeline.clock
        call = timeline.new_id()
        parent = current_call.get()
        request.headers[CALL_HEADER] = call
        path = request.url.path
        timeline.record(
            self.source,
            "request.sent",
            call=call,
            parent=parent,
            target=self.target,
            method=request.method,
            path=path,
        )
        started = clock.now()
        read_timeout = (request.extensions.get("timeout") or {}).get("read")
        try:
            if read_timeout is None:
                response = await self._send(request, call, path)
            else:
                async with asyncio.timeout(read_timeout):
                    response = await self._send(request, call, path)
        except TimeoutError:
            self._failed(call, started, "timeout")
            raise httpx.ReadTimeout(
                f"{self.target} did not answer within {read_timeout:g} s", request=request
            ) from None
        except httpx.HTTPError as exc:
            self._failed(call, started, _error_name(exc))
            raise
        except asyncio.CancelledError:
            self._failed(call, started, "cancelled")
            raise
        timeline.record(
            self.source,
            "response.received",
            call=call,
            parent=parent,
            target=self.target,
            status=response.status_code,
            latency_ms=round((clock.now() - started) * 1000, 3),
            bytes=len(response.content),
        )
        return response

    async def _send(self, request: httpx.Request, call: str, path: str) -> httpx.Response:
        if self.faults:
            for effect in self.faults.effects(self.target, path, self.timeline.clock.now()):
                reply = await self._apply(effect, request, call)
                if reply is not None:
                    return reply
        if not self.detach:
            return await self._serve(request)
        # Like a server across a wire, the service does not see the caller give up: its work
        # goes on in its own task (and the host waits for it at the end of the run).
        task = asyncio.ensure_future(self._serve(request))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)
        return await asyncio.shield(task)

    async def _serve(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        return response

    async def _apply(
        self, effect: Effect, request: httpx.Request, call: str
    ) -> httpx.Response | None:
        fields: dict[str, Any] = {"call": call, "target": self.target, "fault": effect.fault}
        if effect.seconds:
            fields["seconds"] = round(effect.seconds, 6)
        if effect.status is not None:
            fields["status"] = effect.status
        self.timeline.record(self.source, "fault.injected", **fields)
        if effect.action in ("delay", "hang"):
            await self.timeline.clock.sleep(effect.seconds)
            if effect.action == "hang":
                raise httpx.ReadTimeout(
                    f"{self.target} hung up after a long silence", request=request
                )
            return None
        if effect.action == "status":
            body = {"error": f"injected {effect.fault}", "status": effect.status}
            return httpx.Response(effect.status or 503, json=body, request=request)
        if effect.action == "bad_payload":
            headers = {"content-type": "text/html"}
            return httpx.Response(200, content=_BAD_BODY, headers=headers, request=request)
        if effect.action == "reset":
            raise httpx.RemoteProtocolError(
                f"connection to {self.target} reset by peer (injected)", request=request
            )
        raise httpx.ConnectError(
            f"connection refused: {self.target} is down (injected outage)", request=request
        )

    def _failed(self, call: str, started: float, error: str) -> None:
        clock = self.timeline.clock
        self.timeline.record(
            self.source,
            "request.failed",
            call=call,
            parent=current_call.get(),
            target=self.target,
            error=error,
            latency_ms=round((clock.now() - started) * 1000, 3),
        )

    async def aclose(self) -> None:
        """Wait for work still being served (see ``detach``), then close the inner transport."""
        if self._serving:
            await asyncio.gather(*self._serving, return_exceptions=True)
        await self.inner.aclose()


def _error_name(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "refused"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "reset"
    return type(exc).__name__


class CallContext:
    """ASGI middleware: reads the caller's call id, so calls made while serving are its children.

    In-process the context variable would flow by itself; over real HTTP only a header can
    carry it. (The observability lab replaces this with W3C ``traceparent``.)
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        call = None
        for name, value in scope.get("headers", ()):
            if name == CALL_HEADER.encode():
                call = value.decode()
                break
        token = current_call.set(call)
        try:
            await self.app(scope, receive, send)
        finally:
            current_call.reset(token)
