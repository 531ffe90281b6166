"""The CQRS experiment on the real brokers: the syllabus' lost publish diverges the read model
there too (the broker loses nothing it was given), and both fixes repair it."""

import pytest

import labkit

LOSSY = {"publish_failure_share": 0.1, "read_after_ms": 100, "commands": 150, "seed": 4}


@pytest.mark.broker
@pytest.mark.parametrize("backend", ["nats", "rabbitmq"])
def test_a_logged_publish_failure_diverges_the_read_model_on_a_real_broker(backend):
    r = labkit.run("cqrs", backend=backend, fix="none", **LOSSY)
    s = r.summary
    memory = labkit.run("cqrs", fix="none", **LOSSY).summary
    assert s["backend"] == backend and s["publish_failures"] > 0
    assert s["published"] == s["acked"] == s["events"] - s["publish_failures"]
    assert s["lost"] == 0 and s["still_queued"] == 0  # the broker lost nothing it was given
    assert s["read_model_missing"] == memory["read_model_missing"] > 0  # same seed, same loss
    assert s["diverged_orders"] == memory["diverged_orders"] and s["diverged_after_rebuild"] == 0


@pytest.mark.broker
@pytest.mark.parametrize("backend", ["nats", "rabbitmq"])
def test_the_outbox_repairs_it_and_suppresses_the_relays_duplicates(backend):
    s = labkit.run(
        "cqrs", backend=backend, fix="outbox", relay_crash_share=0.1, crash_at=40, **LOSSY
    ).summary
    assert s["publish_failures"] > 0 and s["relay_crashes"] > 0
    assert s["published"] == s["acked"] == s["events"] and s["outbox_pending"] == 0
    assert s["duplicates_suppressed"] == s["relay_crashes"]
    assert s["projection_crashes"] == 1 and s["redelivered"] > 0
    assert s["read_model_missing"] == s["diverged_orders"] == 0


@pytest.mark.broker
@pytest.mark.parametrize("backend", ["nats", "rabbitmq"])
def test_projecting_from_the_store_ignores_the_lost_messages(backend):
    s = labkit.run("cqrs", backend=backend, fix="project_from_store", **LOSSY).summary
    assert s["publish_failures"] > 0 and s["lost"] == 0
    assert s["read_model_missing"] == s["diverged_orders"] == 0  # (stale reads: real timing)
