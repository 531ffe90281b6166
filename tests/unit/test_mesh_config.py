"""Istio YAML in, checked dataclasses out; one clear message naming the path of a bad field;
the IST0130 lint finds the syllabus' unreachable route and nothing in a correct config."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.core.errors import BadParameter, LabError
from labkit.core.paths import data_dir
from labkit.patterns.mesh_config import (
    Destination,
    HTTPRoute,
    MatchRequest,
    MeshConfigError,
    StringMatch,
    load_mesh_config,
    parse_duration,
)
from labkit.patterns.mesh_lint import lint, shadows

SYLLABUS = (data_dir() / "mesh" / "syllabus.yaml").read_text()
FIXED = (data_dir() / "mesh" / "fixed.yaml").read_text()


def test_the_syllabus_yaml_loads_verbatim_with_its_route_order():
    config = load_mesh_config(SYLLABUS)
    (vs,) = config.virtual_services
    assert vs.hosts == ("order-service",)
    assert vs.http[0].match == ()  # the catch-all comes first
    assert [(d.subset, d.weight) for d in vs.http[0].route] == [("v1", 90), ("v2", 10)]
    assert vs.http[1].match[0].headers["end-user"].value == "beta-tester"
    (rule,) = config.destination_rules
    assert rule.policy_for("v1").load_balancer == "ROUND_ROBIN"
    assert rule.policy_for("v2").load_balancer == "LEAST_REQUEST"  # LEAST_CONN, renamed
    assert any("LEAST_CONN is deprecated" in n for n in config.notes)


def test_lint_reports_the_unreachable_route_with_its_index():
    (finding,) = lint(load_mesh_config(SYLLABUS))
    assert (finding.code, finding.route_index, finding.shadowed_by) == ("IST0130", 1, 0)
    assert finding.path == "spec.http[1]"
    assert "spec.http[1] is never reached" in finding.message


@pytest.mark.parametrize("name", ["fixed", "outlier", "least_request", "faults"])
def test_lint_is_silent_on_correct_configs(name):
    assert lint(load_mesh_config((data_dir() / "mesh" / f"{name}.yaml").read_text())) == []


def _vs(http: str) -> str:
    return "kind: VirtualService\nmetadata: {name: s}\nspec:\n  hosts: [s]\n  http:\n" + http


def test_lint_finds_a_broader_prefix_before_a_narrower_one_but_not_the_reverse():
    broad_first = _vs(
        "  - match: [{uri: {prefix: /}}]\n    route: [{destination: {host: s}}]\n"
        "  - match: [{uri: {prefix: /orders}}]\n    route: [{destination: {host: s}}]\n"
        "  - match: [{uri: {exact: /orders/1}}, {headers: {x: {exact: a}}}]\n"
        "    route: [{destination: {host: s}}]\n"
    )
    assert [f.route_index for f in lint(load_mesh_config(broad_first))] == [1]
    narrow_first = _vs(
        "  - match: [{uri: {prefix: /orders}}]\n    route: [{destination: {host: s}}]\n"
        "  - match: [{uri: {prefix: /}}]\n    route: [{destination: {host: s}}]\n"
    )
    assert lint(load_mesh_config(narrow_first)) == []


def _bad(text: str) -> str:
    with pytest.raises(MeshConfigError) as caught:
        load_mesh_config(text)
    assert isinstance(caught.value, BadParameter | LabError)
    return str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "path", "says"),
    [
        ("weight: 10", "weight: 15", "spec.http[0].route=", "must add up to 100"),
        ("weight: 10", "weight: -5", "spec.http[0].route[1].weight=-5", "between 0 and 100"),
        ("subset: v2\n      weight", "subset: v3\n      weight",
         "spec.http[0].route[1].destination.subset='v3'", "unknown subset"),
        ("      weight: 90", "      wieght: 90", "spec.http[0].route[0].wieght", "unknown field"),
        ("simple: ROUND_ROBIN", "simple: FASTEST", "spec.trafficPolicy.loadBalancer.simple",
         "must be one of"),
        ("weight: 90", "weight: ninety", "spec.http[0].route[0].weight", "whole number"),
    ],
)  # fmt: skip
def test_bad_values_give_one_message_naming_the_path(old, new, path, says):
    message = _bad(SYLLABUS.replace(old, new, 1))
    assert message.startswith(path) and says in message
    assert "\n" not in message


def test_negative_fault_percentage_and_bad_durations_are_named():
    fault = (
        "  - route: [{destination: {host: s}}]\n"
        "    fault: {abort: {httpStatus: 503, percentage: {value: -5}}}\n"
    )
    assert _bad(_vs(fault)).startswith("spec.http[0].fault.abort.percentage.value=-5")
    timeout = "  - route: [{destination: {host: s}}]\n    timeout: soon\n"
    assert _bad(_vs(timeout)).startswith("spec.http[0].timeout='soon': must be a duration")


def test_a_yaml_syntax_error_names_line_and_column():
    message = _bad("kind: VirtualService\nspec:\n  hosts: [a\n  http: {")
    assert message.startswith("yaml=") and "line" in message and "does not parse" in message


def test_unknown_kind_and_empty_text_are_refused():
    assert "must be VirtualService or DestinationRule" in _bad("kind: Gateway\nspec: {}\n")
    assert "holds no" in _bad("# nothing\n")


@pytest.mark.parametrize(
    ("text", "seconds"), [("1s", 1.0), ("250ms", 0.25), ("1.5s", 1.5), ("2m", 120.0)]
)
def test_istio_durations(text, seconds):
    assert parse_duration(text, "x") == pytest.approx(seconds)


def test_with_canary_moves_the_weights_of_every_split():
    config = load_mesh_config(FIXED).with_canary(30)
    split = config.virtual_services[0].http[1]
    assert [d.weight for d in split.route] == [70, 30]
    assert config.virtual_services[0].http[0].route[0].weight == 100  # a single route is kept


def test_analyze_never_raises_and_reports_findings_or_the_error():
    from labkit.patterns.mesh_lint import analyze

    good = analyze(SYLLABUS)
    assert good.ok and [f.route_index for f in good.findings] == [1] and good.notes
    bad = analyze(SYLLABUS.replace("weight: 10", "weight: -10"))
    assert not bad.ok and bad.error.startswith("spec.http[0].route[1].weight=-10")


# --- the lint never cries wolf: a reported shadow really takes every request -----------------

VALUES = ["", "a", "ab", "abc", "b", "ba"]
strings = st.builds(
    StringMatch,
    st.sampled_from(["exact", "prefix", "regex"]),
    st.sampled_from(["a", "ab", "b", ".*", "a.*", "abc"]),
)
clauses = st.builds(
    MatchRequest,
    headers=st.dictionaries(st.sampled_from(["h1", "h2"]), strings, max_size=2),
    uri=st.none() | strings,
)
routes = st.builds(
    HTTPRoute,
    index=st.just(0),
    name=st.just("r"),
    match=st.lists(clauses, max_size=2).map(tuple),
    route=st.just((Destination("s", None, 100),)),
)
requests = st.tuples(
    st.sampled_from(VALUES),
    st.dictionaries(st.sampled_from(["h1", "h2"]), st.sampled_from(VALUES), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(routes, routes, st.lists(requests, min_size=1, max_size=20))
def test_a_reported_shadow_matches_every_request_the_later_route_matches(early, late, reqs):
    if shadows(early, late):
        for path, headers in reqs:
            if late.matches("GET", path, headers):
                assert early.matches("GET", path, headers)
