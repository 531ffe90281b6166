"""Experiment: commands on the write side, queries on a read model that catches up later.

A stream of ``commands`` (create an order, add an item, change its status; a share of them
malformed) reaches the command side, which validates and appends events. Right after each
command the client reads the order back from the read model: if the projection has not caught
up yet, the read is **stale**. The projection runs every ``projection_lag_ms``.

The events travel through the lab's broker (``memory``, ``nats`` or ``rabbitmq``): one message
per event on ``orders.<event type>``, the event id as message id, into the durable queue
``order_projection``. The projection consumes it and acks a message only once its event is
applied (idempotently, by event id, in the transaction that moves the checkpoint).

``publish_failure_share`` of the publishes never reach the broker (a network blip), and
``fix`` says what the lab does about it:

* ``none`` (the syllabus): the command service logs the failed publish and carries on. The
  read model never hears of that event: it diverges from the write side for good, and the
  summary counts the orders it is missing.
* ``project_from_store``: the messages are only nudges; the projection reads the events from
  the store after its checkpoint (a catch-up subscription). A lost message costs nothing.
* ``outbox``: each event and an outbox row are committed in one SQLite transaction; a relay
  publishes the outbox and retries what failed. A relay that dies after publishing and before
  marking the row sent (``relay_crash_share``) publishes it again: the idempotent projection
  applies it once (``duplicates_suppressed``).

``crash_at`` kills the projection once in the middle of the batch holding that log position;
it restarts from its checkpoint and the broker delivers the unacked messages again. The
summary compares the read model with one rebuilt from the log, row for row.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from labkit.core.accounting import message_accounting
from labkit.core.errors import LabError
from labkit.core.params import Param
from labkit.core.stats import latency_summary
from labkit.patterns.cqrs import OrderProjection
from labkit.patterns.cqrs_bus import (
    BusProjector,
    EventOutbox,
    FlakyPublish,
    event_body,
    subject_for,
)
from labkit.patterns.event_sourcing import TRANSITIONS, OrderRepository
from labkit.patterns.event_store import EventStore
from labkit.patterns.order_commands import OrderService
from labkit.patterns.outbox import Crash, OutboxRelay
from labkit.scenarios.base import RunContext
from labkit.transport.brokers import BrokerUnavailable, QueueSpec, make_broker

TITLE = "CQRS: read models, projection lag and the lost publish"
BACKENDS = ("memory", "nats", "rabbitmq")
FIXES = ("none", "project_from_store", "outbox")
QUEUE = "order_projection"
#: messages the projection may hold unacked between two runs (the consumer's prefetch)
PREFETCH = 500
#: how long a run on a real broker may take to settle before it is called stuck
SETTLE_TIMEOUT_S = 60.0

PARAMS = [
    Param("commands", 200, "commands sent to the write side", minimum=1, maximum=20000),
    Param(
        "command_interval_ms",
        10.0,
        "mean time between two commands",
        minimum=0.1,
        maximum=10000,
        unit="ms",
    ),
    Param(
        "projection_lag_ms",
        50.0,
        "the projection runs this often",
        minimum=1,
        maximum=60000,
        unit="ms",
    ),
    Param(
        "fix",
        "project_from_store",
        "none: the syllabus (a failed publish is logged and lost); project_from_store: "
        "the projection reads the store, messages only nudge it; outbox: event and outbox "
        "row in one transaction, a relay publishes",
        choices=FIXES,
    ),
    Param(
        "publish_failure_share",
        0.0,
        "share of publishes that never reach the broker (a network blip)",
        minimum=0,
        maximum=1,
    ),
    Param(
        "relay_crash_share",
        0.0,
        "outbox: share of rows after which the relay dies before marking them sent",
        minimum=0,
        maximum=1,
    ),
    Param(
        "read_after_ms",
        0.0,
        "the client reads the order back this long after its command",
        minimum=0,
        maximum=60000,
        unit="ms",
    ),
    Param("bad_command_share", 0.05, "share of commands that are malformed", minimum=0, maximum=1),
    Param(
        "batch_size", 20, "events the projection applies per transaction", minimum=1, maximum=10000
    ),
    Param(
        "crash_at",
        0,
        "the projection dies once mid-batch at this log position (0: never)",
        minimum=0,
        maximum=1000000,
    ),
]

_PRICES = (2.5, 9.99, 20.0, 45.0)
#: the relay retries a pending row this long after a failed publish
RELAY_RETRY_MS = 10.0
#: rounds the relay gets after the last command to empty the outbox before it gives up
_RELAY_ROUNDS = 200


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    fix = p["fix"]
    rng = random.Random(ctx.seed)
    net_rng = random.Random(ctx.seed + 1)  # the network's dice, apart from the commands'
    store = EventStore(timeline=tl, clock=tl.clock.now)
    svc = OrderService(OrderRepository(store))
    outbox = EventOutbox(store) if fix == "outbox" else None
    projection = OrderProjection(timeline=tl)
    projector = BusProjector(
        projection,
        batch_size=p["batch_size"],
        store=store,
        from_store=fix == "project_from_store",
        timeline=tl,
    )
    state: dict[str, Any] = {"done": False, "commands_done": False, "crash_at": p["crash_at"]}
    counts = {"accepted": 0, "rejected": 0, "stale": 0, "fresh": 0, "relay_crashes": 0}
    orders: list[str] = []
    namespace = ctx.broker_namespace("cq")

    async with make_broker(ctx.backend, timeline=tl, namespace=namespace) as broker:
        # held messages wait up to one projection interval for their ack: give them room
        ack_wait_s = max(30.0, 3 * p["projection_lag_ms"] / 1000)
        await broker.declare(QueueSpec(QUEUE, (subject_for("*"),), ack_wait_s=ack_wait_s))
        consumer = await broker.consume(QUEUE, projector.on_delivery, prefetch=PREFETCH)
        link = FlakyPublish(broker.publish, p["publish_failure_share"], net_rng)
        relay = OutboxRelay(outbox, link) if outbox is not None else None

        def settled() -> bool:
            if projector.acked < link.sent:
                return False
            return not (fix == "project_from_store" and projection.lag(store))

        async def project() -> None:
            if await projector.run_once(crash_at=state["crash_at"]):
                state["crash_at"] = 0  # once; the next run restarts from the checkpoint
            tl.record(
                "projection",
                "projection.polled",
                head=store.head(),
                checkpoint=projection.checkpoint,
                lag_events=projection.lag(store),
            )

        async def projector_loop() -> None:
            while True:
                await asyncio.sleep(p["projection_lag_ms"] / 1000)
                await project()
                if state["done"] and settled():
                    return

        async def read_back(oid: str, version: int) -> None:
            """The client's query after its command: stale if the projection is behind."""
            if p["read_after_ms"]:
                await asyncio.sleep(p["read_after_ms"] / 1000)
            seen = projection.get_order(oid)
            read_version = seen["version"] if seen else 0
            fresh = read_version >= version
            counts["fresh" if fresh else "stale"] += 1
            kind = "query.fresh" if fresh else "query.stale"
            tl.record("client", kind, order=oid, write_version=version, read_version=read_version)

        async def run_relay() -> None:
            assert relay is not None
            try:
                await relay.run_once(crash_after_publish=dies)
            except BrokerUnavailable as exc:  # the row stays pending: the next run retries
                tl.record("relay", "outbox.publish_failed", detail=str(exc))
            except Crash as exc:
                counts["relay_crashes"] += 1
                tl.record("relay", "relay.crashed", detail=str(exc))

        def dies(seq: int) -> bool:
            return net_rng.random() < p["relay_crash_share"]

        async def relay_loop() -> None:
            """The relay wakes on each commit, and retries every few ms while rows wait."""
            assert outbox is not None
            rounds_after_done = 0
            while True:
                wake.clear()
                await run_relay()
                if state["commands_done"]:
                    rounds_after_done += 1
                    if not outbox.pending(limit=1) or rounds_after_done > _RELAY_ROUNDS:
                        return
                if outbox.pending(limit=1):
                    await asyncio.sleep(RELAY_RETRY_MS / 1000)
                else:
                    await wake.wait()

        wake = asyncio.Event()
        relay_task = asyncio.create_task(relay_loop()) if relay is not None else None

        reads: list[asyncio.Task[None]] = []
        task = asyncio.create_task(projector_loop())
        for n in range(p["commands"]):
            await asyncio.sleep(rng.expovariate(1000 / p["command_interval_ms"]))
            command = next_command(rng, orders, svc, p["bad_command_share"], n)
            before = store.head()
            try:
                order = svc.handle(command)
            except LabError as exc:
                counts["rejected"] += 1
                tl.record(
                    "command-side", "command.rejected", command=command["type"], error=str(exc)
                )
                assert store.head() == before, "a rejected command appended something"
                continue
            counts["accepted"] += 1
            if command["type"] == "CreateOrder":
                orders.append(order.order_id)
            if relay is not None:
                wake.set()
            else:
                for e in store.read_all(after=before):
                    try:
                        await link(subject_for(e.type), event_body(e), message_id=e.id)
                    except BrokerUnavailable as exc:  # the syllabus: log it and carry on
                        tl.record(
                            "command-side",
                            "publish.failed",
                            position=e.position,
                            type=e.type,
                            error=str(exc),
                        )
            reads.append(asyncio.create_task(read_back(order.order_id, order.version)))
        state["commands_done"] = True
        if relay_task is not None:
            wake.set()
            await relay_task
        await asyncio.gather(*reads)
        state["done"] = True
        async with asyncio.timeout(None if ctx.virtual else SETTLE_TIMEOUT_S):
            await task
        await consumer.stop()
        depth = await broker.depth(QUEUE)

    incremental = projection.dump()
    written = {s.removeprefix("order-") for s in store.streams()}
    missing = sorted(written - {r["order_id"] for r in incremental["order_view"]})
    for oid in missing:
        tl.record("projection", "order.missing", order=oid)
    rebuilt = OrderProjection()
    rebuilt.rebuild(store)
    diverged = _diverged(incremental, rebuilt.dump())
    for oid in diverged:
        tl.record("projection", "order.diverged", order=oid)
    projection.rebuild(store)
    ctx.extras.update(store=store, projection=projection, service=svc)
    queries = counts["fresh"] + counts["stale"]
    accounting = message_accounting(tl, still_queued=depth)
    return {
        "fix": fix,
        "backend": ctx.backend,
        "commands": p["commands"],
        "accepted": counts["accepted"],
        "rejected": counts["rejected"],
        "events": store.head(),
        **accounting,
        "publish_failures": link.failures,
        "relay_crashes": counts["relay_crashes"],
        "outbox_pending": outbox.count(sent=False) if outbox is not None else 0,
        "read_model_missing": len(missing),
        "stale_reads": counts["stale"],
        "stale_read_share": round(counts["stale"] / queries, 3) if queries else 0.0,
        "visible_after_ms": _visibility(tl, lost=fix == "none"),
        "projection_batches": projector.batches,
        "projection_crashes": projection.crashes,
        "diverged_orders": len(diverged),
        "rebuild_equals_incremental": not diverged,
        "diverged_after_rebuild": len(_diverged(projection.dump(), rebuilt.dump())),
    }


