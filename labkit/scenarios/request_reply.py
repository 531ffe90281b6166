"""Experiment: request-reply through a broker, with responders that share the work.

A client asks ``users.lookup`` for ``requests`` users. ``responders`` copies of the user
service listen on that subject as one group: each request is answered by exactly one of them,
so adding a copy adds capacity (NATS queue groups, competing consumers of one RabbitMQ queue).
A share of lookups fails inside the responder (``failing_share``): a responder that fails sends
nothing back, so its caller waits out its timeout, exactly as over HTTP with no status code.
With no responder at all the broker says so at once (``no responders``), which an HTTP client
only learns as a refused connection.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from labkit.core.params import Param
from labkit.core.stats import latency_summary
from labkit.scenarios.base import RunContext
from labkit.transport.brokers import Message, NoResponders, RequestTimeout, make_broker

TITLE = "Request-reply through a broker"
BACKENDS = ("memory", "nats", "rabbitmq")

PARAMS = [
    Param("requests", 20, "lookups the client makes", minimum=1, maximum=1000),
    Param("responders", 2, "copies of the user service answering as one group", 0, 5),
    Param("responder_latency_ms", 5.0, "time one lookup takes", minimum=0, unit="ms"),
    Param(
        "failing_share",
        0.0,
        "share of lookups that fail inside the responder (no answer is sent)",
        minimum=0,
        maximum=1,
    ),
    Param("timeout_ms", 200.0, "how long the client waits for an answer", minimum=1, unit="ms"),
]


async def main(ctx: RunContext) -> dict[str, Any]:
    p, tl = ctx.params, ctx.timeline
    rng = random.Random(ctx.seed)
    answered_by: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    async with make_broker(
        ctx.backend, timeline=tl, namespace=ctx.broker_namespace("rr")
    ) as broker:
        for n in range(p["responders"]):
            await broker.respond("users.lookup", _user_service(f"user-{n + 1}", p, rng, tl))
        for n in range(p["requests"]):
            started = tl.clock.now()
            try:
                reply = await broker.request(
                    "users.lookup", {"id": f"u-{n + 1}"}, timeout_s=p["timeout_ms"] / 1000
                )
            except NoResponders:
                outcomes["no responders"] += 1
                continue
            except RequestTimeout:
                outcomes["timed out"] += 1
            else:
                outcomes["answered"] += 1
                answered_by[reply.json()["served_by"]] += 1
            latencies.append((tl.clock.now() - started) * 1000)
    return {
        "requests": p["requests"],
        "answered": outcomes["answered"],
        "timed_out": outcomes["timed out"],
        "no_responders": outcomes["no responders"],
        "answered_by": dict(sorted(answered_by.items())),
        "latency_ms": latency_summary(latencies),
    }


def _user_service(name: str, p: dict[str, Any], rng: random.Random, tl: Any):  # type: ignore[no-untyped-def]
    async def lookup(message: Message) -> dict[str, Any]:
        await tl.clock.sleep(p["responder_latency_ms"] / 1000)
        if rng.random() < p["failing_share"]:
            raise RuntimeError(f"{name}: the user database timed out")
        return {"id": message.json()["id"], "served_by": name}

    return lookup
