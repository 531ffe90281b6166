"""Experiment: the JWT attack gallery, sent over HTTP to a service guarded by a verifier.

Every gallery token (a good one, ``alg: none``, key confusion, expired, not yet valid, wrong
audience, wrong issuer, tampered, missing claims, garbage, a day-long service token) is sent
as ``Authorization: Bearer ...`` to the orders service. Its middleware answers 200 or a 401 that
names the reason. ``verifier`` picks who guards the door:

* ``careful``: the verifier done right; ``allowlist`` and ``require_exp``/``require_aud`` switch
  off one of its checks to see which attack then gets in;
* ``syllabus``: the syllabus' middleware (family pinned, claims unchecked);
* ``trusts_header``: the header picks the algorithm.

``compare=true`` also runs the gallery against all three verifiers directly and adds the
table, so one run shows which mistake lets which attack in.
"""

from __future__ import annotations

from typing import Any

from labkit.core.params import Param
from labkit.patterns.jwt_attacks import build_gallery, run_gallery, verifiers_for
from labkit.patterns.jwt_auth import DEFAULT_REQUIRED, BearerAuth, JWTVerifier, make_keyset
from labkit.scenarios.base import RunContext
from labkit.transport.hosting import HTTP_BACKENDS, host

TITLE = "JWT: the attack gallery"
BACKENDS = HTTP_BACKENDS
VERIFIERS = ("careful", "syllabus", "trusts_header")

PARAMS = [
    Param("verifier", "careful", "who checks the tokens", choices=VERIFIERS),
    Param("allowlist", True, "careful: pin each issuer's algorithms"),
    Param("require_exp", True, "careful: refuse tokens without exp"),
    Param("require_aud", True, "careful: refuse tokens without this service in aud"),
    Param("leeway_s", 30.0, "careful: clock skew forgiven", minimum=0, maximum=300, unit="s"),
    Param("compare", False, "also judge the gallery with all three verifiers"),
]


def make_verifier(params: dict[str, Any], keys: Any) -> Any:
    """The verifier the parameters describe."""
    if params["verifier"] != "careful":
        return verifiers_for(keys, [params["verifier"]])[params["verifier"]]
    dropped = {"exp": not params["require_exp"], "aud": not params["require_aud"]}
    return JWTVerifier(
        "orders",
        keys.trusted(),
        leeway_s=params["leeway_s"],
        required=tuple(c for c in DEFAULT_REQUIRED if not dropped.get(c)),
        enforce_allowlist=params["allowlist"],
    )


def orders_app(verifier: Any) -> Any:
    """A one-route orders service behind :class:`BearerAuth`: it echoes who called."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def mine(request: Any) -> JSONResponse:
        claims = request.state.claims
        return JSONResponse({"sub": claims.get("sub"), "role": claims.get("role")})

    return BearerAuth(Starlette(routes=[Route("/orders/mine", mine)]), verifier)


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    keys = make_keyset()
    gallery = build_gallery(keys)
    verifier = make_verifier(p, keys)
    rows = []
    async with host({"orders": orders_app(verifier)}, backend=ctx.backend, timeline=tl) as svc:
        http = svc.client("orders", source="attacker")
        for attack in gallery:
            response = await http.get(
                "/orders/mine", headers={"Authorization": f"Bearer {attack.token}"}
            )
            body = response.json()
            got = "accepted" if response.status_code == 200 else body.get("error")
            expected = attack.expected or "accepted"
            kind = "token.accepted" if response.status_code == 200 else "token.rejected"
            tl.record("orders", kind, attack=attack.name, status=response.status_code, reason=got)
            rows.append(
                {
                    "attack": attack.name,
                    "title": attack.title,
                    "status": response.status_code,
                    "got": got,
                    "expected": expected,
                    "as_expected": got == expected,
                    "role": body.get("role"),
                    "how": attack.how,
                    "defence": attack.defence,
                    "detail": body.get("detail"),
                    "token": attack.token,
                }
            )
    summary: dict[str, Any] = {
        "verifier": p["verifier"],
        "tokens": len(rows),
        "statuses": sorted({r["status"] for r in rows}),
        "good_token_passed": any(r["attack"] == "good" and r["got"] == "accepted" for r in rows),
        "refused_as_expected": sum(r["as_expected"] and r["attack"] != "good" for r in rows),
        "let_in": [r["attack"] for r in rows if r["got"] == "accepted" and r["attack"] != "good"],
        "admin_by_forgery": [r["attack"] for r in rows if r["role"] == "admin"],
        "results": rows,
    }
    if p["compare"]:
        summary["comparison"] = run_gallery(gallery, verifiers_for(keys, VERIFIERS))
    return summary
