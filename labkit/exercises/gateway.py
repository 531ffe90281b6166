"""Exercise: make the order-details gateway concurrent, and degrade when one part fails.

The learner writes ``async def order_details(fetch, order_id) -> dict``. ``await fetch(service,
path)`` returns a service's JSON answer or raises
:class:`~labkit.patterns.request_response.DownstreamError` (``.service``, ``.reason``). The answer
must look like ``{"order": {...}, "user": {...}, "items": [...], "degraded": [...]}``, where a
missing part is an item ``{"id": ..., "degraded": True}`` and ``"product:p-3"`` in ``degraded``.

The check serves the lab's shop in virtual time (order and user 10 ms, products 50 ms, five
products) and calls the learner's function twice: all services healthy, then product p-3
answering 503. It reports a gateway that waits for the sum of the calls instead of the slowest,
one that fails the whole order for one product, and answers with parts missing or unmarked.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from labkit.core.clock import LoopClock, run_on_fresh_loop
from labkit.core.faults import ErrorStatus, FaultPlan, Latency
from labkit.core.timeline import Timeline
from labkit.exercises import Report
from labkit.patterns.request_response import DownstreamError, fetch_json
from labkit.shop.catalog import load_catalog
from labkit.shop.services import shop_apps
from labkit.transport.hosting import host

ORDER_ID = "o-exercise"
ITEMS = 5
FAILING = "p-3"
#: order (10) + slowest of user (10) and products (50) = 60 ms; sequential takes 270 ms.
BUDGET_MS = 100.0

Fetch = Callable[[str, str], Awaitable[dict[str, Any]]]
OrderDetails = Callable[[Fetch, str], Awaitable[dict[str, Any]]]


def check(order_details: OrderDetails) -> Report:
    """Run ``order_details`` against the shop, healthy and with one product down."""
    report = Report("Concurrent, degrading gateway")
    if not inspect.iscoroutinefunction(order_details):
        report.problem("order_details must be an async function: `async def order_details(...)`.")
        return report
    healthy = run_on_fresh_loop(lambda: _call(order_details, failing=False), virtual=True)
    broken = run_on_fresh_loop(lambda: _call(order_details, failing=True), virtual=True)
    report.facts = {"healthy": healthy, "one_product_down": broken}
    _check_healthy(report, healthy)
    _check_broken(report, broken)
    return report


def _check_healthy(report: Report, run: dict[str, Any]) -> None:
    if run["error"]:
        report.problem(f"with every service healthy your gateway raised {run['error']}.")
        return
    items = run["answer"].get("items") or []
    if len(items) != ITEMS or not all(i.get("name") for i in items):
        report.problem(f"with every service healthy the answer should list {ITEMS} named items.")
    if not (run["answer"].get("user") or {}).get("name"):
        report.problem("the answer has no user with a name; fetch /users/{user_id}.")
    if run["latency_ms"] > BUDGET_MS:
        report.problem(
            f"your gateway took {run['latency_ms']:.0f} ms: it waits for the sum of the calls. "
            "Once the order is known, the user and product calls are independent; start them "
            f"together (asyncio.gather) so it waits for the slowest one (under {BUDGET_MS:.0f} ms)."
        )


def _check_broken(report: Report, run: dict[str, Any]) -> None:
    if run["error"]:
        report.problem(
            f"with product {FAILING} down the whole answer failed ({run['error']}). Catch the "
            "error for that one part and answer with the rest, marked as degraded."
        )
        return
    answer = run["answer"]
    if f"product:{FAILING}" not in (answer.get("degraded") or []):
        report.problem(f"list the missing part in 'degraded', as 'product:{FAILING}'.")
    items = answer.get("items") or []
    fine = [i for i in items if i.get("name") and not i.get("degraded")]
    marked = [i for i in items if i.get("degraded")]
    if len(fine) != ITEMS - 1:
        report.problem(f"the {ITEMS - 1} products that answered should still be in 'items'.")
    if len(marked) != 1 or marked[0].get("id") != FAILING:
        report.problem(f"the item for {FAILING} should stay in the list, marked degraded: True.")


async def _call(order_details: OrderDetails, *, failing: bool) -> dict[str, Any]:
    catalog = load_catalog()
    catalog = catalog.with_order(catalog.order_with_items(ITEMS, order_id=ORDER_ID))
    plan = FaultPlan(0)
    plan.add("order", Latency(10)).add("user", Latency(10)).add("product", Latency(50))
    if failing:
        plan.add("product", ErrorStatus(503), route=f"/products/{FAILING}")
    timeline = Timeline(LoopClock())
    apps = shop_apps(catalog)
    async with host(apps, backend="inprocess", timeline=timeline, faults=plan) as shop:
        clients = {s: shop.client(s, source="gateway") for s in ("order", "user", "product")}

        async def fetch(service: str, path: str) -> dict[str, Any]:
            if service not in clients:
                raise DownstreamError(service, "unknown", f"no service {service!r}")
            return await fetch_json(clients[service], path, service=service, timeout_s=1.0)

        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            answer, error = await order_details(fetch, ORDER_ID), ""
        except Exception as exc:
            answer, error = {}, f"{type(exc).__name__}: {exc}"[:160]
        latency_ms = (loop.time() - start) * 1000
    if not isinstance(answer, dict):
        answer, error = {}, f"an answer of type {type(answer).__name__}, not a dict"
    return {"answer": answer, "error": error, "latency_ms": round(latency_ms, 1)}
