"""The CQRS page, driven through the real app: the write side beside the read side with the
lag, the projection run, crashed mid-batch and rebuilt by hand, and the experiment."""

from __future__ import annotations

import json
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

PAGE = "app_pages/08_cqrs.py"


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def widget(elements: Any, label: str) -> Any:
    found = [w for w in elements if w.label == label]
    assert found, f"no widget {label!r}"
    return found[0]


def click(at: AppTest, label: str) -> AppTest:
    widget(at.button, label).click().run()
    assert not at.exception, at.exception
    return at


def order_view(at: AppTest) -> list[dict[str, Any]]:
    return at.dataframe[1].value.to_dict("records")


def test_read_side_lags_until_the_projection_runs(open_page) -> None:
    at = open_page(PAGE)
    m = metrics(at)
    assert (m["Log head (position)"], m["Checkpoint"], m["Lag (events)"]) == ("5", "0", "5")
    assert order_view(at) == []  # the query side has not heard of order 42 yet
    click(at, "Run the projection")
    m = metrics(at)
    assert (m["Checkpoint"], m["Lag (events)"]) == ("5", "0")
    [row] = order_view(at)
    assert (row["order_id"], row["status"], row["total"], row["items"]) == ("42", "paid", 137.0, 2)
    assert at.selectbox(key="cqrs.user").value == "ada"
    click(at, "Send 5 commands")
    assert int(metrics(at)["Lag (events)"]) > 0
    assert int(metrics(at)["Log head (position)"]) > 5


def test_crash_mid_batch_keeps_the_checkpoint_and_rebuild_matches(open_page) -> None:
    at = open_page(PAGE)
    click(at, "Run the projection")
    click(at, "Send 5 commands")
    head, lag = int(metrics(at)["Log head (position)"]), int(metrics(at)["Lag (events)"])
    click(at, "Crash it mid-batch")
    assert any("checkpoint still 5" in e.value for e in at.error)
    assert metrics(at)["Checkpoint"] == "5" and int(metrics(at)["Lag (events)"]) == lag
    click(at, "Run the projection")
    assert metrics(at)["Checkpoint"] == str(head) and metrics(at)["Lag (events)"] == "0"
    incremental = order_view(at)
    click(at, "Rebuild the read model")
    assert any("row for row equal" in s.value for s in at.success)
    assert order_view(at) == incremental


def test_experiment_lost_publish_diverges_and_the_fixes_do_not(open_page) -> None:
    at = open_page(PAGE)
    assert at.radio(key="cqrs.backend").value == "memory"
    assert metrics(at)["Stale reads"] == "190 (100%)"
    widget(at.slider, "The client reads back after (ms)").set_value(60).run()
    assert metrics(at)["Stale reads"] == "0 (0%)"
    at.selectbox(key="cqrs.preset").set_value("lost_publish").run()
    assert not at.exception, at.exception
    m = metrics(at)
    assert int(m["Publishes failed"]) > 0 and int(m["Orders diverged"]) > 0
    assert int(m["Orders missing"]) > 0
    assert m["Published"] == f"{190 - int(m['Publishes failed'])} of 190"
    assert any("will never catch up" in w.value and "(0 lost)" in w.value for w in at.warning)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["layout"]["title"]["text"].startswith("Projection lag")
    assert any("--preset lost_publish" in c.value for c in at.code)
    at.selectbox(key="cqrs.preset").set_value("project_from_store").run()
    m = metrics(at)
    assert m["Orders diverged"] == m["Orders missing"] == "0" and m["Stale reads"] == "0 (0%)"
    assert int(m["Publishes failed"]) > 0  # the same failures, and they no longer matter
    at.selectbox(key="cqrs.preset").set_value("outbox").run()
    m = metrics(at)
    assert m["Published"] == "190 of 190" and int(m["Duplicates suppressed"]) > 0
    assert m["Orders diverged"] == "0" and not at.warning


def test_a_broker_that_does_not_answer_is_one_line(open_page, monkeypatch) -> None:
    from labkit.transport.probe import BrokerStatus

    def down(**_: Any) -> list[BrokerStatus]:
        return [
            BrokerStatus("NATS", "nats://127.0.0.1:1", False, "connection refused"),
            BrokerStatus("RabbitMQ", "amqp://127.0.0.1:1", False, "connection refused"),
        ]

    monkeypatch.setattr("labkit.transport.probe.broker_statuses", down)
    at = open_page(PAGE)
    at.radio(key="cqrs.backend").set_value("nats").run()
    assert not at.exception, at.exception
    assert any("does not answer" in e.value or "refused" in e.value for e in at.error)
    assert "Orders diverged" not in metrics(at)  # nothing ran
    click(at, "Use the memory broker")
    assert at.radio(key="cqrs.backend").value == "memory" and "Stale reads" in metrics(at)


@pytest.mark.broker("nats")
def test_the_experiment_runs_on_nats_with_the_same_loss(open_page) -> None:
    at = open_page(PAGE)
    at.selectbox(key="cqrs.preset").set_value("lost_publish").run()
    on_memory = metrics(at)
    at.radio(key="cqrs.backend").set_value("nats").run()
    assert not at.exception, at.exception
    on_nats = metrics(at)
    for label in ("Publishes failed", "Published", "Orders missing", "Orders diverged"):
        assert on_nats[label] == on_memory[label], label
    assert any("--backend nats" in c.value for c in at.code)
