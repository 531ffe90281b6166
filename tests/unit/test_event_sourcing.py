"""The event store (expected versions, idempotency, all-or-nothing, concurrency, upcasting)
and the order aggregate (replay, time travel, snapshots, the created_at flaw, bad input)."""

import json
import random
import threading

import pytest

import labkit
from labkit.core.errors import BadParameter, LabError
from labkit.core.timeline import Timeline
from labkit.patterns.event_sourcing import (
    ITEM_ADDED,
    OrderRepository,
    UnknownOrder,
    order_by_created_at,
    rebuild,
)
from labkit.patterns.event_store import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    DuplicateEventIds,
    EventStore,
    NewEvent,
    WrongExpectedVersion,
)
from labkit.patterns.order_commands import OrderService, race


def ev(n, type_="Counted"):
    return NewEvent(type_, {"n": n})


def service(snapshot_every=0, **kw):
    store = EventStore(**kw)
    repo = OrderRepository(store, snapshot_every=snapshot_every)
    return store, repo, OrderService(repo)


# -- expected versions -----------------------------------------------------------------------


def test_versions_count_per_stream_and_positions_count_across_streams():
    s = EventStore()
    a = s.append("a", [ev(1), ev(2)], expected=NO_STREAM)
    b = s.append("b", [ev(3)], expected=NO_STREAM)
    c = s.append("a", [ev(4)], expected=2)
    assert (a.first_version, a.last_version, a.last_position) == (1, 2, 2)
    assert (b.first_version, b.last_position) == (1, 3)
    assert (c.first_version, c.last_position) == (3, 4)
    assert [e.version for e in s.read_stream("a")] == [1, 2, 3]
    assert [(e.stream, e.position) for e in s.read_all()] == [
        ("a", 1),
        ("a", 2),
        ("b", 3),
        ("a", 4),
    ]
    assert [e.data["n"] for e in s.read_all(after=2)] == [3, 4]
    assert [e.version for e in s.read_stream("a", from_version=2)] == [2, 3]


@pytest.mark.parametrize(
    ("expected", "before", "ok"),
    [
        (NO_STREAM, 0, True),
        (NO_STREAM, 2, False),
        (STREAM_EXISTS, 0, False),
        (STREAM_EXISTS, 2, True),
        (ANY, 0, True),
        (ANY, 2, True),
        (0, 0, True),
        (2, 2, True),
        (1, 2, False),
        (3, 2, False),
    ],
)
def test_expected_version_semantics(expected, before, ok):
    s = EventStore()
    if before:
        s.append("x", [ev(i) for i in range(before)])
    if ok:
        s.append("x", [ev(9)], expected=expected)
        assert s.version("x") == before + 1
    else:
        with pytest.raises(WrongExpectedVersion) as err:
            s.append("x", [ev(9)], expected=expected)
        assert s.version("x") == before  # nothing written
        assert (err.value.stream, err.value.expected, err.value.actual) == ("x", expected, before)


def test_conflict_message_names_stream_expected_and_actual():
    s = EventStore(timeline=(tl := Timeline()))
    s.append("order-7", [ev(1), ev(2), ev(3)])
    with pytest.raises(
        WrongExpectedVersion,
        match=r"'order-7': expected version 1, but it is at"
        r" version 3",
    ):
        s.append("order-7", [ev(4)], expected=1)
    assert s.conflicts == 1
    [rec] = tl.of_kind("event.conflict")
    assert rec.fields == {"stream": "order-7", "expected": 1, "actual": 3}


def test_multi_event_append_is_all_or_nothing():
    s = EventStore()
    s.append("a", [ev(1)])
    taken = NewEvent("T", {}, id="dup")
    s.append("b", [taken])
    with pytest.raises(DuplicateEventIds):
        s.append("a", [ev(2), ev(3), NewEvent("T", {}, id="dup")], expected=1)
    assert s.version("a") == 1 and s.head() == 2


def test_append_of_stored_ids_is_idempotent():
    s = EventStore()
    batch = [ev(1), ev(2)]
    first = s.append("a", batch, expected=NO_STREAM)
    s.append("a", [ev(3)], expected=2)
    again = s.append("a", batch, expected=NO_STREAM)  # a retry after a lost reply
    assert again.duplicate and (again.first_version, again.last_version) == (1, 2)
    assert again.last_position == first.last_position
    assert s.version("a") == 3 and s.head() == 3


