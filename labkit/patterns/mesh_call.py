"""One request through the sidecar: route, fault, split, balance, timeout, retries.

Split from :mod:`labkit.patterns.service_mesh` so that the order of the steps reads top to
bottom in one function, :func:`handle`. Failures to answer become the statuses Envoy gives
them: 503 when no instance is available or none answered, 504 when the route's timeout passed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx

from labkit.patterns.load_balancing import Endpoint
from labkit.patterns.mesh_config import HTTPRoute

if TYPE_CHECKING:
    from labkit.patterns.service_mesh import Mesh, Pool

_RETRIABLE_STATUS = {
    "5xx": range(500, 600), "gateway-error": (502, 503, 504), "unavailable": (503,),
    "retriable-4xx": (409,),
}  # fmt: skip
_RETRIABLE_ERROR = {
    "5xx": ("timeout", "refused", "reset"), "gateway-error": ("timeout", "refused", "reset"),
    "connect-failure": ("refused",), "reset": ("reset",), "refused-stream": ("refused",),
}  # fmt: skip
_ERROR_STATUS = {"timeout": 504, "refused": 503, "reset": 503}
RETRY_BACKOFF_S = 0.025  # Envoy's base retry interval
HOST_RESELECT = 5  # Istio: retry_host_predicate previous_hosts, up to 5 reselections


def retriable(retry_on: Sequence[str], status: int | None, error: str | None) -> bool:
    """Does ``retryOn`` ask for a retry of this status (or of this failure to answer)?"""
    for condition in retry_on:
        if error is not None and error in _RETRIABLE_ERROR.get(condition, ()):
            return True
        if status is not None and (
            status in _RETRIABLE_STATUS.get(condition, ())
            or (condition.isdigit() and int(condition) == status)
        ):
            return True
    return False


def _reply(request: httpx.Request, status: int, text: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, text=text, headers=headers, request=request)


async def handle(mesh: Mesh, request: httpx.Request) -> httpx.Response:
    """Everything the sidecar does with one request, in Envoy's order."""
    tl, clock = mesh.timeline, mesh.timeline.clock
    started = clock.now()
    host, path = request.url.host, request.url.path
    headers = {k.lower(): v for k, v in request.headers.items()}
    route = mesh.choose_route(host, request.method, path, headers)
    if route is None:
        tl.record(mesh.actor, "route.unmatched", host=host, path=path)
        return _answer(mesh, request, started, _reply(request, 404, "no route matched"), None, 0)
    dest = mesh.choose_destination(route)
    tl.record(
        mesh.actor, "route.matched", host=host, route=route.index, name=route.name,
        subset=dest.subset, end_user=headers.get("end-user"),
    )  # fmt: skip
    injected = await _inject(mesh, request, route)
    if injected is not None:
        return _answer(mesh, request, started, injected, dest.subset, 0, route=route.index)
    pool = mesh.pool(dest.host, dest.subset)
    tried: list[Endpoint] = []
    try:
        async with asyncio.timeout(route.timeout):
            response = await _attempts(mesh, request, route, pool, tried)
    except TimeoutError:
        tl.record(mesh.actor, "mesh.timeout", route=route.index, seconds=route.timeout)
        response = _reply(request, 504, "upstream request timeout")
    return _answer(mesh, request, started, response, dest.subset, len(tried), route=route.index)


async def _inject(mesh: Mesh, request: httpx.Request, route: HTTPRoute) -> httpx.Response | None:
    fault = route.fault
    if fault is None:
        return None
    if fault.delay_s and mesh.rng.uniform(0, 100) < fault.delay_percent:
        mesh.timeline.record(
            mesh.actor, "mesh.fault_injected", fault="delay", seconds=fault.delay_s
        )
        await mesh.timeline.clock.sleep(fault.delay_s)
    if fault.abort_status and mesh.rng.uniform(0, 100) < fault.abort_percent:
        mesh.timeline.record(
            mesh.actor, "mesh.fault_injected", fault="abort", status=fault.abort_status
        )
        return _reply(request, fault.abort_status, "fault filter abort")
    return None


async def _attempts(
    mesh: Mesh, request: httpx.Request, route: HTTPRoute, pool: Pool, tried: list[Endpoint]
) -> httpx.Response:
    retries = route.retries
    total = 1 + (retries.attempts if retries else 0)
    clock = mesh.timeline.clock
    response = _reply(request, 503, "no healthy upstream")
    for attempt in range(1, total + 1):
        available = pool.available(clock.now())
        if not available:
            mesh.timeline.record(mesh.actor, "mesh.no_healthy_upstream", pool=_name(pool))
            return _reply(request, 503, "no healthy upstream")
        endpoint = _pick(pool, available, tried)
        tried.append(endpoint)
        status, error, response = await _one_try(mesh, request, endpoint, retries, pool)
        if attempt == total or not (retries and retriable(retries.retry_on, status, error)):
            return response
        mesh.timeline.record(
            mesh.actor, "mesh.retry", attempt=attempt + 1, instance=endpoint.name,
            reason=error or status, route=route.index,
        )  # fmt: skip
        ceiling = min(0.25, RETRY_BACKOFF_S * 2 ** (attempt - 1))
        await clock.sleep(mesh.rng.uniform(0, ceiling))
    return response


def _pick(pool: Pool, available: list[Endpoint], tried: list[Endpoint]) -> Endpoint:
    choice = pool.balancer.pick(available)
    for _ in range(HOST_RESELECT):
        if choice not in tried:
            break
        choice = pool.balancer.pick(available)
    return choice


async def _one_try(mesh, request, endpoint, retries, pool):  # type: ignore[no-untyped-def]
    per_try = retries.per_try_timeout if retries else None
    clock = mesh.timeline.clock
    endpoint.active += 1
    status: int | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(per_try):
            response = await mesh.send(endpoint, request)
        status = response.status_code
    except TimeoutError:
        error = "timeout"
    except httpx.ConnectError:
        error = "refused"
    except httpx.TimeoutException:
        error = "timeout"
    except httpx.TransportError:
        error = "reset"
    finally:
        endpoint.active -= 1
    if pool.detector is not None:
        pool.detector.observe(endpoint, status, clock.now())
    if error is not None:
        text = "upstream request timeout" if error == "timeout" else "upstream connect error"
        response = _reply(request, _ERROR_STATUS[error], text)
    response.headers["x-mesh-instance"] = endpoint.name
    return status, error, response


def _name(pool: Pool) -> str:
    return f"{pool.host}/{pool.subset}" if pool.subset else pool.host


def _answer(mesh, request, started, response, subset, attempts, route=-1):  # type: ignore[no-untyped-def]
    instance = response.headers.get("x-mesh-instance", "")
    mesh.timeline.record(
        mesh.actor, "mesh.answered", route=route, subset=subset, instance=instance,
        status=response.status_code, attempts=attempts,
        latency_ms=round((mesh.timeline.clock.now() - started) * 1000, 3),
    )  # fmt: skip
    if subset:
        response.headers["x-mesh-subset"] = subset
    return response
