"""Experiment: mutual TLS on loopback, four clients knocking.

A real uvicorn on ``127.0.0.1`` serves the orders service over TLS and *requires* a client
certificate from the service CA. Clients call it with httpx: one with a good certificate, one
with none, one with a certificate from another CA, and one that does not trust the server's CA.
Only the first gets a 200, and only its request ever reaches the app. ``tls=1.2`` shows the
refusals at connect time; with TLS 1.3 they surface on the first read.
"""

from __future__ import annotations

from typing import Any

from labkit.core.params import Param
from labkit.patterns.mtls import CASES, EXPLAIN, TLS_VERSIONS, run_handshakes
from labkit.scenarios.base import RunContext

TITLE = "mTLS: real handshakes on loopback"
BACKENDS = ("live",)

PARAMS = [
    Param("case", "all", "which client to try", choices=("all", *CASES)),
    Param("tls", "1.3", "the highest TLS version the client offers", choices=TLS_VERSIONS),
    Param("rounds", 1, "how many times to try each case", minimum=1, maximum=50),
]


async def main(ctx: RunContext) -> dict[str, Any]:
    p = ctx.params
    cases = list(CASES) if p["case"] == "all" else [p["case"]]
    results, seen = await run_handshakes(cases * p["rounds"], tls=p["tls"], timeline=ctx.timeline)
    rows = [{**r.as_dict(), "client": EXPLAIN[r.case]} for r in results]
    return {
        "tls": p["tls"],
        "attempts": len(rows),
        "accepted": sum(r["accepted"] for r in rows),
        "refused": sum(not r["accepted"] for r in rows),
        "requests_reaching_the_app": seen,
        "refused_by": {
            case: sorted({r["refused_by"] or "nobody" for r in rows if r["case"] == case})
            for case in cases
        },
        "client_seen_by_server": next(
            (r["client_seen_by_server"] for r in rows if r["accepted"]), None
        ),
        "results": rows[: len(cases)],
        "handshake_ms": _ms(rows),
    }


def _ms(rows: list[dict[str, Any]]) -> dict[str, float]:
    from statistics import median

    out = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        values = [r["elapsed_ms"] for r in rows if r["case"] == case]
        out[case] = round(median(values), 2)
    return out