def next_command(
    rng: random.Random, orders: list[str], svc: OrderService, bad_share: float, n: int
) -> dict[str, Any]:
    """A plausible next command for the order service (``bad_share`` of them malformed)."""
    if rng.random() < bad_share:
        return rng.choice(
            [
                {
                    "type": "AddItem",
                    "order_id": orders[0] if orders else "o-none",
                    "product_id": "p1",
                    "quantity": -1,
                    "unit_price": 5.0,
                },
                {
                    "type": "AddItem",
                    "order_id": "o-unknown",
                    "product_id": "p1",
                    "quantity": 1,
                    "unit_price": 5.0,
                },
                {"type": "CreateOrder"},
            ]
        )
    if not orders or rng.random() < 0.2:
        return {"type": "CreateOrder", "user_id": f"u{rng.randrange(5)}", "order_id": f"o{n:05d}"}
    oid = rng.choice(orders[-10:])
    status = svc.repo.load(oid).status
    if status == "created" and rng.random() < 0.75:
        return {
            "type": "AddItem",
            "order_id": oid,
            "product_id": f"p{rng.randrange(20)}",
            "quantity": rng.randint(1, 4),
            "unit_price": rng.choice(_PRICES),
        }
    nexts = TRANSITIONS[status]
    if not nexts:
        return {"type": "CreateOrder", "user_id": f"u{rng.randrange(5)}", "order_id": f"o{n:05d}"}
    choice = nexts[0] if len(nexts) == 1 or rng.random() < 0.85 else nexts[-1]
    return {"type": "ChangeStatus", "order_id": oid, "status": choice}


