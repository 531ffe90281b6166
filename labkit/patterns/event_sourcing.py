"""The order aggregate, event-sourced: its state is the fold of its events.

An order is never stored as a row. Its stream holds ``OrderCreated``, then ``OrderItemAdded``
events, then ``OrderStatusChanged`` events; :func:`rebuild` replays them through :func:`apply`
to get the order back. Because the log keeps every step, the order *as it was after k events*
is just the replay of the first k (:meth:`OrderRepository.load` with ``at_version``): this is
the "time travel" event sourcing is famous for.

The command side (:mod:`labkit.patterns.order_commands`) checks a command against the current
state, turns it into events, and appends them expecting the version it loaded. If someone else
appended in between, the store refuses with a concurrency error instead of silently
interleaving.

Two lessons from the syllabus' code:

* It orders a stream's events by ``created_at``. Two events written in the same clock tick
  tie, and two writers whose clocks disagree (skew) put events in the wrong order: a
  ``shipped`` stamped before the ``paid`` it followed. :func:`order_by_created_at` reproduces
  that; the store orders by version, which the database assigns and never ties.
* Event shapes change. ``OrderItemAdded`` v1 had ``price`` and no currency; v2 has
  ``unit_price`` and ``currency``. Stored v1 events stay as they are and are *upcast* when read
  (:data:`UPCASTERS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from labkit.core.errors import LabError
from labkit.patterns.event_store import (
    EventStore,
    NewEvent,
    StoredEvent,
)

CREATED, ITEM_ADDED, STATUS_CHANGED = "OrderCreated", "OrderItemAdded", "OrderStatusChanged"
#: The current schema version of ``OrderItemAdded``.
ITEM_ADDED_SCHEMA = 2
#: Which status may follow which.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "created": ("paid", "cancelled"),
    "paid": ("shipped", "cancelled"),
    "shipped": ("delivered",),
    "delivered": (),
    "cancelled": (),
}
STATUSES = tuple(TRANSITIONS)


class UnknownOrder(LabError):
    """A command named an order that has no events."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"unknown order {order_id!r}: no events in stream {stream_of(order_id)!r}")


def upcast_item_added_v1(data: Mapping[str, Any]) -> dict[str, Any]:
    """v1 ``{product_id, quantity, price}`` -> v2 ``{..., unit_price, currency}`` (EUR then)."""
    out = {k: v for k, v in data.items() if k != "price"}
    out["unit_price"] = data["price"]
    out["currency"] = "EUR"
    return out


#: (event type, stored schema) -> function giving the next schema's data.
UPCASTERS = {(ITEM_ADDED, 1): upcast_item_added_v1}


def stream_of(order_id: str) -> str:
    return f"order-{order_id}"


@dataclass
class Order:
    """The state of one order after ``version`` events.

    ``items`` holds one line per product and unit price: adding two keyboards, then one more,
    gives a line of three. The state stays as small as the order, however many events made it
    (which is what makes a snapshot worth taking).
    """

    order_id: str = ""
    user_id: str = ""
    status: str = "none"
    items: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0

    @property
    def total(self) -> float:
        return round(sum(i["quantity"] * i["unit_price"] for i in self.items), 2)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "items": [dict(i) for i in self.items], "total": self.total}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Order:
        fields = {k: data[k] for k in ("order_id", "user_id", "status", "version")}
        return cls(items=[dict(i) for i in data["items"]], **fields)


def apply(order: Order, event_type: str, data: Mapping[str, Any]) -> Order:
    """One step of the fold: the order after ``event_type`` happened (mutates and returns it)."""
    if event_type == CREATED:
        order.order_id, order.user_id, order.status = data["order_id"], data["user_id"], "created"
    elif event_type == ITEM_ADDED:
        key = (data["product_id"], data["unit_price"], data["currency"])
        for line in order.items:  # the same product at the same price: one line, more of it
            if (line["product_id"], line["unit_price"], line["currency"]) == key:
                line["quantity"] += data["quantity"]
                break
        else:
            order.items.append(
                {
                    "product_id": data["product_id"],
                    "quantity": data["quantity"],
                    "unit_price": data["unit_price"],
                    "currency": data["currency"],
                }
            )
    elif event_type == STATUS_CHANGED:
        order.status = data["status"]
    else:
        raise LabError(f"the order aggregate does not know event type {event_type!r}")
    order.version += 1
    return order


def rebuild(events: Iterable[StoredEvent], start: Order | None = None) -> Order:
    """Replay ``events`` (in the order given) on top of ``start`` (a fresh order by default)."""
    order = start or Order()
    for e in events:
        apply(order, e.type, e.data)
    return order


def order_by_created_at(events: Iterable[StoredEvent]) -> list[StoredEvent]:
    """The syllabus' ``ORDER BY created_at``: ties and skewed clocks reorder the stream.

    Rows with the same timestamp come back in whatever order the database finds them; here,
    by event id, which is as arbitrary as a real database's choice.
    """
    return sorted(events, key=lambda e: (e.created_at, e.id))


class OrderRepository:
    """Loads orders from the store (using a snapshot when there is one) and saves new events."""

    def __init__(self, store: EventStore, *, snapshot_every: int = 0) -> None:
        self.store = store
        self.snapshot_every = snapshot_every
        for key, fn in UPCASTERS.items():
            store.upcasters.setdefault(key, fn)

    def load(self, order_id: str, *, at_version: int | None = None) -> Order:
        """The order after ``at_version`` events (all of them by default)."""
        stream = stream_of(order_id)
        start = None
        snap = self.store.load_snapshot(stream) if self.snapshot_every else None
        if snap is not None and (at_version is None or snap.version <= at_version):
            start = Order.from_dict(snap.state)
        events = self.store.read_stream(
            stream, (start.version if start else 0) + 1, to_version=at_version
        )
        order = rebuild(events, start)
        if order.version == 0:
            raise UnknownOrder(order_id)
        return order

    def replay(self, order_id: str) -> Order:
        """The order rebuilt from all its events, ignoring snapshots."""
        return rebuild(self.store.read_stream(stream_of(order_id)))

    def history(self, order_id: str) -> list[StoredEvent]:
        return self.store.read_stream(stream_of(order_id))

    def steps(self, order_id: str) -> list[dict[str, Any]]:
        """The order after each of its events: what a time-travel slider walks through."""
        order, out = Order(), []
        for e in self.history(order_id):
            apply(order, e.type, e.data)
            out.append(
                {
                    "version": e.version,
                    "position": e.position,
                    "type": e.type,
                    "data": e.data,
                    "status": order.status,
                    "lines": len(order.items),
                    "total": order.total,
                }
            )
        if not out:
            raise UnknownOrder(order_id)
        return out

    def save(self, order: Order, events: list[NewEvent], *, expected: Any) -> Order:
        """Append ``events`` expecting ``expected``; apply them to ``order``; maybe snapshot."""
        self.store.append(stream_of(order.order_id), events, expected=expected)
        before = order.version
        for e in events:
            apply(order, e.type, _as_current(e))
        every = self.snapshot_every
        if every and order.version // every > before // every:
            self.store.save_snapshot(stream_of(order.order_id), order.version, order.to_dict())
        return order


def _as_current(e: NewEvent) -> Mapping[str, Any]:
    if e.type == ITEM_ADDED and e.schema == 1:
        return upcast_item_added_v1(e.data)
    return e.data
