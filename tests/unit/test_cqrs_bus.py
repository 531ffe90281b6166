"""The CQRS read side fed through the broker: the message, the flaky link, the outbox on the
event store, the idempotent projection consumer, and the experiment's three modes on memory."""

import asyncio
import contextlib
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import labkit
from labkit.core.clock import run_on_fresh_loop
from labkit.core.timeline import Timeline
from labkit.patterns.cqrs import OrderProjection
from labkit.patterns.cqrs_bus import (
    BusProjector,
    EventOutbox,
    FlakyPublish,
    event_body,
    event_from_message,
    subject_for,
)
from labkit.patterns.event_sourcing import OrderRepository
from labkit.patterns.event_store import EventStore
from labkit.patterns.events import NO_STREAM, NewEvent, WrongExpectedVersion
from labkit.patterns.order_commands import OrderService
from labkit.patterns.outbox import Crash, OutboxRelay
from labkit.transport.brokers import BadMessage, BrokerUnavailable, Message, QueueSpec
from labkit.transport.brokers.memory import MemoryBroker


def orders(store, n=3):
    svc = OrderService(OrderRepository(store))
    for k in range(n):
        svc.create_order("ada", f"o{k}")
        svc.add_item(f"o{k}", "kb", 2, 10.0)
    return svc


def test_an_event_travels_as_one_message_and_comes_back_equal():
    store = EventStore()
    orders(store, 1)
    [created, added] = store.read_all()
    assert subject_for(created.type) == "orders.OrderCreated"
    back = event_from_message(Message(added.id, "s", json.dumps(event_body(added)).encode()))
    assert back == added and back.position == 2
    with pytest.raises(BadMessage, match="is not a stored event"):
        event_from_message(Message("m1", "orders.x", b'{"id": "x"}'))
    with pytest.raises(BadMessage, match="not JSON"):
        event_from_message(Message("m2", "orders.x", b"\xff"))


def test_the_projection_applies_a_redelivered_event_once_and_says_so():
    store = EventStore()
    orders(store, 2)
    events = store.read_all()
    tl = Timeline()
    proj = OrderProjection(timeline=tl)
    assert proj.apply_batch(events[:3]) == 3
    assert proj.apply_batch(events[1:]) == 1  # two of these three were applied already
    assert proj.duplicates == 2 and len(tl.of_kind("effect.duplicate_suppressed")) == 2
    assert proj.checkpoint == 4
    assert proj.apply_batch(events[:1]) == 0 and proj.checkpoint == 4  # never moves back
    fresh = OrderProjection()
    fresh.rebuild(store)
    assert proj.dump() == fresh.dump()
    assert proj.get_order("o1")["total"] == 20.0  # the item once, not twice


def test_a_flaky_link_fails_its_share_before_reaching_the_broker():
    sent = []

    async def publish(subject, body, *, message_id=None, headers=None):
        sent.append(message_id)
        return message_id

    async def go():
        link = FlakyPublish(publish, 0.3, random.Random(4))
        failures = 0
        for k in range(1000):
            try:
                await link("orders.x", {}, message_id=str(k))
            except BrokerUnavailable as exc:
                failures += 1
                assert "never reached the broker" in str(exc)
        return link, failures

    link, failures = run_on_fresh_loop(go, virtual=True)
    assert link.failures == failures == 1000 - len(sent) == 1000 - link.sent
    assert 250 < failures < 350


def test_the_outbox_row_commits_with_the_event_or_not_at_all():
    store = EventStore()
    outbox = EventOutbox(store)
    svc = orders(store, 2)
    rows = outbox.pending()
    assert [(r["subject"], r["event_id"]) for r in rows] == [
        (subject_for(e.type), e.id) for e in store.read_all()
    ]
    with pytest.raises(WrongExpectedVersion):  # a refused append writes no outbox row either
        store.append("order-o0", [NewEvent("OrderCreated", {"order_id": "o0"})], NO_STREAM)
    assert len(outbox.pending()) == 4 == store.head()
    outbox.mark_sent(rows[0]["seq"])
    assert outbox.count(sent=True) == 1 and len(outbox.pending()) == 3
    svc.change_status("o1", "paid")
    assert outbox.pending()[-1]["subject"] == "orders.OrderStatusChanged"


