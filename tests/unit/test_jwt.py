"""JWT: the attack gallery against the careful verifier, the naive ones, and the middleware."""

import functools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.core.errors import BadParameter, UnknownName
from labkit.patterns.jwt_attacks import (
    HeaderTrustingVerifier,
    SyllabusVerifier,
    build_gallery,
    run_gallery,
    verifiers_for,
)
from labkit.patterns.jwt_auth import (
    DEFAULT_REQUIRED,
    REASONS,
    BearerAuth,
    JWTVerifier,
    TokenRejected,
    bearer_token,
    make_keyset,
)

KEYS = make_keyset()
ATTACKS = [
    "good",
    "alg_none",
    "key_confusion",
    "expired",
    "not_yet_valid",
    "wrong_audience",
    "wrong_issuer",
    "tampered",
    "missing_claims",
    "garbage",
    "long_service_token",
]


@functools.cache
def gallery() -> dict:
    """Built at first use, not at import: its tokens live 15 minutes, and a long session may
    collect this module well before it runs it."""
    return {a.name: a for a in build_gallery(KEYS)}


def careful(**kw) -> JWTVerifier:
    return JWTVerifier("orders", KEYS.trusted(), **kw)


def reason(verifier, token: str) -> str:
    try:
        verifier.verify(token)
    except TokenRejected as exc:
        return exc.reason
    return "accepted"


def test_the_gallery_has_every_attack_the_issue_names():
    assert list(gallery()) == ATTACKS  # the ten the issue names, plus a day-long service token
    assert all(a.expected is None or a.expected in REASONS for a in gallery().values())


@pytest.mark.parametrize("name", ATTACKS)
def test_the_careful_verifier_refuses_each_attack_for_its_stated_reason(name):
    attack = gallery()[name]
    assert reason(careful(), attack.token) == (attack.expected or "accepted")


def test_a_good_token_passes_with_its_claims():
    claims = careful().verify(gallery()["good"].token)
    assert claims["sub"] == "user-42" and claims["aud"] == "orders"
    assert claims["role"] == "customer"


def test_without_the_allowlist_alg_none_and_key_confusion_are_no_longer_refused_by_policy():
    loose = careful(enforce_allowlist=False)
    # only PyJWT's own last-ditch key check stands in the way now ...
    assert reason(loose, gallery()["alg_none"].token) == "bad_key"
    assert reason(loose, gallery()["key_confusion"].token) == "bad_key"
    # ... and a verifier without that guard (hand-rolled, like old libraries) lets both in
    naive = HeaderTrustingVerifier(KEYS)
    assert naive.verify(gallery()["alg_none"].token)["role"] == "admin"
    assert naive.verify(gallery()["key_confusion"].token)["role"] == "admin"


@pytest.mark.parametrize(
    ("dropped", "attack"),
    [("exp", "missing_claims"), ("aud", "wrong_audience")],
)
def test_dropping_a_required_claim_lets_its_attack_through(dropped, attack):
    required = tuple(c for c in DEFAULT_REQUIRED if c != dropped)
    assert reason(careful(), gallery()[attack].token) != "accepted"
    assert reason(careful(required=required), gallery()[attack].token) == "accepted"


def test_the_syllabus_middleware_pins_the_family_but_misses_the_claims():
    rows = {r["attack"]: r for r in run_gallery(gallery().values(), {"s": SyllabusVerifier(KEYS)})}
    let_in = {name for name, r in rows.items() if r["s"] == "accepted"}
    assert let_in == {"good", "wrong_audience", "wrong_issuer", "missing_claims"}


def test_the_header_trusting_verifier_also_takes_forged_signatures():
    rows = run_gallery(gallery().values(), verifiers_for(KEYS, ["trusts_header"]))
    let_in = {r["attack"] for r in rows if r["trusts_header"] == "accepted"}
    assert {"alg_none", "key_confusion"} <= let_in
    assert "tampered" not in let_in and "expired" not in let_in


def test_leeway_is_small_and_does_its_job():
    t = int(time.time())
    minter = KEYS.auth_minter()
    just_expired = minter.mint("u", "orders", now=t - 910)  # expired 10 s ago
    assert reason(careful(leeway_s=30), just_expired) == "accepted"
    assert reason(careful(leeway_s=0), just_expired) == "expired"
    with pytest.raises(BadParameter, match="leeway_s"):
        careful(leeway_s=3600)


def test_service_tokens_are_short_lived():
    svc = KEYS.service_minter()
    assert careful().verify(svc.mint("svc:gateway", "orders"))["sub"] == "svc:gateway"
    assert reason(careful(), svc.mint("svc:gateway", "orders", lifetime_s=600)) == (
        "lifetime_too_long"
    )
    # the service issuer may not use the auth server's algorithm, nor the other way round
    rs = KEYS.auth_minter()
    forged = type(rs)(KEYS.service_issuer, KEYS.auth_private_pem, "RS256").mint("x", "orders")
    assert reason(careful(), forged) == "algorithm_not_allowed"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_refused_with_a_reason_never_an_exception(text):
    assert reason(careful(), text) in REASONS


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["eyJhbGciOiJub25lIn0", "e30", "", "W10", "x", "=="]), max_size=4))
def test_near_jwt_shapes_are_refused_cleanly(parts):
    assert reason(careful(), ".".join(parts)) in REASONS


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "missing_token"),
        ("", "missing_token"),
        ("Basic dXNlcjpwdw==", "bad_scheme"),
        ("Bearer", "bad_scheme"),
        ("Bearer a b", "bad_scheme"),
    ],
)
def test_bearer_header_parsing_is_strict(header, expected):
    with pytest.raises(TokenRejected) as err:
        bearer_token(header)
    assert err.value.reason == expected


