"""Service discovery: a registry of instances and their health, in the manner of Consul.

Instances come and go, so callers should not hard-code addresses. Each instance **registers**
itself (name, address, port, tags) with a **health check**; callers **look up** a service by
name and get only the instances whose checks pass, then balance over them on the client side.

Checks, as Consul runs them:

* an **HTTP check** calls ``/health`` every ``interval``; an answer other than 2xx, or none
  within ``timeout``, is a failure;
* a **TTL check** is the other way round: the instance must report "still alive" at least
  every ``ttl`` seconds, or the check fails;
* ``success_before_passing`` / ``failures_before_critical``: how many HTTP results in a row it
  takes to flip the status, so one lost probe does not flap an instance out and back (a TTL
  check flips at once: a missed deadline is already a long silence);
* ``deregister_critical_after``: an instance critical for that long is removed altogether;
* a new check starts **critical**: an instance serves no traffic until it has proved healthy.

The syllabus' lookup takes ``services[0]`` without checking the list: with no healthy instance it
crashes with ``IndexError``, and with several it sends everything to the first. Here a lookup
raises :class:`NoHealthyInstance` ("no healthy instance of user-service") and
:class:`DiscoveryClient` spreads calls over every healthy instance.

Names also resolve DNS-style: ``user-service.service.lab`` (every healthy instance) and
``v2.user-service.service.lab`` (those tagged ``v2``), as Consul's DNS interface does.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from labkit.core.errors import BadParameter, LabError
from labkit.core.timeline import Timeline
from labkit.patterns.load_balancing import Endpoint, make_balancer
from labkit.transport.hosting import Hosted

DOMAIN = "service.lab"
Probe = Callable[["ServiceInstance", str, float], Awaitable[bool]]


class NoHealthyInstance(LabError):
    """A lookup found no instance of the service whose checks pass."""

    def __init__(self, service: str, registered: int = 0) -> None:
        self.service = service
        detail = f" ({registered} registered, none passing)" if registered else ""
        super().__init__(f"no healthy instance of {service}{detail}")


@dataclass(frozen=True)
class ServiceInstance:
    id: str
    service: str
    address: str
    port: int
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    """How the registry decides whether an instance is healthy (Consul's field names)."""

    http: str | None = "/health"
    ttl: float | None = None
    interval: float = 10.0
    timeout: float = 1.0
    success_before_passing: int = 1
    failures_before_critical: int = 1
    deregister_critical_after: float | None = None

    def __post_init__(self) -> None:
        for name in ("interval", "timeout"):
            if getattr(self, name) <= 0:
                raise BadParameter(f"check.{name}", getattr(self, name), "must be above 0")
        for name in ("success_before_passing", "failures_before_critical"):
            if getattr(self, name) < 1:
                raise BadParameter(f"check.{name}", getattr(self, name), "must be at least 1")
        if self.ttl is not None and self.ttl <= 0:
            raise BadParameter("check.ttl", self.ttl, "must be above 0")


@dataclass
class _Entry:
    instance: ServiceInstance
    check: Check
    status: str = "critical"
    successes: int = 0
    failures: int = 0
    critical_since: float = 0.0
    last_ttl_pass: float | None = None
    probing: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Registry:
    """Instances by service, with their check status; lookups return passing instances only."""

    def __init__(self, timeline: Timeline, probe: Probe | None = None) -> None:
        self.timeline = timeline
        self.probe = probe
        self._entries: dict[str, _Entry] = {}
        self._closing = False

    # -- registration -------------------------------------------------------------------------
    def register(self, instance: ServiceInstance, check: Check | None = None) -> None:
        """Add ``instance``; its check starts at once, and its status starts critical."""
        check = check or Check()
        if check.ttl is None and self.probe is None:
            raise BadParameter("check.http", check.http, "needs a registry with a probe")
        entry = _Entry(instance, check, critical_since=self.timeline.clock.now())
        self._entries[instance.id] = entry
        self.timeline.record(
            "registry", "instance.registered", instance=instance.id, service=instance.service,
            tags=list(instance.tags),
        )  # fmt: skip
        loop = self._ttl_loop if check.ttl is not None else self._http_loop
        entry.task = asyncio.ensure_future(loop(entry))

    def deregister(self, instance_id: str, reason: str = "asked") -> None:
        entry = self._entries.pop(instance_id, None)
        if entry is None:
            return
        if (
            entry.task is not None
            and not entry.probing
            and entry.task is not asyncio.current_task()
        ):
            entry.task.cancel()  # a probe in flight is let finish; its loop then sees it is gone
        self.timeline.record(
            "registry", "instance.deregistered", instance=instance_id,
            service=entry.instance.service, reason=reason,
        )  # fmt: skip

    async def close(self) -> None:
        """Stop every check (the registry shuts down); probes in flight finish first."""
        self._closing = True
        tasks = [e.task for e in self._entries.values() if e.task is not None]
        for entry in self._entries.values():
            if entry.task is not None and not entry.probing:
                entry.task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def ttl_pass(self, instance_id: str) -> None:
        """An instance with a TTL check reports that it is alive."""
        entry = self._entries[instance_id]
        entry.last_ttl_pass = self.timeline.clock.now()
        self._result(entry, True, "ttl updated", at_once=True)

    # -- lookups ------------------------------------------------------------------------------
    def status(self, instance_id: str) -> str:
        return self._entries[instance_id].status

    def instances(self, service: str) -> list[ServiceInstance]:
        """Every registered instance of ``service``, healthy or not."""
        return [e.instance for e in self._entries.values() if e.instance.service == service]

    def healthy(self, service: str, tag: str | None = None) -> list[ServiceInstance]:
        """Passing instances of ``service`` (with ``tag``, if given): Consul's ``?passing``."""
        return [
            e.instance
            for e in self._entries.values()
            if e.instance.service == service
            and e.status == "passing"
            and (tag is None or tag in e.instance.tags)
        ]

    def resolve(self, name: str) -> list[ServiceInstance]:
        """DNS-style lookup: ``[tag.]service.service.lab`` -> passing instances."""
        suffix = f".{DOMAIN}"
        if not name.endswith(suffix):
            raise BadParameter("name", name, f"must end in {suffix}, e.g. user-service{suffix}")
        parts = name[: -len(suffix)].split(".")
        if len(parts) > 2 or not all(parts):
            raise BadParameter("name", name, f"must look like [tag.]service{suffix}")
        tag, service = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
        return self.healthy(service, tag)

    # -- checks -------------------------------------------------------------------------------
    async def _http_loop(self, entry: _Entry) -> None:
        check, clock = entry.check, self.timeline.clock
        assert self.probe is not None and check.http is not None
        while not self._closing:
            entry.probing = True
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that lands as the probe completes, and the loop then never ends
                async with asyncio.timeout(check.timeout):
                    ok = await self.probe(entry.instance, check.http, check.timeout)
            except Exception:  # a refused connection, a reset, a timeout: the check fails
                ok = False
            finally:
                entry.probing = False
            if self._closing or entry.instance.id not in self._entries:
                return
            self._result(entry, ok, "http " + ("2xx" if ok else "failed"))
            if entry.instance.id not in self._entries:
                return
            await clock.sleep(check.interval)

    async def _ttl_loop(self, entry: _Entry) -> None:
        clock, ttl = self.timeline.clock, entry.check.ttl
        assert ttl is not None
        while entry.instance.id in self._entries:
            last = entry.last_ttl_pass if entry.last_ttl_pass is not None else 0.0
            wait = last + ttl - clock.now()
            if wait > 0:
                await clock.sleep(wait)
                continue
            self._result(entry, False, "ttl expired", at_once=True)
            await clock.sleep(ttl)

    def _result(self, entry: _Entry, ok: bool, reason: str, *, at_once: bool = False) -> None:
        """Count one check result; ``at_once`` (TTL checks) flips the status without thresholds."""
        check, now = entry.check, self.timeline.clock.now()
        to_pass = 1 if at_once else check.success_before_passing
        to_fail = 1 if at_once else check.failures_before_critical
        iid = entry.instance.id
        self.timeline.record("registry", "check.ran", instance=iid, ok=ok, reason=reason)
        if ok:
            entry.successes, entry.failures = entry.successes + 1, 0
            if entry.status != "passing" and entry.successes >= to_pass:
                entry.status = "passing"
                self.timeline.record("registry", "health.passing", instance=iid, reason=reason)
            return
        entry.successes, entry.failures = 0, entry.failures + 1
        if entry.status != "critical" and entry.failures >= to_fail:
            entry.status, entry.critical_since = "critical", now
            self.timeline.record("registry", "health.critical", instance=iid, reason=reason)
        limit = check.deregister_critical_after
        if entry.status == "critical" and limit is not None and now - entry.critical_since >= limit:
            self.deregister(iid, reason=f"critical for {now - entry.critical_since:g} s")


class DiscoveryClient:
    """Client-side load balancing over the healthy instances a registry returns."""

    def __init__(self, registry: Registry, balancer: str = "ROUND_ROBIN", seed: int = 0) -> None:
        self.registry = registry
        self.rng = random.Random(seed)
        self._balancers: dict[str, Any] = {}
        self._endpoints: dict[str, Endpoint] = {}
        self.balancer = balancer

    def pick(self, service: str) -> ServiceInstance:
        """One healthy instance of ``service``; :class:`NoHealthyInstance` when there is none."""
        found = self.registry.healthy(service)
        if not found:
            raise NoHealthyInstance(service, len(self.registry.instances(service)))
        if service not in self._balancers:
            self._balancers[service] = make_balancer(self.balancer, self.rng)
        by_name = {i.id: i for i in found}
        pool = [self._endpoints.setdefault(i.id, Endpoint(i.id)) for i in found]
        return by_name[self._balancers[service].pick(pool).name]


def syllabus_pick(registry: Registry, service: str) -> ServiceInstance:
    """The syllabus' lookup, flaw included: the first healthy instance, unchecked.

    With no healthy instance this raises ``IndexError: list index out of range``; with several,
    every call goes to the same one."""
    services = registry.healthy(service)
    return services[0]


def http_probe(hosted: Hosted) -> Probe:
    """An HTTP check through the lab's HTTP seam: GET the path, healthy on any 2xx."""
    clients: dict[str, httpx.AsyncClient] = {}

    async def probe(instance: ServiceInstance, path: str, timeout: float) -> bool:
        client = clients.get(instance.id)
        if client is None:
            client = hosted.client(instance.id, source="registry", timeout=timeout)
            clients[instance.id] = client
        response = await client.get(path)
        return 200 <= response.status_code < 300

    return probe


def with_health(app: Any) -> Any:
    """``app`` with a ``/health`` endpoint in front, answering 200 while the app runs."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    async def health(_request: Any) -> JSONResponse:
        return JSONResponse({"status": "passing"})

    return Starlette(routes=[Route("/health", health), Mount("/", app=app)])
