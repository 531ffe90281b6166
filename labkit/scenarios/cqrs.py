"""Experiment: commands on the write side, queries on a read model that catches up later.

A stream of ``commands`` (create an order, add an item, change its status; a share of them
malformed) reaches the command side, which validates and appends events. Right after each
command the client reads the order back from the read model: if the projection has not caught
up yet, the read is **stale**. The projection runs every ``projection_lag_ms``.

``feed`` says how the read model hears about events:

* ``bus`` (the syllabus): after saving, the command service publishes the events; when a
  publish fails (``publish_failure_share``) it logs the error and carries on. The read model
  never sees those events: it diverges from the write side for good.
* ``store`` (the fix): the projection is a catch-up subscription on the event store itself,
  with its checkpoint stored in the same transaction as each batch. Nothing can be missed.
  (Publishing to other services safely is the outbox's job: ``labkit run outbox``.)

``crash_at`` kills the projection once in the middle of the batch holding that log position;
it restarts from its checkpoint. The summary compares the read model with one rebuilt from the
log, row for row.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from labkit.core.errors import LabError
from labkit.core.params import Param
from labkit.core.stats import latency_summary
from labkit.patterns.cqrs import OrderProjection, ProjectionCrash
from labkit.patterns.event_sourcing import TRANSITIONS, OrderRepository
from labkit.patterns.event_store import EventStore, StoredEvent
from labkit.patterns.order_commands import OrderService
from labkit.scenarios.base import RunContext

TITLE = "CQRS: read models, projection lag and the lost publish"
BACKENDS = ("memory",)

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
        "feed",
        "store",
        "where the read model gets events: the store (catch-up) or a bus "
        "the command service publishes to",
        choices=("store", "bus"),
    ),
    Param(
        "publish_failure_share",
        0.0,
        "bus: share of publishes that fail (logged, ignored)",
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


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    rng = random.Random(ctx.seed)
    store = EventStore(timeline=tl, clock=tl.clock.now)
    svc = OrderService(OrderRepository(store))
    projection = OrderProjection(timeline=tl)
    bus: list[StoredEvent] = []
    state: dict[str, Any] = {"done": False, "crash_at": p["crash_at"], "batches": 0}
    counts = {"accepted": 0, "rejected": 0, "stale": 0, "fresh": 0, "publish_failed": 0}
    orders: list[str] = []

    async def projector() -> None:
        while True:
            await asyncio.sleep(p["projection_lag_ms"] / 1000)
            _project_once(store, projection, bus, p, state)
            tl.record(
                "projection",
                "projection.polled",
                head=store.head(),
                checkpoint=projection.checkpoint,
                lag_events=projection.lag(store),
            )
            if state["done"] and (not bus if p["feed"] == "bus" else projection.lag(store) == 0):
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

    reads: list[asyncio.Task[None]] = []
    task = asyncio.create_task(projector())
    for n in range(p["commands"]):
        await asyncio.sleep(rng.expovariate(1000 / p["command_interval_ms"]))
        command = next_command(rng, orders, svc, p["bad_command_share"], n)
        before = store.head()
        try:
            order = svc.handle(command)
        except LabError as exc:
            counts["rejected"] += 1
            tl.record("command-side", "command.rejected", command=command["type"], error=str(exc))
            assert store.head() == before, "a rejected command appended something"
            continue
        counts["accepted"] += 1
        if command["type"] == "CreateOrder":
            orders.append(order.order_id)
        if p["feed"] == "bus":
            for e in store.read_all(after=before):
                if rng.random() < p["publish_failure_share"]:
                    counts["publish_failed"] += 1
                    tl.record("command-side", "publish.failed", position=e.position, type=e.type)
                else:
                    bus.append(e)
        reads.append(asyncio.create_task(read_back(order.order_id, order.version)))
    await asyncio.gather(*reads)
    state["done"] = True
    await task

    incremental = projection.dump()
    rebuilt = OrderProjection()
    rebuilt.rebuild(store)
    diverged = _diverged(incremental, rebuilt.dump())
    for oid in diverged:
        tl.record("projection", "order.diverged", order=oid)
    projection.rebuild(store)
    ctx.extras.update(store=store, projection=projection, service=svc)
    queries = counts["fresh"] + counts["stale"]
    return {
        "feed": p["feed"],
        "commands": p["commands"],
        "accepted": counts["accepted"],
        "rejected": counts["rejected"],
        "events": store.head(),
        "publish_failures": counts["publish_failed"],
        "stale_reads": counts["stale"],
        "stale_read_share": round(counts["stale"] / queries, 3) if queries else 0.0,
        "visible_after_ms": _visibility(tl),
        "projection_batches": state["batches"],
        "projection_crashes": projection.crashes,
        "diverged_orders": len(diverged),
        "rebuild_equals_incremental": not diverged,
        "diverged_after_rebuild": len(_diverged(projection.dump(), rebuilt.dump())),
    }


def _project_once(
    store: EventStore,
    projection: OrderProjection,
    bus: list[StoredEvent],
    p: dict[str, Any],
    state: dict[str, Any],
) -> None:
    """One run of the projection: catch up from the store, or drain the bus."""
    while True:
        if p["feed"] == "store":
            batch = store.read_all(after=projection.checkpoint, limit=p["batch_size"])
        else:
            batch = bus[: p["batch_size"]]
        if not batch:
            return
        crash_after = None
        at = state["crash_at"]
        if at and batch[0].position <= at <= batch[-1].position:
            crash_after = next(i for i, e in enumerate(batch) if e.position >= at)
            state["crash_at"] = 0
        try:
            projection.apply_batch(batch, crash_after=crash_after)
        except ProjectionCrash:
            return  # restarts at the next poll, from the stored checkpoint
        state["batches"] += 1
        if p["feed"] == "bus":
            del bus[: len(batch)]


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


def _visibility(tl: Any) -> dict[str, float]:
    """How long after being appended each event became visible in the read model (ms)."""
    appended = {r.fields["position"]: r.t for r in tl.of_kind("event.appended")}
    for r in tl.of_kind("publish.failed"):  # never delivered: never visible
        appended.pop(r.fields["position"], None)
    waits = []
    for r in tl.of_kind("projection.applied"):
        for pos in range(r.fields["first"], r.fields["checkpoint"] + 1):
            if pos in appended:
                waits.append((r.t - appended.pop(pos)) * 1000)
    return latency_summary(waits)
