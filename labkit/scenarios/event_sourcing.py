"""Experiment: event-sourced orders written by concurrent writers, replayed and time-travelled.

``orders`` orders are created; then ``writers`` writers add ``items_per_order`` items to them
concurrently. Each writer loads an order, thinks for about ``think_ms``, and appends expecting
the version it loaded: when another writer got there first, the store refuses
(``event.conflict``) and the writer reloads and tries again. Finally every order is paid by
writer 0 and shipped by the last writer, whose clock runs ``clock_skew_ms`` behind.

``legacy_share`` of the items are written in last year's shape (``OrderItemAdded`` v1, a
``price`` and no currency); they are upcast when read. ``snapshot_every`` takes snapshots.

The summary checks replay against live state, and rebuilds every order with the chosen
``ordering``: by ``version`` (what the store guarantees) or by ``created_at`` (the syllabus'
query), counting the orders that come out wrong.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from typing import Any

from labkit.core.params import Param
from labkit.patterns.event_sourcing import ITEM_ADDED, OrderRepository, order_by_created_at, rebuild
from labkit.patterns.event_store import EventStore, NewEvent, WrongExpectedVersion
from labkit.patterns.order_commands import OrderService
from labkit.scenarios.base import RunContext

TITLE = "Event sourcing: replay, time travel, concurrent writers"
BACKENDS = ("memory",)

PARAMS = [
    Param("orders", 10, "orders created", minimum=1, maximum=500),
    Param("items_per_order", 4, "items added to each order", minimum=0, maximum=50),
    Param("writers", 2, "writers adding items at the same time", minimum=1, maximum=8),
    Param(
        "think_ms",
        5.0,
        "time a writer spends between loading and appending",
        minimum=0,
        maximum=1000,
        unit="ms",
    ),
    Param(
        "ordering",
        "version",
        "how a stream is read back: by version, or by created_at like the syllabus",
        choices=("version", "created_at"),
    ),
    Param(
        "clock_skew_ms",
        20.0,
        "how far the last writer's clock runs behind",
        minimum=0,
        maximum=10000,
        unit="ms",
    ),
    Param(
        "snapshot_every",
        0,
        "take a snapshot every N events of an order (0: never)",
        minimum=0,
        maximum=1000,
    ),
    Param("legacy_share", 0.2, "share of items stored in the old v1 shape", minimum=0, maximum=1),
]

_skew: contextvars.ContextVar[float] = contextvars.ContextVar("skew", default=0.0)


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    rng = random.Random(ctx.seed)
    store = EventStore(timeline=tl, clock=lambda: tl.clock.now() - _skew.get())
    repo = OrderRepository(store, snapshot_every=p["snapshot_every"])
    svc = OrderService(repo)
    ids = [f"o{n:03d}" for n in range(p["orders"])]
    for n, oid in enumerate(ids):
        svc.create_order(f"u{n % 5}", oid)
        await asyncio.sleep(0.001)

    work: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    jobs = [(oid, i) for oid in ids for i in range(p["items_per_order"])]
    rng.shuffle(jobs)
    for job in jobs:
        work.put_nowait(job)
    stats = {"conflicts": 0, "legacy": 0}

    async def writer(w: int) -> None:
        while not work.empty():
            oid, i = work.get_nowait()
            qty, price = rng.randint(1, 4), rng.choice([2.5, 9.99, 20.0, 45.0])
            legacy = rng.random() < p["legacy_share"]
            while True:
                order = repo.load(oid)
                await asyncio.sleep(
                    rng.expovariate(1 / p["think_ms"]) / 1000 if p["think_ms"] else 0
                )
                try:
                    if legacy:
                        data = {"product_id": f"p{i}", "quantity": qty, "price": price}
                        repo.save(
                            order, [NewEvent(ITEM_ADDED, data, schema=1)], expected=order.version
                        )
                    else:
                        svc.add_item(oid, f"p{i}", qty, price, expected=order.version)
                    break
                except WrongExpectedVersion:
                    stats["conflicts"] += 1
                    tl.record(f"writer-{w}", "command.retried", order=oid)
            stats["legacy"] += legacy

    await asyncio.gather(*(writer(w) for w in range(p["writers"])))

    async def set_status(oid: str, status: str, skew_ms: float) -> None:
        _skew.set(skew_ms / 1000)
        svc.change_status(oid, status)

    for oid in ids:
        await asyncio.sleep(0.002)
        await asyncio.create_task(set_status(oid, "paid", 0.0))
        await asyncio.sleep(0.002)
        await asyncio.create_task(set_status(oid, "shipped", p["clock_skew_ms"]))

    live = {oid: repo.load(oid) for oid in ids}
    replay_ok = all(repo.replay(oid) == live[oid] for oid in ids)
    wrong = []
    for oid in ids:
        history = repo.history(oid)
        read = order_by_created_at(history) if p["ordering"] == "created_at" else history
        if rebuild(read) != live[oid]:
            wrong.append(oid)
            tl.record("reader", "order.misread", order=oid, ordering=p["ordering"])
    travel_ok = all(
        repo.load(oid, at_version=k) == rebuild(repo.history(oid)[:k])
        for oid in ids[:5]
        for k in range(1, live[oid].version + 1)
    )
    ctx.extras.update(store=store, repo=repo, service=svc)
    return {
        "orders": len(ids),
        "events": store.head(),
        "conflicts": stats["conflicts"],
        "conflicts_raised_by_store": store.conflicts,
        "legacy_v1_events": stats["legacy"],
        "snapshots": len(tl.of_kind("snapshot.taken")),
        "replay_equals_live": replay_ok,
        "time_travel_ok": travel_ok,
        "ordering": p["ordering"],
        "orders_misread": len(wrong),
        "misread_example": wrong[0] if wrong else None,
        "status_counts": _count(o.status for o in live.values()),
        "revenue": round(sum(o.total for o in live.values()), 2),
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))
