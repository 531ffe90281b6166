"""The messaging experiments on the real brokers: the same accounting as on memory."""

import pytest

import labkit


@pytest.mark.broker
@pytest.mark.parametrize("backend", ["nats", "rabbitmq"])
@pytest.mark.parametrize("consumer", ["fixed", "syllabus"])
def test_thousand_messages_with_poison_and_crashes_lose_nothing(backend, consumer):
    s = labkit.run(
        "message_queue",
        backend=backend,
        messages=1000,
        poison_share=0.05,
        crash_every=100,
        consumer=consumer,
        max_deliveries=5,
        processing_ms=0,
        seed=5,
    ).summary
    assert s["published"] == 1000 and s["lost"] == 0 and s["still_queued"] == 0
    assert s["poison_in_dlq"] == s["poison_published"] > 0
    reason = "rejected" if consumer == "fixed" else "delivery_limit"
    assert s["dead_letter_reasons"] == {reason: s["poison_published"]}
    assert s["acked"] == 1000 - s["poison_published"]
    assert s["double_applied_units"] == 0


@pytest.mark.broker("nats")
def test_core_nats_loses_what_an_offline_subscriber_missed_and_jetstream_catches_up():
    core = labkit.run("pubsub", backend="nats", delivery="core").summary
    durable = labkit.run("pubsub", backend="nats", delivery="durable").summary
    assert core["received"]["order-service"] == core["published"]
    assert core["missed_by_notification_service"] > 0
    assert durable["missed_by_notification_service"] == 0
    assert durable["caught_up_after_return"] == durable["published_while_offline"] > 0
