"""Benchmark: what tracing and metrics cost on the lab's HTTP path. Prints JSON.

    uv run python bench/bench_tracing.py [--requests 300] [--repeats 5]

Measured in the same run (median of the repeats), in-process, no faults:

1. one gateway request (1 order + 1 user + 5 product calls, 16 spans) with the services and
   clients traced (OpenTelemetry SDK spans, W3C ``traceparent`` injected and extracted, the
   in-memory exporter) vs the same request untraced;
2. the same with the request-duration histogram middleware on every service as well;
3. one ``Histogram.observe`` and one quantile estimated from the buckets, alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labkit.core.clock import LoopClock, ManualClock
from labkit.core.timeline import Timeline
from labkit.patterns.gateway import OrderDetailsGateway
from labkit.patterns.metrics import RequestMetrics, quantile_from_buckets
from labkit.patterns.tracing import Tracing
from labkit.shop.catalog import load_catalog
from labkit.shop.services import shop_apps
from labkit.transport.hosting import host

ORDER = "o-1001"  # five items


async def per_second(fn: Callable[[], Awaitable[Any]], n: int, repeats: int) -> float:
    for _ in range(min(50, n)):
        await fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            await fn()
        samples.append(n / (time.perf_counter() - started))
    return statistics.median(samples)


async def gateway_rate(n: int, repeats: int, *, traced: bool, metered: bool) -> float:
    tl = Timeline(LoopClock(), enabled=False)
    tracing = Tracing(tl.clock) if traced else None
    metrics = RequestMetrics(tl.clock) if metered else None
    apps = shop_apps(load_catalog())
    if metrics is not None:
        apps = {name: metrics.middleware(name, app) for name, app in apps.items()}
    async with host(apps, timeline=tl, tracing=tracing) as shop:
        gateway = OrderDetailsGateway(
            orders=shop.client("order", source="gateway"),
            users=shop.client("user", source="gateway"),
            products=shop.client("product", source="gateway"),
            mode="concurrent",
        )
        front_app: Any = gateway.app()
        if metrics is not None:
            front_app = metrics.middleware("gateway", front_app)
        async with host({"gateway": front_app}, timeline=tl, tracing=tracing) as front:
            client = front.client("gateway", source="client")

            async def one() -> None:
                response = await client.get(f"/orders/{ORDER}")
                assert response.status_code == 200
                if tracing is not None:
                    tracing.exporter.clear()  # keep memory flat: measure making spans

            return await per_second(one, n, repeats)


async def main(n: int, repeats: int) -> dict[str, Any]:
    plain = await gateway_rate(n, repeats, traced=False, metered=False)
    traced = await gateway_rate(n, repeats, traced=True, metered=False)
    both = await gateway_rate(n, repeats, traced=True, metered=True)
    metrics = RequestMetrics(ManualClock())
    series = metrics.histogram.labels("svc", "/x", "GET", "200")
    started = time.perf_counter()
    for i in range(100_000):
        series.observe((i % 300) / 1000)
    observe_us = (time.perf_counter() - started) / 100_000 * 1e6
    buckets = metrics.buckets_of(service="svc")
    started = time.perf_counter()
    for _ in range(10_000):
        quantile_from_buckets(0.99, buckets)
    quantile_us = (time.perf_counter() - started) / 10_000 * 1e6
    return {
        "benchmark": "tracing",
        "requests": n,
        "gateway_requests_per_s": {
            "untraced": round(plain, 1),
            "traced": round(traced, 1),
            "traced_and_metered": round(both, 1),
        },
        "traced_to_untraced": round(traced / plain, 3),
        "traced_and_metered_to_untraced": round(both / plain, 3),
        "us_per_span": round((1 / traced - 1 / plain) * 1e6 / 16, 1),
        "histogram_observe_us": round(observe_us, 3),
        "quantile_from_buckets_us": round(quantile_us, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.requests, args.repeats)), indent=2))
