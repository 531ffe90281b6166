"""Experiment: the dual write. Save an order, publish its event, and crash in between.

For each of ``orders`` orders the order service saves the order and publishes
``orders.created``. With probability ``crash_share`` the process dies right after saving.

* ``mode=dual_write`` (the syllabus): the order is saved, the event is never published: the
  inventory service never hears of it. The summary counts these **missing events**.
* ``mode=outbox``: the order and the event are written in one transaction; a relay publishes
  the outbox. The relay too may crash (``relay_crash_share``) right after publishing and before
  marking the row sent: on restart it publishes the event again. An idempotent consumer applies
  it once. Missing events: always zero.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from labkit.core.accounting import message_accounting
from labkit.core.params import Param
from labkit.patterns.idempotency import InventoryStore
from labkit.patterns.outbox import Crash, OrderStore, OutboxRelay
from labkit.scenarios.base import RunContext
from labkit.transport.brokers import Delivery, QueueSpec, make_broker

TITLE = "Transactional outbox vs the dual write"
BACKENDS = ("memory", "nats", "rabbitmq")

PARAMS = [
    Param(
        "mode",
        "outbox",
        "dual_write (save, then publish) or outbox",
        choices=("dual_write", "outbox"),
    ),
    Param("orders", 100, "orders created", minimum=1, maximum=10000),
    Param(
        "crash_share",
        0.1,
        "share of orders after which the service dies before publishing",
        minimum=0,
        maximum=1,
    ),
    Param(
        "relay_crash_share",
        0.1,
        "outbox: share of rows after which the relay dies before marking them sent",
        minimum=0,
        maximum=1,
    ),
    Param("idempotent", True, "the consumer remembers the event ids it applied"),
]


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    rng = random.Random(ctx.seed)
    store = OrderStore()
    inventory = InventoryStore({"p-1": 1_000_000})
    applied: set[str] = set()
    settled = asyncio.Event()
    received: list[str] = []
    crashes = {"service": 0, "relay": 0}
    namespace = ctx.broker_namespace("ob")
    async with make_broker(ctx.backend, timeline=tl, namespace=namespace) as broker:
        await broker.declare(QueueSpec("inventory_queue", ("orders.created",)))

        async def consume(d: Delivery) -> None:
            event = d.message.json()
            received.append(d.message.id)
            if inventory.apply(
                d.message.id, [{"product_id": "p-1", "quantity": 1}], idempotent=p["idempotent"]
            ):
                applied.add(event["id"])
            else:
                tl.record("inventory", "effect.duplicate_suppressed", id=d.message.id)
            await d.ack()
            if len(received) >= expected[0]:
                settled.set()

        expected = [0]
        await broker.consume("inventory_queue", consume)
        relay = OutboxRelay(store, broker.publish)
        for n in range(p["orders"]):
            order = {"id": f"o-{n:05d}", "user_id": "u-1", "total": 10.0}
            event_id = f"evt-{n:05d}"
            crash_now = rng.random() < p["crash_share"]
            if p["mode"] == "dual_write":
                store.save_order(order)
                if crash_now:
                    crashes["service"] += 1
                    tl.record(
                        "order-service",
                        "service.crashed",
                        order=order["id"],
                        between="save and publish",
                    )
                    continue
                await broker.publish("orders.created", order, message_id=event_id)
                expected[0] += 1
            else:
                store.save_order_with_event(order, event_id, "orders.created")
                if crash_now:
                    crashes["service"] += 1
                    tl.record(
                        "order-service",
                        "service.crashed",
                        order=order["id"],
                        between="commit and relay",
                    )
        if p["mode"] == "outbox":
            expected[0] = await _relay_until_empty(relay, rng, p["relay_crash_share"], crashes, tl)
        if expected[0]:
            async with asyncio.timeout(60):
                await settled.wait()
        depth = await broker.depth("inventory_queue")
    saved = store.order_ids()
    missing = [oid for oid in saved if oid not in applied]
    return {
        **message_accounting(tl, still_queued=depth),
        "mode": p["mode"],
        "orders_saved": len(saved),
        "service_crashes": crashes["service"],
        "relay_crashes": crashes["relay"],
        "events_missing": len(missing),
        "stock_taken": 1_000_000 - inventory.quantity("p-1"),
    }


async def _relay_until_empty(relay, rng, crash_share, crashes, tl) -> int:  # type: ignore[no-untyped-def]
    """Run the relay until the outbox is empty, restarting it after each crash."""
    published = 0

    def dies(seq: int) -> bool:
        return rng.random() < crash_share

    while relay.store.pending(limit=1):
        before = len(tl.of_kind("message.published"))
        try:
            await relay.run_once(crash_after_publish=dies)
        except Crash as exc:
            crashes["relay"] += 1
            tl.record("relay", "relay.crashed", detail=str(exc))
        published += len(tl.of_kind("message.published")) - before
    return published
