"""The resilience page (retries, deadlines, bulkheads), driven through the real app with AppTest.

Each tab runs its scenario with the page's controls; the assertions read the metrics, the
figure JSON of the charts and the ``labkit run`` command a learner would read.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

import labkit
from labkit.cli import main as cli_main
from labkit.scenarios.presets import Preset

from page_reading import chart_titled, click, metrics

PAGE = "app_pages/09_resilience.py"
VIEW = "resilience.view"


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def open_tab(at: AppTest, name: str) -> AppTest:
    at.session_state[VIEW] = name
    return rerun(at)


def bars(figure: dict[str, Any]) -> dict[str, float]:
    """The first bar trace of a figure: category -> height."""
    trace = next(t for t in figure["data"] if t["type"] == "bar")
    return dict(zip(trace["x"], trace["y"], strict=True))


@pytest.fixture
def page(open_page) -> AppTest:
    at = open_page(PAGE)
    assert at.title[0].value == "Timeouts, retries and bulkheads"
    return at


# --- retries ---------------------------------------------------------------------------------


def test_retries_default_storm_with_full_jitter(page) -> None:
    m = metrics(page)
    assert m["Clients answered"] == "100 / 100"
    assert m["Calls to the service"] == "692"
    assert m["All answered at"] == "6.3 s"
    storm = chart_titled(page, "100 clients, service down for 2.0 s")
    assert bars(storm) == {"full_jitter": 692}
    assert [c.value for c in page.code] == ["labkit run retry"]
    assert "Calls, exponential vs full jitter" not in m  # the comparison waits for its button


def test_exponential_makes_more_calls_than_full_jitter(page) -> None:
    page.radio(key="retry.backoff").set_value("exponential")
    m = metrics(rerun(page))
    assert m["Clients answered"] == "35 / 100" and m["All answered at"] == "never"
    exponential = int(m["Calls to the service"])
    page.radio(key="retry.backoff").set_value("full_jitter")
    full_jitter = int(metrics(rerun(page))["Calls to the service"])
    assert exponential == 1095 and full_jitter == 692
    assert exponential > 1.5 * full_jitter

    m = metrics(click(page, "Compare every backoff"))
    assert m["Calls, exponential vs full jitter"] == "1.58×"
    assert m["Exponential (no jitter): calls"] == "1095"
    assert m["Full jitter: calls"] == "692"
    compared = bars(chart_titled(page, "100 clients", index=1))  # below the single run
    assert set(compared) == {
        "none", "fixed", "exponential", "full_jitter", "equal_jitter", "decorrelated_jitter",
    }  # fmt: skip
    assert compared["exponential"] > compared["full_jitter"]
    table = page.table[0].value
    assert table.loc["exponential", "answered"] == 35
    assert table.loc["full_jitter", "answered"] == 100
    assert "labkit run retry --param compare=true" in [c.value for c in page.code]

    rerun(page)  # kept while the settings stay the same
    assert "Calls, exponential vs full jitter" in metrics(page)
    page.slider(key="retry.clients").set_value(50)
    rerun(page)  # new settings: the old comparison is not shown for them
    assert "Calls, exponential vs full jitter" not in metrics(page)
    assert metrics(page)["Clients answered"] == "50 / 50"


def test_retrying_400s_only_adds_useless_calls(page) -> None:
    page.selectbox(key="retry.preset").select("retry_400s")
    m = metrics(rerun(page))
    assert page.radio(key="retry.retry_on").value == "all"
    assert m["400 answers"] == "125"  # 20 malformed clients, each told 400 again and again
    assert m["Clients answered"] == "80 / 100"
    assert [c.value for c in page.code] == ["labkit run retry --preset retry_400s"]
    page.radio(key="retry.retry_on").set_value("transient")
    m = metrics(rerun(page))
    assert m["400 answers"] == "20"  # once each
    assert m["Clients answered"] == "80 / 100"
    assert [c.value for c in page.code] == [
        "labkit run retry --preset retry_400s --param retry_on=transient"
    ]


def test_budget_and_breaker_presets(page) -> None:
    page.selectbox(key="retry.preset").select("budget")
    m = metrics(rerun(page))
    assert m["Calls to the service"] == "104" and m["Retries refused by the budget"] == "100"
    page.selectbox(key="retry.preset").select("with_breaker")
    m = metrics(rerun(page))
    assert page.toggle(key="retry.breaker").value is True
    assert m["Calls to the service"] == "119" and m["Clients answered"] == "100 / 100"
    transitions = page.dataframe[0].value
    assert list(transitions["to"])[-1] == "closed"
    click(page, "Reset to defaults")
    assert page.toggle(key="retry.breaker").value is False
    assert metrics(page)["Calls to the service"] == "692"


def test_the_shown_command_reproduces_the_storm(page, capsys) -> None:
    page.radio(key="retry.backoff").set_value("equal_jitter")
    page.slider(key="retry.max_attempts").set_value(8)
    rerun(page)
    argv = shlex.split(page.code[0].value)
    assert argv == [
        "labkit", "run", "retry", "--param", "backoff=equal_jitter", "--param", "max_attempts=8",
    ]  # fmt: skip
    assert cli_main([*argv[1:], "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert metrics(page)["Calls to the service"] == str(summary["downstream_calls"])


# --- deadlines -------------------------------------------------------------------------------


def test_propagating_the_deadline_removes_the_work_after_it(page) -> None:
    open_tab(page, "Deadlines")
    page.toggle(key="deadline.propagate").set_value(False)
    m = metrics(rerun(page))
    assert m["Work after the deadline"] == "1,500 ms"
    assert m["Calls started too late"] == "3"
    assert m["Client saw"] == "3×timeout"
    waste = chart_titled(page, "Work nobody reads")
    assert bars(waste) == {"timeout at the gateway only": 1500, "deadline propagated": 0}
    assert chart_titled(page, "Waterfall of one request (1500 ms end to end)")
    assert [c.value for c in page.code] == ["labkit run deadline --param propagate=false"]

    page.toggle(key="deadline.propagate").set_value(True)
    m = metrics(rerun(page))
    assert m["Work after the deadline"] == "0 ms"
    assert m["Calls started too late"] == "0"
    assert m["Stopped early"] == "3"
    assert chart_titled(page, "Waterfall of one request (1000 ms end to end)")
    assert [c.value for c in page.code] == ["labkit run deadline"]


def test_a_budget_the_work_fits_in_wastes_nothing(page) -> None:
    open_tab(page, "Deadlines")
    page.selectbox(key="deadline.preset").select("generous_budget")
    m = metrics(rerun(page))
    assert m["Client saw"] == "3×200"
    assert m["Work after the deadline"] == "0 ms"
    assert bars(chart_titled(page, "Work nobody reads"))["timeout at the gateway only"] == 0


# --- bulkheads -------------------------------------------------------------------------------


def test_isolated_pools_keep_user_lookups_at_100_percent(page) -> None:
    open_tab(page, "Bulkheads")
    shared = metrics(page)
    assert page.radio(key="bulkhead.pools").value == "shared"
    expected = labkit.run("bulkhead", pools="shared").summary["user_success_rate"]
    assert shared["User success rate"] == f"{expected:.0%}" and expected < 0.8
    assert int(shared["User lookups refused"]) > 0
    page.radio(key="bulkhead.pools").set_value("isolated")
    isolated = metrics(rerun(page))
    assert isolated["User success rate"] == "100%"
    assert isolated["User lookups refused"] == "0"
    assert isolated["Product: ok / refused"] == "90 / 110"
    outcomes = chart_titled(page, "How the calls to each dependency ended")
    ok = next(t for t in outcomes["data"] if t["name"] == "ok")
    heights = dict(zip(zip(*ok["x"], strict=True), ok["y"], strict=True))
    assert heights[("isolated", "user")] == 200 > heights[("shared", "user")]
    assert [c.value for c in page.code] == ["labkit run bulkhead --param pools=isolated"]


def test_settings_survive_a_visit_to_another_tab(page) -> None:
    page.radio(key="retry.backoff").set_value("decorrelated_jitter")
    rerun(page)
    open_tab(page, "Bulkheads")
    page.radio(key="bulkhead.pools").set_value("isolated")
    rerun(page)
    open_tab(page, "Deadlines")
    open_tab(page, "Retries")
    assert page.radio(key="retry.backoff").value == "decorrelated_jitter"
    open_tab(page, "Bulkheads")
    assert metrics(page)["User success rate"] == "100%"


# --- bad input -------------------------------------------------------------------------------


def test_a_bad_preset_is_one_line_not_a_traceback(open_page, monkeypatch) -> None:
    broken = {"broken": Preset("broken", "A broken preset", "too many", {"clients": 5000})}
    monkeypatch.setattr("labkit.scenarios.presets.load_presets", lambda pattern: broken)
    at = open_page(PAGE)
    at.selectbox(key="retry.preset").select("broken")
    rerun(at)
    assert [e.value for e in at.error] == [
        "Preset 'broken': clients=5000: must lie between 1 and 2000"
    ]
    assert at.slider(key="retry.clients").value == 100  # the defaults, not half a preset
    assert at.selectbox(key="retry.preset").value is None
    assert metrics(at)["Clients answered"] == "100 / 100"
    assert [c.value for c in at.code] == ["labkit run retry"]
