"""The shop's three services as small Starlette apps.

They are deliberately plain: look an id up, answer JSON, 404 when it is not there. Slowness
and failures are not written here; the fault plan adds them from outside, the way Toxiproxy or
Istio would, so the same services serve every experiment.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from labkit.shop.catalog import Catalog

SERVICES = ("user", "product", "order")


def _not_found(kind: str, key: str) -> JSONResponse:
    return JSONResponse({"error": f"no {kind} with id {key!r}"}, status_code=404)


USER_ID = re.compile(r"^u-\d+$")


def user_app(catalog: Catalog) -> Starlette:
    async def get_user(request: Request) -> JSONResponse:
        key = request.path_params["id"]
        if not USER_ID.match(key):
            # A malformed request: it will fail the same way every time it is sent.
            return JSONResponse({"error": f"malformed user id {key!r}"}, status_code=400)
        user = catalog.users.get(key)
        return JSONResponse(asdict(user)) if user else _not_found("user", key)

    return Starlette(routes=[Route("/users/{id}", get_user)])


def product_app(catalog: Catalog) -> Starlette:
    async def get_product(request: Request) -> JSONResponse:
        key = request.path_params["id"]
        product = catalog.products.get(key)
        return JSONResponse(asdict(product)) if product else _not_found("product", key)

    return Starlette(routes=[Route("/products/{id}", get_product)])


def order_app(catalog: Catalog) -> Starlette:
    async def get_order(request: Request) -> JSONResponse:
        key = request.path_params["id"]
        order = catalog.orders.get(key)
        return JSONResponse(asdict(order)) if order else _not_found("order", key)

    return Starlette(routes=[Route("/orders/{id}", get_order)])


def shop_apps(catalog: Catalog) -> dict[str, Any]:
    """The three services by name, ready for :func:`labkit.transport.hosting.host`."""
    return {"user": user_app(catalog), "product": product_app(catalog), "order": order_app(catalog)}