def _diverged(a: dict[str, list[dict[str, Any]]], b: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Order ids whose rows differ between two read-model dumps."""
    out: set[str] = set()
    for table in a:
        left = {_key(r): r for r in a[table]}
        right = {_key(r): r for r in b[table]}
        for k in left.keys() | right.keys():
            if left.get(k) != right.get(k):
                out.add(k[1] if table == "orders_by_user" else k[0])
    return sorted(out)


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    if "subtotal" in row:
        return (row["order_id"], row["product_id"], row["unit_price"], row["currency"])
    if "user_id" in row and "status" in row and "items" not in row:
        return (row["user_id"], row["order_id"])
    return (row["order_id"],)


def _visibility(tl: Any, *, lost: bool) -> dict[str, float]:
    """How long after being appended each event became visible in the read model (ms).

    ``lost``: a failed publish is never retried, so its event is never visible (left out).
    """
    appended = {r.fields["position"]: r.t for r in tl.of_kind("event.appended")}
    for r in tl.of_kind("publish.failed") if lost else ():
        appended.pop(r.fields["position"], None)
    waits = []
    for r in tl.of_kind("projection.applied"):
        for pos in range(r.fields["first"], r.fields["checkpoint"] + 1):
            if pos in appended:
                waits.append((r.t - appended.pop(pos)) * 1000)
    return latency_summary(waits)
