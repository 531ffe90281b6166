"""The contract, on a real NATS server with JetStream (real time), plus what only NATS has."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import nats
import pytest
from broker_contract import BrokerContract

from labkit.core.clock import run_on_fresh_loop
from labkit.core.errors import BadParameter
from labkit.core.timeline import Timeline
from labkit.transport.brokers import BrokerUnavailable, Delivery, QueueSpec
from labkit.transport.brokers.nats import DEFAULT_NATS_URL, NatsBroker, queue_filters

URL = os.environ.get("LABKIT_NATS_URL", DEFAULT_NATS_URL)
T = TypeVar("T")
TEST_STREAM = re.compile(r"^LAB_t[0-9a-f]{8}(_DLQ)?$")  # the contract's per-test namespaces


async def _test_streams() -> dict[str, int]:
    """The contract's streams on the server, with how many consumers each has."""
    nc = await nats.connect(URL, connect_timeout=1, max_reconnect_attempts=1)
    try:
        jsm = nc.jsm()
        return {
            info.config.name: info.state.consumer_count
            for info in await jsm.streams_info()
            if TEST_STREAM.match(info.config.name or "")
        }
    finally:
        await nc.close()


@pytest.fixture(autouse=True)
def leaves_nothing_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test on the server ends with the streams (and so the consumers) it made deleted."""
    if request.node.get_closest_marker("broker") is None:
        yield
        return
    before = run_on_fresh_loop(_test_streams, virtual=False)
    yield
    after = run_on_fresh_loop(_test_streams, virtual=False)
    assert set(after) <= set(before), f"left behind: {sorted(set(after) - set(before))}"


@pytest.mark.broker("nats")
class TestNatsBroker(BrokerContract):
    backend = "nats"
    virtual = False
    supports_ack_wait = True
    supports_ttl = False  # JetStream 2.9: no per-message TTL that dead-letters


def _run(main: Callable[[], Awaitable[T]]) -> T:
    return run_on_fresh_loop(main, virtual=False)


def test_an_unreachable_server_is_one_clear_line_fast() -> None:
    async def scenario() -> tuple[str, float]:
        broker = NatsBroker(timeline=Timeline(), namespace="t-down", url="nats://127.0.0.1:1")
        started = time.perf_counter()
        with pytest.raises(BrokerUnavailable) as err:
            await broker.start()
        return str(err.value), time.perf_counter() - started

    message, took = _run(scenario)
    assert "nats://127.0.0.1:1" in message and "does not answer" in message
    assert "\n" not in message
    assert took < 2.0


def test_the_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_NATS_URL", "nats://127.0.0.1:1")
    assert NatsBroker(timeline=Timeline()).url == "nats://127.0.0.1:1"


def test_bindings_become_filter_subjects() -> None:
    assert queue_filters(("orders.created",)) == ["orders.created"]
    assert queue_filters(("orders.#", "payments.>")) == ["orders", "orders.>", "payments.>"]
    assert queue_filters(("orders.*", "orders.#")) == ["orders", "orders.>"]  # covered: merged
    with pytest.raises(BadParameter, match="overlap"):
        queue_filters(("a.*.c", "a.b.*"))
    with pytest.raises(BadParameter, match="only at the end"):
        queue_filters(("a.#.b",))


@pytest.mark.broker("nats")
def test_what_nats_cannot_do_is_refused_by_name() -> None:
    async def scenario() -> list[str]:
        errors = []
        async with NatsBroker(timeline=Timeline(), namespace=f"t{os.urandom(4).hex()}") as b:
            for spec in (
                QueueSpec("ttl", ("orders.created",), ttl_s=5.0),
                QueueSpec("mid", ("orders.#.eu",)),
            ):
                try:
                    await b.declare(spec)
                except BadParameter as exc:
                    errors.append(str(exc))
            await b.declare(QueueSpec("same", ("orders.created",)))
            try:
                await b.declare(QueueSpec("same", ("orders.created",), max_deliveries=2))
            except BadParameter as exc:
                errors.append(str(exc))
        return errors

    errors = _run(scenario)
    assert len(errors) == 3 and all("\n" not in e for e in errors)
    assert errors[0].startswith("ttl_s=5.0") and "orders.#.eu" in errors[1]
    assert "other settings" in errors[2]


@pytest.mark.broker("nats")
def test_another_process_consumes_a_queue_it_did_not_declare() -> None:
    async def scenario() -> list[tuple[str, int]]:
        ns = f"t{os.urandom(4).hex()}"
        got: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        async with NatsBroker(timeline=Timeline(), namespace=ns) as owner:
            await owner.declare(QueueSpec("shared", ("jobs.new",), max_deliveries=2))
            async with NatsBroker(timeline=Timeline(), namespace=ns) as other:

                async def handler(d: Delivery) -> None:
                    await got.put((d.message.json()["n"], d.delivery_count))
                    await d.nack()

                await other.consume("shared", handler)
                await owner.publish("jobs.new", {"n": 7})
                seen = [await asyncio.wait_for(got.get(), 10) for _ in range(2)]
                async with asyncio.timeout(10):
                    while not (letters := await other.dead_letters("shared")):
                        await asyncio.sleep(0.05)
                assert [(x.reason, x.deliveries) for x in letters] == [("delivery_limit", 2)]
                assert letters[0].message.subject == "jobs.new"
                return seen

    assert _run(scenario) == [(7, 1), (7, 2)]
