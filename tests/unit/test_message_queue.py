"""The orders-to-inventory queue on the memory broker: nothing lost, poison contained."""

import labkit


def test_thousand_messages_with_poison_and_crashes_lose_nothing():
    s = labkit.run(
        "message_queue", messages=1000, poison_share=0.05, crash_every=100, seed=3
    ).summary
    assert s["published"] == 1000 and s["lost"] == 0 and s["still_queued"] == 0
    assert s["poison_in_dlq"] == s["poison_published"] == s["dead_lettered"] > 0
    assert s["dead_letter_reasons"] == {"rejected": s["poison_published"]}
    assert s["acked"] == 1000 - s["poison_published"]  # every good message acked
    assert s["crashes"] == 9 and s["redelivered"] >= 9
    assert s["duplicates_suppressed"] == s["crashes"]  # each crash's redelivery applied once
    assert s["double_applied_units"] == 0


def test_without_idempotency_a_crash_applies_the_effect_twice():
    s = labkit.run("message_queue", crash_every=50, idempotent=False, seed=3).summary
    assert s["lost"] == 0 and s["crashes"] > 0
    assert s["double_applied_units"] > 0 and s["duplicates_suppressed"] == 0


def test_the_syllabus_consumer_loops_on_a_poison_message_until_stopped():
    s = labkit.run("message_queue", consumer="syllabus", max_deliveries=0, loop_cap=30).summary
    assert s["stopped_poison_loop"] and s["highest_delivery_count"] == 30
    assert s["dead_lettered"] == 0
    assert s["still_queued"] > 0  # the loop holds up everything behind it
    assert s["lost"] == 0  # stuck is not lost: it is all still there


def test_a_delivery_limit_turns_the_loop_into_a_dead_letter():
    s = labkit.run("message_queue", consumer="syllabus", max_deliveries=5).summary
    assert not s["stopped_poison_loop"] and s["highest_delivery_count"] == 5
    assert s["dead_letter_reasons"] == {"delivery_limit": s["poison_published"]}
    assert s["lost"] == 0 and s["still_queued"] == 0


def test_runs_repeat_for_a_seed():
    a = labkit.run("message_queue", crash_every=40, seed=9).to_json()
    assert a == labkit.run("message_queue", crash_every=40, seed=9).to_json()
