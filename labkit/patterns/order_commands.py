"""The command side of the order: validate a command, decide its events, append them.

A command (``CreateOrder``, ``AddItem``, ``ChangeStatus``) is a request that may be refused;
an event is a fact. :class:`OrderService` checks each command's fields (one clear message for
a missing field, a negative quantity, an unknown order), checks it against the order's current
state (no items once paid; only allowed status changes), and appends the resulting event
expecting the version it loaded. Bad input appends nothing.

:func:`race` shows why the expected version matters: two writers decide on the same version,
and the second is told instead of being silently applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from labkit.core.errors import BadParameter, LabError
from labkit.patterns.event_sourcing import (
    CREATED,
    ITEM_ADDED,
    ITEM_ADDED_SCHEMA,
    STATUS_CHANGED,
    STATUSES,
    TRANSITIONS,
    Order,
    OrderRepository,
)
from labkit.patterns.events import NO_STREAM, NewEvent, WrongExpectedVersion


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
