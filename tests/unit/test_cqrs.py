"""Read models built by a catch-up projection: queries, checkpoints, crashes, rebuilds."""

import random

import pytest

import labkit
from labkit.core.errors import LabError
from labkit.core.timeline import Timeline
from labkit.patterns.cqrs import OrderProjection, ProjectionCrash
from labkit.patterns.event_sourcing import OrderRepository
from labkit.patterns.event_store import EventStore
from labkit.patterns.order_commands import OrderService


def write_side(seed=1, orders=12):
    store = EventStore()
    svc = OrderService(OrderRepository(store))
    rng = random.Random(seed)
    for k in range(orders):
        oid = f"o{k:02d}"
        svc.create_order(f"u{k % 3}", oid)
        for j in range(rng.randint(0, 6)):
            svc.add_item(oid, f"p{j}", rng.randint(1, 5), rng.choice([0.1, 0.2, 19.99, 3.0]))
        for status in ("paid", "shipped")[: rng.randint(0, 2)]:
            svc.change_status(oid, status)
    return store, svc


def test_read_model_answers_the_syllabus_queries():
    store = EventStore()
    svc = OrderService(OrderRepository(store))
    svc.create_order("u1", "a")
    svc.add_item("a", "kb", 2, 30)
    svc.add_item("a", "mouse", 1, 12.5)
    svc.create_order("u1", "b")
    svc.change_status("a", "paid")
    svc.create_order("u2", "c")
    proj = OrderProjection()
    assert proj.get_order("a") is None  # nothing projected yet: the read side lags
    assert proj.catch_up(store, batch_size=4) == 6
    a = proj.get_order("a")
    assert (a["status"], a["items"], a["total"], a["version"]) == ("paid", 2, 72.5, 4)
    assert [(r["product_id"], r["subtotal"]) for r in a["lines"]] == [("kb", 60.0), ("mouse", 12.5)]
    assert [(r["order_id"], r["status"], r["total"]) for r in proj.orders_by_user("u1")] == [
        ("a", "paid", 72.5),
        ("b", "created", 0.0),
    ]
    assert proj.checkpoint == store.head() == 6 and proj.lag(store) == 0


def test_the_read_model_total_equals_the_aggregate_total():
    store, svc = write_side()
    proj = OrderProjection()
    proj.catch_up(store)
    for row in proj.table("order_view"):
        order = svc.repo.load(row["order_id"])
        assert (row["total"], row["status"], row["items"]) == (
            order.total,
            order.status,
            len(order.items),
        )


def test_rebuild_equals_the_incremental_model_row_for_row():
    store, svc = write_side()
    incremental = OrderProjection()
    for step in range(5):  # built in small steps while more commands arrive
        incremental.catch_up(store, batch_size=3)
        oid = f"n{step}"
        svc.create_order("u9", oid)
        svc.add_item(oid, "late", step + 1, 1.5)
    incremental.catch_up(store, batch_size=3)
    fresh = OrderProjection()
    fresh.rebuild(store)
    again = incremental.dump()
    incremental.rebuild(store)
    assert fresh.dump() == again == incremental.dump()
    assert len(again["order_items"]) > 10


@pytest.mark.parametrize("crash_after", [0, 1, 4, 6])
def test_a_crash_mid_batch_rolls_back_the_batch_and_its_checkpoint(crash_after):
    store, _ = write_side(seed=3)
    tl = Timeline()
    proj = OrderProjection(timeline=tl)
    proj.catch_up(store, batch_size=7)
    store_more, svc = store, OrderService(OrderRepository(store))
    svc.create_order("u1", "z")
    for i in range(6):
        svc.add_item("z", f"q{i}", 1, 2.0)
    before = proj.dump()
    checkpoint = proj.checkpoint
    with pytest.raises(ProjectionCrash, match=f"after {crash_after} of 7"):
        proj.catch_up(store_more, batch_size=7, crash_after=crash_after)
    assert proj.dump() == before and proj.checkpoint == checkpoint  # nothing half-applied
    assert len(tl.of_kind("projection.crashed")) == 1
    proj.catch_up(store_more, batch_size=7)  # restart: resumes from the stored checkpoint
    fresh = OrderProjection()
    fresh.rebuild(store)
    assert proj.dump() == fresh.dump()
    assert proj.get_order("z")["total"] == 12.0  # every item once, none twice


