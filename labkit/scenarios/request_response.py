"""Experiment: one service asks another for a user, again and again, while things go wrong.

The caller is either the careful :class:`~labkit.patterns.request_response.UserClient` or the
naive first draft. Faults on the user service make it slow, make it answer 503, hang, reset
the connection, send an HTML error page with a 200, or be down entirely. The summary counts how
each call ended and how long the caller waited, so the two clients can be compared.

With ``protocol=grpc`` or ``both`` the same lookup also runs over gRPC, served for real on
loopback, and the summary compares payload bytes and latency. That comparison runs on the
clean path (no faults) and in real time, since it measures the protocols themselves.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from labkit.core.faults import BadPayload, ErrorStatus, FaultPlan, Hang, Latency, Outage, Reset
from labkit.core.params import Param
from labkit.core.stats import latency_summary
from labkit.core.timeline import Timeline
from labkit.patterns.request_response import DownstreamError, NaiveUserClient, UserClient
from labkit.scenarios.base import RunContext
from labkit.shop.catalog import load_catalog
from labkit.shop.services import user_app
from labkit.transport.hosting import HTTP_BACKENDS, host

TITLE = "Request-response over HTTP (and gRPC)"
BACKENDS = HTTP_BACKENDS
PROTOCOLS = ("http", "grpc", "both")

PARAMS = [
    Param(
        "client",
        "careful",
        "the careful client or the naive first draft",
        choices=("careful", "naive"),
    ),
    Param(
        "protocol",
        "http",
        "http; or grpc / both to compare with gRPC over loopback",
        choices=PROTOCOLS,
    ),
    Param("requests", 20, "how many lookups the caller makes", minimum=1, maximum=2000),
    Param("user_id", "u-1", "which user to look up (an unknown id gives a 404)"),
    Param("latency_ms", 20.0, "latency of the user service", minimum=0, unit="ms"),
    Param("jitter_ms", 5.0, "random +/- spread on that latency", minimum=0, unit="ms"),
    Param("timeout_ms", 250.0, "the careful client's deadline per call", minimum=1, unit="ms"),
    Param("error_rate", 0.0, "share of calls answered with 503", minimum=0, maximum=1),
    Param("hang_rate", 0.0, "share of calls that never get an answer", minimum=0, maximum=1),
    Param("reset_rate", 0.0, "share of calls whose connection is reset", minimum=0, maximum=1),
    Param(
        "bad_payload_rate",
        0.0,
        "share of calls answered 200 with an HTML page",
        minimum=0,
        maximum=1,
    ),
    Param("down", False, "the user service is down for the whole run"),
]

COMPARISON_TIMEOUT_MS = 5000.0

#: How long a hung call stays silent: long in virtual time (free), short in real time.
HANG_SECONDS = {"inprocess": 30.0, "live": 3.0}


def backend_for(params: dict[str, Any], backend: str) -> str:
    """gRPC needs real sockets, so a comparison always runs live."""
    return "live" if params["protocol"] != "http" else backend


def fault_plan(params: dict[str, Any], seed: int, backend: str) -> FaultPlan:
    plan = FaultPlan(seed)
    plan.add("user", Latency(params["latency_ms"], params["jitter_ms"]))
    if params["down"]:
        plan.add("user", Outage())
    if params["error_rate"]:
        plan.add("user", ErrorStatus(503, params["error_rate"]))
    if params["hang_rate"]:
        plan.add("user", Hang(params["hang_rate"], HANG_SECONDS[backend]))
    if params["reset_rate"]:
        plan.add("user", Reset(params["reset_rate"]))
    if params["bad_payload_rate"]:
        plan.add("user", BadPayload(params["bad_payload_rate"]))
    return plan


async def main(ctx: RunContext) -> dict[str, Any]:
    p = ctx.params
    if p["protocol"] == "http":
        return await _http_calls(ctx, fault_plan(p, ctx.seed, ctx.backend))
    summary: dict[str, Any] = {"protocols": {}, "faults": "not applied in a protocol comparison"}
    # a comparison measures the protocols, not deadlines: a busy machine must not turn one
    # slow call into a "failure" that skews the figures
    ctx.params = {**p, "timeout_ms": max(p["timeout_ms"], COMPARISON_TIMEOUT_MS)}
    summary["timeout_ms_per_call"] = ctx.params["timeout_ms"]
    if p["protocol"] == "both":
        http = await _http_calls(ctx, FaultPlan(ctx.seed))
        summary["protocols"]["http+json"] = _protocol_figures(http, ctx.extras.pop("payload"))
    grpc_figures = await _grpc_calls(ctx)
    summary["protocols"]["grpc+protobuf"] = grpc_figures
    return summary


def _protocol_figures(http_summary: dict[str, Any], payload: int) -> dict[str, Any]:
    return {
        "calls": http_summary["requests"],
        "succeeded": http_summary["succeeded"],
        "payload_bytes": payload,
        "latency_ms": http_summary["latency_ms"],
    }


async def _http_calls(ctx: RunContext, plan: FaultPlan) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    catalog = load_catalog()
    outcomes: Counter[str] = Counter()
    examples: dict[str, str] = {}
    waits: list[float] = []
    async with host(
        {"user": user_app(catalog)}, backend=ctx.backend, timeline=tl, faults=plan
    ) as services:
        http = services.client("user", source="caller")
        client: UserClient | NaiveUserClient = (
            UserClient(http, timeout_s=p["timeout_ms"] / 1000)
            if p["client"] == "careful"
            else NaiveUserClient(http)
        )
        for _ in range(p["requests"]):
            started = tl.clock.now()
            try:
                user = await client.get_user(p["user_id"])
            except DownstreamError as exc:
                outcome, message = exc.reason, str(exc)
            except Exception as exc:  # the naive client lets anything escape: count it
                outcome, message = type(exc).__name__, f"{type(exc).__name__}: {exc}"
            else:
                outcome, message = "ok", user.name
            waited = round((tl.clock.now() - started) * 1000, 3)
            waits.append(waited)
            outcomes[outcome] += 1
            examples.setdefault(outcome, message)
            kind = "call.succeeded" if outcome == "ok" else "call.failed"
            tl.record("caller", kind, outcome=outcome, waited_ms=waited, detail=message)
    bodies = [
        r.fields["bytes"] for r in tl.of_kind("response.received") if r.fields["status"] == 200
    ]
    ctx.extras["payload"] = bodies[-1] if bodies else 0
    return {
        "client": p["client"],
        "requests": p["requests"],
        "succeeded": outcomes.get("ok", 0),
        "failed": p["requests"] - outcomes.get("ok", 0),
        "outcomes": dict(sorted(outcomes.items())),
        "latency_ms": latency_summary(waits),
        "longest_wait_ms": max(waits),
        "examples": examples,
    }


async def _grpc_calls(ctx: RunContext) -> dict[str, Any]:
    """The same lookups over gRPC, recorded with the same kinds as HTTP calls."""
    import grpc

    from labkit.transport.grpc_user import messages, serve_users, user_stub

    p, tl = ctx.params, ctx.timeline
    request_cls, _ = messages()
    server, port = await serve_users(load_catalog().users)
    waits: list[float] = []
    payload = 0
    ok = 0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = user_stub(channel)
            for _ in range(p["requests"]):
                ok_now, payload_now, waited = await _one_grpc_call(
                    tl, stub, request_cls(id=p["user_id"]), p["timeout_ms"] / 1000
                )
                waits.append(waited)
                ok += ok_now
                payload = payload_now or payload
    finally:
        await server.stop(None)
    return {
        "calls": p["requests"],
        "succeeded": ok,
        "payload_bytes": payload,
        "latency_ms": latency_summary(waits),
    }


async def _one_grpc_call(
    tl: Timeline, stub: Any, request: Any, timeout_s: float
) -> tuple[int, int, float]:
    import grpc

    call = tl.new_id()
    tl.record(
        "caller",
        "request.sent",
        call=call,
        parent=None,
        target="user",
        method="GetUser",
        path="/labkit.shop.UserService/GetUser",
        protocol="grpc",
    )
    started = time.perf_counter()
    try:
        user = await stub(request, timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        waited = round((time.perf_counter() - started) * 1000, 3)
        tl.record(
            "caller",
            "request.failed",
            call=call,
            target="user",
            protocol="grpc",
            error=exc.code().name.lower(),
            latency_ms=waited,
        )
        return 0, 0, waited
    waited = round((time.perf_counter() - started) * 1000, 3)
    size = len(user.SerializeToString())
    tl.record(
        "caller",
        "response.received",
        call=call,
        parent=None,
        target="user",
        status=200,
        latency_ms=waited,
        bytes=size,
        protocol="grpc",
    )
    return 1, size, waited
