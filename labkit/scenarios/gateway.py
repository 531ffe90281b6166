"""Experiment: the order-details gateway, sequential vs concurrent, failing vs degrading.

A client asks the gateway for one order ``requests`` times. Behind the gateway, the order, user
and product services each sit behind a latency fault; one product (or a share of product
calls) can be made to fail. The summary gives the client's end-to-end latency next to the time
spent in downstream calls, so "sum vs max" and "500 vs degraded" show up as numbers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from labkit.core.faults import ErrorStatus, FaultPlan, Latency
from labkit.core.params import Param
from labkit.core.stats import latency_summary
from labkit.patterns.gateway import MODES, PARTIAL_POLICIES, OrderDetailsGateway
from labkit.scenarios.base import RunContext
from labkit.shop.catalog import load_catalog
from labkit.shop.services import shop_apps
from labkit.transport.hosting import HTTP_BACKENDS, host

TITLE = "API gateway / backend for frontend"
BACKENDS = HTTP_BACKENDS
ORDER_ID = "o-lab"

PARAMS = [
    Param("mode", "sequential", "how the gateway fetches the user and products", choices=MODES),
    Param(
        "partial",
        "fail",
        "when one part fails: 500 for all, or a degraded answer",
        choices=PARTIAL_POLICIES,
    ),
    Param(
        "bff",
        "web",
        "which front end asks: the web BFF (full) or the mobile BFF (compact)",
        choices=("web", "mobile"),
    ),
    Param("items", 5, "products in the order (one product call each)", minimum=1, maximum=12),
    Param("requests", 5, "how many times the client asks for the order", minimum=1, maximum=500),
    Param("order_latency_ms", 10.0, "latency of the order service", minimum=0, unit="ms"),
    Param("user_latency_ms", 10.0, "latency of the user service", minimum=0, unit="ms"),
    Param("product_latency_ms", 50.0, "latency of the product service", minimum=0, unit="ms"),
    Param(
        "product_jitter_ms", 0.0, "random +/- spread on the product latency", minimum=0, unit="ms"
    ),
    Param(
        "product_error_rate", 0.0, "share of product calls that answer 503", minimum=0, maximum=1
    ),
    Param(
        "failing_product",
        0,
        "item number (1..items) whose product call always fails; 0: none",
        minimum=0,
        maximum=12,
    ),
    Param("call_timeout_ms", 1000.0, "deadline of each downstream call", minimum=1, unit="ms"),
]


def fault_plan(params: dict[str, Any], seed: int) -> FaultPlan:
    """The faults this experiment injects, from its parameters."""
    plan = FaultPlan(seed)
    plan.add("order", Latency(params["order_latency_ms"]))
    plan.add("user", Latency(params["user_latency_ms"]))
    plan.add("product", Latency(params["product_latency_ms"], params["product_jitter_ms"]))
    if params["product_error_rate"]:
        plan.add("product", ErrorStatus(503, params["product_error_rate"]))
    if params["failing_product"]:
        plan.add("product", ErrorStatus(503), route=f"/products/p-{params['failing_product']}")
    return plan


async def main(ctx: RunContext) -> dict[str, Any]:
    p = ctx.params
    catalog = load_catalog()
    catalog = catalog.with_order(catalog.order_with_items(p["items"], order_id=ORDER_ID))
    plan = fault_plan(p, ctx.seed)
    tl = ctx.timeline
    path = f"/m/orders/{ORDER_ID}" if p["bff"] == "mobile" else f"/orders/{ORDER_ID}"
    statuses: Counter[int] = Counter()
    degraded_answers = 0
    response_bytes: list[int] = []
    async with host(shop_apps(catalog), backend=ctx.backend, timeline=tl, faults=plan) as shop:
        gateway = OrderDetailsGateway(
            orders=shop.client("order", source="gateway"),
            users=shop.client("user", source="gateway"),
            products=shop.client("product", source="gateway"),
            mode=p["mode"],
            partial=p["partial"],
            call_timeout_s=p["call_timeout_ms"] / 1000,
        )
        async with host({"gateway": gateway.app()}, backend=ctx.backend, timeline=tl) as front:
            client = front.client("gateway", source="client")
            for _ in range(p["requests"]):
                response = await client.get(path)
                statuses[response.status_code] += 1
                response_bytes.append(len(response.content))
                if response.status_code == 200 and response.json()["degraded"]:
                    degraded_answers += 1
    return summarize(tl.records, statuses, degraded_answers, response_bytes, p)


def summarize(records, statuses, degraded_answers, response_bytes, p) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    client_ms = [
        r.fields["latency_ms"]
        for r in records
        if r.kind == "response.received" and r.actor == "client"
    ]
    downstream = [r for r in records if r.actor == "gateway" and r.kind == "request.sent"]
    downstream_ms = [
        r.fields["latency_ms"]
        for r in records
        if r.actor == "gateway" and r.kind in ("response.received", "request.failed")
    ]
    requests = p["requests"]
    return {
        "mode": p["mode"],
        "partial": p["partial"],
        "requests": requests,
        "ok": statuses.get(200, 0),
        "degraded": degraded_answers,
        "failed": requests - statuses.get(200, 0),
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "latency_ms": latency_summary(client_ms),
        "downstream_calls": len(downstream),
        "downstream_ms_per_request": round(sum(downstream_ms) / requests, 3),
        "response_bytes": round(sum(response_bytes) / requests, 1),
    }
