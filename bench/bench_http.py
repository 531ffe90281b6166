"""Benchmark: what the lab's HTTP seam costs, in-process and over loopback. Prints JSON.

    uv run python bench/bench_http.py [--calls 2000] [--repeats 5]

Four comparisons, each measured in the same run (median of the repeats):

1. one call through the lab's in-process transport (a matching fault rule and the timeline
   on) vs the same call through a bare ``httpx.ASGITransport``;
2. one gateway request (1 order + 1 user + 5 product calls) through the lab vs the same gateway
   wired with bare ``ASGITransport`` clients;
3. one call in live mode (uvicorn on loopback; the lab's pooled keep-alive client with faults
   and timeline) vs a naive httpx client made per call (``async with httpx.AsyncClient()``,
   the way most snippets do it), and vs a bare pooled client for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from labkit.core.clock import LoopClock
from labkit.core.faults import ErrorStatus, FaultPlan
from labkit.core.timeline import Timeline
from labkit.patterns.gateway import OrderDetailsGateway
from labkit.shop.catalog import load_catalog
from labkit.shop.services import shop_apps
from labkit.transport.hosting import host, serve_on_loopback
from labkit.transport.http import LabTransport

ORDER = "o-1001"  # five items


def quiet_plan() -> FaultPlan:
    """A rule that matches every call and draws a number, but injects nothing."""
    return FaultPlan(1).add("*", ErrorStatus(503, probability=0.0))


async def rate(fn: Callable[[], Awaitable[object]], calls: int, repeats: int) -> dict[str, float]:
    for _ in range(min(200, calls)):
        await fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            await fn()
        samples.append(calls / (time.perf_counter() - started))
    ops = statistics.median(samples)
    return {"ops_per_s": round(ops, 1), "us_per_op": round(1e6 / ops, 1)}


async def in_process(calls: int, repeats: int) -> dict[str, object]:
    apps = shop_apps(load_catalog())
    bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=apps["user"]), base_url="http://u")
    tl = Timeline(LoopClock())
    async with host(apps, timeline=tl, faults=quiet_plan()) as shop:
        lab = shop.client("user", source="bench")
        bare_r = await rate(lambda: bare.get("/users/u-1"), calls, repeats)
        lab_r = await rate(lambda: lab.get("/users/u-1"), calls, repeats)

        gw_lab = OrderDetailsGateway(
            orders=shop.client("order", source="gw"),
            users=shop.client("user", source="gw"),
            products=shop.client("product", source="gw"),
            mode="concurrent",
        )
        gw_bare = OrderDetailsGateway(
            **{
                key: httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=apps[name]), base_url=f"http://{name}"
                )
                for key, name in (("orders", "order"), ("users", "user"), ("products", "product"))
            },
            mode="concurrent",
        )
        gw_calls = max(calls // 7, 50)
        gw_bare_r = await rate(lambda: gw_bare.order_details(ORDER), gw_calls, repeats)
        gw_lab_r = await rate(lambda: gw_lab.order_details(ORDER), gw_calls, repeats)
    await bare.aclose()
    return {
        "call": {
            "bare_asgi": bare_r,
            "lab": lab_r,
            "ratio_lab_to_bare": round(lab_r["ops_per_s"] / bare_r["ops_per_s"], 3),
        },
        "gateway_request": {
            "bare_asgi": gw_bare_r,
            "lab": gw_lab_r,
            "ratio_lab_to_bare": round(gw_lab_r["ops_per_s"] / gw_bare_r["ops_per_s"], 3),
        },
        "records_written": len(tl),
    }


async def live(calls: int, repeats: int) -> dict[str, object]:
    apps = shop_apps(load_catalog())
    server, task, port = await serve_on_loopback(apps["user"])
    url = f"http://127.0.0.1:{port}/users/u-1"

    async def naive() -> object:
        async with httpx.AsyncClient() as client:
            return await client.get(url)

    pooled = httpx.AsyncClient()
    tl = Timeline(LoopClock())
    try:
        lab = httpx.AsyncClient(
            transport=LabTransport(
                httpx.AsyncHTTPTransport(),
                target="user",
                source="bench",
                timeline=tl,
                faults=quiet_plan(),
            ),
        )
        naive_calls = max(calls // 10, 50)
        naive_r = await rate(naive, naive_calls, repeats)
        pooled_r = await rate(lambda: pooled.get(url), calls, repeats)
        lab_r = await rate(lambda: lab.get(url), calls, repeats)
        await lab.aclose()
    finally:
        await pooled.aclose()
        server.should_exit = True
        await task
    return {
        "naive_client_per_call": naive_r,
        "bare_pooled_client": pooled_r,
        "lab_live": lab_r,
        "ratio_lab_to_naive": round(lab_r["ops_per_s"] / naive_r["ops_per_s"], 2),
        "ratio_lab_to_bare_pooled": round(lab_r["ops_per_s"] / pooled_r["ops_per_s"], 3),
        "sniffio_installed": _version("sniffio"),
    }


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    report = {
        "benchmark": "http",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "httpx": _version("httpx"),
        "uvicorn": _version("uvicorn"),
        "in_process": asyncio.run(in_process(args.calls, args.repeats)),
        "live": asyncio.run(live(args.calls, args.repeats)),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
