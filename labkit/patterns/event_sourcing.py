"""The order aggregate, event-sourced: its state is the fold of its events.

An order is never stored as a row. Its stream holds ``OrderCreated``, then ``OrderItemAdded``
events, then ``OrderStatusChanged`` events; :func:`rebuild` replays them through :func:`apply`
to get the order back. Because the log keeps every step, the order *as it was after k events*
is just the replay of the first k (:meth:`OrderRepository.load` with ``at_version``): this is
the "time travel" event sourcing is famous for.

The command side (:class:`OrderService`) checks a command against the current state, turns it
into events, and appends them expecting the version it loaded. If someone else appended in
between, the store refuses with a concurrency error instead of silently interleaving.

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

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from labkit.core.errors import BadParameter, LabError
from labkit.patterns.event_store import (
    NO_STREAM,
    EventStore,
    NewEvent,
    StoredEvent,
    WrongExpectedVersion,
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


class OrderService:
    """The command side: validate, decide, append. Bad input appends nothing."""

    def __init__(self, repo: OrderRepository) -> None:
        self.repo = repo

    def create_order(self, user_id: Any, order_id: str | None = None) -> Order:
        user = _text("user_id", user_id)
        oid = _text("order_id", order_id) if order_id is not None else uuid.uuid4().hex[:8]
        order = Order(order_id=oid)
        event = NewEvent(CREATED, {"order_id": oid, "user_id": user})
        return self.repo.save(order, [event], expected=NO_STREAM)

    def add_item(
        self,
        order_id: Any,
        product_id: Any,
        quantity: Any,
        unit_price: Any,
        currency: str = "EUR",
        *,
        expected: int | None = None,
    ) -> Order:
        oid, pid = _text("order_id", order_id), _text("product_id", product_id)
        qty = _number("quantity", quantity, whole=True, minimum=1)
        price = _number("unit_price", unit_price, whole=False, minimum=0)
        order = self.repo.load(oid)
        if order.status != "created":
            raise BadParameter(
                "order_id",
                oid,
                f"is {order.status}: items can only be added while an order is created",
            )
        data = {"product_id": pid, "quantity": qty, "unit_price": price, "currency": currency}
        event = NewEvent(ITEM_ADDED, data, schema=ITEM_ADDED_SCHEMA)
        return self.repo.save(order, [event], expected=_pick(expected, order))

    def change_status(self, order_id: Any, status: Any, *, expected: int | None = None) -> Order:
        oid, new = _text("order_id", order_id), _text("status", status)
        if new not in TRANSITIONS:
            raise BadParameter("status", new, f"must be one of {', '.join(STATUSES)}")
        order = self.repo.load(oid)
        if new not in TRANSITIONS[order.status]:
            allowed = ", ".join(TRANSITIONS[order.status]) or "nothing (it is final)"
            raise BadParameter("status", new, f"order {oid} is {order.status}; next: {allowed}")
        event = NewEvent(STATUS_CHANGED, {"status": new, "previous": order.status})
        return self.repo.save(order, [event], expected=_pick(expected, order))

    def handle(self, command: Mapping[str, Any]) -> Order:
        """Run a command given as a dict: ``{"type": "CreateOrder" | "AddItem" |
        "ChangeStatus", ...fields}``. A missing field is one clear message."""
        kind = command.get("type")
        spec = COMMANDS.get(str(kind))
        if spec is None:
            raise BadParameter("type", kind, f"must be one of {', '.join(COMMANDS)}")
        missing = [f for f in spec if command.get(f) in (None, "")]
        if missing:
            raise BadParameter(missing[0], None, f"is required by {kind}")
        args = {f: command[f] for f in spec}
        if kind == "CreateOrder":
            return self.create_order(args["user_id"], command.get("order_id"))
        if kind == "AddItem":
            return self.add_item(**args)
        return self.change_status(**args)


def race(service: OrderService, order_id: str) -> dict[str, Any]:
    """Two writers load the same version of an order and both change it: one must lose.

    While the order is open both add an item; once paid, A moves it on and B cancels it.
    Writer A appends expecting the version both loaded and succeeds; writer B appends with
    the same expectation and gets the concurrency error, so its change is not silently
    applied to a state it never saw: B is told, and can reload and decide again.
    """
    order = service.repo.load(order_id)
    loaded = order.version
    if order.status == "created":
        did, tried = "added an item", "add an item"
        b_event = NewEvent(
            ITEM_ADDED,
            {"product_id": "from-writer-b", "quantity": 1, "unit_price": 20.0, "currency": "EUR"},
            schema=ITEM_ADDED_SCHEMA,
        )

        def first() -> Order:
            return service.add_item(order_id, "from-writer-a", 1, 10.0, expected=loaded)
    else:
        nexts = TRANSITIONS[order.status]
        if not nexts:
            raise BadParameter("order_id", order_id, f"is {order.status}: nothing left to race for")
        did, tried = f"set it {nexts[0]}", f"set it {nexts[-1]}"
        b_event = NewEvent(STATUS_CHANGED, {"status": nexts[-1], "previous": order.status})

        def first() -> Order:
            return service.change_status(order_id, nexts[0], expected=loaded)

    def second() -> Order:  # B decided on the order as it loaded it, and appends that
        return service.repo.save(Order.from_dict(order.to_dict()), [b_event], expected=loaded)

    a = first()
    try:
        second()
    except WrongExpectedVersion as exc:
        return {
            "loaded_version": loaded,
            "winner": "A",
            "after_winner": a.version,
            "a_did": did,
            "b_tried": tried,
            "loser_error": str(exc),
        }
    raise LabError("both writers appended at the same version: the store did not check")


#: Required fields of each command.
COMMANDS: dict[str, tuple[str, ...]] = {
    "CreateOrder": ("user_id",),
    "AddItem": ("order_id", "product_id", "quantity", "unit_price"),
    "ChangeStatus": ("order_id", "status"),
}


def _pick(expected: int | None, order: Order) -> int:
    return order.version if expected is None else expected


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadParameter(name, value, "is required (a non-empty text)")
    return value.strip()


def _number(name: str, value: Any, *, whole: bool, minimum: float) -> Any:
    if isinstance(value, bool) or value is None:
        raise BadParameter(name, value, "must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadParameter(name, value, "must be a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise BadParameter(name, value, "must be a finite number")
    if whole:
        if number != int(number):
            raise BadParameter(name, value, "must be a whole number")
        number = int(number)
    if number < minimum:
        raise BadParameter(name, value, f"must be at least {minimum:g}")
    return number
