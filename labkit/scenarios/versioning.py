"""Experiment: old, new and confused clients call one versioned product API.

Clients ask for a product by path version, by ``Accept`` header, or not at all; some ask for
a version that does not exist, or for two at once. The summary shows what each got (the
version served or the 4xx and its reason) and checks with the compatibility checker that
v2 only adds to v1, and that the v3 draft (``compare_with=v3_draft``) would break v2 clients.
``accept`` and ``path_version`` add one request of your own.
"""

from __future__ import annotations

import re
from typing import Any

from labkit.core.errors import BadParameter
from labkit.core.params import Param
from labkit.patterns.compatibility import compare, is_compatible, report, schema_of
from labkit.patterns.versioning import V3_DRAFT_EXAMPLE, VENDOR, represent, versioned_app
from labkit.scenarios.base import RunContext
from labkit.shop.catalog import load_catalog
from labkit.transport.hosting import HTTP_BACKENDS, host

TITLE = "API versioning and compatibility"
BACKENDS = HTTP_BACKENDS

PARAMS = [
    Param("product_id", "p-1", "which product the clients ask for"),
    Param(
        "compare_with",
        "v2",
        "check v1 -> v2, or v2 -> a v3 draft that renames and reshapes fields",
        choices=("v2", "v3_draft"),
    ),
    Param("accept", "", "your own request: an Accept header (empty: none)"),
    Param("path_version", "", "your own request: a version in the path, e.g. v2 (empty: none)"),
]

#: (who, path template, Accept header)
CLIENTS: list[tuple[str, str, str | None]] = [
    ("old client, v1 in the path", "/api/v1/products/{pid}", None),
    ("new client, v2 in the path", "/api/v2/products/{pid}", None),
    ("negotiates v2", "/api/products/{pid}", VENDOR.format(version="v2")),
    ("negotiates v1", "/api/products/{pid}", VENDOR.format(version="v1")),
    ("asks for no version", "/api/products/{pid}", "application/json"),
    ("v9 in the path", "/api/v9/products/{pid}", None),
    ("v9 in Accept", "/api/products/{pid}", VENDOR.format(version="v9")),
    ("path v1, Accept v2", "/api/v1/products/{pid}", VENDOR.format(version="v2")),
]


def _check_own_request(p: dict[str, Any]) -> None:
    """Refuse what no HTTP client could send, before anything is sent."""
    if not p["accept"].isascii() or not p["accept"].isprintable():
        raise BadParameter("accept", p["accept"], "must be printable ASCII, as HTTP headers are")
    for name in ("path_version", "product_id"):
        if not re.fullmatch(r"[A-Za-z0-9._-]*", p[name]):
            raise BadParameter(name, p[name], "may hold only letters, digits, '.', '_' and '-'")


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    _check_own_request(p)
    products = {
        pid: {"id": pr.id, "name": pr.name, "price": pr.price, "stock": pr.stock}
        for pid, pr in load_catalog().products.items()
    }
    clients = list(CLIENTS)
    if p["accept"] or p["path_version"]:
        path = (
            f"/api/{p['path_version']}/products/{{pid}}"
            if p["path_version"]
            else ("/api/products/{pid}")
        )
        clients.append(("your request", path, p["accept"] or None))
    rows = []
    async with host({"shop": versioned_app(products)}, backend=ctx.backend, timeline=tl) as svc:
        http = svc.client("shop", source="client")
        for who, template, accept in clients:
            headers = {"Accept": accept} if accept is not None else {}
            response = await http.get(template.format(pid=p["product_id"]), headers=headers)
            body = response.json()
            ok = response.status_code == 200
            tl.record(
                "client",
                "version.served" if ok else "version.refused",
                who=who,
                status=response.status_code,
            )
            rows.append(
                {
                    "client": who,
                    "path": template.format(pid=p["product_id"]),
                    "accept": accept or "",
                    "status": response.status_code,
                    "version": response.headers.get("x-api-version"),
                    "reason": None if ok else body.get("error"),
                    "detail": None if ok else body.get("detail"),
                    "fields": sorted(body) if ok else [],
                }
            )
    sample = next(iter(products.values()))
    if p["compare_with"] == "v2":
        old, new = represent(sample, "v1"), represent(sample, "v2")
    else:
        old, new = represent(sample, "v2"), V3_DRAFT_EXAMPLE
    changes = compare(schema_of(old), schema_of(new))
    return {
        "requests": len(rows),
        "served": sum(r["status"] == 200 for r in rows),
        "statuses": sorted({r["status"] for r in rows}),
        "server_errors": sum(r["status"] >= 500 for r in rows),
        "results": rows,
        "compatibility": {
            "from": "v1" if p["compare_with"] == "v2" else "v2",
            "to": p["compare_with"],
            "compatible": is_compatible(changes),
            "changes": report(changes),
        },
    }
