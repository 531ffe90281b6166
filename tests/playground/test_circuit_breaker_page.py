"""The circuit-breaker page, driven through the real app with Streamlit's AppTest.

The "Poke it by hand" tab keeps one BreakerSession per browser session: the tests click its
buttons and read the state badge, the counts and the transition table. The "Full 60 s run"
tab runs the scenario with the page's settings or a preset.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from labkit.cli import main as cli_main
from labkit.scenarios.presets import Preset

from page_reading import click, metrics

PAGE = "app_pages/04_circuit_breaker.py"
VIEW = "circuit_breaker.view"
FULL_RUN = "Full 60 s run"


def badge(at: AppTest) -> str:
    """The state badge's markdown, e.g. ``:red-badge[:material/block: Breaker open]``."""
    found = [m.value for m in at.markdown if "-badge[" in m.value]
    assert len(found) == 1, found
    return found[0]


def transitions(at: AppTest, index: int = 0) -> list[dict[str, Any]]:
    return at.dataframe[index].value.to_dict("records")


def chart(at: AppTest) -> dict[str, Any]:
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def full_run(at: AppTest) -> AppTest:
    at.session_state[VIEW] = FULL_RUN
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def page(open_page) -> AppTest:
    at = open_page(PAGE)
    assert at.title[0].value == "Circuit breaker"
    return at


# --- poke it by hand ------------------------------------------------------------------------


def test_starts_closed_with_nothing_sent(page) -> None:
    assert badge(page) == ":green-badge[:material/check_circle: Breaker closed]"
    m = metrics(page)
    assert m["Calls"] == "0" and m["Rejected by the breaker"] == "0"
    assert transitions(page) == []
    assert [b.label for b in page.button if b.disabled] == ["Bring it back"]


def test_service_down_and_twenty_calls_open_the_breaker(page) -> None:
    click(page, "Send 20 calls")
    assert metrics(page)["Succeeded"] == "20"
    click(page, "Take the service down")
    click(page, "Send 20 calls")
    assert badge(page) == ":red-badge[:material/block: Breaker open]"
    m = metrics(page)
    assert m["Calls"] == "40" and m["Succeeded"] == "20"
    assert m["Failed"] == "5"  # fail_max 5: the fifth failure in a row trips it
    assert m["Rejected by the breaker"] == "15"  # the rest never reached the service
    assert m["Reached the service"] == "25"
    assert any("Sent 20 calls: 5 failed, 15 rejected." in c.value for c in page.caption)
    [opened] = transitions(page)
    assert (opened["from"], opened["to"], opened["reason"]) == ("closed", "open", "trip policy")
    assert "consecutive_failures 5" in opened["counters"]
    figure = chart(page)
    names = [t.get("name") for t in figure["data"]]
    assert "rejected (breaker open)" in names and "failure" in names
    rejected = next(t for t in figure["data"] if t.get("name") == "rejected (breaker open)")
    assert len(rejected["x"]) == 15


def test_skip_bring_back_and_one_call_close_it_again(page) -> None:
    click(page, "Take the service down")
    click(page, "Send 20 calls")
    click(page, "Skip past the open timeout")
    assert "Breaker half-open" in badge(page)
    assert any("Skipped" in c.value and "next call is a trial" in c.value for c in page.caption)
    click(page, "Bring it back")
    click(page, "Send 1 call")
    assert badge(page) == ":green-badge[:material/check_circle: Breaker closed]"
    rows = transitions(page)
    assert [(r["from"], r["to"]) for r in rows] == [
        ("closed", "open"), ("open", "half-open"), ("half-open", "closed"),
    ]  # fmt: skip
    assert rows[1]["lasted (s)"] == 30.0  # open for exactly the open timeout
    assert rows[2]["reason"] == "trial calls succeeded"
    assert metrics(page)["Succeeded"] == "1"


def test_a_failing_trial_opens_it_again(page) -> None:
    click(page, "Take the service down")
    click(page, "Send 20 calls")
    click(page, "Skip past the open timeout")
    click(page, "Send 1 call")  # still down: the trial fails
    assert "Breaker open" in badge(page)
    assert transitions(page)[-1]["reason"] == "a trial call failed"


def test_skip_does_nothing_while_closed(page) -> None:
    click(page, "Skip past the open timeout")
    assert "Breaker closed" in badge(page)
    assert any("no timeout to skip" in c.value for c in page.caption)


@pytest.mark.parametrize("fail_max", [2, 8])
def test_fail_max_decides_when_it_opens(page, fail_max: int) -> None:
    page.slider(key="circuit_breaker.fail_max").set_value(fail_max).run()
    click(page, "Take the service down")
    click(page, "Send 20 calls")
    m = metrics(page)
    assert m["Failed"] == str(fail_max)
    assert m["Rejected by the breaker"] == str(20 - fail_max)
    [opened] = transitions(page)
    assert opened["t (s)"] == pytest.approx(0.2 * (fail_max - 1), abs=0.01)  # one call / 0.2 s


def test_new_settings_build_a_fresh_breaker(page) -> None:
    click(page, "Take the service down")
    click(page, "Send 20 calls")
    assert "Breaker open" in badge(page)
    page.number_input(key="circuit_breaker.open_timeout_s").set_value(5.0).run()
    assert "Breaker closed" in badge(page)
    assert metrics(page)["Calls"] == "0"
    assert any("fresh breaker" in c.value for c in page.caption)


def test_reset_starts_over(page) -> None:
    click(page, "Take the service down")
    click(page, "Send 20 calls")
    click(page, "Reset")
    assert "Breaker closed" in badge(page)
    assert metrics(page)["Calls"] == "0"
    assert [b.label for b in page.button if b.disabled] == ["Bring it back"]


