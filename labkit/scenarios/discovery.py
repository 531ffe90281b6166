"""Experiment: user-service instances register, one dies and recovers, a client keeps calling.

Each instance registers with a health check (HTTP ``/health`` or a TTL heartbeat). One instance
(or all of them) goes down at ``kill_at_s`` and comes back at ``recover_at_s``. A client looks
the service up ``calls_per_s`` times a second and calls what it gets: with the checked lookup and
client-side round robin, or with the syllabus' ``services[0]``. The summary shows how long the
registry took to notice each change, and what the client saw meanwhile.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from labkit.core.errors import BadParameter
from labkit.core.faults import FaultPlan, Outage
from labkit.core.params import Param
from labkit.patterns.discovery import (
    Check,
    DiscoveryClient,
    NoHealthyInstance,
    Registry,
    ServiceInstance,
    http_probe,
    syllabus_pick,
    with_health,
)
from labkit.scenarios.base import RunContext
from labkit.shop.catalog import load_catalog
from labkit.shop.services import user_app
from labkit.transport.hosting import HTTP_BACKENDS, host

TITLE = "Service discovery: a registry with health checks"
BACKENDS = HTTP_BACKENDS
SERVICE = "user-service"
NEVER = 1e9

PARAMS = [
    Param("instances", 3, "instances of user-service", minimum=1, maximum=8),
    Param("kill_instance", 2, "which instance dies (1..instances); 0: none", minimum=0, maximum=8),
    Param("kill_all", False, "every instance dies at once"),
    Param("kill_at_s", 20.0, "when it dies", minimum=0, unit="s"),
    Param("recover_at_s", 60.0, "when it comes back; 0: never", minimum=0, unit="s"),
    Param("check", "http", "how health is checked", choices=("http", "ttl")),
    Param("interval_s", 5.0, "time between two HTTP checks", minimum=0.1, unit="s"),
    Param("timeout_s", 1.0, "an HTTP check without an answer by then fails", minimum=0.01,
          unit="s"),
    Param("ttl_s", 10.0, "TTL check: the instance must report alive within this", minimum=0.1,
          unit="s"),
    Param("success_before_passing", 2, "passes in a row to become passing", minimum=1,
          maximum=20),
    Param("failures_before_critical", 3, "failures in a row to become critical", minimum=1,
          maximum=20),
    Param("deregister_critical_after_s", 0.0, "critical this long: deregistered; 0: never",
          minimum=0, unit="s"),
    Param("lookup", "checked", "the client's lookup: checked + round robin, or services[0]",
          choices=("checked", "syllabus")),
    Param("calls_per_s", 2.0, "client calls per second", minimum=0.1, maximum=100),
    Param("duration_s", 90.0, "how long the run lasts", minimum=1, maximum=3600, unit="s"),
]  # fmt: skip


def check_of(p: dict[str, Any]) -> Check:
    return Check(
        http=None if p["check"] == "ttl" else "/health",
        ttl=p["ttl_s"] if p["check"] == "ttl" else None,
        interval=p["interval_s"],
        timeout=p["timeout_s"],
        success_before_passing=p["success_before_passing"],
        failures_before_critical=p["failures_before_critical"],
        deregister_critical_after=p["deregister_critical_after_s"] or None,
    )


def _down(p: dict[str, Any], names: list[str]) -> dict[str, tuple[float, float]]:
    if p["kill_instance"] > len(names):
        raise BadParameter("kill_instance", p["kill_instance"], f"must be 0..{len(names)}")
    until = p["recover_at_s"] or NEVER
    if until < p["kill_at_s"]:
        raise BadParameter("recover_at_s", p["recover_at_s"], "must not be before kill_at_s")
    dead = names if p["kill_all"] else names[p["kill_instance"] - 1 : p["kill_instance"]]
    return {name: (p["kill_at_s"], until) for name in dead if p["kill_instance"] or p["kill_all"]}


async def main(ctx: RunContext) -> dict[str, Any]:
    p = ctx.params
    tl, clock = ctx.timeline, ctx.timeline.clock
    names = [f"{SERVICE}-{k}" for k in range(1, p["instances"] + 1)]
    down = _down(p, names)
    plan = FaultPlan(ctx.seed)
    for name, (start, end) in down.items():
        plan.add(name, Outage(start, end))
    catalog = load_catalog()
    apps = {name: with_health(user_app(catalog)) for name in names}
    outcomes: Counter[str] = Counter()
    served: Counter[str] = Counter()
    errors: dict[str, str] = {}
    async with host(apps, backend=ctx.backend, timeline=tl, faults=plan) as hosted:
        registry = Registry(tl, http_probe(hosted))
        check = check_of(p)
        for k, name in enumerate(names, start=1):
            tags = ("v2",) if k % 2 == 0 else ("v1",)
            registry.register(ServiceInstance(name, SERVICE, f"10.0.0.{k}", 8080, tags), check)
        heartbeats = []
        if check.ttl is not None:
            import asyncio

            for name in names:
                heartbeats.append(asyncio.ensure_future(_heartbeat(registry, name, down, check)))
        clients = {n: hosted.client(n, source="client", timeout=p["timeout_s"]) for n in names}
        chooser = DiscoveryClient(registry, seed=ctx.seed)
        started = False
        steps = int(p["duration_s"] * p["calls_per_s"])
        for step in range(steps):
            await clock.sleep(1 / p["calls_per_s"])
            if not started:  # the client starts once the service is up (new checks start critical)
                started = bool(registry.healthy(SERVICE)) or step * 2 > steps
                if not started:
                    continue
                tl.record("client", "client.started")
            try:
                if p["lookup"] == "syllabus":
                    instance = syllabus_pick(registry, SERVICE)
                else:
                    instance = chooser.pick(SERVICE)
            except IndexError as exc:
                errors["crash"] = f"IndexError: {exc}"
                tl.record("client", "client.crashed", error=errors["crash"])
                outcomes["crashed"] += 1
                break
            except NoHealthyInstance as exc:
                errors["lookup"] = str(exc)
                tl.record("client", "lookup.failed", error=str(exc))
                outcomes["no_healthy_instance"] += 1
                continue
            try:
                response = await clients[instance.id].get("/users/u-1")
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            outcomes["ok" if ok else "call_failed"] += 1
            served[instance.id] += ok
        for task in heartbeats:
            task.cancel()
        await registry.close()
    return summarize(tl, p, names, down, outcomes, served, errors)


async def _heartbeat(registry: Registry, name: str, down: dict, check: Check) -> None:  # type: ignore[type-arg]
    """A TTL-checked instance reports alive every ttl/2 s, except while it is down."""
    clock = registry.timeline.clock
    start, end = down.get(name, (NEVER, NEVER))
    while True:
        if not start <= clock.now() < end and name in [i.id for i in registry.instances(SERVICE)]:
            registry.ttl_pass(name)
        await clock.sleep((check.ttl or 1) / 2)


def summarize(tl, p, names, down, outcomes, served, errors) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    transitions = [
        {"t_s": round(r.t, 3), "instance": r.fields["instance"], "status": r.kind.split(".")[1]}
        for r in tl.of_kind("health.passing", "health.critical")
    ]
    deregistered = [
        {"t_s": round(r.t, 3), "instance": r.fields["instance"], "reason": r.fields["reason"]}
        for r in tl.of_kind("instance.deregistered")
    ]
    detection = {}
    for name, (start, end) in down.items():
        crit = [
            t["t_s"] for t in transitions if t["instance"] == name and t["status"] == "critical"
        ]
        back = [
            t["t_s"]
            for t in transitions
            if t["instance"] == name and t["status"] == "passing" and t["t_s"] >= end
        ]
        detection[name] = {
            "died_at_s": start,
            "critical_after_s": round(crit[0] - start, 3) if crit else None,
            "recovered_at_s": end if end < NEVER else None,
            "passing_again_after_s": round(back[0] - end, 3) if back else None,
        }
    return {
        "lookup": p["lookup"],
        "check": p["check"],
        "outcomes": dict(sorted(outcomes.items())),
        "served": {n: served.get(n, 0) for n in names},
        "transitions": transitions,
        "detection": detection,
        "deregistered": deregistered,
        "errors": errors,
    }
