"""A trace crosses a message hop on every backend: the consumer's span is the producer's child."""

import asyncio
import uuid

import pytest

from labkit.core.clock import LoopClock, run_on_fresh_loop
from labkit.core.timeline import Timeline
from labkit.patterns.tracing import Tracing, span_tree
from labkit.transport.brokers import QueueSpec, make_broker


@pytest.mark.parametrize(
    "backend",
    [
        "memory",
        pytest.param("nats", marks=pytest.mark.broker("nats")),
        pytest.param("rabbitmq", marks=pytest.mark.broker("rabbitmq")),
    ],
)
def test_consumer_span_is_a_child_of_the_producer_span_in_the_same_trace(backend):
    async def main():
        tl = Timeline(LoopClock())
        tracing = Tracing(tl.clock, tl)
        done = asyncio.Event()

        async def handle(delivery):
            with tracing.span("inventory", "reserve stock"):
                await delivery.ack()
            done.set()

        ns = f"tr{uuid.uuid4().hex[:6]}"
        async with make_broker(backend, timeline=tl, namespace=ns) as broker:
            await broker.declare(QueueSpec("inventory", ("orders.created",)))
            await broker.consume("inventory", tracing.traced_handler("inventory", handle))
            with tracing.span("order", "POST /orders"):
                await tracing.publish(broker, "order", "orders.created", {"id": "o-1"})
            async with asyncio.timeout(15):
                await done.wait()
        return span_tree(tracing.spans())

    rows = run_on_fresh_loop(main, virtual=backend == "memory")
    by_name = {r["name"]: r for r in rows}
    assert len({r["trace_id"] for r in rows}) == 1
    assert by_name["orders.created publish"]["parent_id"] == by_name["POST /orders"]["span_id"]
    consumer = by_name["orders.created process"]
    assert consumer["kind"] == "CONSUMER" and consumer["service"] == "inventory"
    assert consumer["parent_id"] == by_name["orders.created publish"]["span_id"]
    assert by_name["reserve stock"]["parent_id"] == consumer["span_id"]
