"""Benchmark: what the in-process sidecar costs, and how long the mesh and discovery runs take.

    uv run python bench/bench_mesh.py [--requests 2000] [--live]

Prints JSON:
* ``config``: parsing the syllabus' YAML (PyYAML + checks) and linting it, in microseconds;
* ``routing_us``: one route choice and weighted draw, without HTTP;
* ``per_request_us``: one request to an instance directly and through the sidecar, in-process
  (virtual time, no injected latency), and over loopback uvicorn with ``--live``;
* ``scenarios``: wall time of the acceptance runs (10,000-request split, round robin vs least
  request with a slow instance, outlier ejection, a 90-second discovery run) and their
  headline numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


import labkit
from labkit.core.clock import LoopClock, run_on_fresh_loop
from labkit.core.paths import data_dir
from labkit.core.timeline import Timeline
from labkit.patterns.mesh_config import load_mesh_config
from labkit.patterns.mesh_lint import lint
from labkit.patterns.service_mesh import Instance, serve_mesh
from labkit.shop.catalog import load_catalog
from labkit.shop.services import order_app
from labkit.transport.hosting import host

SYLLABUS = (data_dir() / "mesh" / "syllabus.yaml").read_text()


def best_us(fn, n: int, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - started) / n * 1e6)
    return round(min(samples), 2)


def per_request(requests: int, backend: str) -> dict[str, float]:
    config = load_mesh_config((data_dir() / "mesh" / "least_request.yaml").read_text())
    catalog = load_catalog()
    instances = [Instance("order-v1-1", "order-service", {"version": "v1"}, order_app(catalog))]

    async def main() -> dict[str, float]:
        tl = Timeline(LoopClock(), enabled=False)
        async with host({"order-v1-1": order_app(catalog)}, backend=backend, timeline=tl) as h:
            direct = h.client("order-v1-1", source="bench")
            started = time.perf_counter()
            for _ in range(requests):
                (await direct.get("/orders/o-1001")).raise_for_status()
            direct_us = (time.perf_counter() - started) / requests * 1e6
        async with serve_mesh(config, instances, timeline=tl, backend=backend) as (_, client):
            started = time.perf_counter()
            for _ in range(requests):
                (await client.get("http://order-service/orders/o-1001")).raise_for_status()
            mesh_us = (time.perf_counter() - started) / requests * 1e6
        return {"direct": round(direct_us, 1), "through_sidecar": round(mesh_us, 1)}

    return run_on_fresh_loop(main, virtual=backend == "inprocess")


def timed(pattern: str, **params):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    summary = labkit.run(pattern, **params).summary
    return round(time.perf_counter() - started, 3), summary


def scenarios() -> dict[str, object]:
    out: dict[str, object] = {}
    wall, s = timed("service_mesh", config="fixed", requests=10_000, rate_per_s=1000, seed=11)
    others = s["others"]
    out["split_10000"] = {
        "wall_s": wall,
        "beta_testers": s["beta_testers"],
        "others_v2_percent": round(100 * others["v2"] / sum(others.values()), 2),
    }
    lb = {}
    for name in ("ROUND_ROBIN", "LEAST_REQUEST"):
        wall, s = timed(
            "service_mesh", config="least_request", lb=name, slow_instance="order-v1-1",
            v1_instances=5, requests=2000, rate_per_s=1000, seed=5,
        )  # fmt: skip
        lb[name] = {
            "wall_s": wall,
            "slow_instance_requests": s["per_instance"]["order-v1-1"],
            "p95_ms": s["latency_ms"]["p95"],
            "mean_ms": s["latency_ms"]["mean"],
        }
    out["slow_instance"] = lb
    wall, s = timed(
        "service_mesh", config="outlier", failing_instance="order-v1-2", fail_until_s=30,
        requests=6000, rate_per_s=100,
    )  # fmt: skip
    out["outlier"] = {
        "wall_s": wall,
        "ejections": [(e["t_s"], e["seconds"]) for e in s["ejections"]],
        "returns": [r["t_s"] for r in s["returns"]],
        "status_counts": s["status_counts"],
        "retries": s["retries"],
    }
    wall, s = timed("discovery")
    out["discovery_90s"] = {"wall_s": wall, "detection": s["detection"], "outcomes": s["outcomes"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--live", action="store_true", help="also measure over loopback uvicorn")
    args = parser.parse_args()
    config = load_mesh_config(SYLLABUS)
    from labkit.patterns.service_mesh import Mesh

    mesh = Mesh(config, {}, send=None, timeline=Timeline())  # type: ignore[arg-type]
    headers = {"end-user": "beta-tester"}

    def route() -> None:
        r = mesh.choose_route("order-service", "GET", "/orders/o-1", headers)
        mesh.choose_destination(r)

    result: dict[str, object] = {
        "config": {
            "parse_syllabus_us": best_us(lambda: load_mesh_config(SYLLABUS), 200),
            "lint_us": best_us(lambda: lint(config), 2000),
        },
        "routing_us": best_us(route, 20_000),
        "per_request_us": {"inprocess": per_request(args.requests, "inprocess")},
        "scenarios": scenarios(),
    }
    if args.live:
        result["per_request_us"]["live"] = per_request(args.requests // 4, "live")  # type: ignore[index]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
