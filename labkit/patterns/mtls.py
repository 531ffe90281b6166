"""Mutual TLS on loopback: both ends show a certificate, and both check the other's.

Plain TLS proves the *server* is who it claims: the client checks the server's certificate
against the certificate authorities (CAs) it trusts. Mutual TLS adds the other direction: the
server asks for a client certificate and refuses the connection unless one signed by *its* CA
is presented. Between services that gives each call a cryptographic caller identity before
any HTTP byte is read, so a stray process on the network cannot call in at all.

The lab makes a throwaway CA with ``trustme`` (a few milliseconds, nothing on disk), serves a
small app with uvicorn on ``127.0.0.1`` requiring client certificates, and calls it with httpx
presenting (or not) a certificate. The cases in :data:`CASES`:

* ``good``: a client certificate from the service CA: 200, and the app sees who called;
* ``no_cert``: no client certificate: the server refuses the handshake;
* ``wrong_ca``: a certificate from another CA (an impostor's): refused the same way;
* ``untrusted_server``: the client trusts another CA, so *it* refuses the server.

Two things the refusals teach. httpx reports a refused client certificate as a bare
``ReadError('')`` or ``ConnectError('')``: the server just closes the connection, and the
reason stays on the server (the lab reads it there, as ``server_reason``). And with TLS 1.3
the client's side of the handshake is finished before the server has judged its
certificate, so the refusal arrives on the first read, not at connect.

When not to hand-roll this: in a mesh (Istio, Linkerd) the sidecars do mTLS and rotate the
certificates for you; what stays yours is deciding which identities may call which service.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from labkit.core.errors import UnknownName
from labkit.core.timeline import Timeline
from labkit.transport.hosting import serve_on_loopback

#: case -> (which client certificate is presented, which CA the client trusts)
CASES: dict[str, tuple[str, str]] = {
    "good": ("good", "service_ca"),
    "no_cert": ("none", "service_ca"),
    "wrong_ca": ("rogue", "service_ca"),
    "untrusted_server": ("good", "rogue_ca"),
}

EXPLAIN: dict[str, str] = {
    "good": "client certificate signed by the service CA",
    "no_cert": "no client certificate at all",
    "wrong_ca": "a client certificate signed by another CA",
    "untrusted_server": "the client trusts another CA, so it refuses the server",
}

TLS_VERSIONS = ("1.3", "1.2")


@dataclass
class Pki:
    """A service CA with a server and a client certificate, and a rogue CA with its own client."""

    ca: Any
    rogue_ca: Any
    server: Any
    client: Any
    rogue_client: Any
    client_name: str


def make_pki(client_name: str = "gateway") -> Pki:
    """Fresh CAs and certificates (trustme: in memory, ~6 ms)."""
    import trustme

    ca, rogue = (
        trustme.CA(organization_name="Shop services CA"),
        trustme.CA(organization_name="Impostor CA"),
    )
    server = ca.issue_cert("127.0.0.1", "localhost", common_name="orders")
    client = ca.issue_cert(f"{client_name}.svc.local", common_name=client_name)
    rogue_client = rogue.issue_cert(f"{client_name}.svc.local", common_name=client_name)
    return Pki(ca, rogue, server, client, rogue_client, client_name)


def server_context(pki: Pki, refusals: list[str] | None = None) -> ssl.SSLContext:
    """The server side: its own certificate, and client certificates *required* from the CA.

    With ``refusals``, every handshake the server fails appends OpenSSL's reason to it (e.g.
    ``peer did not return a certificate``): the reason a client never gets to see.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pki.server.configure_cert(ctx)
    pki.ca.configure_trust(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    if refusals is not None:
        ctx.sslobject_class = _recording_sslobject(refusals)
    return ctx


def _recording_sslobject(refusals: list[str]) -> type[ssl.SSLObject]:
    """An ``SSLObject`` that notes why a handshake failed, then fails it as before.

    asyncio does the server's TLS through ``SSLContext.wrap_bio``, whose return type is the
    context's (documented, overridable) ``sslobject_class``; asyncio itself logs a failed
    handshake only in debug mode.
    """

    class RecordingSSLObject(ssl.SSLObject):
        def do_handshake(self) -> None:
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise  # not a failure: the handshake needs more bytes
            except ssl.SSLError as exc:
                refusals.append(_openssl_reason(exc))
                raise

    return RecordingSSLObject


def _openssl_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    text = str(exc.reason or exc).replace("_", " ").lower()
    return text


def client_context(pki: Pki, present: str, trust: str, tls: str = "1.3") -> ssl.SSLContext:
    """The client side: which CA it trusts for the server, and which certificate it shows.

    httpx 0.28 takes this as ``verify=``; its ``cert=`` argument is deprecated and silently
    dropped when ``verify`` is a path.
    """
    certs = {"good": pki.client, "rogue": pki.rogue_client, "none": None}
    cas = {"service_ca": pki.ca, "rogue_ca": pki.rogue_ca}
    if present not in certs:
        raise UnknownName("client certificate", present, list(certs))
    if trust not in cas:
        raise UnknownName("trusted CA", trust, list(cas))
    if tls not in TLS_VERSIONS:
        raise UnknownName("TLS version", tls, TLS_VERSIONS)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    cas[trust].configure_trust(ctx)
    if certs[present] is not None:
        certs[present].configure_cert(ctx)
    if tls == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def peer_cert_protocol() -> type:
    """uvicorn's h11 protocol, plus the ASGI TLS extension: the app learns who called.

    uvicorn does not pass the client certificate to the app. This subclass reads it from the
    connection once, when TLS is done, and adds ``scope["extensions"]["tls"]`` to every request.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class PeerCertH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is None:
                return
            tls = {
                "client_cert_name": _subject_text(ssl_object.getpeercert()),
                "tls_version": ssl_object.version(),
                "cipher_suite": (ssl_object.cipher() or ("",))[0],
            }
            inner = self.app

            async def with_tls(scope: Any, receive: Any, send: Any) -> None:
                scope.setdefault("extensions", {})["tls"] = tls
                await inner(scope, receive, send)

            self.app = with_tls

    return PeerCertH11Protocol


def _subject_text(cert: dict[str, Any] | None) -> str | None:
    """``CN=gateway,O=...`` from the dict ``SSLSocket.getpeercert()`` returns."""
    if not cert:
        return None
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}
    return ",".join(f"{short.get(k, k)}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)


class WhoAmI:
    """A tiny ASGI app that answers with the caller's certificate name, and counts requests."""

    def __init__(self) -> None:
        self.requests = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import json

        if scope["type"] != "http":
            return
        self.requests += 1
        tls = (scope.get("extensions") or {}).get("tls") or {}
        body = json.dumps(
            {"client": tls.get("client_cert_name"), "tls_version": tls.get("tls_version")}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class Handshake:
    """The outcome of one call: accepted or refused, by whom, at which stage, and why."""

    case: str
    accepted: bool
    status: int | None
    refused_by: str | None
    stage: str | None
    error: str | None
    client_seen_by_server: str | None
    elapsed_ms: float
    server_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


async def call(url: str, ctx: ssl.SSLContext, case: str) -> Handshake:
    """One GET over TLS with ``ctx``; a refusal is mapped to who refused and when."""
    import httpx

    start = time.perf_counter()
    try:
        async with httpx.AsyncClient(verify=ctx, timeout=10) as client:
            response = await client.get(url)
    except httpx.TransportError as exc:
        refused_by, stage, error = _explain(exc)
        ms = (time.perf_counter() - start) * 1000
        return Handshake(case, False, None, refused_by, stage, error, None, ms)
    ms = (time.perf_counter() - start) * 1000
    seen = response.json().get("client") if response.status_code == 200 else None
    return Handshake(case, True, response.status_code, None, None, None, seen, ms)


def _explain(exc: Exception) -> tuple[str, str, str]:
    """(who refused, when, a readable reason) for an httpx transport error."""
    import httpx

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "client", "handshake", f"the client refused the server: {cause.verify_message}"
        cause = cause.__cause__ or cause.__context__
    stage = "handshake" if isinstance(exc, httpx.ConnectError) else "first read (TLS 1.3)"
    detail = str(exc) or type(exc).__name__
    return (
        "server",
        stage,
        f"the server closed the connection: client certificate refused ({detail})",
    )


async def run_handshakes(
    cases: Sequence[str] = tuple(CASES),
    *,
    tls: str = "1.3",
    timeline: Timeline | None = None,
    pki: Pki | None = None,
) -> tuple[list[Handshake], int]:
    """Serve :class:`WhoAmI` with mTLS on loopback and try each case; returns (results, requests
    the app saw). A refused handshake never reaches the app."""
    for case in cases:
        if case not in CASES:
            raise UnknownName("mTLS case", case, list(CASES))
    pki = pki or make_pki()
    app = WhoAmI()
    refusals: list[str] = []
    server, task, port = await serve_on_loopback(
        app,
        ssl_context_factory=lambda _config, _default: server_context(pki, refusals),
        http=peer_cert_protocol(),
    )
    results = []
    try:
        for case in cases:
            present, trust = CASES[case]
            ctx = client_context(pki, present, trust, tls)
            if timeline is not None:
                timeline.record(
                    pki.client_name, "tls.hello", case=case, presents=present, trusts=trust, tls=tls
                )
            before = len(refusals)
            outcome = await call(f"https://127.0.0.1:{port}/whoami", ctx, case)
            if len(refusals) > before:  # the server's own account of why it said no
                outcome = replace(outcome, server_reason=refusals[-1])
            if timeline is not None:
                kind = "tls.accepted" if outcome.accepted else "tls.refused"
                timeline.record("orders", kind, **outcome.as_dict())
            results.append(outcome)
    finally:
        server.should_exit = True
        await task
    return results, app.requests
