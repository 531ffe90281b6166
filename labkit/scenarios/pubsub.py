"""Experiment: one event, many listeners, and a listener that goes away for a while.

The payment service publishes ``payments.processed``; the order service and the notification
service both listen (fan-out: each gets every event). Between ``offline_from_s`` and
``offline_to_s`` the notification service is offline.

* ``delivery=core``: plain publish-subscribe (core NATS, or a RabbitMQ exclusive queue): what
  is published while a subscriber is away is simply not delivered to it. The summary counts
  what it **missed**.
* ``delivery=durable``: each service has its own durable queue (a JetStream durable consumer,
  a RabbitMQ durable queue): events wait for the notification service and it **catches up**
  when it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from labkit.core.accounting import message_accounting
from labkit.core.params import Param
from labkit.scenarios.base import RunContext
from labkit.transport.brokers import Delivery, Message, QueueSpec, make_broker

TITLE = "Publish-subscribe: fan-out and offline subscribers"
BACKENDS = ("memory", "nats", "rabbitmq")
SUBSCRIBERS = ("order-service", "notification-service")
#: A durable queue's ack wait. A delivery already on its way to a consumer that stops (the
#: notification service going offline) can be lost with that consumer's connection; the broker
#: only hands it out again once its ack wait runs out. Short here, so catching up never waits
#: for JetStream's default 30 s.
ACK_WAIT_S = 2.0

PARAMS = [
    Param(
        "delivery",
        "durable",
        "core pub/sub, or a durable queue per subscriber",
        choices=("core", "durable"),
    ),
    Param("payments", 50, "payment events published", minimum=1, maximum=10000),
    Param("rate_per_s", 10.0, "events per second", minimum=0.1, maximum=10000),
    Param("offline_from_s", 1.0, "notification service goes offline", minimum=0, unit="s"),
    Param("offline_to_s", 3.0, "and comes back", minimum=0, unit="s"),
]


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    clock = tl.clock
    received: dict[str, list[str]] = {name: [] for name in SUBSCRIBERS}
    all_in = asyncio.Event()
    published: list[tuple[float, str]] = []
    total = p["payments"]

    def note(name: str, mid: str) -> None:
        received[name].append(mid)
        tl.record(name, "event.handled", id=mid)
        if all(len(set(v)) >= total for v in received.values()):
            all_in.set()

    namespace = ctx.broker_namespace("ps")
    async with make_broker(ctx.backend, timeline=tl, namespace=namespace) as broker:
        durable = p["delivery"] == "durable"
        attach, detach = await _listeners(broker, durable, note)
        for name in SUBSCRIBERS:
            await attach(name)
        offline = False
        for n in range(total):
            now = clock.now()
            if not offline and p["offline_from_s"] <= now < p["offline_to_s"]:
                offline = True
                await detach("notification-service")
                tl.record("notification-service", "subscriber.offline")
            elif offline and now >= p["offline_to_s"]:
                offline = False
                await attach("notification-service")
                tl.record("notification-service", "subscriber.online")
            mid = await broker.publish(
                "payments.processed", {"payment_id": f"pay-{n:05d}", "status": "succeeded"}
            )
            published.append((now, mid))
            await asyncio.sleep(1 / p["rate_per_s"])
        if offline:
            await attach("notification-service")
            tl.record("notification-service", "subscriber.online")
        try:
            # core: what was missed never comes; durable: give lost deliveries their ack wait
            async with asyncio.timeout(5.0 + (3 * ACK_WAIT_S if durable else 0)):
                await all_in.wait()
        except TimeoutError:
            pass
        depth = sum([await broker.depth(_queue(n)) for n in SUBSCRIBERS]) if durable else 0
    while_offline = [m for t, m in published if p["offline_from_s"] <= t < p["offline_to_s"]]
    got = {name: set(v) for name, v in received.items()}
    summary: dict[str, Any] = {
        "delivery": p["delivery"],
        "published": total,
        "received": {name: len(v) for name, v in got.items()},
        "published_while_offline": len(while_offline),
        "missed_by_notification_service": total - len(got["notification-service"]),
        "caught_up_after_return": sum(1 for m in while_offline if m in got["notification-service"]),
    }
    if durable:
        summary["accounting"] = message_accounting(tl, still_queued=depth)
    return summary


def _queue(name: str) -> str:
    return name.replace("-service", "") + "_payments"


async def _listeners(
    broker, durable: bool, note
) -> tuple[Callable[[str], Awaitable[None]], Callable[[str], Awaitable[None]]]:  # type: ignore[no-untyped-def]
    """attach(name) / detach(name) for one subscriber, core or durable."""
    handles: dict[str, Any] = {}
    if durable:
        for name in SUBSCRIBERS:
            spec = QueueSpec(_queue(name), ("payments.processed",), ack_wait_s=ACK_WAIT_S)
            await broker.declare(spec)

    async def attach(name: str) -> None:
        if durable:

            async def on_delivery(d: Delivery) -> None:
                note(name, d.message.id)
                await d.ack()

            handles[name] = await broker.consume(_queue(name), on_delivery, prefetch=10)
        else:

            async def on_message(m: Message) -> None:
                note(name, m.id)

            handles[name] = await broker.subscribe("payments.processed", on_message)

    async def detach(name: str) -> None:
        handle = handles.pop(name)
        await (handle.stop() if durable else handle.unsubscribe())

    return attach, detach
