"""Benchmark: the lab's circuit breaker against bare pybreaker, and virtual-time run speed.

    uv run python bench/bench_resilience.py [--calls 50000]

Prints JSON:
* ``breaker_call``: cost of one successful call through a bare ``pybreaker.CircuitBreaker``
  and through the lab's breaker (recording off, and recording on), sync and async;
* ``virtual_time``: wall time of a 60-second circuit-breaker scenario, a two-minute retry
  schedule and the full retry-storm comparison (six backoffs, 100 clients each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pybreaker

import labkit
from labkit.core.clock import LoopClock, ManualClock, run_on_fresh_loop
from labkit.core.timeline import Timeline
from labkit.patterns.circuit_breaker import CircuitBreaker
from labkit.patterns.request_response import DownstreamError
from labkit.patterns.retry import backoff, call_with_retry


def ok() -> int:
    return 1


async def aok() -> int:
    return 1


def per_call_us(fn, calls: int, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return round(min(samples), 3)  # best of the repeats: the least disturbed by other work


async def async_per_call_us(make, calls: int, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            await make()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return round(min(samples), 3)  # best of the repeats: the least disturbed by other work


def breaker_costs(calls: int) -> dict[str, object]:
    bare = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    clock = ManualClock()
    quiet = CircuitBreaker("quiet", clock=clock, timeline=Timeline(clock, enabled=False))
    loud = CircuitBreaker("loud", clock=clock, timeline=Timeline(clock))
    sync = {
        "pybreaker": per_call_us(lambda: bare.call(ok), calls),
        "lab_recording_off": per_call_us(lambda: quiet.call(ok), calls),
        "lab_recording_on": per_call_us(lambda: loud.call(ok), calls),
    }

    async def bare_async() -> int:
        with bare.calling():
            return await aok()

    async def main() -> dict[str, float]:
        loop_clock = LoopClock()
        aquiet = CircuitBreaker("q", clock=loop_clock, timeline=Timeline(loop_clock, enabled=False))
        return {
            "pybreaker_calling": await async_per_call_us(bare_async, calls),
            "lab_recording_off": await async_per_call_us(lambda: aquiet.call(aok), calls),
        }

    async_costs = asyncio.run(main())
    return {
        "sync_us": sync,
        "async_us": async_costs,
        "ratio_sync_off": round(sync["lab_recording_off"] / sync["pybreaker"], 2),
        "ratio_async_off": round(
            async_costs["lab_recording_off"] / async_costs["pybreaker_calling"], 2
        ),
    }


def wall(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return round(time.perf_counter() - started, 3)


def two_minute_schedule() -> float:
    async def main() -> float:
        clock = LoopClock()
        tries = 0

        async def flaky() -> str:
            nonlocal tries
            tries += 1
            if tries < 8:
                raise DownstreamError("s", "unavailable", "down")
            return "ok"

        wait = backoff("exponential", base=1.0, cap=60.0, rng=random.Random(0))
        await call_with_retry(flaky, wait=wait, max_attempts=8, clock=clock)
        return clock.now()

    return run_on_fresh_loop(main, virtual=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    args = parser.parse_args()
    labkit.run("circuit_breaker", duration_s=1)  # warm imports
    virtual = {}
    virtual["breaker_60s_wall_s"] = wall(lambda: labkit.run("circuit_breaker", duration_s=60))
    virtual["retry_2min_schedule_wall_s"] = wall(two_minute_schedule)
    virtual["retry_2min_schedule_virtual_s"] = two_minute_schedule()
    virtual["retry_storm_compare_wall_s"] = wall(lambda: labkit.run("retry", compare=True))
    print(
        json.dumps(
            {
                "benchmark": "resilience",
                "breaker_call": breaker_costs(args.calls),
                "virtual_time": virtual,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