def _app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def me(request):
        return JSONResponse({"sub": request.state.claims["sub"]})

    async def health(request):
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/me", me), Route("/health", health)])
    return BearerAuth(app, careful(), public=["/health"])


def _get_all(requests: list[dict]) -> list:
    """GET /me (or another path) once per headers dict, in-process, in order."""
    import asyncio

    import httpx

    async def go():
        transport = httpx.ASGITransport(app=_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            return [await client.get(r.pop("path", "/me"), headers=r) for r in requests]

    return asyncio.run(go())


def test_middleware_turns_every_refusal_into_a_401_with_the_reason():
    good = gallery()["good"].token
    me, health = _get_all([{"Authorization": f"Bearer {good}"}, {"path": "/health"}])
    assert me.json() == {"sub": "user-42"}
    assert health.status_code == 200
    cases = {
        "missing_token": {},
        "bad_scheme": {"Authorization": good},  # the syllabus' TrimPrefix would accept this
        "malformed": {"Authorization": "Bearer \u00ff\u00fegarbage"},
    }
    for attack in gallery().values():
        if attack.expected:
            cases[attack.expected] = {"Authorization": f"Bearer {attack.token}"}
    responses = _get_all([dict(h) for h in cases.values()])
    for expected, response in zip(cases, responses, strict=True):
        assert response.status_code == 401, expected
        assert response.json()["error"] == expected
        assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_unknown_verifier_name_is_one_clear_error():
    with pytest.raises(UnknownName, match="naive"):
        verifiers_for(KEYS, ["naive"])


# --- the scenario: the gallery over HTTP through the middleware ---------------------------


def _scenario(**params):
    import labkit

    return labkit.run("jwt", **params).summary


def test_scenario_careful_refuses_every_attack_over_http_and_lets_the_good_token_in():
    s = _scenario()
    assert s["good_token_passed"] and s["let_in"] == [] and s["admin_by_forgery"] == []
    assert s["refused_as_expected"] == s["tokens"] - 1
    assert s["statuses"] == [200, 401]  # never a 500


@pytest.mark.parametrize(
    ("params", "let_in"),
    [
        ({"verifier": "syllabus"}, ["wrong_audience", "wrong_issuer", "missing_claims"]),
        ({"verifier": "careful", "require_aud": False}, ["wrong_audience"]),
        ({"verifier": "careful", "require_exp": False}, ["missing_claims"]),
    ],
)
def test_scenario_shows_which_mistake_lets_which_attack_in(params, let_in):
    assert _scenario(**params)["let_in"] == let_in


def test_scenario_header_trusting_verifier_makes_forgers_admin():
    s = _scenario(verifier="trusts_header", compare=True)
    assert {"alg_none", "key_confusion"} <= set(s["admin_by_forgery"])
    table = {r["attack"]: r for r in s["comparison"]}
    assert table["alg_none"]["careful"] == "algorithm_not_allowed"
    assert table["alg_none"]["trusts_header"] == "accepted"


@pytest.mark.live
def test_scenario_live_gives_the_same_verdicts_over_loopback():
    import labkit

    live = labkit.run("jwt", backend="live").summary
    assert [r["got"] for r in live["results"]] == [r["got"] for r in _scenario()["results"]]


def test_cli_run_jwt_json(capsys):
    import json

    from labkit.cli import main

    assert main(["run", "jwt", "--preset", "syllabus", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["let_in"] == ["wrong_audience", "wrong_issuer", "missing_claims"]


def test_gallery_matrix_marks_exactly_the_attacks_that_got_in():
    import labkit
    from labkit import viz

    result = labkit.run("jwt", verifier="syllabus", compare=True)
    fig = viz.gallery_matrix(result)
    heat = fig.data[0]
    red = {
        (heat.y[i], heat.x[j]) for i, row in enumerate(heat.z) for j, v in enumerate(row) if v == 1
    }
    assert ("wrong_audience", "syllabus") in red and ("alg_none", "trusts_header") in red
    assert not any(verifier == "careful" for _, verifier in red)


def test_peek_shows_what_a_token_says_about_itself_without_trusting_it():
    from labkit.patterns.jwt_attacks import peek

    seen = peek(gallery()["alg_none"].token)
    assert seen["header"]["alg"] == "none" and seen["payload"]["role"] == "admin"
    assert seen["signature_bytes"] == 0
    assert peek("hello-i-am-a-token")["header"].startswith("does not decode")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_authorization_bytes_get_a_401_with_a_known_reason(raw):
    import asyncio
    import json

    sent = []

    async def app(scope, receive, send):  # reached only with a valid token
        raise AssertionError("a random header was accepted")

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": "/me", "headers": [(b"authorization", raw)]}
    asyncio.run(BearerAuth(app, careful())(scope, receive, send))
    assert sent[0]["status"] == 401
    assert json.loads(sent[1]["body"])["error"] in REASONS