def consume_through_memory(n_orders, *, crash_at=0, relay_crash=False, batch_size=3):
    """Orders written with an outbox, relayed into a memory broker, then projected."""
    store = EventStore()
    outbox = EventOutbox(store)
    orders(store, n_orders)

    async def go():
        tl = Timeline()
        broker = MemoryBroker(timeline=tl)
        proj = OrderProjection(timeline=tl)
        projector = BusProjector(proj, batch_size=batch_size, timeline=tl)
        await broker.declare(QueueSpec("q", ("orders.*",)))
        await broker.consume("q", projector.on_delivery, prefetch=100)
        relay = OutboxRelay(outbox, broker.publish)
        first = [True]

        def dies(seq):  # the relay dies once, after publishing row 2
            if relay_crash and seq == 2 and first[0]:
                first[0] = False
                return True
            return False

        for _ in range(3):
            with contextlib.suppress(Crash):
                await relay.run_once(crash_after_publish=dies)
        await asyncio.sleep(0.01)  # virtual: the broker hands the messages over
        crashed = await projector.run_once(crash_at=crash_at)
        await asyncio.sleep(0.01)
        again = await projector.run_once()
        return store, proj, projector, crashed, again, tl, await broker.depth("q")

    return run_on_fresh_loop(go, virtual=True)


def test_the_consumer_acks_only_after_the_batch_commits():
    store, proj, projector, crashed, again, tl, depth = consume_through_memory(3, crash_at=4)
    assert crashed and not again and proj.crashes == 1
    [crash] = tl.of_kind("projection.crashed")
    assert "after 0 of 3" in crash.fields["detail"]  # the batch holding position 4: 4, 5, 6
    redelivered = [r for r in tl.of_kind("message.delivered") if r.fields["redelivered"]]
    assert len(redelivered) == 3  # the crashed batch came back from the broker
    assert projector.acked == 6 == len(tl.of_kind("message.acked")) and depth == 0
    fresh = OrderProjection()
    fresh.rebuild(store)
    assert proj.dump() == fresh.dump()


def test_a_relay_that_publishes_twice_is_absorbed_by_the_projection():
    _, proj, projector, _, _, tl, _ = consume_through_memory(2, relay_crash=True)
    published = [r.fields["id"] for r in tl.of_kind("message.published")]
    assert len(published) == 5 and len(set(published)) == 4  # row 2 went out twice
    assert proj.duplicates == 1 and projector.acked == 5
    assert proj.get_order("o0")["total"] == 20.0


def test_projecting_from_the_store_needs_no_message_at_all():
    store = EventStore()
    orders(store, 3)

    async def go():
        proj = OrderProjection()
        projector = BusProjector(proj, batch_size=2, store=store, from_store=True)
        return proj, await projector.run_once(crash_at=3), await projector.run_once()

    proj, crashed, again = run_on_fresh_loop(go, virtual=True)
    assert crashed and not again and proj.lag(store) == 0
    assert proj.get_order("o2")["total"] == 20.0


