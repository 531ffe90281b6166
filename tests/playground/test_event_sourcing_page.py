"""The event-sourcing page, driven through the real app: commands with validation, the log,
the time-travel slider and its step buttons, the two-writers race, and the experiment."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from page_reading import click, metrics, widget

PAGE = "app_pages/07_event_sourcing.py"


def log_rows(at: AppTest) -> int:
    return len(at.dataframe[0].value)


def test_moving_the_time_travel_slider_shows_the_order_at_that_version(open_page) -> None:
    at = open_page(PAGE)
    m = metrics(at)
    assert (m["Version"], m["Status"], m["Lines"], m["Total"]) == ("5 / 5", "paid", "2", "137")
    widget(at.slider, "Version").set_value(1).run()
    m = metrics(at)
    assert (m["Version"], m["Status"], m["Lines"], m["Total"]) == ("1 / 5", "created", "0", "0")
    widget(at.slider, "Version").set_value(3).run()
    m = metrics(at)
    assert (m["Version"], m["Status"], m["Lines"], m["Total"]) == ("3 / 5", "created", "2", "88")
    assert any("OrderItemAdded" in c.value and "mouse" in c.value for c in at.caption)
    steps = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert steps["data"][0]["y"] == [0, 49, 88, 137, 137]
    assert steps["layout"]["shapes"][0]["x0"] == 3  # the highlighted version
    click(at, "Previous event")
    assert metrics(at)["Version"] == "2 / 5" and metrics(at)["Total"] == "49"
    click(at, "Next event")
    click(at, "Next event")
    assert metrics(at)["Version"] == "4 / 5"


def test_a_valid_command_appends_and_moves_to_the_new_version(open_page) -> None:
    at = open_page(PAGE)
    before = log_rows(at)
    widget(at.radio, "Command").set_value("ChangeStatus").run()
    widget(at.selectbox, "New status").set_value("shipped")
    click(at, "Send command")
    assert log_rows(at) == before + 1
    assert any("order 42 is now at version 6 (shipped" in s.value for s in at.success)
    assert metrics(at)["Version"] == "6 / 6" and metrics(at)["Status"] == "shipped"
    widget(at.radio, "Command").set_value("AddItem").run()
    click(at, "Send command")  # a shipped order takes no more items
    assert any("is shipped: items can only be added" in e.value for e in at.error)
    assert log_rows(at) == before + 1


def test_bad_commands_show_one_message_and_append_nothing(open_page) -> None:
    at = open_page(PAGE)
    widget(at.radio, "Command").set_value("CreateOrder").run()
    widget(at.text_input, "User").set_value("lin")
    widget(at.text_input, "Order id (empty: a new id)").set_value("7")
    click(at, "Send command")
    assert any("order 7 is now at version 1" in s.value for s in at.success)
    base = log_rows(at)
    widget(at.radio, "Command").set_value("AddItem").run()
    for order, product, quantity, message in (
        ("7", "pen", -2, "quantity=-2: must be at least 1"),
        ("7", "", 1, "product_id=None: is required by AddItem"),
        ("nope", "pen", 1, "unknown order 'nope'"),
        ("7'; DROP TABLE events; --", "pen", 1, "unknown order"),
    ):
        widget(at.text_input, "Order id").set_value(order)
        widget(at.text_input, "Product").set_value(product)
        widget(at.number_input, "Quantity").set_value(quantity)
        click(at, "Send command")
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and message in errors[0] and "nothing appended" in errors[0]
        assert log_rows(at) == base
    widget(at.text_input, "Order id").set_value("7")
    widget(at.text_input, "Product").set_value("pen")
    widget(at.number_input, "Quantity").set_value(2)
    click(at, "Send command")
    assert log_rows(at) == base + 1
    assert metrics(at)["Version"] == "2 / 2" and metrics(at)["Lines"] == "1"


def test_two_writers_one_gets_the_concurrency_error(open_page) -> None:
    at = open_page(PAGE)
    click(at, "Let two writers race")
    assert any("Writer A set it shipped: appended version 6 (expected 5)" in s.value
               for s in at.success)  # fmt: skip
    assert any(
        "concurrency conflict on stream 'order-42': expected version 5, but it is at version 6"
        in e.value
        for e in at.error
    )
    assert metrics(at)["Version"] == "6 / 6" and metrics(at)["Status"] == "shipped"


def test_experiment_preset_shows_the_created_at_flaw(open_page) -> None:
    at = open_page(PAGE)
    assert metrics(at)["Orders misread"] == "0 / 10"
    at.selectbox(key="event_sourcing.preset").set_value("skewed_clocks").run()
    assert not at.exception, at.exception
    assert metrics(at)["Orders misread"] == "10 / 10"
    assert any("Read by created_at" in w.value for w in at.warning)
    log = [json.loads(c.proto.spec) for c in at.get("plotly_chart")][-1]
    assert log["layout"]["title"]["text"].startswith("The event log: 70 events")
    assert any("--preset skewed_clocks" in c.value for c in at.code)
