"""Distributed tracing with OpenTelemetry: one request, followed through every service.

A **trace** is the story of one request; each step in it is a **span** (a name, a start, an
end, a status, attributes) and every span but the first has a **parent**: the span that
caused it. What joins spans made in different services is **context propagation**: the
caller writes its span's identity into the request, in the W3C ``traceparent`` header
(``00-<trace id>-<parent span id>-<flags>``); the callee reads it and makes its own span a child
of it. Over a broker the same header travels with the message.

Here every service gets its own tracer (its ``service.name``), all spans go to one
``InMemorySpanExporter`` (the SDK's exporter for tests), and span times come from the run's
clock, so on virtual time a waterfall is exact and repeatable. Three pieces plug the tracer
into the lab without touching the services:

* :class:`TracingTransport`: an httpx transport that opens a CLIENT span around each call and
  injects ``traceparent``;
* :class:`TracingMiddleware`: ASGI middleware that extracts it and opens a SERVER span, current
  while the handler runs, so the handler's own calls become its children;
* :meth:`Tracing.publish` / :meth:`Tracing.traced_handler`: PRODUCER and CONSUMER spans around
  a message hop, the context riding in the message headers.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from labkit.core.clock import Clock
from labkit.core.timeline import Timeline

PROPAGATOR = TraceContextTextMapPropagator()


class Tracing:
    """Tracers for a set of services, sharing one in-memory exporter and the run's clock."""

    def __init__(self, clock: Clock, timeline: Timeline | None = None, *, seed: int = 0) -> None:
        self.clock = clock
        self.ids = SeededIds(seed)
        self.exporter = InMemorySpanExporter()
        self.timeline = timeline
        self._providers: dict[str, TracerProvider] = {}
        self._tracers: dict[str, trace.Tracer] = {}

    def _ns(self) -> int:
        return round(self.clock.now() * 1e9)

    def tracer(self, service: str) -> trace.Tracer:
        """The tracer of ``service`` (its spans carry ``service.name``)."""
        tracer = self._tracers.get(service)
        if tracer is not None:  # get_tracer() builds a new tracer each time: keep one
            return tracer
        if service not in self._providers:
            provider = TracerProvider(
                resource=Resource.create({"service.name": service}), id_generator=self.ids
            )
            provider.add_span_processor(SimpleSpanProcessor(self.exporter))
            if self.timeline is not None:
                provider.add_span_processor(_TimelineSpans(self.timeline, service))
            self._providers[service] = provider
        tracer = self._tracers[service] = self._providers[service].get_tracer("labkit")
        return tracer

    @contextlib.contextmanager
    def span(
        self,
        service: str,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        parent: otel_context.Context | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Iterator[trace.Span]:
        """A span on the run's clock, current while the block runs; an exception marks it
        failed (recorded on the span) and goes on."""
        span = self.tracer(service).start_span(
            name, context=parent, kind=kind, attributes=attributes, start_time=self._ns()
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            yield span
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            otel_context.detach(token)
            span.end(end_time=self._ns())

    def spans(self) -> list[ReadableSpan]:
        """Every finished span, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    # -- HTTP ---------------------------------------------------------------------------------
    def client_transport(
        self, inner: httpx.AsyncBaseTransport, *, source: str, target: str
    ) -> TracingTransport:
        return TracingTransport(inner, self, source=source, target=target)

    def server_app(self, service: str, app: Any) -> TracingMiddleware:
        return TracingMiddleware(app, self, service)

    # -- messages -----------------------------------------------------------------------------
    async def publish(
        self,
        broker: Any,
        service: str,
        subject: str,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Publish through ``broker`` inside a PRODUCER span whose context rides in the
        message headers."""
        with self.span(service, f"{subject} publish", kind=SpanKind.PRODUCER) as span:
            carrier = dict(headers or {})
            PROPAGATOR.inject(carrier)
            span.set_attribute("messaging.destination.name", subject)
            return await broker.publish(subject, body, headers=carrier)

    def traced_handler(
        self, service: str, handler: Callable[[Any], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]]:
        """Wrap a consumer's handler: each delivery runs in a CONSUMER span, child of the
        producer's span found in the message headers."""

        async def traced(delivery: Any) -> None:
            parent = PROPAGATOR.extract(delivery.message.headers)
            name = f"{delivery.message.subject} process"
            with self.span(service, name, kind=SpanKind.CONSUMER, parent=parent) as span:
                span.set_attribute("messaging.message.id", delivery.message.id)
                await handler(delivery)

        return traced


class SeededIds(IdGenerator):
    """Trace and span ids from a seeded generator: the same run gives the same ids (real
    tracers use random ids, which is what makes them unique across machines)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def generate_span_id(self) -> int:
        return self.rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self.rng.getrandbits(128) or 1


class _TimelineSpans(SpanProcessor):
    """Writes each finished span to the run's timeline as ``span.ended``."""

    def __init__(self, timeline: Timeline, service: str) -> None:
        self.timeline, self.service = timeline, service

    def on_end(self, span: ReadableSpan) -> None:
        parent = span.parent.span_id if span.parent is not None else None
        self.timeline.record(
            self.service,
            "span.ended",
            name=span.name,
            span_kind=span.kind.name,
            trace_id=f"{span.context.trace_id:032x}",
            span_id=f"{span.context.span_id:016x}",
            parent_id=f"{parent:016x}" if parent is not None else None,
            duration_ms=round(((span.end_time or 0) - (span.start_time or 0)) / 1e6, 3),
            status=span.status.status_code.name,
        )


class TracingTransport(httpx.AsyncBaseTransport):
    """An httpx transport: a CLIENT span around each call, ``traceparent`` injected."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, tracing: Tracing, *, source: str, target: str
    ) -> None:
        self.inner, self.tracing, self.source, self.target = inner, tracing, source, target

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = f"GET {self.target}" if request.method == "GET" else request.method
        attributes = {
            "http.request.method": request.method,
            "url.path": request.url.path,
            "peer.service": self.target,
        }
        with self.tracing.span(
            self.source, name, kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            PROPAGATOR.inject(carrier)
            request.headers.update(carrier)
            response = await self.inner.handle_async_request(request)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR, f"HTTP {response.status_code}"))
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class TracingMiddleware:
    """ASGI middleware: a SERVER span per request, child of the caller's ``traceparent``."""

    def __init__(self, app: Any, tracing: Tracing, service: str) -> None:
        self.app, self.tracing, self.service = app, tracing, service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        parent = PROPAGATOR.extract(headers)
        attributes = {"http.request.method": scope["method"], "url.path": scope["path"]}
        name = f"{scope['method']} {scope['path']}"
        with self.tracing.span(
            self.service, name, kind=SpanKind.SERVER, parent=parent, attributes=attributes
        ) as span:

            async def send_and_note(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
                await send(message)

            await self.app(scope, receive, send_and_note)


def span_tree(spans: list[ReadableSpan]) -> list[dict[str, Any]]:
    """Spans as plain rows, parents before children, with depth and times in ms from the
    trace's start: what a waterfall draws and what a test asserts."""
    by_id = {s.context.span_id: s for s in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None else None
        children.setdefault(parent if parent in by_id else None, []).append(s)
    rows: list[dict[str, Any]] = []

    def walk(parent: int | None, depth: int) -> None:
        ordered = sorted(children.get(parent, []), key=lambda x: (x.start_time, x.end_time))
        for s in ordered:
            rows.append(_row(s, depth, by_id))
            walk(s.context.span_id, depth + 1)

    walk(None, 0)
    if rows:
        by_trace: dict[str, int] = {}
        for r in rows:
            by_trace[r["trace_id"]] = min(by_trace.get(r["trace_id"], r["start_ns"]), r["start_ns"])
        for r in rows:
            zero = by_trace[r["trace_id"]]
            r["start_ms"] = round((r.pop("start_ns") - zero) / 1e6, 3)
            r["end_ms"] = round((r.pop("end_ns") - zero) / 1e6, 3)
    return rows


def _row(s: ReadableSpan, depth: int, by_id: dict[int, ReadableSpan]) -> dict[str, Any]:
    parent = s.parent.span_id if s.parent is not None else None
    return {
        "trace_id": f"{s.context.trace_id:032x}",
        "span_id": f"{s.context.span_id:016x}",
        "parent_id": f"{parent:016x}" if parent in by_id else None,
        "depth": depth,
        "service": str(s.resource.attributes.get("service.name", "?")),
        "name": s.name,
        "kind": s.kind.name,
        "status": s.status.status_code.name,
        "error": s.status.description or "",
        "start_ns": s.start_time or 0,
        "end_ns": s.end_time or 0,
        "duration_ms": round(((s.end_time or 0) - (s.start_time or 0)) / 1e6, 3),
    }
