"""API versioning: path and Accept negotiation, 4xx reasons, and the compatibility checker."""

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.core.errors import BadParameter
from labkit.patterns.compatibility import RULES, compare, is_compatible, report, schema_of
from labkit.patterns.versioning import (
    V3_DRAFT_EXAMPLE,
    VersionError,
    negotiate,
    represent,
    versioned_app,
)

PRODUCTS = {"p-1": {"id": "p-1", "name": "Laptop", "price": 999.99, "stock": 3}}


def _get_all(requests):
    import httpx

    async def go():
        transport = httpx.ASGITransport(app=versioned_app(PRODUCTS))
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as c:
            return [
                await c.request(r.get("method", "GET"), r["path"], headers=r.get("headers"))
                for r in requests
            ]

    return asyncio.run(go())


def test_path_and_accept_both_pick_the_version():
    v2 = "application/vnd.labkit.v2+json"
    by_path1, by_path2, by_accept, default, generic = _get_all(
        [
            {"path": "/api/v1/products/p-1"},
            {"path": "/api/v2/products/p-1"},
            {"path": "/api/products/p-1", "headers": {"Accept": v2}},
            {"path": "/api/products/p-1"},
            {"path": "/api/products/p-1", "headers": {"Accept": "application/json"}},
        ]
    )
    assert by_path1.json() == {"id": "p-1", "name": "Laptop", "price": 999.99}
    assert (
        by_path2.json()
        == by_accept.json()
        == {
            "id": "p-1",
            "name": "Laptop",
            "price": 999.99,
            "price_cents": 99999,
            "currency": "EUR",
            "in_stock": True,
        }
    )
    assert by_accept.headers["content-type"] == v2
    assert by_accept.headers["vary"] == "Accept"
    assert default.json() == generic.json() == by_path1.json()  # no version asked: v1


def test_v2_only_adds_to_v1():
    changes = compare(
        schema_of(represent(PRODUCTS["p-1"], "v1")), schema_of(represent(PRODUCTS["p-1"], "v2"))
    )
    assert {c.kind for c in changes} == {"added_field"}
    assert is_compatible(changes)


def test_the_v3_draft_breaks_v2_clients():
    changes = compare(schema_of(represent(PRODUCTS["p-1"], "v2")), schema_of(V3_DRAFT_EXAMPLE))
    breaking = {(c.path, c.kind) for c in changes if c.breaking}
    assert ("name", "removed_field") in breaking
    assert ("price", "changed_type") in breaking
    assert ("title", "added_field") not in breaking
    assert not is_compatible(changes)