def test_unknown_read_model_names_are_refused_not_interpolated():
    with pytest.raises(LabError, match="unknown read model 'events; DROP'"):
        OrderProjection().table("events; DROP")


# -- the scenario ----------------------------------------------------------------------------


def test_reads_right_after_a_command_are_stale_and_later_reads_are_right():
    now = labkit.run("cqrs", projection_lag_ms=50, read_after_ms=0).summary
    later = labkit.run("cqrs", projection_lag_ms=50, read_after_ms=60).summary
    assert now["stale_read_share"] == 1.0
    assert later["stale_reads"] == 0
    assert now["visible_after_ms"]["max"] <= 50.0 + 1e-6
    assert now["rebuild_equals_incremental"] and now["diverged_orders"] == 0


@pytest.mark.parametrize("seed", range(4))
def test_a_lost_publish_makes_the_read_model_diverge_and_the_store_feed_does_not(seed):
    bus = labkit.run("cqrs", fix="none", publish_failure_share=0.1, read_after_ms=100, seed=seed)
    s = bus.summary
    assert s["publish_failures"] == len(bus.timeline.of_kind("publish.failed")) > 0
    assert s["diverged_orders"] > 0 and not s["rebuild_equals_incremental"]
    assert s["stale_reads"] > 0  # waiting does not help: the event never arrives
    assert s["diverged_after_rebuild"] == 0  # rebuilding from the store repairs it
    fixed = labkit.run("cqrs", fix="project_from_store", read_after_ms=100, seed=seed).summary
    assert fixed["diverged_orders"] == 0 and fixed["stale_reads"] == 0


def test_projection_crash_mid_batch_loses_and_doubles_nothing():
    r = labkit.run("cqrs", crash_at=50, batch_size=20, projection_lag_ms=200)
    s = r.summary
    assert s["projection_crashes"] == 1
    [crash] = r.timeline.of_kind("projection.crashed")
    assert "after 10 of 20 events" in crash.fields["detail"]  # in the middle of the batch
    assert s["rebuild_equals_incremental"] and s["diverged_orders"] == 0


def test_malformed_commands_are_rejected_with_one_line_and_append_nothing():
    r = labkit.run("cqrs", bad_command_share=0.3, commands=100)
    s = r.summary
    rejected = r.timeline.of_kind("command.rejected")
    assert s["rejected"] == len(rejected) > 10
    assert s["events"] == s["accepted"]  # every accepted command appended one event
    assert all("\n" not in rec.fields["error"] for rec in rejected)


def test_lag_chart_follows_head_and_checkpoint():
    from labkit.viz import projection_lag
    from labkit.viz.event_sourcing import lag_series

    r = labkit.run("cqrs", fix="none", publish_failure_share=0.1, read_after_ms=100)
    series = lag_series(r)
    assert series[-1]["head"] == r.summary["events"]
    assert all(p["checkpoint"] <= p["head"] for p in series)
    assert max(p["head"] - p["checkpoint"] for p in series) > 0  # the read side lagged
    names = [t.name for t in projection_lag(r).data]
    assert f"publish failed (logged) ({r.summary['publish_failures']})" in names


def test_order_session_steps_the_read_side_by_hand():
    from labkit.scenarios.order_session import OrderSession

    s = OrderSession(seed=2)
    assert s.lag() == 5 and s.read.get_order("42") is None
    assert s.send_random(8) == 8 and s.lag() > 5
    assert s.project(4, crash_after=2) == 0 and s.read.checkpoint == 0  # crashed, rolled back
    assert s.project(4) == s.store.head() and s.lag() == 0
    assert s.rebuild()  # equal row for row
    assert s.read.get_order("42")["total"] == 137.0