def test_bad_expected_and_empty_batches_are_refused_clearly():
    s = EventStore()
    with pytest.raises(LabError, match="expected version -1"):
        s.append("a", [ev(1)], expected=-1)
    with pytest.raises(LabError, match="nothing to append"):
        s.append("a", [])
    assert s.head() == 0


# -- concurrency: 8 writers x 500 appends -----------------------------------------------------


def test_eight_writers_lose_nothing_and_never_share_a_version(tmp_path):
    path = str(tmp_path / "events.db")
    EventStore(path).close()  # create the schema once
    streams = ["s0", "s1", "s2"]
    seen = [0] * 8
    raised = [0] * 8
    errors = []

    def writer(w):
        store = EventStore(path)  # its own connection
        rng = random.Random(w)
        try:
            for i in range(500):
                stream = rng.choice(streams)
                while True:
                    version = store.version(stream)
                    try:
                        store.append(stream, [NewEvent("W", {"w": w, "i": i})], expected=version)
                        break
                    except WrongExpectedVersion as exc:
                        assert exc.stream == stream and exc.expected == version
                        assert exc.actual > version
                        seen[w] += 1
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            raised[w] = store.conflicts
            store.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = EventStore(path)
    events = store.read_all()
    assert len(events) == 4000  # no lost event
    assert sorted((e.data["w"], e.data["i"]) for e in events) == [
        (w, i) for w in range(8) for i in range(500)
    ]
    for stream in streams:
        versions = [e.version for e in store.read_stream(stream)]
        assert versions == list(range(1, len(versions) + 1))  # contiguous, no duplicate
    assert seen == raised  # every conflict the store raised reached its writer
    assert sum(seen) > 0, seen


# -- the aggregate ---------------------------------------------------------------------------


def _build_some_orders(svc, rng, n=6):
    for k in range(n):
        oid = f"o{k}"
        svc.create_order(f"u{k % 2}", oid)
        for j in range(rng.randint(0, 5)):
            svc.add_item(oid, f"p{j}", rng.randint(1, 4), rng.choice([1.5, 2.25, 10.0]))
        for status in ("paid", "shipped", "delivered")[: rng.randint(0, 3)]:
            svc.change_status(oid, status)
    return [f"o{k}" for k in range(n)]


@pytest.mark.parametrize("snapshot_every", [0, 3])
def test_replay_equals_live_state_and_state_at_k_equals_first_k_events(snapshot_every):
    _, repo, svc = service(snapshot_every)
    rng = random.Random(4)
    live = {}
    for oid in _build_some_orders(svc, rng):
        live[oid] = repo.load(oid)
    for oid, order in live.items():
        assert repo.replay(oid) == order == repo.load(oid)
        events = repo.history(oid)
        for k in range(1, len(events) + 1):
            at_k = repo.load(oid, at_version=k)
            assert at_k == rebuild(events[:k])
            assert at_k.version == k


def test_live_order_tracks_every_command():
    _, repo, svc = service()
    svc.create_order("u1", "a")
    svc.add_item("a", "kb", 2, 30)
    svc.add_item("a", "mouse", 1, 12.5)
    order = svc.change_status("a", "paid")
    assert order.status == "paid" and order.total == 72.5 and order.version == 4
    assert repo.load("a", at_version=1).items == []
    assert repo.load("a", at_version=3).total == 72.5 and repo.load("a", at_version=3).status == (
        "created"
    )


def test_snapshot_makes_loading_read_only_the_tail():
    store, repo, svc = service(snapshot_every=10, timeline=(tl := Timeline()))
    svc.create_order("u", "big")
    for i in range(24):
        svc.add_item("big", f"p{i}", 1, 1.0)
    snap = store.load_snapshot("order-big")
    assert snap.version == 20 and len(tl.of_kind("snapshot.taken")) == 2
    reads = []
    real = store.read_stream
    store.read_stream = lambda *a, **k: reads.append(r := real(*a, **k)) or r
    order = repo.load("big")
    assert order.version == 25 and order.total == 24.0 and len(reads[0]) == 5
    assert repo.load("big", at_version=7) == rebuild(real("order-big")[:7])  # before the snapshot


