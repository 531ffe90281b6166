"""An event-sourced order service with a read model, kept between clicks.

For the playground and notebooks: send commands (a form, or a few random ones), read the event
log, move through any order's versions, let two writers race, run the projection (or crash it
mid-batch), and rebuild the read model. Everything is SQLite in memory; nothing here runs on a
clock, so each step is exactly one click.
"""

from __future__ import annotations

import random
from typing import Any

from labkit.core.errors import BadParameter, LabError
from labkit.patterns.cqrs import OrderProjection, ProjectionCrash
from labkit.patterns.event_sourcing import Order, OrderRepository
from labkit.patterns.event_store import EventStore
from labkit.patterns.order_commands import COMMANDS, OrderService, race
from labkit.scenarios.cqrs import next_command

DEMO: list[dict[str, Any]] = [
    {"type": "CreateOrder", "user_id": "ada", "order_id": "42"},
    {"type": "AddItem", "order_id": "42", "product_id": "keyboard", "quantity": 1,
     "unit_price": 49.0},
    {"type": "AddItem", "order_id": "42", "product_id": "mouse", "quantity": 2,
     "unit_price": 19.5},
    {"type": "AddItem", "order_id": "42", "product_id": "keyboard", "quantity": 1,
     "unit_price": 49.0},
    {"type": "ChangeStatus", "order_id": "42", "status": "paid"},
]  # fmt: skip


class OrderSession:
    """One store, its order service and one read model; ``demo`` seeds order 42."""

    def __init__(self, *, seed: int = 0, demo: bool = True, snapshot_every: int = 0) -> None:
        self.store = EventStore()
        self.repo = OrderRepository(self.store, snapshot_every=snapshot_every)
        self.service = OrderService(self.repo)
        self.read = OrderProjection()
        self.rng = random.Random(seed)
        self.sent = 0
        if demo:
            for command in DEMO:
                self.service.handle(command)

    # -- write side ----------------------------------------------------------------------

    def command(self, command: dict[str, Any]) -> Order:
        """Run one command; a LabError (bad input, unknown order, conflict) appends nothing."""
        if command.get("type") not in COMMANDS:
            raise BadParameter("type", command.get("type"), f"must be one of {', '.join(COMMANDS)}")
        return self.service.handle(command)

    def send_random(self, n: int) -> int:
        """Send ``n`` plausible commands (creates, items, status changes); how many succeeded."""
        done = 0
        for _ in range(n):
            self.sent += 1
            try:
                self.service.handle(next_command(self.rng, self.orders(), self.service, 0.0,
                                                 1000 + self.sent))  # fmt: skip
                done += 1
            except LabError:
                pass
        return done

    def race(self, order_id: str) -> dict[str, Any]:
        return race(self.service, order_id)

    def orders(self) -> list[str]:
        return [s.removeprefix("order-") for s in self.store.streams()]

    def log(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The event log, newest last, as table rows."""
        events = self.store.read_all()
        if limit is not None:
            events = events[-limit:]
        return [
            {"position": e.position, "stream": e.stream, "version": e.version, "type": e.type,
             "data": e.data, "schema": e.schema}
            for e in events
        ]  # fmt: skip

    def steps(self, order_id: str) -> list[dict[str, Any]]:
        return self.repo.steps(order_id)

    def state_at(self, order_id: str, version: int) -> Order:
        return self.repo.load(order_id, at_version=version)

    # -- read side -----------------------------------------------------------------------

    def project(self, batch_size: int = 10, *, crash_after: int | None = None) -> int:
        """Run the projection once; with ``crash_after`` its first batch dies part-way."""
        try:
            return self.read.catch_up(self.store, batch_size=batch_size, crash_after=crash_after)
        except ProjectionCrash:
            return 0

    def rebuild(self) -> bool:
        """Drop and replay the read model; True when it equals what was there (if caught up)."""
        before = self.read.dump()
        caught_up = self.read.lag(self.store) == 0
        self.read.rebuild(self.store)
        return caught_up and before == self.read.dump()

    def lag(self) -> int:
        return self.read.lag(self.store)