@pytest.mark.parametrize(
    ("request_", "status", "reason"),
    [
        ({"path": "/api/v9/products/p-1"}, 404, "unknown_version"),
        (
            {"path": "/api/products/p-1", "headers": {"Accept": "application/vnd.labkit.v9+json"}},
            406,
            "not_acceptable",
        ),
        ({"path": "/api/products/p-1", "headers": {"Accept": "text/html"}}, 406, "not_acceptable"),
        (
            {
                "path": "/api/v1/products/p-1",
                "headers": {"Accept": "application/vnd.labkit.v2+json"},
            },
            400,
            "version_conflict",
        ),
        ({"path": "/api/v2/products/nope"}, 404, "unknown_product"),
        ({"path": "/api/v2/nothing"}, 404, "not_found"),
        ({"path": "/api/v2/products/p-1", "method": "DELETE"}, 405, "method_not_allowed"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_reason(request_, status, reason):
    (response,) = _get_all([request_])
    assert response.status_code == status
    assert response.json()["error"] == reason and response.json()["detail"]


def test_quality_values_rank_the_versions():
    v1, v2 = "application/vnd.labkit.v1+json", "application/vnd.labkit.v2+json"
    assert negotiate(f"{v1};q=0.5, {v2}") == "v2"
    assert negotiate(f"{v1}, {v2};q=0.9") == "v1"
    assert negotiate(f"{v2};q=0, */*") == "v1"  # q=0 means "not this one"
    assert negotiate("application/vnd.labkit.v9+json, */*;q=0.1") == "v1"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.one_of(st.none(), st.text(max_size=8)))
def test_any_header_gives_a_version_or_a_4xx_never_a_crash(accept, path_version):
    try:
        assert negotiate(accept, path_version) in ("v1", "v2")
    except VersionError as exc:
        assert 400 <= exc.status < 500


OBJ = {"type": "object"}


def obj(props, required=()):
    return {**OBJ, "properties": props, "required": list(required)}


STR, INT, NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}

# (old, new, direction, expected kinds, breaking?)
TABLE = [
    (obj({"a": STR}, "a"), obj({}, ()), "response", ["removed_field"], True),
    (obj({"a": STR}, "a"), obj({"a": STR, "b": INT}, "ab"), "response", ["added_field"], False),
    (obj({"a": STR}, "a"), obj({"a": INT}, "a"), "response", ["changed_type"], True),
    (obj({"a": INT}, "a"), obj({"a": NUM}, "a"), "request", ["changed_type"], True),
    (obj({"a": STR}, "a"), obj({"a": STR}, ()), "response", ["became_optional"], True),
    (obj({"a": STR}, ()), obj({"a": STR}, "a"), "response", ["became_required"], False),
    (obj({"a": STR}), obj({"a": STR, "b": STR}, "b"), "request", ["added_required_field"], True),
    (obj({"a": STR}), obj({"a": STR, "b": STR}), "request", ["added_field"], False),
    (obj({"a": STR}), obj({}), "request", ["removed_field"], False),
    (obj({"a": STR}, ()), obj({"a": STR}, "a"), "request", ["became_required"], True),
    (
        {"type": "string", "enum": ["new", "paid"]},
        {"type": "string", "enum": ["new", "paid", "lost"]},
        "response",
        ["added_enum_value"],
        True,
    ),
    (
        {"type": "string", "enum": ["new", "paid"]},
        {"type": "string", "enum": ["new", "paid", "lost"]},
        "request",
        ["added_enum_value"],
        False,
    ),
    (
        {"type": "string", "enum": ["a", "b"]},
        {"type": "string", "enum": ["a"]},
        "request",
        ["removed_enum_value"],
        True,
    ),
    (
        obj({"items": {"type": "array", "items": obj({"sku": STR}, ["sku"])}}),
        obj({"items": {"type": "array", "items": obj({"sku": INT}, ["sku"])}}),
        "response",
        ["changed_type"],
        True,
    ),
    (obj({"a": STR}, "a"), obj({"a": STR}, "a"), "response", [], False),
]


@pytest.mark.parametrize(("old", "new", "direction", "kinds", "breaking"), TABLE)
def test_the_checker_classifies_a_table_of_changes(old, new, direction, kinds, breaking):
    changes = compare(old, new, direction=direction)
    assert [c.kind for c in changes] == kinds
    assert (not is_compatible(changes)) is breaking
    assert all(set(row) >= {"path", "change", "breaking", "why"} for row in report(changes))


def test_nested_paths_are_named():
    old = obj({"items": {"type": "array", "items": obj({"sku": STR}, ["sku"])}})
    new = obj({"items": {"type": "array", "items": obj({}, [])}})
    assert [c.path for c in compare(old, new)] == ["items[].sku"]


def test_every_rule_is_exercised_by_the_table():
    seen = {k for _, _, _, kinds, _ in TABLE for k in kinds}
    assert seen == set(RULES)


def test_bad_schemas_and_directions_are_refused_by_name():
    with pytest.raises(BadParameter, match="direction"):
        compare(OBJ, OBJ, direction="sideways")
    with pytest.raises(BadParameter, match="old schema"):
        compare({"properties": {}}, OBJ)
    with pytest.raises(BadParameter, match="example"):
        schema_of({"a": {1, 2}})


# --- the scenario ------------------------------------------------------------------------


def test_scenario_serves_each_client_its_version_and_refuses_the_rest_with_reasons():
    import labkit

    s = labkit.run("versioning").summary
    by_client = {r["client"]: r for r in s["results"]}
    assert by_client["old client, v1 in the path"]["version"] == "v1"
    assert by_client["negotiates v2"]["version"] == "v2"
    assert by_client["asks for no version"]["version"] == "v1"
    assert by_client["v9 in the path"]["reason"] == "unknown_version"
    assert by_client["v9 in Accept"]["status"] == 406
    assert by_client["path v1, Accept v2"]["reason"] == "version_conflict"
    assert s["server_errors"] == 0
    assert s["compatibility"]["compatible"] is True
    v3 = labkit.run("versioning", compare_with="v3_draft").summary["compatibility"]
    assert v3["compatible"] is False
    assert {c["change"] for c in v3["changes"] if c["breaking"]} == {
        "removed_field",
        "changed_type",
    }


def test_scenario_own_request_and_bad_own_request():
    import labkit
    from labkit.core.errors import BadParameter as Bad

    s = labkit.run("versioning", path_version="v7").summary
    assert s["results"][-1]["client"] == "your request"
    assert s["results"][-1]["reason"] == "unknown_version"
    with pytest.raises(Bad, match="accept"):
        labkit.run("versioning", accept="application/vnd.labkit.v2+json \u2603")
    with pytest.raises(Bad, match="path_version"):
        labkit.run("versioning", path_version="v1/../admin")


@pytest.mark.live
def test_scenario_live_over_loopback_matches_in_process():
    import labkit

    live = labkit.run("versioning", backend="live").summary
    assert [r["status"] for r in live["results"]] == [
        r["status"] for r in labkit.run("versioning").summary["results"]
    ]


def test_compatibility_figure_colours_breaking_rows():
    from labkit import viz

    changes = report(
        compare(schema_of(represent(PRODUCTS["p-1"], "v2")), schema_of(V3_DRAFT_EXAMPLE))
    )
    fig = viz.compatibility(changes)
    verdicts = list(fig.data[0].cells.values[2])
    assert verdicts.count("breaking") == sum(c["breaking"] for c in changes) == 4
    assert fig.layout.title.text == "5 change(s), 4 breaking"
