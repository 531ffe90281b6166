"""Load balancers as Envoy (and so Istio) implements them: round robin, least request, random.

A sidecar holds a pool of endpoints (the instances of one subset) and picks one per request:

* **ROUND_ROBIN** takes them in turn. Fair in counts, blind to speed: a slow instance gets its
  full share and its slow answers land in the tail of the latency distribution.
* **LEAST_REQUEST** looks at how many requests each endpoint has in flight. Envoy does not scan
  the whole pool: it draws two endpoints at random and keeps the one with fewer active requests
  ("the power of two choices", Mitzenmacher). A slow instance piles up in-flight requests, so it
  loses most draws and gets fewer requests.
* **RANDOM** picks uniformly; simple, no shared state, and no better than round robin.
* ``LEAST_CONN`` is Istio's old name for LEAST_REQUEST; it is accepted with a deprecation note.

Every balancer is seeded, so a run repeats exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from labkit.core.errors import UnknownName


@dataclass(eq=False)
class Endpoint:
    """One instance behind a sidecar: its name, labels, and requests in flight right now."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    active: int = 0


class Balancer(Protocol):
    name: str

    def pick(self, endpoints: Sequence[Endpoint]) -> Endpoint:
        """One endpoint of a non-empty pool."""
        ...


class RoundRobin:
    name = "ROUND_ROBIN"

    def __init__(self, rng: random.Random) -> None:
        self._next = rng.randrange(1 << 16)  # Envoy starts each worker at a random offset

    def pick(self, endpoints: Sequence[Endpoint]) -> Endpoint:
        chosen = endpoints[self._next % len(endpoints)]
        self._next += 1
        return chosen


class LeastRequest:
    """Power of two choices: two random endpoints, the one with fewer requests in flight."""

    name = "LEAST_REQUEST"

    def __init__(self, rng: random.Random, choices: int = 2) -> None:
        self.rng = rng
        self.choices = choices

    def pick(self, endpoints: Sequence[Endpoint]) -> Endpoint:
        if len(endpoints) == 1:
            return endpoints[0]
        drawn = self.rng.sample(list(endpoints), min(self.choices, len(endpoints)))
        return min(drawn, key=lambda e: e.active)  # ties: the first drawn, as in Envoy


class RandomPick:
    name = "RANDOM"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, endpoints: Sequence[Endpoint]) -> Endpoint:
        return self.rng.choice(list(endpoints))


_BALANCERS = {"ROUND_ROBIN": RoundRobin, "LEAST_REQUEST": LeastRequest, "RANDOM": RandomPick}
LB_NAMES = (*_BALANCERS, "LEAST_CONN")


def make_balancer(name: str, rng: random.Random) -> Balancer:
    """The balancer called ``name`` (Istio spelling; ``LEAST_CONN`` means LEAST_REQUEST)."""
    key = "LEAST_REQUEST" if name == "LEAST_CONN" else name.upper()
    if key not in _BALANCERS:
        raise UnknownName("load balancer", name, LB_NAMES)
    balancer: Balancer = _BALANCERS[key](rng)
    return balancer
