"""The idempotent consumer: apply each message's effect exactly once, however often it comes.

Brokers deliver *at least once*: after a crash, a timeout or a publisher retry, the same
message arrives again. If the consumer's effect is "take 2 keyboards out of stock", applying it
twice is a bug. The fix: remember the ids of the messages already applied, **in the same
transaction as the effect**. Either both the stock change and the "seen" row are committed, or
neither is; a redelivery then finds the id and is acknowledged without doing anything.

Remembering the id in a separate step (after the effect, or in another database) leaves a
window where a crash applies the effect but forgets the id, and the duplicate slips through.

The store is SQLite: stock per product and a ``processed`` table keyed by message id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any


class InventoryStore:
    """Stock levels and processed message ids, in one SQLite database."""

    def __init__(self, stock: Mapping[str, int], path: str = ":memory:") -> None:
        import sqlite_utils

        self.db = sqlite_utils.Database(sqlite3.connect(path, check_same_thread=False))
        self.db["stock"].insert_all(
            [{"product_id": k, "quantity": v} for k, v in stock.items()],
            pk="product_id",
            replace=True,
        )
        self.db["processed"].create({"message_id": str}, pk="message_id", if_not_exists=True)
        self.applied = 0

    def apply(
        self, message_id: str, items: Iterable[Mapping[str, Any]], *, idempotent: bool
    ) -> bool:
        """Take ``items`` out of stock; False (and nothing changed) when already applied."""
        with self.db.conn:  # one transaction: the effect and the id, or neither
            if idempotent:
                try:
                    self.db.conn.execute("INSERT INTO processed VALUES (?)", (message_id,))
                except sqlite3.IntegrityError:
                    return False
            for item in items:
                self.db.conn.execute(
                    "UPDATE stock SET quantity = quantity - ? WHERE product_id = ?",
                    (int(item["quantity"]), str(item["product_id"])),
                )
        self.applied += 1
        return True

    def quantity(self, product_id: str) -> int:
        return int(self.db["stock"].get(product_id)["quantity"])

    def total_stock(self) -> int:
        row = self.db.conn.execute("SELECT COALESCE(SUM(quantity), 0) FROM stock").fetchone()
        return int(row[0])
