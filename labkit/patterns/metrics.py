"""Metrics with prometheus_client: a request-duration histogram, ``/metrics``, and its error.

A **histogram** does not keep every duration: it counts how many fell at or under each
**bucket** bound (``le``: 5 ms, 10 ms, 25 ms, ...). That is cheap and can be summed across
instances, but a percentile read from it is an estimate: Prometheus' ``histogram_quantile``
finds the bucket where the wanted rank falls and interpolates linearly inside it. The estimate
can be off by up to a bucket's width; :func:`quantile_from_buckets` does the same sum, so the
lab can draw it next to the exact percentile from the timeline.

:class:`MetricsMiddleware` observes every request of a service by handler (the route's path
template, not the raw path, so ``/users/u-1`` and ``/users/u-2`` are one series), method and
status, on the run's clock; :func:`metrics_app` serves the registry in the text format.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from labkit.core.clock import Clock

#: Bucket bounds in seconds (the client library's defaults, which suit web requests).
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5)
METRIC = "http_request_duration_seconds"


class RequestMetrics:
    """One registry per run (never the global one) with the request-duration histogram."""

    def __init__(self, clock: Clock, buckets: Sequence[float] = BUCKETS) -> None:
        self.clock = clock
        self.registry = CollectorRegistry()
        self.buckets = tuple(buckets)
        self.histogram = Histogram(
            METRIC,
            "Time to answer an HTTP request, by service, handler, method and status.",
            ["service", "handler", "method", "status"],
            buckets=self.buckets,
            registry=self.registry,
        )

    def middleware(self, service: str, app: Any) -> MetricsMiddleware:
        return MetricsMiddleware(app, self, service)

    def exposition(self) -> str:
        """The registry in Prometheus' text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry).decode()

    def buckets_of(self, **labels: str) -> list[tuple[float, float]]:
        """Cumulative ``(le, count)`` pairs summed over every series matching ``labels``,
        read back through prometheus_client's own parser."""
        totals: dict[float, float] = {}
        for family in text_string_to_metric_families(self.exposition()):
            if family.name != METRIC:
                continue
            for sample in family.samples:
                if not sample.name.endswith("_bucket"):
                    continue
                if any(sample.labels.get(k) != v for k, v in labels.items()):
                    continue
                le = float(sample.labels["le"])
                totals[le] = totals.get(le, 0.0) + sample.value
        return sorted(totals.items())


def quantile_from_buckets(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile``: the ``q`` quantile (0..1) estimated from cumulative
    ``(le, count)`` buckets, interpolating linearly inside the bucket where the rank falls.
    Returns NaN for an empty histogram."""
    if not buckets or buckets[-1][1] == 0:
        return math.nan
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):  # the rank is past the last finite bound: that bound is all we know
                return lower_bound
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


def bucket_width_at(value: float, bounds: Sequence[float]) -> float:
    """The width of the bucket ``value`` falls in (how far off an estimate there can be)."""
    lower = 0.0
    for le in bounds:
        if value <= le:
            return le - lower
        lower = le
    return math.inf


class MetricsMiddleware:
    """ASGI middleware observing each request's duration on the run's clock."""

    def __init__(self, app: Any, metrics: RequestMetrics, service: str) -> None:
        self.app, self.metrics, self.service = app, metrics, service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/metrics":
            await self.app(scope, receive, send)
            return
        clock = self.metrics.clock
        started = clock.now()
        status = [500]

        async def note_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, note_status)
        finally:
            handler = _route_template(scope)
            self.metrics.histogram.labels(
                self.service, handler, scope["method"], str(status[0])
            ).observe(clock.now() - started)


def _route_template(scope: dict[str, Any]) -> str:
    """The matched route's template (``/users/{user_id}``) if Starlette found one."""
    route = scope.get("route")
    return getattr(route, "path", None) or scope["path"]


def metrics_app(metrics: RequestMetrics) -> Any:
    """A tiny ASGI app that serves ``/metrics`` from ``metrics``' registry."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def expose(request: Any) -> PlainTextResponse:
        return PlainTextResponse(
            metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return Starlette(routes=[Route("/metrics", expose)])
