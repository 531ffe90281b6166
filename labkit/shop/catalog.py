"""The demo shop's data, read from ``data/catalog.yaml`` and checked on the way in."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from labkit.core.errors import BadParameter, LabError
from labkit.core.paths import data_dir


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    tier: str = "standard"


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    price: float
    stock: int


@dataclass(frozen=True)
class OrderItem:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class Order:
    id: str
    user_id: str
    status: str
    created_at: str
    items: tuple[OrderItem, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Catalog:
    """Users, products and orders by id."""

    users: dict[str, User]
    products: dict[str, Product]
    orders: dict[str, Order]

    def with_order(self, order: Order) -> Catalog:
        """A copy of the catalog with one more (or a replaced) order."""
        return Catalog(self.users, self.products, {**self.orders, order.id: order})

    def order_with_items(
        self, n_items: int, *, order_id: str = "o-lab", user_id: str = "u-1"
    ) -> Order:
        """An order of the first ``n_items`` products, for experiments that vary fan-out."""
        if not 1 <= n_items <= len(self.products):
            raise BadParameter("items", n_items, f"must lie between 1 and {len(self.products)}")
        items = tuple(OrderItem(pid, 1) for pid in list(self.products)[:n_items])
        return Order(order_id, user_id, "paid", "2026-11-20T10:00:00Z", items)


def parse_catalog(raw: dict[str, Any]) -> Catalog:
    """Build a :class:`Catalog` from plain data, refusing anything malformed by name."""
    try:
        users = {u["id"]: User(**u) for u in raw["users"]}
        products = {
            p["id"]: Product(p["id"], p["name"], float(p["price"]), int(p["stock"]))
            for p in raw["products"]
        }
        orders = {
            o["id"]: Order(
                o["id"],
                o["user_id"],
                o["status"],
                str(o["created_at"]),
                tuple(OrderItem(i["product_id"], int(i["quantity"])) for i in o["items"]),
            )
            for o in raw["orders"]
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise LabError(f"the catalog is malformed: {exc!r}") from None
    for order in orders.values():
        if order.user_id not in users:
            raise LabError(f"order {order.id} names unknown user {order.user_id!r}")
        for item in order.items:
            if item.product_id not in products:
                raise LabError(f"order {order.id} names unknown product {item.product_id!r}")
    return Catalog(users, products, orders)


@lru_cache(maxsize=4)
def load_catalog(path: Path | None = None) -> Catalog:
    """The catalog from ``data/catalog.yaml`` (or ``path``), parsed once per process."""
    import yaml

    path = path or data_dir() / "catalog.yaml"
    with open(path, encoding="utf-8") as fh:
        return parse_catalog(yaml.safe_load(fh))
