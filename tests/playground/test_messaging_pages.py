"""The messaging pages (message queue; pub/sub and the outbox), driven through the real app.

The message-queue page keeps one QueueSession per browser session: the tests click its
buttons and read the accounting metrics, the dead-letter table and the charts. The pub/sub
page runs each experiment twice, side by side; the tests read each side's metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import labkit
from labkit.transport.brokers import BrokerUnavailable
from labkit.transport.probe import BrokerStatus

from page_reading import chart_titled, click, metrics

MQ = "app_pages/05_message_queue.py"
PS = "app_pages/06_pubsub.py"
SESSION = "message_queue.session"


def count(at: AppTest, label: str) -> int:
    return int(metrics(at)[label])


def dead_letters(at: AppTest) -> list[dict[str, Any]]:
    """The DLQ inspector's rows (the page's only table), or [] when it says the DLQ is empty."""
    if any(c.value == "The DLQ is empty." for c in at.caption):
        return []
    assert len(at.dataframe) == 1
    return at.dataframe[0].value.to_dict("records")


def side(at: AppTest, header: str) -> dict[str, str]:
    """The metrics of one side of a side-by-side comparison, found by its bold header."""
    for col in at.columns:
        if any(m.value == f"**{header}**" for m in col.markdown):
            return {m.label: m.value for m in col.metric}
    raise AssertionError(f"no column headed {header!r}")


def fake_brokers(nats: bool, rabbit: bool) -> list[BrokerStatus]:
    return [
        BrokerStatus("NATS", "nats://127.0.0.1:4222", nats, "JetStream on" if nats else "refused"),
        BrokerStatus(
            "RabbitMQ",
            "amqp://guest:***@127.0.0.1:5672/",
            rabbit,
            "AMQP 0-9-1" if rabbit else "Connection refused",
        ),
    ]


@pytest.fixture
def open_mq(open_page) -> Iterator[Callable[[], AppTest]]:
    """Open the message-queue page; its QueueSession (a worker thread) is closed afterwards."""
    opened: list[AppTest] = []

    def _open() -> AppTest:
        at = open_page(MQ)
        opened.append(at)
        assert at.title[0].value == "Message queue"
        return at

    yield _open
    for at in opened:
        if SESSION in at.session_state:
            at.session_state[SESSION]["session"].close()


@pytest.fixture
def mq(open_mq) -> AppTest:
    return open_mq()


@pytest.fixture
def ps(open_page) -> AppTest:
    at = open_page(PS)
    assert at.title[0].value == "Publish-subscribe and the outbox"
    return at


# --- the queue, by hand -----------------------------------------------------------------------


def test_a_fresh_queue_is_empty(mq) -> None:
    m = metrics(mq)
    assert {m[k] for k in ("Published", "Acked", "Lost", "Still queued")} == {"0"}
    assert dead_letters(mq) == []
    assert chart_titled(mq, "Queue depth over time")
    assert chart_titled(mq, "Where 0 messages went")
    assert mq.radio(key="message_queue.session.consumer").value == "syllabus"
    assert mq.radio(key="message_queue.backend").value == "memory"


def test_poison_loop_with_the_syllabus_consumer(mq) -> None:
    click(mq, "Send a poison message")
    first = count(mq, "Max deliveries")
    assert first > 1 and count(mq, "Still queued") == 1 and count(mq, "Acked") == 0
    click(mq, "Publish 10 orders")
    second = count(mq, "Max deliveries")
    assert second > first
    assert count(mq, "Still queued") == 11 and count(mq, "Acked") == 0  # stuck behind it
    click(mq, "Let 1 s pass")
    assert count(mq, "Max deliveries") > second
    assert count(mq, "Redelivered") >= second - 1
    assert count(mq, "Lost") == 0 and dead_letters(mq) == []
    assert any("for ever" in w.value for w in mq.warning)
    waiting = next(t for t in chart_titled(mq, "Queue depth")["data"] if t["name"] == "waiting")
    assert max(waiting["y"]) >= 10


def test_fixed_consumer_dead_letters_and_replay_after_v2(mq) -> None:
    click(mq, "Send a poison message")
    click(mq, "Send a new-format order")
    assert count(mq, "Acked") == 0  # the syllabus' consumer cannot read either
    mq.radio(key="message_queue.session.consumer").set_value("fixed").run()
    assert not mq.exception, mq.exception
    rows = dead_letters(mq)
    assert [r["reason"] for r in rows] == ["rejected", "rejected"]
    assert rows[0]["body"] == "<order corrupted>" and rows[0]["deliveries"] > 1
    assert '"lines"' in rows[1]["body"]
    m = metrics(mq)
    assert m["Dead-lettered"] == "2" and m["Still queued"] == "0" and m["Lost"] == "0"
    assert any("Deployed the `fixed` consumer" in c.value for c in mq.caption)

    mq.radio(key="message_queue.session.consumer").set_value("v2").run()
    click(mq, "Replay the DLQ")
    assert any("Moved 2 dead letter(s)" in c.value for c in mq.caption)
    rows = dead_letters(mq)
    assert [(r["reason"], r["body"]) for r in rows] == [("rejected", "<order corrupted>")]
    assert count(mq, "Acked") == 1  # the new-format order, read by v2
    assert count(mq, "Lost") == 0
    fate = chart_titled(mq, "Where 2 messages went")
    assert "DLQ: rejected" in fate["data"][0]["node"]["label"]


def test_delivery_limit_dead_letters_with_its_reason(mq) -> None:
    mq.slider(key="message_queue.session.max_deliveries").set_value(3).run()
    click(mq, "Send a poison message")
    rows = dead_letters(mq)
    assert [(r["reason"], r["deliveries"]) for r in rows] == [("delivery_limit", 3)]
    m = metrics(mq)
    assert m["Still queued"] == "0" and m["Dead-lettered"] == "1" and m["Lost"] == "0"
    assert not mq.warning


def test_a_crash_redelivers_and_loses_nothing(mq) -> None:
    click(mq, "Publish 10 orders")
    assert 0 < count(mq, "Acked") < 10 and count(mq, "Still queued") > 0  # still working
    click(mq, "Crash the consumer")
    assert any("crashed holding 1 unacknowledged" in c.value for c in mq.caption)
    assert count(mq, "Redelivered") >= 1
    click(mq, "Let 1 s pass")
    m = metrics(mq)
    assert m["Acked"] == "10" and m["Lost"] == "0" and m["Still queued"] == "0"
    names = [t["name"] for t in chart_titled(mq, "Queue depth")["data"]]
    assert "consumer crashed" in names


def test_reset_starts_a_fresh_queue(mq) -> None:
    click(mq, "Publish 10 orders")
    assert count(mq, "Published") == 10
    click(mq, "Reset")
    assert count(mq, "Published") == 0
    assert any("time back at 0" in c.value for c in mq.caption)


# --- the queue, a whole run ---------------------------------------------------------------


def test_full_run_presets(mq) -> None:
    mq.session_state["message_queue.view"] = "Full run"
    mq.run()
    assert not mq.exception, mq.exception
    assert [c.value for c in mq.code] == ["labkit run message_queue"]
    mq.selectbox(key="message_queue.preset").select("poison_loop").run()
    m = metrics(mq)
    assert m["Max deliveries"] == "50" and m["Still queued"] == "176"
    assert any("was stopped" in w.value for w in mq.warning)
    assert mq.code[0].value == "labkit run message_queue --preset poison_loop"

    mq.selectbox(key="message_queue.preset").select("crash_every_100").run()
    m = metrics(mq)
    assert m["Redelivered"] == "9" and m["Lost"] == "0" and m["Units taken twice"] == "0"
    assert m["Poison messages in the DLQ"] == "60 / 60"
    mq.toggle(key="message_queue.idempotent").set_value(False).run()
    assert int(metrics(mq)["Units taken twice"]) > 0
    assert "--param idempotent=false" in mq.code[0].value


# --- backends -------------------------------------------------------------------------------


def test_a_broker_that_does_not_answer_is_one_line(open_mq, monkeypatch) -> None:
    monkeypatch.setattr(
        "labkit.transport.probe.broker_statuses", lambda **_: fake_brokers(False, False)
    )
    mq = open_mq()
    mq.radio(key="message_queue.backend").set_value("nats").run()
    assert not mq.exception, mq.exception
    assert len(mq.error) == 1
    assert "NATS at nats://127.0.0.1:4222 does not answer" in mq.error[0].value
    click(mq, "Send a poison message")  # the by-hand queue still works
    assert count(mq, "Still queued") == 1 and len(mq.error) == 1
    mq.session_state["message_queue.view"] = "Full run"
    mq.run()
    assert any(c.value.startswith("No run") for c in mq.caption) and len(mq.error) == 1
    click(mq, "Use the memory broker")
    assert mq.radio(key="message_queue.backend").value == "memory" and not mq.error
    assert mq.code[0].value == "labkit run message_queue"


def test_a_broker_that_fails_during_the_run_is_one_line(open_page, monkeypatch) -> None:
    monkeypatch.setattr(
        "labkit.transport.probe.broker_statuses", lambda **_: fake_brokers(True, True)
    )
    real_run = labkit.run

    def run(pattern: str, *, backend: str | None = None, **kw: Any) -> labkit.Result:
        if backend == "rabbitmq":
            raise BrokerUnavailable("RabbitMQ at amqp://guest:***@127.0.0.1:5672/ refused")
        return real_run(pattern, backend=backend, **kw)

    monkeypatch.setattr(labkit, "run", run)
    at = open_page(PS)
    at.radio(key="pubsub.backend").set_value("rabbitmq").run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == ["RabbitMQ at amqp://guest:***@127.0.0.1:5672/ refused"]
    assert not at.metric
    at.radio(key="pubsub.backend").set_value("memory").run()
    assert not at.error and at.metric


# --- pub/sub and the outbox -------------------------------------------------------------------


def test_core_misses_what_durable_catches_up(ps) -> None:
    core, durable = side(ps, "Core pub/sub"), side(ps, "Durable queues")
    assert int(core["Missed"]) > 0 and core["Caught up"] == "0"
    assert durable["Missed"] == "0" and int(durable["Caught up"]) == int(core["Missed"])
    assert core["Order service received"] == durable["Order service received"] == "50 / 50"
    assert durable["Notification service received"] == "50 / 50"
    assert chart_titled(ps, "core: what was published while away is gone")
    assert [c.value for c in ps.code] == [
        "labkit run pubsub --param delivery=core",
        "labkit run pubsub",
    ]
    missed = int(core["Missed"])
    ps.slider(key="pubsub.offline_to_s").set_value(4.0).run()  # a longer outage
    assert int(side(ps, "Core pub/sub")["Missed"]) > missed
    assert side(ps, "Durable queues")["Missed"] == "0"


def test_dual_write_loses_events_and_the_outbox_does_not(ps) -> None:
    ps.session_state["pubsub.view"] = "Outbox vs the dual write"
    ps.run()
    assert not ps.exception, ps.exception
    for seed in (0, 3):
        ps.number_input(key="outbox.seed").set_value(seed).run()
        dual, box = side(ps, "Dual write (the syllabus)"), side(ps, "Transactional outbox")
        assert int(dual["Events missing"]) > 0, seed
        assert int(dual["Stock taken"]) == 100 - int(dual["Events missing"])
        assert box["Events missing"] == "0" and box["Stock taken"] == "100"
        assert int(box["Relay crashes"]) > 0 and box["Repeats skipped"] == box["Relay crashes"]
    assert any("lost 0" in i.value for i in ps.info)
    assert ps.code[1].value == "labkit run outbox --seed 3"

    ps.toggle(key="outbox.idempotent").set_value(False).run()
    box = side(ps, "Transactional outbox")
    assert int(box["Stock taken"]) > 100
    assert any("twice" in w.value for w in ps.warning)


def test_request_reply_tab_answers_once_per_request_and_shows_no_responders(ps) -> None:
    ps.session_state["pubsub.view"] = "Request-reply through the broker"
    ps.run()
    assert not ps.exception, ps.exception
    m = metrics(ps)
    assert m["Answered"] == "20 / 20" and m["Timed out"] == "0"
    assert ps.dataframe[0].value.to_dict("records") == [
        {"responder": "user-1", "requests answered": 10},
        {"responder": "user-2", "requests answered": 10},
    ]
    ps.slider(key="request_reply.responders").set_value(0).run()
    m = metrics(ps)
    assert m["No responders"] == "20" and m["Answered"] == "0 / 20"
    assert any("fall back immediately" in i.value for i in ps.info)
    assert ps.code[-1].value == "labkit run request_reply --param responders=0"
