"""Experiment: orders flow to the inventory service through a queue, while things go wrong.

The order service publishes ``orders.created`` events; the inventory service consumes them
from ``inventory_queue`` and takes the items out of stock (SQLite). Along the way:

* ``poison_share`` of the messages are not JSON at all;
* the consumer crashes every ``crash_every`` messages, right after applying the effect and
  before acknowledging it (the worst moment), and a new consumer takes over;
* ``consumer=syllabus`` is the syllabus' consumer: on a parse error it nacks *with requeue*,
  so a poison message comes straight back, forever; ``max_deliveries`` is the broker-side fix
  (a delivery limit and a dead-letter queue), ``consumer=fixed`` the consumer-side one (reject
  what can never be parsed);
* ``idempotent`` records processed message ids in the same transaction as the stock change,
  so redeliveries after a crash are applied once.

The summary is the standard accounting (published, delivered, acked, redelivered,
dead_lettered, duplicates_suppressed, lost) plus what the stock says about double effects.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from labkit.core.accounting import message_accounting
from labkit.core.params import Param
from labkit.patterns.idempotency import InventoryStore
from labkit.scenarios.base import RunContext
from labkit.transport.brokers import BadMessage, Delivery, QueueSpec, make_broker

TITLE = "Message queue: orders to inventory"
BACKENDS = ("memory", "nats", "rabbitmq")
PRODUCTS = [f"p-{i}" for i in range(1, 13)]

PARAMS = [
    Param("messages", 200, "orders published", minimum=1, maximum=20000),
    Param("poison_share", 0.05, "share of messages that are not JSON", minimum=0, maximum=1),
    Param(
        "crash_every",
        0,
        "the consumer crashes every N messages (0: never)",
        minimum=0,
        maximum=100000,
    ),
    Param(
        "consumer",
        "fixed",
        "syllabus: requeue what cannot be parsed; fixed: reject it",
        choices=("syllabus", "fixed"),
    ),
    Param(
        "max_deliveries",
        5,
        "delivery limit before dead-lettering (0: no limit)",
        minimum=0,
        maximum=1000,
    ),
    Param(
        "loop_cap",
        50,
        "stop the run when one message has been delivered this often",
        minimum=2,
        maximum=10000,
    ),
    Param("idempotent", True, "record processed ids in the effect's transaction"),
    Param("consumers", 1, "competing consumers", minimum=1, maximum=50),
    Param("prefetch", 1, "unacknowledged deliveries per consumer", minimum=1, maximum=1000),
    Param("processing_ms", 5.0, "time to process one message", minimum=0, unit="ms"),
    Param("publish_per_s", 0.0, "publish rate (0: all at once, a spike)", minimum=0),
]


def order_body(n: int, rng: random.Random) -> dict[str, Any]:
    items = [
        {"product_id": rng.choice(PRODUCTS), "quantity": rng.randint(1, 3)}
        for _ in range(rng.randint(1, 3))
    ]
    return {"order_id": f"o-{n:05d}", "user_id": "u-1", "items": items}


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    rng = random.Random(ctx.seed)
    store = InventoryStore({pid: 1_000_000 for pid in PRODUCTS})
    queue = "inventory_queue"
    spec = QueueSpec(queue, ("orders.created",), max_deliveries=p["max_deliveries"] or None)
    expected_effect = 0
    poison_ids: set[str] = set()
    done = asyncio.Event()
    state = {"handled": 0, "loop_peak": 0, "crashes": 0, "stopped_loop": False}
    settled: set[str] = set()
    total = p["messages"]
    namespace = ctx.broker_namespace("mq")
    async with make_broker(ctx.backend, timeline=tl, namespace=namespace) as broker:
        await broker.declare(spec)
        consumers: list[Any] = []
        restarts: list[asyncio.Future[None]] = []

        def finished() -> None:
            if len(settled) >= total:
                done.set()

        async def handle(d: Delivery) -> None:
            if state["stopped_loop"]:  # the run is over: hand everything back untouched
                await d.nack(requeue=True)
                return
            state["loop_peak"] = max(state["loop_peak"], d.delivery_count)
            if d.delivery_count >= p["loop_cap"]:
                state["stopped_loop"] = True
                await d.nack(requeue=True)  # leave it where it was: stuck, not lost
                done.set()
                return
            if p["processing_ms"]:
                await asyncio.sleep(p["processing_ms"] / 1000)
            try:
                order = d.message.json()
            except BadMessage:
                if p["consumer"] == "syllabus":
                    await d.nack(requeue=True)  # the syllabus: back in the queue, forever
                else:
                    await d.reject("rejected")
                    settled.add(d.message.id)
                    finished()
                return
            applied = store.apply(d.message.id, order["items"], idempotent=p["idempotent"])
            if not applied:
                tl.record("inventory", "effect.duplicate_suppressed", id=d.message.id)
            state["handled"] += 1
            if p["crash_every"] and state["handled"] % p["crash_every"] == 0:
                state["crashes"] += 1
                restarts.append(asyncio.ensure_future(crash_and_restart(d)))
                return  # effect applied, never acknowledged: the worst moment to die
            await d.ack()
            settled.add(d.message.id)
            finished()

        async def crash_and_restart(d: Delivery) -> None:
            victim = next((c for c in consumers if c.owns(d)), None)
            if victim is not None:
                consumers.remove(victim)
                await victim.consumer.stop(crash=True)
            consumers.append(await _Tracked.start(broker, queue, handle, p["prefetch"]))

        for _ in range(p["consumers"]):
            consumers.append(await _Tracked.start(broker, queue, handle, p["prefetch"]))
        for n in range(total):
            if rng.random() < p["poison_share"]:
                body: Any = f"<order {n} corrupted>".encode()
            else:
                body = order_body(n, rng)
                expected_effect += sum(i["quantity"] for i in body["items"])
            mid = await broker.publish("orders.created", body)
            if isinstance(body, bytes):
                poison_ids.add(mid)
            if p["publish_per_s"]:
                await asyncio.sleep(1 / p["publish_per_s"])
        await _watch_dead_letters(broker, queue, settled, finished, done)
        depth = await broker.depth(queue)
        for tracked in consumers:
            await tracked.consumer.stop()  # a clean shutdown: in-flight work finishes first
        letters = await broker.dead_letters(queue)
        depth = await broker.depth(queue)
    taken = 1_000_000 * len(PRODUCTS) - store.total_stock()
    return {
        **message_accounting(tl, still_queued=depth),
        "consumer": p["consumer"],
        "poison_published": len(poison_ids),
        "dead_letter_reasons": _reasons(letters),
        "poison_in_dlq": sum(1 for letter in letters if letter.message.id in poison_ids),
        "crashes": state["crashes"],
        "highest_delivery_count": state["loop_peak"],
        "stopped_poison_loop": state["stopped_loop"],
        "stock_taken": taken,
        "stock_expected": expected_effect,
        "double_applied_units": taken - expected_effect,
    }


def _reasons(letters: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for letter in letters:
        out[letter.reason] = out.get(letter.reason, 0) + 1
    return dict(sorted(out.items()))


async def _watch_dead_letters(broker, queue, settled, finished, done) -> None:  # type: ignore[no-untyped-def]
    """Wait until every message is acked or dead-lettered (or the poison loop was stopped).

    Dead-lettering by the broker (delivery limit) happens outside the consumer, so the DLQ is
    checked each time the queue goes quiet.
    """
    while not done.is_set():
        try:
            async with asyncio.timeout(1.0):
                await done.wait()
        except TimeoutError:
            for letter in await broker.dead_letters(queue):
                settled.add(letter.message.id)
            finished()


class _Tracked:
    """A consumer plus the deliveries it currently holds (to know whom a crash takes down)."""

    def __init__(self) -> None:
        self.consumer: Any = None
        self.held: set[str] = set()

    def owns(self, d: Delivery) -> bool:
        return d.message.id in self.held

    @classmethod
    async def start(cls, broker, queue, handle, prefetch) -> _Tracked:  # type: ignore[no-untyped-def]
        tracked = cls()

        async def wrapped(d: Delivery) -> None:
            tracked.held.add(d.message.id)
            try:
                await handle(d)
            finally:
                if d.settled:
                    tracked.held.discard(d.message.id)

        tracked.consumer = await broker.consume(queue, wrapped, prefetch=prefetch)
        return tracked
