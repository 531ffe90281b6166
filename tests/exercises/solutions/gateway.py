"""Reference solution: fetch the independent parts together; mark failed parts degraded."""

import asyncio

from labkit.patterns.request_response import DownstreamError


async def order_details(fetch, order_id):
    order = await fetch("order", f"/orders/{order_id}")
    calls = [fetch("user", f"/users/{order['user_id']}")]
    calls += [fetch("product", f"/products/{item['product_id']}") for item in order["items"]]
    user, *products = await asyncio.gather(*calls, return_exceptions=True)
    degraded = []
    if isinstance(user, DownstreamError):
        degraded.append(f"user:{order['user_id']}")
        user = {"id": order["user_id"], "degraded": True}
    items = []
    for item, product in zip(order["items"], products, strict=True):
        if isinstance(product, DownstreamError):
            degraded.append(f"product:{item['product_id']}")
            product = {"id": item["product_id"], "degraded": True}
        elif isinstance(product, BaseException):
            raise product
        items.append({**product, "quantity": item["quantity"]})
    return {"order": order, "user": user, "items": items, "degraded": degraded}
