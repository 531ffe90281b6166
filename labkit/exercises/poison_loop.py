"""Exercise: fix the poison-message loop.

The learner writes ``async def handle(delivery, inventory)``: parse the order, take its items
out of stock with ``inventory.apply(message_id, items, idempotent=True)``, settle the delivery.
The check publishes 20 orders, three of them not JSON, to an in-memory queue *without* a
delivery limit (so only the consumer can stop a loop), runs the handler and reports:

* a message delivered again and again (the syllabus' nack-with-requeue loop);
* poison messages that did not reach the dead-letter queue;
* good orders that were dead-lettered, never acknowledged, or applied twice;
* exceptions the handler raised.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from labkit.core.clock import LoopClock, run_on_fresh_loop
from labkit.core.timeline import Timeline
from labkit.exercises import Report
from labkit.patterns.idempotency import InventoryStore
from labkit.scenarios.message_queue import PRODUCTS, order_body
from labkit.transport.brokers import Delivery, QueueSpec, make_broker

ORDERS = 20
POISON = (4, 11, 17)  # which of the orders are corrupted
LOOP_CAP = 10  # deliveries of one message that prove a loop

Handle = Callable[[Delivery, InventoryStore], Awaitable[None]]


def check(handle: Handle, *, seed: int = 0) -> Report:
    """Run ``handle`` against a queue with poison messages; say what is still wrong."""
    report = Report("Poison-message loop")
    if not inspect.iscoroutinefunction(handle):
        report.problem("handle must be an async function: write `async def handle(...)`.")
        return report
    facts = run_on_fresh_loop(lambda: _run(handle, seed), virtual=True)
    report.facts = facts
    if facts["looping"]:
        report.problem(
            f"a message that is not JSON was delivered {LOOP_CAP} times and would go on for "
            "ever: your handler puts it back in the queue (nack with requeue), but it can never "
            "be parsed. Reject it instead, so it goes to the dead-letter queue."
        )
    missing = facts["poison_seen"] - facts["poison_dead_lettered"]
    if missing > 0 and not facts["looping"]:
        report.problem(
            f"{missing} of the messages that are not JSON did not reach the dead-letter "
            "queue; reject them with delivery.reject(...)."
        )
    if facts["good_dead_lettered"]:
        report.problem(
            f"{facts['good_dead_lettered']} good orders were dead-lettered; only reject what "
            "can never be processed."
        )
    good = ORDERS - len(POISON)
    if facts["good_acked"] < good:
        report.problem(
            f"only {facts['good_acked']} of {good} good orders were acknowledged, so the "
            "queue stalled; call await delivery.ack() once the order is applied."
        )
    elif facts["stock_taken"] != facts["stock_expected"]:
        report.problem(
            f"the stock went down by {facts['stock_taken']} units, expected "
            f"{facts['stock_expected']}: apply each good order exactly once."
        )
    for error, count in facts["errors"].items():
        report.problem(f"your handler raised {error} ({count} times).")
    return report


async def _run(handle: Handle, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    timeline = Timeline(LoopClock())
    inventory = InventoryStore({pid: 1000 for pid in PRODUCTS})
    deliveries: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    poison_ids: set[str] = set()
    stop = asyncio.Event()
    expected = 0

    async with make_broker("memory", timeline=timeline) as broker:
        await broker.declare(QueueSpec("exercise_queue", ("orders.created",)))

        async def wrapped(d: Delivery) -> None:
            deliveries[d.message.id] += 1
            if deliveries[d.message.id] >= LOOP_CAP:
                stop.set()
                await d.reject("loop stopped by the check")
                return
            try:
                await handle(d, inventory)
            except Exception as exc:
                errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                if not d.settled:
                    await d.reject("handler raised")
                return

        consumer = await broker.consume("exercise_queue", wrapped)
        for n in range(ORDERS):
            if n in POISON:
                poison_ids.add(await broker.publish("orders.created", f"<order {n}>".encode()))
            else:
                body = order_body(n, rng)
                expected += sum(i["quantity"] for i in body["items"])
                await broker.publish("orders.created", body)
        for _ in range(600):  # virtual time: at most 60 s of it
            letters = await broker.dead_letters("exercise_queue")
            if stop.is_set() or len(_acks(timeline)) + len(letters) >= ORDERS:
                break
            await asyncio.sleep(0.1)
        await consumer.stop(crash=True)
        letters = await broker.dead_letters("exercise_queue")
    lettered = {letter.message.id for letter in letters}
    return {
        "looping": stop.is_set(),
        "poison_seen": len(poison_ids & set(deliveries)),
        "poison_dead_lettered": len(lettered & poison_ids),
        "good_dead_lettered": len(lettered - poison_ids),
        "good_acked": len(_acks(timeline) - poison_ids),
        "stock_taken": 1000 * len(PRODUCTS) - inventory.total_stock(),
        "stock_expected": expected,
        "highest_delivery_count": max(deliveries.values(), default=0),
        "errors": dict(errors),
    }


def _acks(timeline: Timeline) -> set[str]:
    return {r.fields["id"] for r in timeline.records if r.kind == "message.acked"}
