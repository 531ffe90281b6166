"""Experiment: find the hidden slow dependency from a trace (in the spirit of Jaeger's HotROD).

A client asks the gateway for an order's details ``requests`` times; the gateway fetches the
order, then the user and every product **concurrently**. Each product call looks up a price in
a pricing database, and the product service reaches that database through a pool of
``pricing_connections`` connections. With one connection (the default, the bug), the
concurrent product calls queue behind each other: the gateway is concurrent on paper and
sequential in fact. Nothing in the code of the gateway shows it; the trace does: product spans
start together and end one after another, each with a growing "wait for a connection" child.
``pricing_connections=items`` is the fix: the waterfall folds up.

After answering, the gateway publishes ``orders.viewed`` for an analytics consumer: the trace
follows the message hop too (PRODUCER and CONSUMER spans, context in the message headers).

Every service also feeds a prometheus_client histogram of request durations; the summary
puts the percentiles estimated from its buckets beside the exact ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

from labkit.core.faults import FaultPlan, Latency
from labkit.core.params import Param
from labkit.core.stats import latency_summary, percentile
from labkit.patterns.gateway import OrderDetailsGateway
from labkit.patterns.metrics import RequestMetrics, quantile_from_buckets
from labkit.patterns.tracing import Tracing, span_tree
from labkit.scenarios.base import RunContext
from labkit.shop.catalog import load_catalog
from labkit.shop.services import order_app, user_app
from labkit.transport.brokers import Delivery, QueueSpec, make_broker
from labkit.transport.hosting import HTTP_BACKENDS, host

TITLE = "Tracing and metrics: find the slow dependency"
BACKENDS = HTTP_BACKENDS
ORDER_ID = "o-trace"

PARAMS = [
    Param("requests", 5, "how many times the client asks for the order", minimum=1, maximum=200),
    Param("items", 4, "products in the order (one concurrent product call each)", 1, 12),
    Param(
        "pricing_connections",
        1,
        "connections in the product service's pool to the pricing database (1: the bug)",
        minimum=1,
        maximum=12,
    ),
    Param("pricing_ms", 40.0, "time of one price lookup in the database", minimum=0, unit="ms"),
    Param("service_latency_ms", 5.0, "network latency of every service call", minimum=0, unit="ms"),
    Param("message_hop", True, "the gateway publishes orders.viewed for an analytics consumer"),
]


def product_app_with_pricing(catalog: Any, tracing: Tracing, connections: int, pricing_s: float):  # type: ignore[no-untyped-def]
    """The product service, with a price lookup through a small connection pool."""
    from dataclasses import asdict

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    pool = asyncio.Semaphore(connections)

    async def get_product(request: Request) -> JSONResponse:
        key = request.path_params["id"]
        product = catalog.products.get(key)
        if product is None:
            return JSONResponse({"error": f"no product {key}"}, status_code=404)
        with tracing.span("product", "pricing-db: wait for a connection"):
            await pool.acquire()
        try:
            with tracing.span("product", "pricing-db: SELECT price"):
                await tracing.clock.sleep(pricing_s)
        finally:
            pool.release()
        return JSONResponse(asdict(product))

    return Starlette(routes=[Route("/products/{id}", get_product)])


class PublishAfter:
    """ASGI wrapper: once the gateway has answered, publish ``orders.viewed`` (still inside
    the gateway's server span, so the message joins the request's trace)."""

    def __init__(self, app: Any, publish: Any) -> None:
        self.app, self.publish = app, publish

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            await self.publish(scope["path"])


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    tracing = Tracing(tl.clock, tl, seed=ctx.seed)
    metrics = RequestMetrics(tl.clock)
    catalog = load_catalog()
    catalog = catalog.with_order(catalog.order_with_items(p["items"], order_id=ORDER_ID))
    plan = FaultPlan(ctx.seed)
    for service in ("order", "user", "product"):
        plan.add(service, Latency(p["service_latency_ms"]))
    apps = {
        "order": metrics.middleware("order", order_app(catalog)),
        "user": metrics.middleware("user", user_app(catalog)),
        "product": metrics.middleware(
            "product",
            product_app_with_pricing(
                catalog, tracing, p["pricing_connections"], p["pricing_ms"] / 1000
            ),
        ),
    }
    consumed = asyncio.Event()
    seen: list[str] = []

    async def analytics(d: Delivery) -> None:
        seen.append(d.message.id)
        await d.ack()
        if len(seen) == p["requests"]:
            consumed.set()

    async with (
        make_broker("memory", timeline=tl) as broker,
        host(apps, backend=ctx.backend, timeline=tl, faults=plan, tracing=tracing) as shop,
    ):
        await broker.declare(QueueSpec("analytics", ("orders.viewed",)))
        await broker.consume("analytics", tracing.traced_handler("analytics", analytics))
        gateway = OrderDetailsGateway(
            orders=shop.client("order", source="gateway"),
            users=shop.client("user", source="gateway"),
            products=shop.client("product", source="gateway"),
            mode="concurrent",
            partial="degrade",
        )

        async def viewed(path: str) -> None:
            if p["message_hop"]:
                await tracing.publish(broker, "gateway", "orders.viewed", {"path": path})

        front_app = metrics.middleware("gateway", PublishAfter(gateway.app(), viewed))
        async with host(
            {"gateway": front_app}, backend=ctx.backend, timeline=tl, tracing=tracing
        ) as front:
            client = front.client("gateway", source="client")
            for _ in range(p["requests"]):
                with tracing.span("client", "load order page"):
                    await client.get(f"/orders/{ORDER_ID}")
        if p["message_hop"]:
            async with asyncio.timeout(30):
                await consumed.wait()
    rows = span_tree(tracing.spans())
    ctx.extras["spans"] = rows
    ctx.extras["metrics_text"] = metrics.exposition()
    return summarize(rows, metrics, p)


def summarize(
    rows: list[dict[str, Any]], metrics: RequestMetrics, p: dict[str, Any]
) -> dict[str, Any]:
    pages = [r["duration_ms"] for r in rows if r["name"] == "load order page"]
    waits = [r["duration_ms"] for r in rows if r["name"] == "pricing-db: wait for a connection"]
    gateway_ms = [
        r["duration_ms"] for r in rows if r["service"] == "gateway" and r["kind"] == "SERVER"
    ]
    buckets = metrics.buckets_of(service="gateway")
    estimated = {
        f"p{q}": round(quantile_from_buckets(q / 100, buckets) * 1000, 3) for q in (50, 95, 99)
    }
    exact = {f"p{q}": round(percentile(gateway_ms, q), 3) for q in (50, 95, 99)}
    parents = {r["parent_id"] for r in rows}
    by_leaf: dict[str, float] = {}
    for r in rows:  # leaves: spans with no children, where the time is actually spent
        if r["span_id"] not in parents and r["kind"] != "CONSUMER":
            by_leaf[r["name"]] = round(by_leaf.get(r["name"], 0.0) + r["duration_ms"], 3)
    return {
        "requests": p["requests"],
        "pricing_connections": p["pricing_connections"],
        "traces": len({r["trace_id"] for r in rows}),
        "spans": len(rows),
        "page_ms": latency_summary(pages),
        "waiting_for_pricing_ms": round(sum(waits), 3),
        "time_by_leaf_span_ms": dict(sorted(by_leaf.items(), key=lambda kv: -kv[1])),
        "where_the_time_goes": max(by_leaf, key=by_leaf.__getitem__) if by_leaf else None,
        "messages_traced": sum(1 for r in rows if r["kind"] == "CONSUMER"),
        "gateway_histogram_ms": estimated,
        "gateway_exact_ms": exact,
    }
