"""Benchmark: the lab's messaging backends against the raw clients doing the same work.

    uv run python bench/bench_messaging.py [--messages 2000]

Each pair publishes N messages and consumes them with manual acks, measured in the same run,
recording off for the lab (median of 3 rounds). Prints JSON:

* memory broker vs a bare ``asyncio.Queue`` round trip (put, get, task_done), and vs the same
  queue with the least manual-ack bookkeeping (an in-flight table and an awaited ack);
* NATS backend vs bare nats-py JetStream (publish with ack, pull fetch, ack);
* RabbitMQ backend vs bare aio-pika (publisher confirms, consume, ack).

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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labkit.core.clock import LoopClock
from labkit.core.errors import LabError
from labkit.core.timeline import Timeline
from labkit.transport.brokers import Delivery, QueueSpec, make_broker


async def rounds(fn: Callable[[int], Awaitable[None]], n: int, repeats: int = 3) -> dict[str, Any]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await fn(n)
        samples.append(n / (time.perf_counter() - started))
    rate = statistics.median(samples)
    return {"msgs_per_s": round(rate, 1), "us_per_msg": round(1e6 / rate, 2)}


async def lab_round_trip(backend: str, n: int) -> None:
    tl = Timeline(LoopClock(), enabled=False)
    async with make_broker(backend, timeline=tl, namespace=f"b{uuid.uuid4().hex[:6]}") as broker:
        queue = "bench"
        await broker.declare(QueueSpec(queue, ("bench.msg",)))
        done = asyncio.Event()
        count = 0

        async def handler(d: Delivery) -> None:
            nonlocal count
            await d.ack()
            count += 1
            if count == n:
                done.set()

        await broker.consume(queue, handler, prefetch=100)
        for i in range(n):
            await broker.publish("bench.msg", b'{"n":%d}' % i)
        await done.wait()


async def bare_asyncio_queue(n: int) -> None:
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def consumer() -> None:
        for _ in range(n):
            await queue.get()
            queue.task_done()

    task = asyncio.create_task(consumer())
    for i in range(n):
        await queue.put(b'{"n":%d}' % i)
    await task


async def bare_asyncio_queue_with_acks(n: int) -> None:
    """The least a broker with manual acks must do on top of a queue: remember each delivery
    until the handler acks it, and call the handler with something it can ack."""
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    in_flight: dict[int, bytes] = {}
    done = asyncio.Event()
    count = 0

    class Delivery:
        __slots__ = ("body", "tag")

        def __init__(self, tag: int, body: bytes) -> None:
            self.tag, self.body = tag, body

        async def ack(self) -> None:
            del in_flight[self.tag]
            queue.task_done()

    async def handler(d: Delivery) -> None:
        nonlocal count
        await d.ack()
        count += 1
        if count == n:
            done.set()

    async def consumer() -> None:
        while True:
            tag, body = await queue.get()
            in_flight[tag] = body
            await handler(Delivery(tag, body))

    task = asyncio.create_task(consumer())
    for i in range(n):
        await queue.put((i, b'{"n":%d}' % i))
    await done.wait()
    task.cancel()


async def bare_nats(n: int) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222", max_reconnect_attempts=1)
    js = nc.jetstream()
    name = f"bench{uuid.uuid4().hex[:6]}"
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    try:
        for i in range(n):
            await js.publish(f"{name}.msg", b'{"n":%d}' % i)
        sub = await js.pull_subscribe(f"{name}.msg", durable="c")
        got = 0
        while got < n:
            for msg in await sub.fetch(min(100, n - got), timeout=5):
                await msg.ack()
                got += 1
        await sub.unsubscribe()
    finally:
        await js.delete_stream(name)
        await nc.close()


async def bare_rabbit(n: int) -> None:
    """The same work as the lab's backend: topic exchange, durable quorum queue, persistent
    messages, publisher confirms, manual acks."""
    import aio_pika

    conn = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    name = f"bench{uuid.uuid4().hex[:6]}"
    try:
        channel = await conn.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=100)
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange, "bench.msg")
        done = asyncio.Event()
        count = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal count
            await message.ack()
            count += 1
            if count == n:
                done.set()

        await queue.consume(on_message)
        for i in range(n):
            body = aio_pika.Message(b'{"n":%d}' % i, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await exchange.publish(body, routing_key="bench.msg")
        await done.wait()
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
    finally:
        await conn.close()


async def pair(
    name: str, lab: Callable[[int], Awaitable[None]], bare: Callable[[int], Awaitable[None]], n: int
) -> dict[str, Any]:
    try:
        bare_r = await rounds(bare, n)
        lab_r = await rounds(lab, n)
    except (LabError, OSError, ImportError) as exc:
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    return {
        "bare": bare_r,
        "lab": lab_r,
        "ratio_lab_to_bare": round(lab_r["msgs_per_s"] / bare_r["msgs_per_s"], 3),
    }


async def main(n: int) -> dict[str, Any]:
    return {
        "benchmark": "messaging",
        "messages": n,
        "memory_vs_asyncio_queue": await pair(
            "memory", lambda k: lab_round_trip("memory", k), bare_asyncio_queue, n
        ),
        "memory_vs_asyncio_queue_with_acks": await pair(
            "memory", lambda k: lab_round_trip("memory", k), bare_asyncio_queue_with_acks, n
        ),
        "nats_vs_nats_py": await pair("nats", lambda k: lab_round_trip("nats", k), bare_nats, n),
        "rabbitmq_vs_aio_pika": await pair(
            "rabbitmq", lambda k: lab_round_trip("rabbitmq", k), bare_rabbit, n
        ),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    print(json.dumps(asyncio.run(main(parser.parse_args().messages)), indent=2))
