"""Benchmark: what feeding the read model through a broker costs, per backend.

    uv run python bench/bench_cqrs.py [--events 3000]

Prints JSON:

* ``projection``: events per second the read model applies, (a) catching up from the event
  store (no broker), and (b) through each backend: every event published as a message, the
  projection consumer holding them, applying them in batches of 100 (idempotent, checkpoint in
  the same transaction) and acking each after its batch commits. Median of 3 rounds.
* ``scenario_memory_s``: wall time of ``labkit run cqrs`` on the memory broker (virtual time)
  with 2000 commands, for each ``fix``, with the lost-publish share at 0.1.

A real backend that does not answer is reported as such instead of measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import labkit
from labkit.core.clock import LoopClock, run_on_fresh_loop
from labkit.core.errors import LabError
from labkit.core.timeline import Timeline
from labkit.patterns.cqrs import OrderProjection
from labkit.patterns.cqrs_bus import BusProjector, event_body, subject_for
from labkit.patterns.event_sourcing import OrderRepository
from labkit.patterns.event_store import EventStore
from labkit.patterns.order_commands import OrderService
from labkit.transport.brokers import QueueSpec, make_broker

BATCH = 100


def write_side(events: int) -> EventStore:
    store = EventStore()
    svc = OrderService(OrderRepository(store))
    k = 0
    while store.head() < events:
        oid = f"o{k}"
        svc.create_order(f"u{k % 7}", oid)
        for j in range(4):
            svc.add_item(oid, f"p{j}", 1 + j, 2.5)
        k += 1
    return store


def from_store(store: EventStore) -> float:
    started = time.perf_counter()
    OrderProjection().catch_up(store, batch_size=BATCH)
    return store.head() / (time.perf_counter() - started)


async def through_broker(backend: str, store: EventStore) -> float:
    events = store.read_all()
    tl = Timeline(LoopClock(), enabled=False)
    namespace = f"bq{uuid.uuid4().hex[:6]}"
    async with make_broker(backend, timeline=tl, namespace=namespace) as broker:
        await broker.declare(QueueSpec("projection", ("orders.*",)))
        projector = BusProjector(OrderProjection(), batch_size=BATCH)
        consumer = await broker.consume("projection", projector.on_delivery, prefetch=500)
        started = time.perf_counter()
        for e in events:
            await broker.publish(subject_for(e.type), event_body(e), message_id=e.id)
        while projector.acked < len(events):
            await asyncio.sleep(0.001)
            await projector.run_once()
        elapsed = time.perf_counter() - started
        await consumer.stop()
    return len(events) / elapsed


def median_rate(samples: list[float]) -> dict[str, float]:
    rate = statistics.median(samples)
    return {"events_per_s": round(rate, 1), "us_per_event": round(1e6 / rate, 2)}


def main(n: int) -> dict[str, Any]:
    store = write_side(n)
    out: dict[str, Any] = {"events": store.head(), "batch_size": BATCH, "projection": {}}
    out["projection"]["from_store"] = median_rate([from_store(store) for _ in range(3)])
    for backend in ("memory", "nats", "rabbitmq"):
        try:
            samples = [
                run_on_fresh_loop(
                    lambda b=backend: through_broker(b, store), virtual=backend == "memory"
                )
                for _ in range(3)
            ]
        except (LabError, OSError, ImportError) as exc:
            out["projection"][backend] = {"unavailable": str(exc).splitlines()[0]}
            continue
        out["projection"][backend] = median_rate(samples)
    out["scenario_memory_s"] = {}
    for fix in ("none", "project_from_store", "outbox"):
        started = time.perf_counter()
        labkit.run(
            "cqrs", fix=fix, commands=2000, publish_failure_share=0.1, relay_crash_share=0.05
        )
        out["scenario_memory_s"][fix] = round(time.perf_counter() - started, 3)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    print(json.dumps(main(parser.parse_args().events), indent=2))
