"""A versioned product API: the version in the path, or in the ``Accept`` header.

Two common ways to let old and new clients share one service:

* **in the path**: ``/api/v1/products/p-1`` and ``/api/v2/products/p-1``. Plain to see, easy to
  route and cache; a client changes version by changing URLs.
* **content negotiation**: ``/api/products/p-1`` with
  ``Accept: application/vnd.labkit.v2+json``. One URL per resource; the client names the
  representation it understands. A client that names none gets :data:`DEFAULT_VERSION` (v1: a
  client that never asked was written against the first version), and the response says
  ``Vary: Accept`` so caches keep the versions apart.

v2 *adds* fields (``price_cents``, ``currency``, ``in_stock``) and removes none, so a v1 client
reading a v2 response still finds everything it knows (:mod:`labkit.patterns.compatibility`
checks that). Mistakes get a 4xx with a reason, never a 500: an unknown version in the path is
a 404, an ``Accept`` header naming no version we serve is a 406, a path and header that
disagree are a 400.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

VERSIONS = ("v1", "v2")
DEFAULT_VERSION = "v1"
VENDOR = "application/vnd.labkit.{version}+json"
_VENDOR_RE = re.compile(r"^application/vnd\.labkit\.([^+;\s]*)\+json$")
_GENERIC = {"*/*", "application/*", "application/json"}


class VersionError(Exception):
    """A request the API cannot serve: ``status`` (4xx), ``reason`` and a readable ``detail``."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        self.status, self.reason, self.detail = status, reason, detail
        super().__init__(f"{status} {reason}: {detail}")


def represent(product: Mapping[str, Any], version: str) -> dict[str, Any]:
    """A product as version ``version`` shows it. v2 = v1 plus new fields."""
    v1 = {"id": product["id"], "name": product["name"], "price": float(product["price"])}
    if version == "v1":
        return v1
    return {
        **v1,
        "price_cents": round(float(product["price"]) * 100),
        "currency": "EUR",
        "in_stock": int(product["stock"]) > 0,
    }


def negotiate(accept: str | None, path_version: str | None = None) -> str:
    """The version to serve for this ``Accept`` header and (maybe) a version in the path."""
    if path_version is not None and path_version not in VERSIONS:
        raise VersionError(
            404, "unknown_version", f"{path_version!r}: this API serves {', '.join(VERSIONS)}"
        )
    wanted = _from_accept(accept)
    if path_version and wanted and wanted != path_version:
        raise VersionError(
            400, "version_conflict", f"the path asks for {path_version}, Accept for {wanted}"
        )
    return path_version or wanted or DEFAULT_VERSION


def _from_accept(accept: str | None) -> str | None:
    """The best vendor version named in ``Accept``; None when it names none (any is fine)."""
    if accept is None or not accept.strip():
        return None
    ranked: list[tuple[float, int, str]] = []
    generic = False
    unknown: list[str] = []
    for position, item in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in item.split(";")]
        q = _quality(params)
        if q <= 0:
            continue
        match = _VENDOR_RE.match(media.lower())
        if match:
            if match.group(1) in VERSIONS:
                ranked.append((-q, position, match.group(1)))
            else:
                unknown.append(match.group(1) or "(empty)")
        elif media.lower() in _GENERIC:
            generic = True
    if ranked:
        return min(ranked)[2]
    if generic:
        return None
    named = f" (asked for {', '.join(unknown)})" if unknown else ""
    raise VersionError(
        406,
        "not_acceptable",
        f"Accept: {accept[:80]!r}{named}; this API serves "
        + ", ".join(VENDOR.format(version=v) for v in VERSIONS),
    )


def _quality(params: list[str]) -> float:
    for p in params:
        key, _, value = p.partition("=")
        if key.strip().lower() == "q":
            try:
                return max(0.0, min(1.0, float(value)))
            except ValueError:
                return 1.0
    return 1.0


def versioned_app(products: Mapping[str, Mapping[str, Any]]) -> Any:
    """A Starlette app serving ``products`` (id -> {id, name, price, stock}) in every version."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def error(status: int, reason: str, detail: str) -> JSONResponse:
        return JSONResponse({"error": reason, "detail": detail}, status_code=status)

    async def product(request: Request) -> JSONResponse:
        path_version = request.path_params.get("version")
        try:
            version = negotiate(request.headers.get("accept"), path_version)
        except VersionError as exc:
            return error(exc.status, exc.reason, exc.detail)
        pid = request.path_params["pid"]
        if pid not in products:
            return error(404, "unknown_product", f"no product {pid!r}")
        return JSONResponse(
            represent(products[pid], version),
            media_type=VENDOR.format(version=version),
            headers={"Vary": "Accept", "X-API-Version": version},
        )

    async def versions(request: Request) -> JSONResponse:
        return JSONResponse({"versions": list(VERSIONS), "default": DEFAULT_VERSION})

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        reason = "method_not_allowed" if status == 405 else "not_found"
        return error(status, reason, f"{request.method} {request.url.path}")

    return Starlette(
        routes=[
            Route("/api/versions", versions),
            Route("/api/products/{pid}", product),
            Route("/api/{version}/products/{pid}", product),
        ],
        exception_handlers={404: not_found, 405: not_found},
    )


#: A v3 draft that "tidies up" v2, and breaks old clients doing it (for the checker to catch).
V3_DRAFT_EXAMPLE: dict[str, Any] = {
    "id": "p-1",
    "title": "Laptop",
    "price": {"amount_cents": 99999, "currency": "EUR"},
    "in_stock": True,
}
