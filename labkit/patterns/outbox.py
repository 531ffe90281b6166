"""The transactional outbox: save the order and its event together, publish afterwards.

The syllabus' ``CreateOrder`` saves the order, then publishes ``OrderCreated``. Two separate
systems, two separate steps: a crash (or a broker outage) between them leaves an order that
nobody else will ever hear about. This is the *dual write* problem, and retrying the publish
does not solve it: the process that would retry is the one that crashed.

The outbox pattern writes the event into an ``outbox`` table **in the same database
transaction** as the order. Either both exist or neither does. A separate **relay** reads the
outbox, publishes what has not been sent, and marks it sent. If the relay crashes between
publishing and marking, it publishes the event again on restart: delivery is *at least once*,
so consumers must be idempotent (see :mod:`labkit.patterns.idempotency`). Never zero times.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class Crash(Exception):
    """The process died here (raised by the experiment at a chosen point)."""


class OrderStore:
    """Orders and their outbox in one SQLite database (sqlite-utils)."""

    def __init__(self, path: str = ":memory:") -> None:
        import sqlite_utils

        self.db = sqlite_utils.Database(sqlite3.connect(path, check_same_thread=False))
        self.db["orders"].create(
            {"id": str, "user_id": str, "total": float}, pk="id", if_not_exists=True
        )
        self.db["outbox"].create(
            {"seq": int, "event_id": str, "subject": str, "payload": str, "sent": int},
            pk="seq",
            if_not_exists=True,
        )

    def save_order(self, order: dict[str, Any]) -> None:
        """The syllabus' first step: the order alone."""
        with self.db.conn:
            self.db["orders"].insert(order)

    def save_order_with_event(self, order: dict[str, Any], event_id: str, subject: str) -> None:
        """The outbox way: the order and its event in one transaction."""
        with self.db.conn:
            self.db["orders"].insert(order)
            self.db["outbox"].insert(
                {"event_id": event_id, "subject": subject, "payload": json.dumps(order), "sent": 0}
            )

    def order_ids(self) -> list[str]:
        return [row["id"] for row in self.db["orders"].rows]

    def pending(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(self.db["outbox"].rows_where("sent = 0", order_by="seq", limit=limit))

    def mark_sent(self, seq: int) -> None:
        with self.db.conn:
            self.db["outbox"].update(seq, {"sent": 1})


class Outbox(Protocol):
    """What the relay needs from an outbox: its pending rows, and a way to mark one sent."""

    def pending(self, limit: int = 100) -> list[dict[str, Any]]: ...

    def mark_sent(self, seq: int) -> None: ...


class OutboxRelay:
    """Publishes pending outbox rows in order, then marks each one sent."""

    def __init__(self, store: Outbox, publish: Callable[..., Awaitable[str]]) -> None:
        self.store = store
        self.publish = publish

    async def run_once(self, *, crash_after_publish: Callable[[int], bool] | None = None) -> int:
        """Relay every pending row; ``crash_after_publish(seq)`` may simulate a crash."""
        sent = 0
        for row in self.store.pending():
            await self.publish(
                row["subject"], json.loads(row["payload"]), message_id=row["event_id"]
            )
            if crash_after_publish is not None and crash_after_publish(row["seq"]):
                raise Crash(f"relay died after publishing outbox row {row['seq']}")
            self.store.mark_sent(row["seq"])
            sent += 1
        return sent
