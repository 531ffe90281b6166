"""The sidecar: a proxy beside the caller that routes, balances, retries and injects faults.

In a service mesh the application calls ``http://order-service/orders/o-1`` and nothing more.
The sidecar proxy (Envoy, in Istio) intercepts the call and applies the mesh's configuration:

1. the **VirtualService** of the host: the first HTTP route whose ``match`` fits wins;
2. the route's **fault** injection (a delay, or an abort with an HTTP status) for a percentage
   of requests, applied *before* routing, so an injected abort is never retried;
3. a **weighted** pick of one destination (``subset`` v1 90%, v2 10%: a canary);
4. the **DestinationRule** of that subset: its load balancer picks an instance among those
   that outlier detection has not ejected;
5. the route's **timeout** over the whole call and **retries** (``attempts`` more tries, each
   bounded by ``perTryTimeout``, only for failures listed in ``retryOn``), each retry preferring
   an instance not tried yet (Istio's default ``previous_hosts`` predicate).

Here the sidecar is an httpx transport: a caller's ``httpx.AsyncClient`` sends through it, and
it forwards to instance apps through the lab's own HTTP seam, so faults, latency and the
timeline work as everywhere else. Differences from Istio worth knowing: retries are off unless
configured (Istio retries twice by default), and the default balancer is LEAST_REQUEST as in
Istio.

When not to use a mesh: a handful of services, or a team without the operational time for it.
A library (retries, a breaker) in each service is simpler until the fleet is large or polyglot.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from labkit.core.faults import FaultPlan
from labkit.core.timeline import Timeline
from labkit.patterns.load_balancing import Balancer, Endpoint, make_balancer
from labkit.patterns.mesh_call import handle
from labkit.patterns.mesh_config import Destination, HTTPRoute, MeshConfig
from labkit.patterns.outlier_detection import OutlierDetector
from labkit.transport.hosting import Hosted, host

Send = Callable[[Endpoint, httpx.Request], Awaitable[httpx.Response]]
DEFAULT_LB = "LEAST_REQUEST"


@dataclass
class Pool:
    """The instances of one subset of one host, with their balancer and outlier detector."""

    host: str
    subset: str | None
    endpoints: list[Endpoint]
    balancer: Balancer
    detector: OutlierDetector | None

    def available(self, now: float) -> list[Endpoint]:
        return self.detector.available(now) if self.detector else list(self.endpoints)


class Mesh:
    """The mesh's view of one caller: config, instance pools, and how to reach an instance."""

    def __init__(
        self,
        config: MeshConfig,
        endpoints: dict[str, Sequence[Endpoint]],
        send: Send,
        timeline: Timeline,
        *,
        seed: int = 0,
        lb_override: str | None = None,
        actor: str = "sidecar",
    ) -> None:
        self.config = config
        self.endpoints = {host: list(eps) for host, eps in endpoints.items()}
        self.send = send
        self.timeline = timeline
        self.rng = random.Random(seed)
        self.lb_override = lb_override
        self.actor = actor
        self._pools: dict[tuple[str, str | None], Pool] = {}

    def pool(self, host: str, subset: str | None) -> Pool:
        """The pool of ``host``/``subset``, made on first use (Istio: one Envoy cluster each)."""
        key = (host, subset)
        if key not in self._pools:
            rule = self.config.destination_rule_for(host)
            members = self.endpoints.get(host, [])
            policy = rule.policy_for(subset) if rule else None
            if rule and subset is not None:
                labels = rule.subset(subset).labels  # type: ignore[union-attr]
                members = [e for e in members if labels.items() <= e.labels.items()]
            lb = self.lb_override or (policy and policy.load_balancer) or DEFAULT_LB
            seed = self.rng.randrange(1 << 30)
            name = f"{host}/{subset}" if subset else host
            detector = None
            if policy and policy.outlier_detection:
                detector = OutlierDetector(
                    policy.outlier_detection, members, self.timeline, actor=self.actor, pool=name
                )
            self._pools[key] = Pool(
                host, subset, members, make_balancer(lb, random.Random(seed)), detector
            )
        return self._pools[key]

    def choose_route(
        self, host: str, method: str, path: str, headers: dict[str, str]
    ) -> HTTPRoute | None:
        """The first route of ``host``'s VirtualService that matches; None when none does."""
        vs = self.config.virtual_service_for(host)
        if vs is None:
            return HTTPRoute(-1, "default", (), (Destination(host, None, 100),))
        return next((r for r in vs.http if r.matches(method, path, headers)), None)

    def choose_destination(self, route: HTTPRoute) -> Destination:
        """A weighted draw among the route's destinations."""
        if len(route.route) == 1:
            return route.route[0]
        roll = self.rng.uniform(0, 100)
        for dest in route.route:
            roll -= dest.weight
            if roll < 0:
                return dest
        return next(d for d in reversed(route.route) if d.weight)

    def transport(self) -> MeshTransport:
        return MeshTransport(self)


class MeshTransport(httpx.AsyncBaseTransport):
    """The sidecar as an httpx transport: what a caller's client sends through."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await handle(self.mesh, request)


async def open_loop(
    count: int, rate_per_s: float, call: Callable[[int], Awaitable[Any]], clock: Any
) -> list[Any]:
    """Start ``call(i)`` ``count`` times, one every ``1/rate_per_s`` s, whether or not earlier
    calls have finished (an open-loop load, as real users produce); return every result."""
    tasks = []
    for i in range(count):
        tasks.append(asyncio.ensure_future(call(i)))
        if rate_per_s > 0 and i < count - 1:
            await clock.sleep(1 / rate_per_s)
    return list(await asyncio.gather(*tasks))


@dataclass(frozen=True)
class Instance:
    """One instance to run behind the mesh: its name, the host it serves, its labels, its app."""

    name: str
    host: str
    labels: dict[str, str]
    app: Any


def hosted_sender(hosted: Hosted, source: str) -> Send:
    """How the sidecar reaches an instance: through the lab's HTTP seam (faults, timeline)."""
    clients: dict[str, httpx.AsyncClient] = {}

    async def send(endpoint: Endpoint, request: httpx.Request) -> httpx.Response:
        client = clients.get(endpoint.name)
        if client is None:
            client = clients[endpoint.name] = hosted.client(endpoint.name, source=source)
        forwarded = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        return await client.request(
            request.method,
            request.url.raw_path.decode(),
            headers=forwarded,
            content=request.content,
        )

    return send


@contextlib.asynccontextmanager
async def serve_mesh(
    config: MeshConfig,
    instances: Sequence[Instance],
    *,
    timeline: Timeline,
    faults: FaultPlan | None = None,
    seed: int = 0,
    lb_override: str | None = None,
    backend: str = "inprocess",
) -> AsyncIterator[tuple[Mesh, httpx.AsyncClient]]:
    """Host ``instances`` and yield the mesh and a caller's client whose sidecar is the mesh.

    The client's base URL is empty: call it with full service URLs, ``http://order-service/...``.
    """
    apps: Mapping[str, Any] = {i.name: i.app for i in instances}
    endpoints: dict[str, list[Endpoint]] = {}
    for i in instances:
        endpoints.setdefault(i.host, []).append(Endpoint(i.name, dict(i.labels)))
    async with host(apps, backend=backend, timeline=timeline, faults=faults) as hosted:
        mesh = Mesh(
            config, endpoints, hosted_sender(hosted, "sidecar"), timeline,
            seed=seed, lb_override=lb_override,
        )  # fmt: skip
        async with httpx.AsyncClient(transport=mesh.transport()) as client:
            yield mesh, client