def test_stored_v1_item_events_are_upcast_when_read():
    store, repo, svc = service()
    svc.create_order("u", "old")
    # written by last year's code, raw into the table: price, no currency, schema 1
    store.conn.execute(
        "INSERT INTO events (stream, version, type, data, schema, id, created_at)"
        " VALUES ('order-old', 2, ?, ?, 1, 'legacy-1', 0)",
        (ITEM_ADDED, json.dumps({"product_id": "p", "quantity": 3, "price": 2.5})),
    )
    [e] = store.read_stream("order-old", from_version=2)
    assert e.schema == 2 and e.data == {
        "product_id": "p",
        "quantity": 3,
        "unit_price": 2.5,
        "currency": "EUR",
    }
    assert repo.load("old").total == 7.5
    stored = store.conn.execute("SELECT data, schema FROM events WHERE id = 'legacy-1'").fetchone()
    assert json.loads(stored[0]) == {"product_id": "p", "quantity": 3, "price": 2.5}  # untouched
    assert stored[1] == 1


def test_ordering_by_created_at_breaks_on_ties_and_skew():
    now = [100.0]
    _, repo, svc = service(clock=lambda: now[0])
    svc.create_order("u", "t")
    now[0] += 1.0
    svc.change_status("t", "paid")
    now[0] -= 0.5  # the next writer's clock is half a second behind
    svc.change_status("t", "shipped")
    by_time = rebuild(order_by_created_at(repo.history("t")))
    assert repo.load("t").status == "shipped" and by_time.status == "paid"
    # ties: events written in one clock tick come back in whatever order the database picks
    store2 = EventStore(clock=lambda: 5.0)
    store2.append(
        "order-tie",
        [
            NewEvent("OrderCreated", {"order_id": "tie", "user_id": "u"}, id="e3"),
            NewEvent("OrderStatusChanged", {"status": "paid"}, id="e2"),
            NewEvent("OrderStatusChanged", {"status": "cancelled"}, id="e1"),
        ],
    )
    history = store2.read_stream("order-tie")
    assert rebuild(history).status == "cancelled"
    assert [e.version for e in order_by_created_at(history)] == [3, 2, 1]
    assert rebuild(order_by_created_at(history)).status == "created"  # cancelled, then reset


# -- bad input: one clear message, nothing appended -------------------------------------------


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ({"type": "AddItem", "order_id": "a", "quantity": 1, "unit_price": 2}, "product_id"),
        (
            {
                "type": "AddItem",
                "order_id": "a",
                "product_id": "p",
                "quantity": -2,
                "unit_price": 1,
            },
            "quantity=-2: must be at least 1",
        ),
        (
            {
                "type": "AddItem",
                "order_id": "a",
                "product_id": "p",
                "quantity": 1.5,
                "unit_price": 1,
            },
            "whole number",
        ),
        (
            {
                "type": "AddItem",
                "order_id": "a",
                "product_id": "p",
                "quantity": 1,
                "unit_price": "abc",
            },
            "unit_price='abc': must be a number",
        ),
        (
            {
                "type": "AddItem",
                "order_id": "nope",
                "product_id": "p",
                "quantity": 1,
                "unit_price": 1,
            },
            "unknown order 'nope'",
        ),
        ({"type": "ChangeStatus", "order_id": "a", "status": "delivered"}, "next: paid, cancelled"),
        ({"type": "ChangeStatus", "order_id": "a", "status": "lost"}, "must be one of"),
        ({"type": "CreateOrder"}, "user_id"),
        ({"type": "CreateOrder", "user_id": "u", "order_id": "a"}, "'order-a': expected"),
        ({"type": "Explode"}, "type='Explode'"),
        (
            {"type": "ChangeStatus", "order_id": "a'; DROP TABLE events; --", "status": "paid"},
            "unknown order",
        ),
    ],
)
def test_bad_commands_give_one_message_and_append_nothing(command, message):
    store, _, svc = service()
    svc.create_order("u", "a")
    with pytest.raises(LabError) as err:
        svc.handle(command)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert store.head() == 1 and store.read_all()[0].type == "OrderCreated"


