"""API gateway and backend-for-frontend: one call from the client, many calls behind it.

The gateway answers ``GET /orders/{id}`` by asking the order service for the order, the user
service for its buyer and the product service for every item, then combining the answers.
Two choices decide how it behaves, and the lab lets you flip both:

* **sequential or concurrent.** The syllabus fetches one product after another, so the
  client waits for the *sum* of the calls. Once the order is known, the user and every
  product are independent: fetched concurrently, the client waits for the *slowest* one.
* **fail or degrade.** The syllabus answers 500 for everything when any one product fails.
  A degrading gateway still answers 200 with the parts it has, marks the missing ones, and
  lists them under ``degraded``, so a page can render the order with one greyed-out item.

A backend-for-frontend is the same aggregation shaped for one kind of client: the web BFF
returns everything, the mobile BFF a compact summary that costs fewer bytes over a phone link.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from labkit.patterns.request_response import DownstreamError, fetch_json, require_fields

MODES = ("sequential", "concurrent")
PARTIAL_POLICIES = ("fail", "degrade")


class OrderDetailsGateway:
    """Aggregates order + user + products; ``mode`` and ``partial`` pick the behaviour."""

    def __init__(
        self,
        *,
        orders: httpx.AsyncClient,
        users: httpx.AsyncClient,
        products: httpx.AsyncClient,
        mode: str = "sequential",
        partial: str = "fail",
        call_timeout_s: float | None = 1.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if partial not in PARTIAL_POLICIES:
            raise ValueError(f"partial must be one of {PARTIAL_POLICIES}, not {partial!r}")
        self.orders, self.users, self.products = orders, users, products
        self.mode, self.partial, self.call_timeout_s = mode, partial, call_timeout_s

    async def _get(self, http: httpx.AsyncClient, path: str, service: str) -> dict[str, Any]:
        return await fetch_json(http, path, service=service, timeout_s=self.call_timeout_s)

    async def order_details(self, order_id: str) -> dict[str, Any]:
        """The combined view of one order; raises :class:`DownstreamError` when it cannot."""
        order = await self._get(self.orders, f"/orders/{order_id}", "order")
        require_fields(order, ("id", "user_id", "items"), service="order")
        calls: list[tuple[str, str, Awaitable[dict[str, Any]]]] = [
            ("user", order["user_id"], self._get(self.users, f"/users/{order['user_id']}", "user"))
        ]
        for item in order["items"]:
            pid = item["product_id"]
            calls.append(("product", pid, self._get(self.products, f"/products/{pid}", "product")))
        results = await self._run(calls)
        degraded: list[str] = []
        parts: list[dict[str, Any]] = []
        for (kind, key, _), outcome in zip(calls, results, strict=True):
            if isinstance(outcome, DownstreamError):
                degraded.append(f"{kind}:{key}")
                parts.append({"id": key, "degraded": True, "reason": outcome.reason})
            else:
                parts.append(outcome)
        user, products = parts[0], parts[1:]
        return {
            "order": {k: order.get(k) for k in ("id", "status", "created_at")},
            "user": user,
            "items": [
                {**product, "quantity": item.get("quantity", 1)}
                for product, item in zip(products, order["items"], strict=True)
            ],
            "degraded": degraded,
        }

    async def _run(
        self, calls: list[tuple[str, str, Awaitable[dict[str, Any]]]]
    ) -> list[dict[str, Any] | DownstreamError]:
        """Run the calls one by one or all at once; in ``fail`` mode the first error wins."""
        keep_going = self.partial == "degrade"
        if self.mode == "sequential":
            out: list[dict[str, Any] | DownstreamError] = []
            for i, (_, _, call) in enumerate(calls):
                try:
                    out.append(await call)
                except DownstreamError as exc:
                    if not keep_going:
                        for _, _, rest in calls[i + 1 :]:
                            rest.close()  # type: ignore[attr-defined]
                        raise
                    out.append(exc)
            return out
        if keep_going:
            gathered = await asyncio.gather(*(c for _, _, c in calls), return_exceptions=True)
            for item in gathered:
                if isinstance(item, BaseException) and not isinstance(item, DownstreamError):
                    raise item
            return list(gathered)  # type: ignore[arg-type]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(c) for _, _, c in calls]  # type: ignore[arg-type]
        except* DownstreamError as failures:
            raise failures.exceptions[0] from None
        return [t.result() for t in tasks]

    def app(self) -> Starlette:
        """The gateway as an HTTP service: web BFF at ``/orders/{id}``, mobile at ``/m/...``."""

        async def web(request: Request) -> JSONResponse:
            return await self._respond(request, compact=False)

        async def mobile(request: Request) -> JSONResponse:
            return await self._respond(request, compact=True)

        return Starlette(routes=[Route("/orders/{id}", web), Route("/m/orders/{id}", mobile)])

    async def _respond(self, request: Request, *, compact: bool) -> JSONResponse:
        try:
            details = await self.order_details(request.path_params["id"])
        except DownstreamError as exc:
            if exc.reason == "not_found" and exc.service == "order":
                return JSONResponse({"error": str(exc)}, status_code=404)
            if self.partial == "fail":
                # The syllabus' answer: one broken part breaks the whole page.
                return JSONResponse({"error": f"failed to get {exc.service}"}, status_code=500)
            status = 504 if exc.reason == "timeout" else 502
            return JSONResponse({"error": str(exc)}, status_code=status)
        return JSONResponse(mobile_view(details) if compact else details)


def mobile_view(details: dict[str, Any]) -> dict[str, Any]:
    """The mobile BFF's compact shape: what a phone list row needs, nothing more."""
    items = details["items"]
    total = sum(i.get("price", 0) * i.get("quantity", 1) for i in items if not i.get("degraded"))
    return {
        "id": details["order"]["id"],
        "status": details["order"]["status"],
        "buyer": details["user"].get("name", "(unavailable)"),
        "items": [i.get("name", "(unavailable)") for i in items],
        "total": round(total, 2),
        "degraded": details["degraded"],
    }
