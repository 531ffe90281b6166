"""The click-by-click queue: a poison loop, its fixes, the DLQ inspector and replay."""

import pytest

from labkit.core.errors import BadParameter
from labkit.scenarios.queue_session import QueueSession


@pytest.fixture
def session_factory():
    made = []

    def make(**kwargs):
        made.append(QueueSession(**kwargs))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_the_syllabus_consumer_spins_on_poison_and_blocks_the_queue(session_factory):
    s = session_factory(consumer="syllabus", max_deliveries=0)
    s.send_poison()
    s.publish_orders(5)
    summary = s.summary()
    assert summary["highest_delivery_count"] > 100  # the loop, bounded only by the clock
    assert summary["acked"] == 0 and summary["still_queued"] == 6 and summary["lost"] == 0


def test_a_delivery_limit_parks_the_poison_in_the_dlq_with_its_reason(session_factory):
    s = session_factory(consumer="syllabus", max_deliveries=5)
    poison = s.send_poison()
    s.publish_orders(5)
    rows = s.dead_letter_rows()
    assert [(r["id"], r["reason"], r["deliveries"]) for r in rows] == [
        (poison, "delivery_limit", 5)
    ]
    assert s.summary()["acked"] == 5


def test_after_deploying_the_fix_a_replay_processes_what_died(session_factory):
    s = session_factory(consumer="fixed")
    s.send_new_format_order()
    s.send_poison()
    assert [r["reason"] for r in s.dead_letter_rows()] == ["rejected", "rejected"]
    s.use_consumer("v2")
    assert s.replay_dead_letters() == 2
    summary = s.summary()
    assert summary["acked"] == 1 and summary["dead_lettered"] == 1  # the poison stays poison
    assert summary["lost"] == 0


def test_a_crash_redelivers_and_nothing_is_lost(session_factory):
    s = session_factory(consumer="fixed", processing_ms=50)
    s.publish_orders(3, settle_s=0.01)
    s.crash_consumer()
    summary = s.summary()
    assert summary["redelivered"] >= 1 and summary["acked"] == 3 and summary["lost"] == 0


def test_bad_settings_are_refused(session_factory):
    with pytest.raises(BadParameter, match="consumer='v3'"):
        session_factory(consumer="v3")
    s = session_factory()
    with pytest.raises(BadParameter, match="orders=0"):
        s.publish_orders(0)