def test_failure_rate_control_trips_the_ratio_policy(page) -> None:
    page.radio(key="circuit_breaker.policy").set_value("sliding_window").run()
    assert page.slider(key="circuit_breaker.minimum_calls").value == 10
    page.slider(key="circuit_breaker.session.error_rate").set_value(1.0).run()
    click(page, "Send 20 calls")
    m = metrics(page)
    assert m["Failed"] == "10"  # minimum_calls 10: no rate counts before ten calls
    assert m["Rejected by the breaker"] == "10"
    assert "calls_in_window 10" in transitions(page)[0]["counters"]


def test_latency_over_the_deadline_counts_as_failure(page) -> None:
    page.slider(key="circuit_breaker.session.latency_ms").set_value(800.0).run()
    click(page, "Send 20 calls")
    assert "Breaker open" in badge(page)
    m = metrics(page)
    assert m["Succeeded"] == "0"
    # each call gives up at the 500 ms deadline; calls start every 0.2 s, so by the fifth
    # failure more calls were already in flight, admitted while the breaker was closed
    assert int(m["Failed"]) > 5
    assert int(m["Failed"]) + int(m["Rejected by the breaker"]) == 20
    assert transitions(page)[0]["t (s)"] >= 0.8 + 0.5


def test_live_mode_sends_calls_by_itself(page) -> None:
    page.toggle(key="circuit_breaker.live").set_value(True).run()
    assert not page.exception
    assert metrics(page)["Calls"] == "5"  # one tick: one second of traffic
    page.toggle(key="circuit_breaker.live").set_value(False).run()
    click(page, "Send 1 call")
    assert metrics(page)["Calls"] == "6"


# --- the full run ---------------------------------------------------------------------------


def test_full_run_defaults(page) -> None:
    full_run(page)
    m = metrics(page)
    assert m["Calls"] == "300" and m["Failed"] == "5"
    assert m["Rejected by the breaker"] == "149" and m["Reached the service"] == "151"
    assert m["Reached it, no breaker"] == "300"
    assert m["Time open"] == "30.0 s"
    rows = transitions(page)
    assert [(r["t (s)"], r["to"]) for r in rows] == [
        (10.8, "open"), (40.8, "half-open"), (40.818, "closed"),
    ]  # fmt: skip
    assert chart(page)["layout"]["title"]["text"].startswith("Breaker (consecutive): 146 ok")
    assert [c.value for c in page.code] == ["labkit run circuit_breaker"]
    assert not page.get("badge") and not [b for b in page.button if b.label == "Send 1 call"]


@pytest.mark.parametrize(
    ("preset", "opened_at", "policy"),
    [("no_interval", 19.8, "gobreaker"), ("sliding_window", 11.8, "sliding_window")],
)
def test_a_preset_run_reports_its_transitions(page, preset, opened_at, policy) -> None:
    full_run(page)
    page.selectbox(key="circuit_breaker.preset").select(preset).run()
    assert not page.exception
    assert page.radio(key="circuit_breaker.policy").value == policy
    assert page.info, "the preset's explanation"
    rows = transitions(page)
    assert rows[0]["to"] == "open" and rows[0]["t (s)"] == pytest.approx(opened_at)
    assert [r["to"] for r in rows] == ["open", "half-open", "closed"]
    assert [c.value for c in page.code] == [f"labkit run circuit_breaker --preset {preset}"]


def test_full_run_settings_survive_a_visit_to_the_other_tab(page) -> None:
    full_run(page)
    page.radio(key="circuit_breaker.failure").set_value("errors").run()
    page.session_state[VIEW] = "Poke it by hand"
    page.run()
    page.run()
    full_run(page)
    assert page.radio(key="circuit_breaker.failure").value == "errors"
    assert page.code[0].value == "labkit run circuit_breaker --param failure=errors"


def test_the_shown_command_reproduces_the_full_run(page, capsys) -> None:
    full_run(page)
    page.selectbox(key="circuit_breaker.preset").select("syllabus").run()
    page.radio(key="circuit_breaker.fallback").set_value("cache").run()
    argv = shlex.split(page.code[0].value)
    assert argv[:3] == ["labkit", "run", "circuit_breaker"]
    assert "--preset" in argv and "fallback=cache" in argv
    assert cli_main([*argv[1:], "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    m = metrics(page)
    assert m["Rejected by the breaker"] == str(summary["rejected"])
    assert m["Answered by the fallback"] == str(summary["served_by_fallback"]) != "0"
    assert [r["t (s)"] for r in transitions(page)] == [t["t_s"] for t in summary["transitions"]]


# --- bad input ------------------------------------------------------------------------------


def test_a_bad_preset_is_one_line_not_a_traceback(open_page, monkeypatch) -> None:
    broken = {"broken": Preset("broken", "A broken preset", "fail_max 0", {"fail_max": 0})}
    monkeypatch.setattr("labkit.scenarios.presets.load_presets", lambda pattern: broken)
    at = open_page(PAGE)
    at.selectbox(key="circuit_breaker.preset").select("broken").run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "Preset 'broken': fail_max=0: must lie between 1 and 1000"
    ]
    assert at.slider(key="circuit_breaker.fail_max").value == 5  # the defaults, not half a preset
    assert "Breaker closed" in badge(at)


def test_an_empty_outage_window_is_pointed_out(page) -> None:
    full_run(page)
    page.number_input(key="circuit_breaker.outage_end_s").set_value(5.0).run()
    assert [w.value for w in page.warning] == [
        "*Until* is not after *From*: the service never has trouble in this run."
    ]
    assert metrics(page)["Failed"] == "0" and transitions(page) == []