def test_items_cannot_be_added_after_payment():
    _, _, svc = service()
    svc.create_order("u", "a")
    svc.change_status("a", "paid")
    with pytest.raises(BadParameter, match="is paid"):
        svc.add_item("a", "p", 1, 1)


def test_unknown_order_is_a_lab_error():
    _, repo, _ = service()
    with pytest.raises(UnknownOrder, match="unknown order 'x'"):
        repo.load("x")


# -- the scenario ----------------------------------------------------------------------------


def test_scenario_by_version_replays_right_and_reports_every_conflict():
    r = labkit.run("event_sourcing", writers=8, items_per_order=10, snapshot_every=5)
    s = r.summary
    assert s["events"] == 10 * (1 + 10 + 2)  # no item lost to a conflict
    assert s["conflicts"] == s["conflicts_raised_by_store"] > 0
    assert len(r.timeline.of_kind("event.conflict")) == s["conflicts"]
    assert s["replay_equals_live"] and s["time_travel_ok"] and s["orders_misread"] == 0
    assert s["snapshots"] > 0 and s["legacy_v1_events"] > 0
    assert s["status_counts"] == {"shipped": 10}


def test_scenario_by_created_at_misreads_orders_with_skew_and_with_ties():
    skewed = labkit.run("event_sourcing", ordering="created_at", clock_skew_ms=20).summary
    assert skewed["orders_misread"] == skewed["orders"]
    calm = labkit.run("event_sourcing", ordering="created_at", clock_skew_ms=0).summary
    assert calm["orders_misread"] == 0  # no skew, no ties: the flaw stays hidden
    ties = labkit.run(
        "event_sourcing", ordering="created_at", clock_skew_ms=0, think_ms=0, writers=4
    ).summary
    assert ties["orders_misread"] > 0


def test_scenario_json_is_the_same_for_the_same_seed():
    a = labkit.run("event_sourcing", seed=3).to_json()
    assert a == labkit.run("event_sourcing", seed=3).to_json()


def test_steps_walk_the_order_version_by_version():
    _, repo, svc = service()
    svc.create_order("u", "s")
    svc.add_item("s", "kb", 2, 30)
    svc.add_item("s", "kb", 1, 30)  # same product and price: one line of three
    svc.change_status("s", "paid")
    steps = repo.steps("s")
    assert [(x["version"], x["status"], x["lines"], x["total"]) for x in steps] == [
        (1, "created", 0, 0.0),
        (2, "created", 1, 60.0),
        (3, "created", 1, 90.0),
        (4, "paid", 1, 90.0),
    ]


def test_race_tells_the_second_writer_instead_of_losing_its_item():
    store, repo, svc = service()
    svc.create_order("u", "r")
    out = race(svc, "r")
    assert out["loaded_version"] == 1 and out["after_winner"] == 2
    assert "expected version 1, but it is at version 2" in out["loser_error"]
    assert [line["product_id"] for line in repo.load("r").items] == ["from-writer-a"]
    assert store.conflicts == 1


def test_figures_show_the_log_and_the_conflicts():
    from labkit.viz import event_log, stream_steps

    r = labkit.run("event_sourcing", writers=8, items_per_order=10)
    fig = event_log(r)
    names = [t.name for t in fig.data]
    assert "conflict (refused)" in names
    dots = sum(len(t.x) for t in fig.data if t.name != "conflict (refused)")
    assert dots == r.summary["events"]
    conflicts = next(t for t in fig.data if t.name == "conflict (refused)")
    assert len(conflicts.x) == r.summary["conflicts"]
    steps = r.extras["repo"].steps("o000")
    chart = stream_steps(steps, at_version=3)
    assert list(chart.data[0].y) == [s["total"] for s in steps]


def test_default_event_ids_are_uuid7_and_grow_with_time():
    import uuid

    from labkit.patterns.event_store import new_event_id

    ids = [new_event_id() for _ in range(50)]
    assert {uuid.UUID(i).version for i in ids} == {7}
    assert len(set(ids)) == 50
    assert ids[0][:13] <= ids[-1][:13]  # the leading 48 bits are milliseconds
