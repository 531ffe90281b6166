"""Experiment: a 1 s budget at the gateway, and the work done after it ran out.

The client asks the gateway for an order's total price. The gateway gives itself
``budget_ms``; it asks the order service, which fetches the order's products from the product
service one by one (``product_latency_ms`` each). With five products at 300 ms, the work takes
1.5 s: the gateway gives up at 1 s either way. The question is what happens *below* it.

* ``propagate=false``: the order service never hears that the gateway gave up, and keeps
  calling the product service for an answer nobody will read.
* ``propagate=true``: the budget travels in ``x-deadline-ms``; the order service checks it
  before each product call and stops, and the product service refuses a request whose budget
  is already spent.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from labkit.core.faults import FaultPlan, Latency
from labkit.core.params import Param
from labkit.core.timeline import Timeline
from labkit.patterns.deadline import Deadline, DeadlineContext, current_deadline, outgoing_headers
from labkit.scenarios.base import RunContext
from labkit.shop.catalog import load_catalog
from labkit.shop.services import product_app
from labkit.transport.hosting import HTTP_BACKENDS, host

TITLE = "Deadlines passed down the call chain"
BACKENDS = HTTP_BACKENDS
ORDER_ID = "o-1001"  # five products

PARAMS = [
    Param("propagate", True, "pass the remaining budget downstream (x-deadline-ms)"),
    Param("budget_ms", 1000.0, "the gateway's time budget", minimum=1, unit="ms"),
    Param(
        "product_latency_ms",
        300.0,
        "time the product service takes per product",
        minimum=0,
        unit="ms",
    ),
    Param("requests", 3, "client requests, one after another", minimum=1, maximum=100),
]


def order_pricing_app(products: Any, timeline: Timeline, propagate: bool) -> Starlette:
    """The order service's ``/orders/{id}/total``: fetch each product in turn, add prices."""
    catalog = load_catalog()

    async def total(request: Request) -> JSONResponse:
        order = catalog.orders[request.path_params["id"]]
        deadline = current_deadline.get() if propagate else None
        price = 0.0
        for item in order.items:
            if deadline is not None and deadline.expired:
                timeline.record(
                    "order",
                    "work.abandoned",
                    reason="deadline passed",
                    remaining_items=len(order.items),
                )
                return JSONResponse({"error": "deadline passed"}, status_code=504)
            path = f"/products/{item.product_id}"
            if deadline is None:
                product = await products.get(path)
            else:
                # the rest of the budget is both this call's timeout and the next hop's header
                try:
                    product = await products.get(
                        path, headers=outgoing_headers(), timeout=max(deadline.remaining(), 1e-6)
                    )
                except httpx.TimeoutException:
                    timeline.record(
                        "order",
                        "work.abandoned",
                        reason="deadline passed mid-call",
                        remaining_items=len(order.items),
                    )
                    return JSONResponse({"error": "deadline passed"}, status_code=504)
            price += product.json()["price"] * item.quantity
        return JSONResponse({"order": order.id, "total": round(price, 2)})

    return Starlette(routes=[Route("/orders/{id}/total", total)])


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    clock = tl.clock
    plan = FaultPlan(ctx.seed).add("product", Latency(p["product_latency_ms"]))
    budget_s = p["budget_ms"] / 1000
    statuses: list[str] = []
    catalog = load_catalog()
    async with host(
        {"product": DeadlineContext(product_app(catalog), clock)},
        backend=ctx.backend,
        timeline=tl,
        faults=plan,
        detach=True,
    ) as back:
        products = back.client("product", source="order")
        pricing = order_pricing_app(products, tl, p["propagate"])
        async with host(
            {"order": DeadlineContext(pricing, clock)},
            backend=ctx.backend,
            timeline=tl,
            detach=True,
        ) as front:
            orders = front.client("order", source="gateway")
            for _ in range(p["requests"]):
                deadline = Deadline.within(budget_s, clock)
                headers = deadline.header() if p["propagate"] else {}
                try:
                    response = await orders.get(
                        f"/orders/{ORDER_ID}/total", headers=headers, timeout=budget_s
                    )
                    statuses.append(str(response.status_code))
                except Exception:
                    statuses.append("timeout")
                # the next request starts once this one's budget is over, as a user would retry
                if deadline.remaining() > 0:
                    await clock.sleep(deadline.remaining())
    return summarize(tl, statuses, budget_s)


def summarize(tl: Timeline, statuses: list[str], budget_s: float) -> dict[str, Any]:
    """Count the product work that happened after the gateway's deadline for it had passed."""
    sent = tl.of_kind("request.sent")
    deadline_of = {r.fields["call"]: r.t + budget_s for r in sent if r.fields["target"] == "order"}
    product_calls = [r for r in sent if r.fields["target"] == "product"]
    ends = {r.fields["call"]: r for r in tl.of_kind("response.received", "request.failed")}
    late_starts = 0
    late_ms = 0.0
    for call in product_calls:
        deadline = deadline_of.get(call.fields["parent"])
        end = ends.get(call.fields["call"])
        if deadline is None or end is None or end.t <= deadline:
            continue
        late_starts += call.t >= deadline
        late_ms += (end.t - max(call.t, deadline)) * 1000
    refused = sum(1 for r in ends.values() if r.fields.get("status") == 504)
    return {
        "requests": len(statuses),
        "client_outcomes": {s: statuses.count(s) for s in sorted(set(statuses))},
        "product_calls": len(product_calls),
        "product_calls_started_after_deadline": late_starts,
        "work_after_deadline_ms": round(late_ms, 3),
        "refused_as_too_late": refused,
        "abandoned_by_order_service": len(tl.of_kind("work.abandoned")),
    }
