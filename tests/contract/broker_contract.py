"""The broker contract: one set of checks, run against every messaging backend.

A backend's test module subclasses :class:`BrokerContract` and sets ``backend`` (and, for real
brokers, ``virtual = False`` and the ``broker`` marker). Nothing here sleeps to wait: every
check awaits the event it expects, with a deadline that turns a hang into a clear failure.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest

from labkit.core.clock import LoopClock, run_on_fresh_loop
from labkit.core.errors import BadParameter, LabError, UnknownName
from labkit.core.timeline import Timeline
from labkit.transport.brokers import (
    BadMessage,
    Broker,
    Delivery,
    NoResponders,
    QueueSpec,
    RequestTimeout,
    make_broker,
)

WAIT = 15.0  # seconds before a missing delivery fails the test (virtual time for memory)


class Inbox:
    """Collects deliveries and lets a test await "n of them have arrived"."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait_for(self, n: int, timeout: float = WAIT) -> list[Any]:
        async with asyncio.timeout(timeout):
            while len(self.items) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.items


class BrokerContract:
    backend: ClassVar[str] = "memory"
    virtual: ClassVar[bool] = True
    supports_ack_wait: ClassVar[bool] = True
    supports_ttl: ClassVar[bool] = True
    keeps_log: ClassVar[bool] = True

    def run(self, scenario: Callable[[Broker, Callable[[str], str]], Awaitable[Any]]) -> Any:
        uid = uuid.uuid4().hex[:8]

        def name(base: str) -> str:
            return f"{base}-{uid}"

        async def main() -> Any:
            tl = Timeline(LoopClock())
            async with make_broker(self.backend, timeline=tl, namespace=f"t{uid}") as broker:
                return await scenario(broker, name)

        return run_on_fresh_loop(main, virtual=self.virtual)

    # -- basics ----------------------------------------------------------------------------------
    def test_publish_consume_ack_leaves_the_queue_empty(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("inventory")
            await broker.declare(QueueSpec(q, ("orders.created",)))
            inbox = Inbox()

            async def handler(d: Delivery) -> None:
                inbox.add((d.message.json(), d.delivery_count, d.redelivered))
                await d.ack()

            await broker.consume(q, handler)
            await broker.publish("orders.created", {"order_id": "o-1"})
            got = await inbox.wait_for(1)
            return got, await broker.depth(q)

        got, depth = self.run(scenario)
        assert got == [({"order_id": "o-1"}, 1, False)]
        assert depth == 0

    def test_topic_bindings_route_with_wildcards_and_fan_out(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            orders, everything = name("orders"), name("all")
            await broker.declare(QueueSpec(orders, ("orders.*",)))
            await broker.declare(QueueSpec(everything, ("orders.#", "payments.#")))
            a, b = Inbox(), Inbox()

            def collect(inbox: Inbox) -> Callable[[Delivery], Awaitable[None]]:
                async def handler(d: Delivery) -> None:
                    inbox.add(d.message.subject)
                    await d.ack()

                return handler

            await broker.consume(orders, collect(a))
            await broker.consume(everything, collect(b))
            for subject in ("orders.created", "payments.processed", "orders.eu.created"):
                await broker.publish(subject, {"s": subject})
            return sorted(await a.wait_for(1)), sorted(await b.wait_for(3))

        only_orders, everything = self.run(scenario)
        assert only_orders == ["orders.created"]
        assert everything == ["orders.created", "orders.eu.created", "payments.processed"]

    def test_competing_consumers_each_message_goes_to_one(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("work")
            await broker.declare(QueueSpec(q, ("jobs.new",)))
            inbox = Inbox()

            def worker(tag: str) -> Callable[[Delivery], Awaitable[None]]:
                async def handler(d: Delivery) -> None:
                    inbox.add((tag, d.message.json()["n"]))
                    await d.ack()

                return handler

            await broker.consume(q, worker("a"))
            await broker.consume(q, worker("b"))
            for n in range(20):
                await broker.publish("jobs.new", {"n": n})
            return await inbox.wait_for(20)

        got = self.run(scenario)
        assert sorted(n for _, n in got) == list(range(20))

    # -- redelivery ------------------------------------------------------------------------------
    def test_nack_with_requeue_redelivers_flagged(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("retry")
            await broker.declare(QueueSpec(q, ("orders.created",)))
            inbox = Inbox()

            async def handler(d: Delivery) -> None:
                inbox.add((d.delivery_count, d.redelivered))
                if d.delivery_count == 1:
                    await d.nack(requeue=True)
                else:
                    await d.ack()

            await broker.consume(q, handler)
            await broker.publish("orders.created", {"order_id": "o-2"})
            return await inbox.wait_for(2)

        assert self.run(scenario) == [(1, False), (2, True)]

    def test_a_crashed_consumer_loses_nothing(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("crash")
            await broker.declare(QueueSpec(q, ("orders.created",)))
            first, second = Inbox(), Inbox()

            async def never_acks(d: Delivery) -> None:
                first.add(d.message.id)

            consumer = await broker.consume(q, never_acks)
            sent = await broker.publish("orders.created", {"order_id": "o-3"})
            await first.wait_for(1)
            await consumer.stop(crash=True)

            async def acks(d: Delivery) -> None:
                second.add((d.message.id, d.redelivered))
                await d.ack()

            await broker.consume(q, acks)
            return sent, await second.wait_for(1)

        sent, got = self.run(scenario)
        assert got == [(sent, True)]

    # -- dead letters ----------------------------------------------------------------------------
    def test_reject_dead_letters_with_the_reason_and_replay_brings_it_back(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("poison")
            await broker.declare(QueueSpec(q, ("orders.created",)))
            seen = Inbox()
            fixed = False

            async def handler(d: Delivery) -> None:
                seen.add(d.message.id)
                if fixed:
                    await d.ack()
                    return
                try:
                    d.message.json()
                except BadMessage:
                    await d.reject("rejected")
                    return
                await d.ack()

            await broker.consume(q, handler)
            bad = await broker.publish("orders.created", b"{not json")
            await seen.wait_for(1)
            letters = await _dead_letters_eventually(broker, q, 1)
            fixed = True
            replayed = await broker.replay_dead_letters(q)
            await seen.wait_for(2)
            return bad, letters, replayed, await broker.dead_letters(q)

        bad, letters, replayed, after = self.run(scenario)
        assert [(letter.message.id, letter.reason) for letter in letters] == [(bad, "rejected")]
        assert replayed == 1 and after == []

    def test_delivery_limit_dead_letters_a_message_that_keeps_failing(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("limited")
            await broker.declare(QueueSpec(q, ("orders.created",), max_deliveries=3))
            seen = Inbox()

            async def always_requeue(d: Delivery) -> None:
                seen.add(d.delivery_count)
                await d.nack(requeue=True)

            await broker.consume(q, always_requeue)
            await broker.publish("orders.created", b"poison")
            letters = await _dead_letters_eventually(broker, q, 1)
            return seen.items, letters

        counts, letters = self.run(scenario)
        assert counts == [1, 2, 3]
        assert letters[0].reason == "delivery_limit"

    def test_prefetch_bounds_unsettled_deliveries_per_consumer(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("prefetch")
            await broker.declare(QueueSpec(q, ("jobs.new",)))
            inbox = Inbox()
            held: list[Delivery] = []

            async def holds(d: Delivery) -> None:
                held.append(d)
                inbox.add(d.message.id)

            await broker.consume(q, holds, prefetch=2)
            for n in range(5):
                await broker.publish("jobs.new", {"n": n})
            await inbox.wait_for(2)
            depth_while_held = await broker.depth(q)
            for d in list(held):
                await d.ack()
            await inbox.wait_for(4)
            return depth_while_held

        assert self.run(scenario) == 3

    def test_unsettled_delivery_comes_back_after_the_ack_wait(self) -> None:
        if not self.supports_ack_wait:
            pytest.skip(f"{self.backend} has no per-delivery ack wait")

        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("ackwait")
            await broker.declare(QueueSpec(q, ("jobs.new",), ack_wait_s=1.0))
            inbox = Inbox()

            async def forgets_first(d: Delivery) -> None:
                inbox.add(d.delivery_count)
                if d.delivery_count > 1:
                    await d.ack()

            await broker.consume(q, forgets_first)
            await broker.publish("jobs.new", {"n": 1})
            return await inbox.wait_for(2)

        assert self.run(scenario) == [1, 2]

    # -- pub/sub ---------------------------------------------------------------------------------
    def test_subscription_sees_only_what_is_published_while_subscribed(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            inbox = Inbox()

            async def handler(message: Any) -> None:
                inbox.add(message.json()["n"])

            sub = await broker.subscribe("payments.processed", handler)
            await broker.publish("payments.processed", {"n": 1})
            await inbox.wait_for(1)
            await sub.unsubscribe()
            await broker.publish("payments.processed", {"n": 2})
            sub2 = await broker.subscribe("payments.processed", handler)
            await broker.publish("payments.processed", {"n": 3})
            got = await inbox.wait_for(2)
            await sub2.unsubscribe()
            return got

        assert self.run(scenario) == [1, 3]

    # -- request-reply ---------------------------------------------------------------------------
    def test_request_reply_answers_once_and_fails_clearly_without_or_with_a_slow_responder(
        self,
    ) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            with pytest.raises(NoResponders, match=r"users\.lookup"):
                await broker.request("users.lookup", {"id": "u-1"}, timeout_s=2)
            answered: list[str] = []

            async def lookup(message: Any) -> dict[str, Any]:
                answered.append(message.json()["id"])
                return {"id": message.json()["id"], "name": "Ada"}

            async def stuck(message: Any) -> dict[str, Any]:
                raise RuntimeError("the database is down")

            responders = [await broker.respond("users.*", lookup) for _ in range(2)]
            queue = name("events")
            await broker.declare(QueueSpec(queue, ("users.lookup",)))
            replies = [
                (await broker.request("users.lookup", {"id": f"u-{n}"}, timeout_s=5)).json()
                for n in range(4)
            ]
            depth = await broker.depth(queue)  # requests are not events: the queue saw none
            for r in responders:
                await r.unsubscribe()
            await broker.respond("users.slow", stuck)
            with pytest.raises(RequestTimeout, match=r"users\.slow"):
                await broker.request("users.slow", {}, timeout_s=0.3)
            with pytest.raises(BadParameter, match="timeout_s"):
                await broker.request("users.lookup", {}, timeout_s=0)
            return replies, sorted(answered), depth

        replies, answered, depth = self.run(scenario)
        assert replies == [{"id": f"u-{n}", "name": "Ada"} for n in range(4)]
        assert answered == ["u-0", "u-1", "u-2", "u-3"]  # each request answered exactly once
        assert depth == 0

    # -- replay from the log ---------------------------------------------------------------------
    def test_history_replays_from_a_sequence_or_a_time_and_refuses_bad_requests(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            await broker.declare(QueueSpec(name("inv"), ("orders.created",)))
            for n in range(6):
                await broker.publish("orders.created", {"n": n})
                await broker.publish("payments.processed", {"p": n})
            if not self.keeps_log:
                with pytest.raises(LabError, match="keeps no log"):
                    await broker.history("orders.*")
                return None
            orders = await broker.history("orders.*")
            everything = await broker.history()
            from_third = await broker.history("orders.*", from_seq=orders[2].seq)
            since = orders[4].at
            recent = await broker.history("orders.*", since=since)
            errors = []
            for bad in (
                lambda: broker.history("orders.*", from_seq=0),
                lambda: broker.history("orders..created"),
            ):
                with pytest.raises(BadParameter) as caught:
                    await bad()
                errors.append(str(caught.value))
            return orders, everything, from_third, since, recent, errors

        out = self.run(scenario)
        if not self.keeps_log:
            return
        orders, everything, from_third, since, recent, errors = out
        assert [e.message.json()["n"] for e in orders] == list(range(6))
        assert [e.message.subject for e in orders] == ["orders.created"] * 6
        assert len(everything) == 12 and [e.seq for e in everything] == sorted(
            e.seq for e in everything
        )
        assert [e.message.json()["n"] for e in from_third] == [2, 3, 4, 5]
        assert {e.seq for e in orders if e.at >= since} <= {e.seq for e in recent}
        assert all(e.at >= since - 1e-6 for e in recent) and recent[-1].seq == orders[-1].seq
        assert "from_seq" in errors[0] and "orders..created" in errors[1]

    # -- bad input -------------------------------------------------------------------------------
    def test_bad_input_is_refused_by_name_and_loses_nothing(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("strict")
            await broker.declare(QueueSpec(q, ("orders.created",)))
            errors = []
            for bad in (
                lambda: broker.depth(name("nope")),
                lambda: broker.publish("orders..created", {}),
                lambda: broker.publish("orders.*", {}),
            ):
                try:
                    await bad()
                except (UnknownName, BadParameter) as exc:
                    errors.append(str(exc))
            await broker.publish("orders.created", {"ok": True})
            inbox = Inbox()

            async def handler(d: Delivery) -> None:
                inbox.add(d.message.json())
                await d.ack()

            await broker.consume(q, handler)
            return errors, await inbox.wait_for(1)

        errors, got = self.run(scenario)
        assert len(errors) == 3 and all("\n" not in e for e in errors)
        assert "nope" in errors[0] and "orders..created" in errors[1]
        assert got == [{"ok": True}]


async def _dead_letters_eventually(broker: Broker, queue: str, n: int) -> list[Any]:
    """Real brokers dead-letter asynchronously: poll the DLQ until n letters, within WAIT."""
    async with asyncio.timeout(WAIT):
        while True:
            letters = await broker.dead_letters(queue)
            if len(letters) >= n:
                return letters
            await asyncio.sleep(0.05)
