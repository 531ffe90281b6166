"""The contract, on a real RabbitMQ (127.0.0.1:5672 unless LABKIT_AMQP_URL says otherwise).

RabbitMQ has no per-delivery ack wait (an unacked delivery stays with its consumer until the
consumer's channel closes), so that contract check is skipped; TTL is checked here instead, as
the contract has no TTL check yet.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from broker_contract import BrokerContract, Inbox, _dead_letters_eventually

from labkit.core.clock import run_on_fresh_loop
from labkit.core.timeline import Timeline
from labkit.transport.brokers import Broker, BrokerUnavailable, Delivery, QueueSpec
from labkit.transport.brokers.base import hide_password
from labkit.transport.brokers.rabbitmq import RabbitBroker, amqp_pattern


@pytest.mark.broker("rabbitmq")
class TestRabbitBroker(BrokerContract):
    backend = "rabbitmq"
    virtual = False
    supports_ack_wait = False
    keeps_log = False  # a queue forgets what was acked; history() says so

    def test_ttl_dead_letters_an_unconsumed_message_as_expired(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("perishable")
            await broker.declare(QueueSpec(q, ("orders.created",), ttl_s=1.0))
            sent = await broker.publish("orders.created", {"order_id": "o-ttl"})
            letters = await _dead_letters_eventually(broker, q, 1)
            return sent, letters, await broker.depth(q)

        sent, letters, depth = self.run(scenario)
        assert [(x.message.id, x.reason, x.message.subject) for x in letters] == [
            (sent, "expired", "orders.created")
        ]
        assert depth == 0

    def test_max_deliveries_one_means_a_single_delivery(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("once")
            await broker.declare(QueueSpec(q, ("jobs.new",), max_deliveries=1))
            seen = Inbox()

            async def always_requeue(d: Delivery) -> None:
                seen.add(d.delivery_count)
                await d.nack(requeue=True)

            await broker.consume(q, always_requeue)
            await broker.publish("jobs.new", b"poison")
            letters = await _dead_letters_eventually(broker, q, 1)
            return seen.items, letters

        counts, letters = self.run(scenario)
        assert counts == [1]
        assert (letters[0].reason, letters[0].deliveries) == ("delivery_limit", 1)

    def test_dead_letters_are_recorded_and_reading_the_dlq_keeps_them(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            q = name("keep")
            await broker.declare(QueueSpec(q, ("orders.*",)))

            async def rejects(d: Delivery) -> None:
                await d.reject()

            consumer = await broker.consume(q, rejects, prefetch=5)
            ids = [await broker.publish("orders.created", {"n": n}) for n in range(3)]
            first = await _dead_letters_eventually(broker, q, 3)
            await consumer.stop()
            second = await broker.dead_letters(q)
            assert isinstance(broker, RabbitBroker)
            dead = [r.fields for r in broker.timeline.of_kind("message.dead_lettered")]
            return ids, first, second, dead

        ids, first, second, dead = self.run(scenario)
        assert [x.message.id for x in first] == ids == [x.message.id for x in second]
        assert all(x.reason == "rejected" and x.deliveries == 1 for x in first)
        assert first[0].message.headers["x-death-reason"] == "rejected"
        assert sorted(d["id"] for d in dead) == sorted(ids)

    def test_replay_goes_back_to_its_own_queue_only_with_its_subject(self) -> None:
        async def scenario(broker: Broker, name: Callable[[str], str]) -> Any:
            picky, other = name("picky"), name("other")
            await broker.declare(QueueSpec(picky, ("orders.*",)))
            await broker.declare(QueueSpec(other, ("orders.created",)))
            picky_seen, other_seen = Inbox(), Inbox()
            fixed = False

            async def picky_handler(d: Delivery) -> None:
                picky_seen.add((d.message.subject, d.message.headers.get("trace")))
                await (d.ack() if fixed else d.reject())

            async def other_handler(d: Delivery) -> None:
                other_seen.add(d.message.id)
                await d.ack()

            await broker.consume(picky, picky_handler)
            await broker.consume(other, other_handler)
            await broker.publish("orders.created", {"n": 1}, headers={"trace": "t-1"})
            await _dead_letters_eventually(broker, picky, 1)
            await other_seen.wait_for(1)
            fixed = True
            replayed = await broker.replay_dead_letters(picky)
            got = list(await picky_seen.wait_for(2))
            await broker.publish("orders.created", {"n": 2})  # a marker behind the replay
            await other_seen.wait_for(2)
            return replayed, got, len(other_seen.items)

        replayed, got, other_count = self.run(scenario)
        assert replayed == 1
        assert got == [("orders.created", "t-1"), ("orders.created", "t-1")]
        assert other_count == 2  # the replay did not reach the other queue

    def test_close_leaves_no_queue_behind(self) -> None:
        namespace = f"t{uuid.uuid4().hex[:8]}"

        async def main() -> Any:
            async with RabbitBroker(timeline=Timeline(), namespace=namespace) as broker:
                await broker.declare(QueueSpec("gone", ("orders.#",), max_deliveries=2))
                await broker.subscribe("orders.>", _ignore)
                await broker.publish("orders.created", {"n": 1})
            async with RabbitBroker(timeline=Timeline(), namespace=namespace) as probe:
                try:
                    await probe.depth("gone")
                except Exception as exc:  # UnknownName: the queue is gone
                    return str(exc)
            return "still there"

        assert "unknown queue: 'gone'" in run_on_fresh_loop(main, virtual=False)


async def _ignore(message: Any) -> None:
    return None


def test_an_unreachable_broker_fails_fast_in_one_line() -> None:
    url = "amqp://guest:guest@127.0.0.1:1/"

    async def main() -> None:
        async with RabbitBroker(timeline=Timeline(), url=url):
            pass

    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as err:
        run_on_fresh_loop(main, virtual=False)
    message = str(err.value)
    assert time.monotonic() - started < 3
    assert "amqp://guest:***@127.0.0.1:1/" in message
    assert "guest:guest" not in message and "\n" not in message


def test_names_and_patterns() -> None:
    assert amqp_pattern("orders.>") == "orders.*.#"
    assert amqp_pattern("orders.#") == "orders.#"
    assert hide_password("amqp://u:s3cret@h:5672/") == "amqp://u:***@h:5672/"
    broker = RabbitBroker(timeline=Timeline(), namespace="run1")
    assert broker.queue_name("inventory") == "labkit.run1.inventory"
    assert broker.dlq_name("inventory") == "labkit.run1.inventory.dlq"
