"""CQRS: the write side appends events; the read side keeps tables shaped for the questions.

Replaying an order's events answers "what is order 42?", but not "what are user 7's orders,
with totals?" without replaying everything. CQRS splits the two: commands go to the event store
(:class:`~labkit.patterns.order_commands.OrderService`); queries go to **read models**,
ordinary SQLite tables kept up to date by a **projection** that follows the log:

* ``order_view``: one row per order with status, item count and running total;
* ``order_items``: one row per product and price in an order, with quantity and subtotal;
* ``orders_by_user``: what a "my orders" page needs, keyed by user.

The projection is a **catch-up subscription**: it reads the log after its *checkpoint* (the last
position it applied), applies a batch, and stores the new checkpoint **in the same transaction
as the batch**. A crash in the middle of a batch rolls back both, so on restart the batch is
applied again, once. (Storing the checkpoint separately would apply some events twice or skip
some.) Because the projection runs after the command, a query right after a command may see
the old data: that delay is the *projection lag*, and it is what "eventual consistency" means.

Fed by messages instead of the log (see :mod:`labkit.patterns.cqrs_bus`), the projection may
see an event twice (a redelivery, an outbox relay that published again after a crash). So it
is **idempotent**: it notes each applied event's id in ``projected_events``, again in the same
transaction, and skips an id it has seen. The checkpoint is then the highest position applied.

A read model is disposable: :meth:`OrderProjection.rebuild` drops it and replays the log from
position 0, and the result equals the incrementally built one row for row.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from labkit.core.errors import LabError
from labkit.patterns.event_sourcing import CREATED, ITEM_ADDED, STATUS_CHANGED
from labkit.patterns.event_store import EventStore, StoredEvent

if TYPE_CHECKING:
    from labkit.core.timeline import Timeline


class ProjectionCrash(LabError):
    """The projection process died in the middle of a batch (raised on purpose)."""


_TABLES = ("order_view", "order_items", "orders_by_user")


class OrderProjection:
    """The order read models and their checkpoint, in one SQLite database."""

    def __init__(
        self,
        path: str = ":memory:",
        *,
        name: str = "orders",
        timeline: Timeline | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import sqlite_utils

        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db = sqlite_utils.Database(conn)
        self.conn = conn
        self.name = name
        self.timeline = timeline
        self.clock = clock
        self.crashes = 0
        self.duplicates = 0
        self._lock = threading.RLock()
        self._create()

    def _create(self) -> None:
        self.db["order_view"].create(
            {
                "order_id": str,
                "user_id": str,
                "status": str,
                "items": int,
                "total": float,
                "version": int,
                "position": int,
            },
            pk="order_id",
            if_not_exists=True,
        )
        self.db["order_items"].create(
            {
                "order_id": str,
                "product_id": str,
                "unit_price": float,
                "currency": str,
                "quantity": int,
                "subtotal": float,
            },
            pk=("order_id", "product_id", "unit_price", "currency"),
            if_not_exists=True,
        )
        self.db["orders_by_user"].create(
            {"user_id": str, "order_id": str, "status": str, "total": float},
            pk=("user_id", "order_id"),
            if_not_exists=True,
        )
        self.db["checkpoints"].create({"name": str, "position": int}, pk="name", if_not_exists=True)
        self.db["projected_events"].create(
            {"event_id": str, "position": int}, pk="event_id", if_not_exists=True
        )

    # -- the subscription ------------------------------------------------------------------

    @property
    def checkpoint(self) -> int:
        """The log position of the last event applied (0 before the first)."""
        with self._lock:
            row = self.conn.execute(
                "SELECT position FROM checkpoints WHERE name = ?", (self.name,)
            ).fetchone()
        return int(row[0]) if row else 0

    def apply_batch(self, events: Sequence[StoredEvent], *, crash_after: int | None = None) -> int:
        """Apply ``events`` and move the checkpoint, in one transaction; return how many applied.

        An event whose id was applied before is skipped (a duplicate delivery) and recorded as
        ``effect.duplicate_suppressed``. ``crash_after=k`` simulates the process dying after k
        events of the batch: the transaction rolls back, the checkpoint stays, and
        :class:`ProjectionCrash` is raised.
        """
        if not events:
            return 0
        skipped: list[StoredEvent] = []
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                for i, e in enumerate(events):
                    if crash_after is not None and i == crash_after:
                        raise ProjectionCrash(
                            f"projection died after {i} of {len(events)} events of a batch"
                        )
                    seen = self.conn.execute(
                        "SELECT 1 FROM projected_events WHERE event_id = ?", (e.id,)
                    ).fetchone()
                    if seen:
                        skipped.append(e)
                        continue
                    self._apply(e)
                    self.conn.execute(
                        "INSERT INTO projected_events (event_id, position) VALUES (?, ?)",
                        (e.id, e.position),
                    )
                self.conn.execute(
                    "INSERT INTO checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name)"
                    " DO UPDATE SET position = MAX(position, excluded.position)",
                    (self.name, max(e.position for e in events)),
                )
                self.conn.execute("COMMIT")
            except BaseException as exc:
                self.conn.execute("ROLLBACK")
                if isinstance(exc, ProjectionCrash):
                    self.crashes += 1
                    self._record("projection.crashed", at=events[0].position, detail=str(exc))
                raise
        self.duplicates += len(skipped)
        for e in skipped:
            self._record("effect.duplicate_suppressed", id=e.id, position=e.position)
        self._record(
            "projection.applied",
            events=len(events) - len(skipped),
            first=events[0].position,
            checkpoint=self.checkpoint,
        )
        return len(events) - len(skipped)

    def catch_up(
        self, store: EventStore, *, batch_size: int = 100, crash_after: int | None = None
    ) -> int:
        """Apply every event after the checkpoint, ``batch_size`` at a time; return how many.

        ``crash_after`` crashes the first batch (see :meth:`apply_batch`).
        """
        applied = 0
        while True:
            batch = store.read_all(after=self.checkpoint, limit=batch_size)
            if not batch:
                return applied
            applied += self.apply_batch(batch, crash_after=crash_after)
            crash_after = None

    def lag(self, store: EventStore) -> int:
        """How many events of the log the read model has not applied yet."""
        return store.head() - self.checkpoint

    def rebuild(self, store: EventStore, *, batch_size: int = 500) -> int:
        """Drop the read models and the checkpoint, then replay the whole log."""
        with self._lock:
            for table in (*_TABLES, "checkpoints", "projected_events"):
                self.db[table].drop(ignore=True)
            self._create()
        self._record("projection.rebuilt")
        return self.catch_up(store, batch_size=batch_size)

    # -- applying one event ----------------------------------------------------------------

    def _apply(self, e: StoredEvent) -> None:
        c, oid = self.conn, e.data.get("order_id") or e.stream.removeprefix("order-")
        if e.type == CREATED:
            c.execute(
                "INSERT INTO order_view VALUES (?, ?, 'created', 0, 0.0, ?, ?)",
                (oid, e.data["user_id"], e.version, e.position),
            )
            c.execute(
                "INSERT INTO orders_by_user VALUES (?, ?, 'created', 0.0)",
                (e.data["user_id"], oid),
            )
            return
        if e.type == ITEM_ADDED:
            d = e.data
            subtotal = round(d["quantity"] * d["unit_price"], 2)
            c.execute(
                "INSERT INTO order_items VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (order_id, product_id, unit_price, currency) DO UPDATE SET"
                " quantity = quantity + excluded.quantity,"
                " subtotal = ROUND(subtotal + excluded.subtotal, 2)",
                (oid, d["product_id"], d["unit_price"], d["currency"], d["quantity"], subtotal),
            )
            c.execute(
                "UPDATE order_view SET total = ROUND(total + ?, 2), version = ?, position = ?,"
                " items = (SELECT COUNT(*) FROM order_items WHERE order_id = ?)"
                " WHERE order_id = ?",
                (subtotal, e.version, e.position, oid, oid),
            )
        elif e.type == STATUS_CHANGED:
            c.execute(
                "UPDATE order_view SET status = ?, version = ?, position = ? WHERE order_id = ?",
                (e.data["status"], e.version, e.position, oid),
            )
        c.execute(
            "UPDATE orders_by_user SET"
            " status = (SELECT status FROM order_view WHERE order_id = ?),"
            " total = (SELECT total FROM order_view WHERE order_id = ?) WHERE order_id = ?",
            (oid, oid, oid),
        )

    # -- queries ---------------------------------------------------------------------------

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        """The order as the read side sees it, with its item lines (None if not there yet)."""
        with self._lock:
            rows = list(self.db.query("SELECT * FROM order_view WHERE order_id = ?", [order_id]))
            if not rows:
                return None
            items = list(
                self.db.query(
                    "SELECT * FROM order_items WHERE order_id = ? ORDER BY product_id, unit_price",
                    [order_id],
                )
            )
        return {**rows[0], "lines": items}

    def orders_by_user(self, user_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(
                self.db.query(
                    "SELECT * FROM orders_by_user WHERE user_id = ? ORDER BY order_id", [user_id]
                )
            )

    def table(self, name: str) -> list[dict[str, Any]]:
        """Every row of one read-model table, in primary-key order."""
        if name not in _TABLES:
            raise LabError(f"unknown read model {name!r} (choose one of {', '.join(_TABLES)})")
        order = {
            "order_view": "order_id",
            "order_items": "order_id, product_id, unit_price, currency",
        }
        with self._lock:
            return list(
                self.db.query(
                    f"SELECT * FROM {name} ORDER BY {order.get(name, 'user_id, order_id')}"
                )
            )

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """All read models, row by row: two dumps are equal iff the read models are."""
        return {name: self.table(name) for name in _TABLES}

    def close(self) -> None:
        self.conn.close()

    def _record(self, kind: str, **fields: Any) -> None:
        if self.timeline is not None:
            self.timeline.record("projection", kind, **fields)
