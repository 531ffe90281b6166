"""Fan-out with an offline subscriber, and the outbox against the dual write."""

import pytest

import labkit


def test_core_pubsub_loses_what_was_published_while_away():
    s = labkit.run("pubsub", delivery="core").summary
    assert s["received"]["order-service"] == s["published"]  # fan-out: everyone else got all
    assert s["missed_by_notification_service"] == s["published_while_offline"] > 0
    assert s["caught_up_after_return"] == 0


def test_durable_queue_catches_up_after_the_subscriber_returns():
    s = labkit.run("pubsub", delivery="durable").summary
    assert s["received"] == {"order-service": 50, "notification-service": 50}
    assert s["missed_by_notification_service"] == 0
    assert s["caught_up_after_return"] == s["published_while_offline"] > 0
    assert s["accounting"]["lost"] == 0


@pytest.mark.parametrize("seed", range(12))
def test_dual_write_loses_the_event_of_every_crash_and_the_outbox_never_does(seed):
    naive = labkit.run("outbox", mode="dual_write", crash_share=0.2, seed=seed).summary
    safe = labkit.run(
        "outbox", mode="outbox", crash_share=0.2, relay_crash_share=0.2, seed=seed
    ).summary
    assert naive["events_missing"] == naive["service_crashes"]
    assert safe["events_missing"] == 0
    assert safe["stock_taken"] == safe["orders_saved"] == 100  # each event applied once
    assert safe["duplicates_suppressed"] == safe["relay_crashes"]  # one re-send per relay crash


def test_the_outbox_is_at_least_once_so_consumers_must_be_idempotent():
    s = labkit.run("outbox", mode="outbox", relay_crash_share=0.3, idempotent=False, seed=2).summary
    assert s["events_missing"] == 0 and s["relay_crashes"] > 0
    assert s["stock_taken"] > s["orders_saved"]
