"""The versions-and-security page through the real app: all four tabs, real values."""

from __future__ import annotations

import json
from typing import Any

from streamlit.testing.v1 import AppTest

from page_reading import chart_titled, metrics

PAGE = "app_pages/12_versioning_and_security.py"


def frame(at: AppTest, column: str) -> list[dict[str, Any]]:
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with a {column!r} column"
    return found[0].to_dict("records")


def test_page_shows_versions_compatibility_gallery_and_handshakes(open_page) -> None:
    at = open_page(PAGE)
    m = metrics(at)
    assert m["Served"] == "5 of 8" and m["Server errors (5xx)"] == "0"
    assert m["Refused with a 4xx"] == "3"
    versions = {r["client"]: r for r in frame(at, "version")}
    assert versions["negotiates v2"]["version"] == "v2"
    assert versions["v9 in Accept"]["status"] == 406
    # compatibility: the default pair is v2 -> the v3 draft
    assert m["Verdict"] == "4 breaking change(s)"
    assert chart_titled(at, "5 change(s), 4 breaking")
    # JWT: the careful verifier by default, the comparison drawn
    assert m["Attacks refused for the stated reason"] == "10"
    assert m["Attacks let in"] == "0" and m["Good token"] == "passed"
    heat = chart_titled(at, "JWT attack gallery")["data"][0]
    assert heat["x"] == ["careful", "syllabus", "trusts_header"]
    # mTLS: real handshakes on loopback
    assert m["Accepted"] == "1 of 4" and m["Requests that reached the app"] == "1"
    assert m["Caller the server saw"] == "gateway"
    refused = {r["case"]: r["refused_by"] for r in frame(at, "refused_by")}
    assert refused["no_cert"] == refused["wrong_ca"] == "server"
    why = {r["case"]: r["server_reason"] for r in frame(at, "refused_by")}
    assert why["no_cert"] == "peer did not return a certificate"


def test_picking_a_token_shows_why_it_fails(open_page) -> None:
    at = open_page(PAGE)
    at.selectbox(key="jwt.pick").set_value("alg_none").run()
    assert not at.exception
    assert any("algorithm_not_allowed" in e.value for e in at.error)
    header = json.loads(at.json[0].proto.body)
    assert header["alg"] == "none"
    at.radio(key="jwt.verifier").set_value("trusts_header").run()
    assert any("accepted" in s.value for s in at.success)
    assert metrics(at)["Attacks let in"] == "5"


def test_a_preset_opens_the_hole_it_describes(open_page) -> None:
    at = open_page(PAGE)
    at.selectbox(key="jwt.preset").set_value("no_aud").run()
    assert not at.exception
    assert metrics(at)["Attacks let in"] == "1"


def test_bad_input_is_one_line_never_a_traceback(open_page) -> None:
    at = open_page(PAGE)
    at.text_area(key="compat.new").set_value("{not json").run()
    assert not at.exception
    assert any(e.value.startswith("Not JSON") for e in at.error)
    at.text_input(key="versioning.path_version").set_value("v1/../x").run()
    assert not at.exception
    assert any("path_version" in e.value for e in at.error)
    at.text_input(key="versioning.path_version").set_value("v7").run()
    rows = {r["client"]: r for r in frame(at, "version")}
    assert rows["your request"]["reason"] == "unknown_version"


def test_request_direction_flags_a_new_required_input(open_page) -> None:
    at = open_page(PAGE)
    at.text_area(key="compat.old").set_value('{"product_id": "p-1"}')
    at.text_area(key="compat.new").set_value('{"product_id": "p-1", "warehouse": "w-1"}')
    at.radio(key="compat.direction").set_value("request").run()
    assert metrics(at)["Verdict"] == "1 breaking change(s)"
    at.radio(key="compat.direction").set_value("response").run()
    assert metrics(at)["Verdict"] == "compatible"
