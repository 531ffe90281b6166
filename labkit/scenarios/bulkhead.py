"""Experiment: one slow dependency, one shared pool of call slots vs a pool per dependency.

A gateway serves two kinds of request at ``rate_per_s`` for ``duration_s``: user lookups and
product lookups, half and half. Every downstream call needs a slot. The product service turns
slow (``slow_latency_ms``) from ``slow_from_s`` on. With one **shared** pool, product calls
pile up and hold every slot, and user lookups, whose service is perfectly healthy, are refused
too. With **isolated** pools the product pool fills up and user lookups carry on.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from labkit.core.faults import FaultPlan, Latency
from labkit.core.params import Param
from labkit.core.stats import latency_summary
from labkit.patterns.bulkhead import Bulkhead, BulkheadFull
from labkit.patterns.request_response import DownstreamError, fetch_json
from labkit.scenarios.base import RunContext
from labkit.shop.catalog import load_catalog
from labkit.shop.services import shop_apps
from labkit.transport.hosting import HTTP_BACKENDS, host

TITLE = "Bulkheads: isolating a slow dependency"
BACKENDS = HTTP_BACKENDS

PARAMS = [
    Param(
        "pools",
        "shared",
        "one pool of slots for both dependencies, or one each",
        choices=("shared", "isolated"),
    ),
    Param("slots", 20, "call slots in total (split evenly when isolated)", minimum=2, maximum=1000),
    Param("max_wait_ms", 0.0, "how long a call may wait for a free slot", minimum=0, unit="ms"),
    Param(
        "rate_per_s",
        40.0,
        "requests per second, half users, half products",
        minimum=1,
        maximum=1000,
    ),
    Param("duration_s", 10.0, "length of the run", minimum=1, maximum=600, unit="s"),
    Param("latency_ms", 20.0, "normal latency of both services", minimum=0, unit="ms"),
    Param("slow_latency_ms", 3000.0, "product latency once it turns slow", minimum=0, unit="ms"),
    Param("slow_from_s", 3.0, "when the product service turns slow", minimum=0, unit="s"),
    Param("timeout_ms", 5000.0, "deadline per downstream call", minimum=1, unit="ms"),
]


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    clock = tl.clock
    plan = FaultPlan(ctx.seed)
    plan.add("user", Latency(p["latency_ms"], p["latency_ms"] / 4))
    plan.add("product", Latency(p["latency_ms"], p["latency_ms"] / 4), end_s=p["slow_from_s"])
    plan.add("product", Latency(p["slow_latency_ms"]), start_s=p["slow_from_s"])
    wait_s = p["max_wait_ms"] / 1000
    if p["pools"] == "shared":
        shared = Bulkhead("pool", p["slots"], max_wait_s=wait_s, timeline=tl)
        pools = {"user": shared, "product": shared}
    else:
        half = max(1, p["slots"] // 2)
        pools = {
            name: Bulkhead(f"{name}-pool", half, max_wait_s=wait_s, timeline=tl)
            for name in ("user", "product")
        }
    outcomes: dict[str, Counter[str]] = {"user": Counter(), "product": Counter()}
    waits: dict[str, list[float]] = {"user": [], "product": []}
    total = int(p["rate_per_s"] * p["duration_s"])
    async with host(
        shop_apps(load_catalog()), backend=ctx.backend, timeline=tl, faults=plan
    ) as shop:
        clients = {name: shop.client(name, source="gateway") for name in ("user", "product")}
        paths = {"user": "/users/u-1", "product": "/products/p-1"}

        async def one(kind: str) -> None:
            started = clock.now()
            try:
                await pools[kind].call(
                    fetch_json,
                    clients[kind],
                    paths[kind],
                    service=kind,
                    timeout_s=p["timeout_ms"] / 1000,
                )
            except BulkheadFull:
                outcomes[kind]["rejected"] += 1
            except DownstreamError as exc:
                outcomes[kind][exc.reason] += 1
            else:
                outcomes[kind]["ok"] += 1
                waits[kind].append(round((clock.now() - started) * 1000, 3))

        tasks = []
        for i in range(total):
            delay = i / p["rate_per_s"] - clock.now()
            if delay > 0:
                await clock.sleep(delay)
            tasks.append(asyncio.create_task(one("user" if i % 2 == 0 else "product")))
        await asyncio.gather(*tasks)
    return {
        "pools": p["pools"],
        "requests": total,
        "user": {**_counts(outcomes["user"]), "latency_ms": latency_summary(waits["user"])},
        "product": {
            **_counts(outcomes["product"]),
            "latency_ms": latency_summary(waits["product"]),
        },
        "user_success_rate": round(
            outcomes["user"]["ok"] / max(1, sum(outcomes["user"].values())), 4
        ),
        "peak_in_flight": {name: pool.peak for name, pool in pools.items()},
    }


def _counts(counter: Counter[str]) -> dict[str, int]:
    return {
        "ok": counter.get("ok", 0),
        "rejected": counter.get("rejected", 0),
        "failed": sum(v for k, v in counter.items() if k not in ("ok", "rejected")),
    }