# -- the experiment, on the memory broker (virtual time) --------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_the_syllabus_loses_orders_and_both_fixes_lose_none(seed):
    common = {"publish_failure_share": 0.1, "read_after_ms": 100, "seed": seed}
    lost = labkit.run("cqrs", fix="none", **common)
    s = lost.summary
    assert s["publish_failures"] == len(lost.timeline.of_kind("publish.failed")) > 0
    assert s["published"] == s["events"] - s["publish_failures"]  # the rest reached the broker
    assert s["lost"] == 0 and s["acked"] == s["published"]  # ...and the broker lost none
    assert s["read_model_missing"] == len(lost.timeline.of_kind("order.missing")) > 0
    assert s["diverged_orders"] >= s["read_model_missing"]
    assert s["diverged_after_rebuild"] == 0
    for fix in ("project_from_store", "outbox"):
        f = labkit.run("cqrs", fix=fix, **common).summary
        assert f["publish_failures"] > 0
        assert f["read_model_missing"] == f["diverged_orders"] == f["stale_reads"] == 0
        assert f["rebuild_equals_incremental"]


def test_the_outbox_relay_retries_and_the_projection_suppresses_its_duplicates():
    r = labkit.run("cqrs", fix="outbox", publish_failure_share=0.2, relay_crash_share=0.1, seed=3)
    s = r.summary
    assert s["published"] == s["events"] and s["outbox_pending"] == 0
    assert len(r.timeline.of_kind("outbox.publish_failed")) == s["publish_failures"] > 0
    assert s["relay_crashes"] > 0
    assert s["duplicates_suppressed"] == s["relay_crashes"]  # one re-send per relay crash
    assert s["delivered"] == s["events"] + s["duplicates_suppressed"]
    assert s["diverged_orders"] == 0


def test_an_outbox_that_never_gets_through_says_what_is_pending():
    s = labkit.run("cqrs", fix="outbox", publish_failure_share=1.0, commands=20).summary
    assert s["published"] == 0 and s["outbox_pending"] == s["events"] > 0
    assert s["read_model_missing"] > 0


@pytest.mark.parametrize("fix", ["none", "outbox"])
def test_a_crash_mid_batch_on_the_bus_redelivers_and_doubles_nothing(fix):
    r = labkit.run("cqrs", fix=fix, crash_at=50, batch_size=20, projection_lag_ms=200)
    s = r.summary
    assert s["projection_crashes"] == 1 and s["redelivered"] > 0
    assert s["duplicates_suppressed"] == 0 and s["lost"] == 0
    assert s["rebuild_equals_incremental"] and s["diverged_orders"] == 0


def test_the_messages_use_the_event_ids_and_order_subjects():
    r = labkit.run("cqrs", fix="none", commands=30)
    published = r.timeline.of_kind("message.published")
    store = r.extras["store"]
    assert [p.fields["id"] for p in published] == [e.id for e in store.read_all()]
    assert {p.fields["subject"] for p in published} <= {
        "orders.OrderCreated",
        "orders.OrderItemAdded",
        "orders.OrderStatusChanged",
    }
    assert all(p.fields["queues"] == ["order_projection"] for p in published)


@settings(max_examples=60, deadline=None)
@given(
    repeats=st.lists(st.integers(1, 3), min_size=12, max_size=12),
    cuts=st.lists(st.integers(1, 30), min_size=1, max_size=6),
)
def test_any_redelivery_pattern_in_log_order_builds_the_rebuilt_model(repeats, cuts):
    """At-least-once delivery (each event 1-3 times, in log order, cut into batches anywhere)
    gives the same read model as a rebuild, and counts every extra copy as a duplicate."""
    store = EventStore()
    orders(store, 3)
    svc = OrderService(OrderRepository(store))
    for k in range(3):
        svc.add_item(f"o{k}", "mouse", 1, 4.5)
        svc.change_status(f"o{k}", "paid")
    events = store.read_all()
    assert len(events) == 12
    stream = [e for e, n in zip(events, repeats, strict=True) for _ in range(n)]
    proj = OrderProjection()
    at = 0
    for cut in [*cuts, len(stream)]:
        proj.apply_batch(stream[at : at + cut])
        at += cut
        if at >= len(stream):
            break
    fresh = OrderProjection()
    fresh.rebuild(store)
    assert proj.dump() == fresh.dump()
    assert proj.duplicates == len(stream) - len(events) and proj.checkpoint == 12
