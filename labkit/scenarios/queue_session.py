"""An interactive message queue that keeps its state between clicks.

For the playground and notebooks: publish orders, send a poison message, crash the consumer,
switch the consumer between the syllabus' version (requeue what cannot be parsed) and the fixed
one (reject it), inspect the dead-letter queue and replay it, and watch the accounting after
every step. The memory broker lives on one virtual-time event loop owned by a worker thread,
so its timers and in-flight deliveries survive from one step to the next; each step lets
``settle_s`` of virtual time pass so that the consumer can work.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from labkit.core.accounting import message_accounting
from labkit.core.clock import LoopClock, VirtualTimeLoop
from labkit.core.errors import BadParameter
from labkit.core.result import Result
from labkit.core.timeline import Timeline
from labkit.patterns.idempotency import InventoryStore
from labkit.scenarios.message_queue import PRODUCTS, order_body
from labkit.transport.brokers import BadMessage, DeadLetter, Delivery, QueueSpec
from labkit.transport.brokers.memory import MemoryBroker

T = TypeVar("T")
QUEUE = "inventory_queue"
CONSUMERS = ("syllabus", "fixed", "v2")


class QueueSession:
    """Orders → ``inventory_queue`` → an inventory consumer, one click at a time."""

    def __init__(
        self,
        *,
        max_deliveries: int = 5,
        consumer: str = "syllabus",
        seed: int = 0,
        processing_ms: float = 5.0,
    ) -> None:
        if consumer not in CONSUMERS:
            raise BadParameter("consumer", consumer, f"must be one of {', '.join(CONSUMERS)}")
        if max_deliveries < 0:
            raise BadParameter("max_deliveries", max_deliveries, "must be at least 0")
        self.consumer_kind = consumer
        self.processing_s = processing_ms / 1000
        self.rng = random.Random(seed)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labkit-queue")
        self._loop = self._pool.submit(VirtualTimeLoop).result()
        self._orders = 0
        self.store = InventoryStore({pid: 1000 for pid in PRODUCTS})

        async def setup() -> None:
            self.timeline = Timeline(LoopClock())
            self.broker = MemoryBroker(timeline=self.timeline)
            await self.broker.declare(
                QueueSpec(QUEUE, ("orders.created",), max_deliveries=max_deliveries or None)
            )
            self._consumer = await self.broker.consume(QUEUE, self._handle)

        self._run(setup)

    def _run(self, step: Callable[[], Awaitable[T]], settle_s: float = 0.0) -> T:
        async def wrapped() -> T:
            result = await step()
            if settle_s:
                await asyncio.sleep(settle_s)
            return result

        return self._pool.submit(self._loop.run_until_complete, wrapped()).result()

    async def _handle(self, d: Delivery) -> None:
        if self.processing_s:
            await asyncio.sleep(self.processing_s)
        try:
            order = d.message.json()
            items = (
                order["lines"]
                if self.consumer_kind == "v2" and "lines" in order
                else order["items"]
            )
        except (BadMessage, KeyError, TypeError):
            if self.consumer_kind == "syllabus":
                await d.nack(requeue=True)  # back in the queue, to fail the same way again
            else:
                await d.reject("rejected")  # to the DLQ, to be looked at (and replayed)
            return
        if not self.store.apply(d.message.id, items, idempotent=True):
            self.timeline.record("inventory", "effect.duplicate_suppressed", id=d.message.id)
        await d.ack()

    # -- the buttons -------------------------------------------------------------------------------
    def publish_orders(self, n: int = 10, *, settle_s: float = 1.0) -> list[str]:
        if not 1 <= n <= 10_000:
            raise BadParameter("orders", n, "must lie between 1 and 10000")

        async def step() -> list[str]:
            ids = []
            for _ in range(n):
                self._orders += 1
                ids.append(
                    await self.broker.publish("orders.created", order_body(self._orders, self.rng))
                )
            return ids

        return self._run(step, settle_s)

    def send_poison(self, body: str = "<order corrupted>", *, settle_s: float = 1.0) -> str:
        return self._run(lambda: self.broker.publish("orders.created", body.encode()), settle_s)

    def send_new_format_order(self, *, settle_s: float = 1.0) -> str:
        """An order in a newer format (``lines`` instead of ``items``): valid, but only the
        ``v2`` consumer understands it. Dead-lettered now, it can be replayed after the deploy."""
        self._orders += 1
        order = order_body(self._orders, self.rng)
        order["lines"] = order.pop("items")
        order["schema"] = 2
        return self._run(lambda: self.broker.publish("orders.created", order), settle_s)

    def crash_consumer(self, *, settle_s: float = 1.0) -> None:
        """The consumer dies with whatever it holds; a new one starts at once."""

        async def step() -> None:
            await self._consumer.stop(crash=True)
            self._consumer = await self.broker.consume(QUEUE, self._handle)

        self._run(step, settle_s)

    def use_consumer(self, kind: str, *, settle_s: float = 1.0) -> None:
        """Deploy another consumer: ``syllabus`` (requeues what it cannot process), ``fixed``
        (rejects it to the DLQ) or ``v2`` (fixed, and understands the newer order format)."""
        if kind not in CONSUMERS:
            raise BadParameter("consumer", kind, f"must be one of {', '.join(CONSUMERS)}")

        async def step() -> None:
            self.consumer_kind = kind
            self.timeline.record("operator", "consumer.deployed", version=kind)

        self._run(step, settle_s)

    def replay_dead_letters(self, *, settle_s: float = 1.0) -> int:
        return self._run(lambda: self.broker.replay_dead_letters(QUEUE), settle_s)

    def wait(self, seconds: float) -> None:
        self._run(lambda: asyncio.sleep(0), seconds)

    # -- what to show ------------------------------------------------------------------------------
    def dead_letters(self) -> list[DeadLetter]:
        return self._run(lambda: self.broker.dead_letters(QUEUE))

    def dead_letter_rows(self) -> list[dict[str, Any]]:
        """The DLQ inspector: one row per dead letter, with why it died."""
        return [
            {
                "id": d.message.id,
                "reason": d.reason,
                "deliveries": d.deliveries,
                "died_at_s": round(d.at, 3),
                "body": d.message.body[:60].decode("utf-8", "replace"),
            }
            for d in self.dead_letters()
        ]

    def depth(self) -> int:
        return self._run(lambda: self.broker.depth(QUEUE))

    def summary(self) -> dict[str, Any]:
        in_flight = self.broker.in_flight(QUEUE)
        letters = self.dead_letters()
        return {
            **message_accounting(self.timeline, still_queued=self.depth() + in_flight),
            "consumer": self.consumer_kind,
            "dead_letter_reasons": {
                r: sum(1 for d in letters if d.reason == r)
                for r in sorted({d.reason for d in letters})
            },
            "highest_delivery_count": max(
                (r.fields["delivery"] for r in self.timeline.of_kind("message.delivered")),
                default=0,
            ),
        }

    def result(self) -> Result:
        return Result(
            "message_queue",
            {"consumer": self.consumer_kind},
            0,
            "memory",
            self.summary(),
            self.timeline,
        )

    def close(self) -> None:
        self._run(self.broker.close)
        self._pool.submit(self._loop.close).result()
        self._pool.shutdown()
