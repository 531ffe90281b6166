"""Benchmark: what the security lab's checks cost.

    uv run python bench/bench_security.py [--tokens 2000] [--calls 200]

Prints JSON:
* ``jwt_verify_us``: one token verified by bare PyJWT and by the careful verifier (which adds
  the issuer lookup, the allowlist and the lifetime cap), for RS256 and ES256 tokens, and the
  cost of refusing a garbage token;
* ``setup_ms``: making the lab's keys (RSA 2048 + EC P-256) and the trustme PKI;
* ``mtls``: per-call milliseconds over loopback with a new connection each call (a full TLS
  handshake with client certificate) and over one kept-alive connection, beside plain HTTP;
* ``versioning_us``: negotiating a version from an Accept header, comparing two schemas.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import jwt

from labkit.patterns.compatibility import compare, schema_of
from labkit.patterns.jwt_auth import JWTVerifier, TokenRejected, make_keyset
from labkit.patterns.mtls import WhoAmI, client_context, make_pki, server_context
from labkit.patterns.versioning import V3_DRAFT_EXAMPLE, negotiate, represent
from labkit.transport.hosting import serve_on_loopback


def per_call_us(fn, calls: int, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return round(min(samples), 2)


def ms(fn, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 2)


def refuse(verifier: JWTVerifier, token: str) -> None:
    with contextlib.suppress(TokenRejected):
        verifier.verify(token)


def jwt_figures(n: int) -> dict[str, float]:
    keys = make_keyset()
    careful = JWTVerifier("orders", keys.trusted())
    rs = keys.auth_minter().mint("u-1", "orders")
    es = keys.service_minter().mint("svc:gateway", "orders")
    bare = {"audience": "orders", "options": {"require": ["exp", "iat", "aud", "iss", "sub"]}}
    return {
        "pyjwt_rs256": per_call_us(
            lambda: jwt.decode(rs, keys.auth_public_pem, algorithms=["RS256"], **bare), n
        ),
        "careful_rs256": per_call_us(lambda: careful.verify(rs), n),
        "pyjwt_es256": per_call_us(
            lambda: jwt.decode(es, keys.service_public_pem, algorithms=["ES256"], **bare), n
        ),
        "careful_es256": per_call_us(lambda: careful.verify(es), n),
        "careful_refuse_garbage": per_call_us(lambda: refuse(careful, "garbage"), n),
    }


async def per_call_ms(url: str, ctx: ssl.SSLContext | bool, calls: int, reuse: bool) -> float:
    samples = []
    if reuse:
        async with httpx.AsyncClient(verify=ctx) as client:
            await client.get(url)  # open the connection first
            for _ in range(calls):
                t = time.perf_counter()
                await client.get(url)
                samples.append(time.perf_counter() - t)
    else:
        for _ in range(calls):
            t = time.perf_counter()
            async with httpx.AsyncClient(verify=ctx) as client:
                await client.get(url)
            samples.append(time.perf_counter() - t)
    return round(statistics.median(samples) * 1000, 3)


async def mtls_figures(calls: int) -> dict[str, float]:
    pki = make_pki()
    tls_server, tls_task, tls_port = await serve_on_loopback(
        WhoAmI(), ssl_context_factory=lambda _c, _d: server_context(pki)
    )
    plain_server, plain_task, plain_port = await serve_on_loopback(WhoAmI())
    ctx = client_context(pki, "good", "service_ca")
    tls_url, plain_url = f"https://127.0.0.1:{tls_port}/", f"http://127.0.0.1:{plain_port}/"
    try:
        return {
            "mtls_new_connection_ms": await per_call_ms(tls_url, ctx, calls, reuse=False),
            "mtls_keep_alive_ms": await per_call_ms(tls_url, ctx, calls, reuse=True),
            "plain_new_connection_ms": await per_call_ms(plain_url, False, calls, reuse=False),
            "plain_keep_alive_ms": await per_call_ms(plain_url, False, calls, reuse=True),
        }
    finally:
        for server in (tls_server, plain_server):
            server.should_exit = True
        await asyncio.gather(tls_task, plain_task)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    product = {"id": "p-1", "name": "Laptop", "price": 999.99, "stock": 3}
    v1, v2 = schema_of(represent(product, "v1")), schema_of(represent(product, "v2"))
    v3 = schema_of(V3_DRAFT_EXAMPLE)
    accept = "application/vnd.labkit.v1+json;q=0.5, application/vnd.labkit.v2+json"
    out = {
        "python": sys.version.split()[0],
        "jwt_verify_us": jwt_figures(args.tokens),
        "setup_ms": {"keyset": ms(make_keyset), "trustme_pki": ms(make_pki)},
        "mtls": asyncio.run(mtls_figures(args.calls)),
        "versioning_us": {
            "negotiate": per_call_us(lambda: negotiate(accept), args.tokens * 5),
            "compare_v1_v2": per_call_us(lambda: compare(v1, v2), args.tokens * 5),
            "compare_v2_v3": per_call_us(lambda: compare(v2, v3), args.tokens * 5),
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
