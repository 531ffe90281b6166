"""The service mesh and service discovery pages, driven through the real app with AppTest.

The mesh page's YAML editor is edited like a learner would: the lint finding, the one-line
error of a bad value and the traffic chart are read back after each edit.
"""

from __future__ import annotations

from typing import Any

from streamlit.testing.v1 import AppTest

from labkit.core.paths import data_dir

from page_reading import chart_titled, metrics

MESH = "app_pages/03_service_mesh.py"
DISC = "app_pages/10_service_discovery.py"
FIXED = (data_dir() / "mesh" / "fixed.yaml").read_text()


def bars(figure: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {t["name"]: dict(zip(t["x"], t["y"], strict=True)) for t in figure["data"]}


def edit(at: AppTest, text: str) -> AppTest:
    at.text_area(key="service_mesh.yaml").input(text).run()
    assert not at.exception, at.exception
    return at


def test_mesh_page_lints_the_syllabus_yaml_and_the_reorder_fixes_beta_testers(open_page):
    at = open_page(MESH)
    assert any("spec.http[1] is never reached" in w.value for w in at.warning)
    assert any("LEAST_CONN is deprecated" in i.value for i in at.info)
    traffic = bars(chart_titled(at, "Where requests went"))
    assert traffic["subset v1"]["beta testers"] > 0  # the syllabus splits beta testers too
    assert metrics(at)["Routes used"] == "http[0]"
    assert any(c.value == "Requests per route: http[0] 1000" for c in at.caption)
    assert "--preset" not in at.code[0].value and "config" not in at.code[0].value

    edit(at, FIXED)
    assert not at.warning and any("the lint finds nothing" in s.value for s in at.success)
    assert metrics(at)["Beta testers on v2"] == "100.0%"
    assert metrics(at)["Routes used"] == "http[0], http[1]"
    traffic = bars(chart_titled(at, "Where requests went"))
    assert traffic["subset v1"]["beta testers"] == 0
    assert "config=fixed" in at.code[0].value


def test_mesh_page_shows_one_error_naming_the_path_and_runs_nothing(open_page):
    at = open_page(MESH)
    edit(at, FIXED.replace("weight: 10", "weight: -10"))
    (error,) = at.error
    assert error.value.startswith("spec.http[1].route[1].weight=-10")
    assert not at.get("plotly_chart")
    assert any("No run until the YAML is valid" in c.value for c in at.caption)
    edit(at, FIXED.replace("  hosts:\n  - order-service", "  hosts: [order-service"))
    assert "does not parse" in at.error[0].value and "line" in at.error[0].value


def test_mesh_page_canary_slider_and_an_edited_yaml_command(open_page):
    at = open_page(MESH)
    edit(at, FIXED)
    at.slider(key="service_mesh.canary_weight").set_value(50).run()
    assert not at.exception
    share = float(metrics(at)["Everyone else on v2"].removesuffix("%"))
    assert 45 <= share <= 55
    edit(at, FIXED.replace("weight: 90", "weight: 80").replace("weight: 10", "weight: 20"))
    assert "save the YAML as mesh.yaml" in at.code[0].value


def test_mesh_page_balancing_and_ejection_tabs(open_page):
    at = open_page(MESH)
    at.session_state["service_mesh.view"] = "Load balancing"
    at.run()
    assert not at.exception, at.exception
    slow = [m.value for m in at.metric if m.label == "To the slow instance"]
    p95 = [m.value for m in at.metric if m.label == "p95"]
    assert int(slow[0]) > 3 * int(slow[1])  # round robin vs least request
    assert float(p95[0].split()[0]) > float(p95[1].split()[0])
    chart_titled(at, "One slow instance")

    at.session_state["service_mesh.view"] = "Outlier detection"
    at.run()
    assert not at.exception, at.exception
    m = metrics(at)
    assert int(m["Ejections"]) >= 1 and int(m["Returns"]) >= 1
    assert m["Errors the caller saw"] == "0"
    figure = chart_titled(at, "Outlier detection")
    assert figure["layout"]["shapes"]  # the ejection spans are shaded
    events = at.dataframe[0].value
    assert events["event"].iloc[0] == "ejected for 10 s"


def test_discovery_page_registry_view_and_the_syllabus_crash(open_page):
    at = open_page(DISC)
    m = metrics(at)
    assert m["Noticed after"] == "10 s" and m["Client crashed"] == "no"
    assert int(m["Calls failed"]) > 0
    health = chart_titled(at, "Registry view")
    names = {t["name"] for t in health["data"]}
    assert {"passing", "critical", "failed check"} <= names

    at.toggle(key="discovery.kill_all").set_value(True).run()
    at.radio(key="discovery.lookup").set_value("syllabus").run()
    assert not at.exception, at.exception
    assert metrics(at)["Client crashed"] == "yes"
    assert any("list index out of range" in e.value for e in at.error)

    at.radio(key="discovery.lookup").set_value("checked").run()
    assert any("no healthy instance of user-service" in w.value for w in at.warning)
    assert metrics(at)["Client crashed"] == "no"


def test_discovery_page_preset_sets_the_controls(open_page):
    at = open_page(DISC)
    at.selectbox(key="discovery.preset").set_value("ttl_heartbeat").run()
    assert not at.exception, at.exception
    assert at.radio(key="discovery.check").value == "ttl"
    assert metrics(at)["Noticed after"] == "5 s"
