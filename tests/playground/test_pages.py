"""Every playground page, driven through the real app with Streamlit's AppTest.

Assertions read what a learner would read: metric values, table cells, the figure JSON of
each chart and the ``labkit run`` command, and check that moving a control changes them.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import labkit
from labkit.cli import main as cli_main
from labkit.transport.probe import BrokerStatus

from page_reading import button, chart_titled, code_blocks, metrics, ms

RR = "app_pages/01_request_response.py"
GW = "app_pages/02_api_gateway.py"
PAGES_DIR = Path(__file__).resolve().parents[2] / "playground" / "app_pages"


# --- the app and its navigation -----------------------------------------------------------


def test_every_page_file_is_registered_and_renders(open_page) -> None:
    at = open_page()
    pages = sorted(p.name for p in PAGES_DIR.glob("*.py"))
    assert "home.py" in pages and len(pages) >= 3
    for name in pages:
        at.switch_page(f"app_pages/{name}").run()  # raises if st.navigation lacks the page
        assert not at.exception, (name, at.exception)
        assert at.title, f"{name} shows no title"


# --- home --------------------------------------------------------------------------------


def _fake_brokers(nats: bool, rabbit: bool) -> list[BrokerStatus]:
    return [
        BrokerStatus("NATS", "nats://127.0.0.1:4222", nats, "JetStream on" if nats else "refused"),
        BrokerStatus("RabbitMQ", "amqp://guest:***@127.0.0.1:5672/", rabbit,
                     "AMQP 0-9-1" if rabbit else "Connection refused"),
    ]  # fmt: skip


def test_home_title_links_and_notebook_command(open_page) -> None:
    at = open_page()
    assert at.title[0].value == "Microservice Patterns Lab"
    links = {link.proto.label: link.proto.page for link in at.get("page_link")}
    assert set(links) >= {"Request-response", "API gateway / BFF"}
    assert "uv run jupyter lab notebooks/" in code_blocks(at)
    assert any("In-process" in s.value for s in at.success)


def test_home_shows_each_broker_status(open_page, monkeypatch) -> None:
    monkeypatch.delenv("LABKIT_BROKER", raising=False)
    monkeypatch.setattr(
        "labkit.transport.probe.broker_statuses", lambda: _fake_brokers(nats=True, rabbit=False)
    )
    at = open_page()
    assert any("NATS" in s.value and "answers" in s.value for s in at.success)
    assert any("RabbitMQ" in w.value and "does not answer" in w.value for w in at.warning)
    assert any("Messaging backend: **memory**" in i.value for i in at.info)


def test_home_warns_when_the_selected_broker_is_down(open_page, monkeypatch) -> None:
    monkeypatch.setenv("LABKIT_BROKER", "rabbitmq")
    monkeypatch.setattr(
        "labkit.transport.probe.broker_statuses", lambda: _fake_brokers(nats=True, rabbit=False)
    )
    at = open_page()
    assert any("LABKIT_BROKER=rabbitmq" in w.value and "does not answer" in w.value
               for w in at.warning)  # fmt: skip


def test_home_checks_the_brokers_again_on_request(open_page, monkeypatch) -> None:
    up = {"nats": False}
    monkeypatch.setattr(
        "labkit.transport.probe.broker_statuses",
        lambda: _fake_brokers(nats=up["nats"], rabbit=False),
    )
    at = open_page()
    assert any("**NATS** does not answer" in w.value for w in at.warning)
    up["nats"] = True
    at.run()
    assert any("**NATS** does not answer" in w.value for w in at.warning)  # cached for 30 s
    button(at, "Check the brokers again").click().run()
    assert any("**NATS** answers" in s.value for s in at.success)


def test_home_refuses_an_unknown_broker_name(open_page, monkeypatch) -> None:
    monkeypatch.setenv("LABKIT_BROKER", "kafka")
    at = open_page()
    assert any("'kafka'" in e.value for e in at.error)


def test_home_probes_the_real_ports(open_page, monkeypatch) -> None:
    monkeypatch.delenv("LABKIT_BROKER", raising=False)
    at = open_page()
    shown = [e.value for e in (*at.success, *at.warning)]
    for name in ("NATS", "RabbitMQ"):
        assert sum(f"**{name}**" in text for text in shown) == 1, shown


# --- request-response --------------------------------------------------------------------


def test_request_response_defaults(open_page) -> None:
    at = open_page(RR)
    m = metrics(at)
    assert m["Succeeded"] == "20 / 20" and m["Failed"] == "0"
    assert 15 < ms(m["p50 wait"]) < 30
    outcomes = chart_titled(at, "How calls ended")
    assert [t["name"] for t in outcomes["data"]] == ["ok"]
    assert sum(outcomes["data"][0]["y"]) == 20
    assert chart_titled(at, "How long calls took")["data"]
    assert code_blocks(at)[0] == "labkit run request_response"
    assert len(at.dataframe[1].value) > 40  # the timeline: sent, fault, received, call... per call


def test_naive_client_with_errors_fails(open_page) -> None:
    at = open_page(RR)
    at.radio(key="request_response.client").set_value("naive").run()
    at.slider(key="request_response.error_rate").set_value(0.3).run()
    assert not at.exception
    m = metrics(at)
    assert int(m["Failed"]) > 0
    examples = at.dataframe[0].value
    assert "KeyError" in set(examples["outcome"])  # what escapes the naive client
    outcomes = chart_titled(at, "How calls ended")
    assert "503" in [t["name"] for t in outcomes["data"]]
    assert code_blocks(at)[0] == (
        "labkit run request_response --param client=naive --param error_rate=0.3"
    )


def test_timeout_caps_the_longest_wait_of_hung_calls(open_page) -> None:
    at = open_page(RR)
    at.slider(key="request_response.hang_rate").set_value(0.2).run()
    assert ms(metrics(at)["Longest wait"]) == 250
    at.slider(key="request_response.timeout_ms").set_value(100.0).run()
    m = metrics(at)
    assert ms(m["Longest wait"]) == 100
    assert "timeout" in set(at.dataframe[0].value["outcome"])


def test_service_down(open_page) -> None:
    at = open_page(RR)
    at.toggle(key="request_response.down").set_value(True).run()
    assert metrics(at)["Succeeded"] == "0 / 20"
    table = at.dataframe[0].value
    assert list(table["outcome"]) == ["unavailable"]
    assert "down" in table["example"][0]


def test_the_shown_command_reproduces_the_page(open_page, capsys) -> None:
    at = open_page(RR)
    at.radio(key="request_response.client").set_value("naive").run()
    at.slider(key="request_response.reset_rate").set_value(0.25).run()
    at.slider(key="request_response.requests").set_value(40).run()
    command = code_blocks(at)[0]
    argv = shlex.split(command)
    assert argv[:2] == ["labkit", "run"]
    assert cli_main([*argv[1:], "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    m = metrics(at)
    assert m["Succeeded"] == f"{summary['succeeded']} / 40"
    assert m["Failed"] == str(summary["failed"]) != "0"


@pytest.mark.live
def test_live_backend_measures_again_on_request(open_page) -> None:
    at = open_page(RR)
    at.slider(key="request_response.requests").set_value(5).run()
    at.radio(key="request_response.backend").set_value("live").run()
    assert not at.exception, at.exception
    assert metrics(at)["Succeeded"] == "5 / 5"
    first = at.dataframe[1].value["t_ms"].tolist()
    assert code_blocks(at)[0] == "labkit run request_response --param requests=5 --backend live"
    at.run()
    assert at.dataframe[1].value["t_ms"].tolist() == first  # a rerun shows the same measurement
    button(at, "Measure again").click().run()
    assert at.dataframe[1].value["t_ms"].tolist() != first  # real time: new numbers


@pytest.mark.live
def test_compare_with_grpc(open_page) -> None:
    at = open_page(RR)
    at.slider(key="request_response.grpc_calls").set_value(50).run()
    button(at, "Compare with gRPC").click().run()
    assert not at.exception, at.exception
    m = metrics(at)
    http_bytes = int(m["http+json: payload"].split()[0])
    grpc_bytes = int(m["grpc+protobuf: payload"].split()[0])
    assert 0 < grpc_bytes < http_bytes
    figure = chart_titled(at, "The same user lookup, two protocols")
    assert figure["data"][0]["x"] == ["http+json", "grpc+protobuf"]
    assert "--param protocol=both --param requests=50" in code_blocks(at)[-1]
    # the comparison stays on the page while other controls move
    at.slider(key="request_response.error_rate").set_value(0.5).run()
    assert "grpc+protobuf: payload" in metrics(at)


# --- API gateway -------------------------------------------------------------------------


def test_gateway_defaults_compare_sequential_and_concurrent(open_page) -> None:
    at = open_page(GW)
    m = metrics(at)
    assert ms(m["End-to-end p50"]) == 270  # 10 + 10 + 5 x 50, one after another
    assert ms(m["Downstream time per request"]) == 270
    assert m["OK answers"] == "5 / 5" and m["Status codes"] == "5×200"
    compare = chart_titled(at, "Same request, two ways")
    titles = [a["text"] for a in compare["layout"]["annotations"]]
    assert titles == ["sequential: 270 ms", "concurrent: 60 ms"]
    assert chart_titled(at, "Waterfall of one request (270 ms end to end)")
    assert code_blocks(at)[0] == "labkit run gateway"


def test_slow_products_raise_end_to_end_latency(open_page) -> None:
    at = open_page(GW)
    at.slider(key="gateway.product_latency_ms").set_value(300.0).run()
    m = metrics(at)
    assert ms(m["End-to-end p50"]) == 10 + 10 + 5 * 300
    compare = chart_titled(at, "Same request, two ways")
    assert [a["text"] for a in compare["layout"]["annotations"]] == [
        "sequential: 1520 ms", "concurrent: 310 ms",
    ]  # fmt: skip
    at.radio(key="gateway.mode").set_value("concurrent").run()
    assert ms(metrics(at)["End-to-end p50"]) == 310
    assert "--param product_latency_ms=300" in code_blocks(at)[0]


def test_presets_set_the_controls(open_page) -> None:
    at = open_page(GW)
    at.selectbox(key="gateway.preset").select("one_product_down").run()
    m = metrics(at)
    assert m["OK answers"] == "0 / 5" and m["Status codes"] == "5×500"
    assert at.slider(key="gateway.failing_product").value == 3
    assert "503" in [t["name"] for t in chart_titled(at, "How calls ended")["data"]]
    assert any("503" in info.value or "500" in info.value for info in at.info)

    at.selectbox(key="gateway.preset").select("degrade").run()
    m = metrics(at)
    assert m["OK answers"] == "5 / 5" and m["Degraded answers"] == "5"
    assert at.radio(key="gateway.mode").value == "concurrent"
    assert code_blocks(at)[0] == "labkit run gateway --preset degrade"
    at.slider(key="gateway.items").set_value(7).run()
    assert code_blocks(at)[0] == "labkit run gateway --preset degrade --param items=7"

    button(at, "Reset to defaults").click().run()
    assert at.radio(key="gateway.mode").value == "sequential"
    assert metrics(at)["Degraded answers"] == "0"
    assert code_blocks(at)[0] == "labkit run gateway"


def test_mobile_bff_answers_are_smaller(open_page) -> None:
    at = open_page(GW)
    web = float(metrics(at)["Response size"].split()[0])
    at.radio(key="gateway.bff").set_value("mobile").run()
    mobile = float(metrics(at)["Response size"].split()[0])
    assert 0 < mobile < web


def test_waterfall_of_another_request(open_page) -> None:
    at = open_page(GW)
    at.slider(key="gateway.product_jitter_ms").set_value(40.0).run()
    at.radio(key="gateway.mode").set_value("concurrent").run()
    first = chart_titled(at, "Waterfall of one request")["layout"]["title"]["text"]
    at.number_input(key="gateway.request_shown").set_value(4).run()
    assert not at.exception
    fourth = chart_titled(at, "Waterfall of one request")["layout"]["title"]["text"]
    assert first != fourth  # jitter: each request waits for its own slowest draw


# --- the shared helper -------------------------------------------------------------------


def test_a_lab_error_is_one_line_on_the_page() -> None:
    def page() -> None:
        import controls

        controls.run("gateway", {"items": 99})

    at = AppTest.from_function(page, default_timeout=20).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["items=99: must lie between 1 and 12"]


def test_cli_command_only_spells_out_changes() -> None:
    import controls

    defaults = {p.name: p.default for p in labkit.params_of("request_response")}
    assert controls.cli_command("request_response", defaults) == "labkit run request_response"
    changed = {**defaults, "down": True, "latency_ms": 12.5, "user_id": "u 9"}
    assert controls.cli_command("request_response", changed, seed=3, backend="live") == (
        "labkit run request_response --param 'user_id=u 9' --param latency_ms=12.5 "
        "--param down=true --seed 3 --backend live"
    )


def test_home_lists_every_chapter_with_a_line_on_it(open_page) -> None:
    from course import BLURBS, PAGES

    at = open_page()
    links = {link.proto.page for link in at.get("page_link")}  # pages by their address
    for _section, path, _title, _icon in PAGES[1:]:
        address = re.sub(r"^\d+_", "", Path(path).stem)
        assert address in links, path
        assert BLURBS.get(path), f"{path} has no line on the home page"
