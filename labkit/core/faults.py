"""The fault plan: what goes wrong, where, and how often, decided by a seed.

Modelled on Toxiproxy's *toxics* (latency with jitter, reset, timeout, down) and Istio's fault
injection (delay and abort with a percentage), plus two things Toxiproxy users keep asking for:
an HTTP error status, and "fail the first N calls, then recover".

A plan is a list of rules. Each rule says *which service* (and optionally which route prefix)
it targets and *which fault* it injects. Patterns never test ``if fault:``; a transport or a
handler wrapper asks the plan for the effects of each call and applies them. Every rule draws
from its own random generator derived from the plan's seed, so the same seed gives the same
failures in the same places, run after run.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from labkit.core.errors import BadParameter, UnknownName


def _check_probability(kind: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise BadParameter(f"{kind}.probability", value, "must lie between 0 and 1")


def _check_non_negative(kind: str, name: str, value: float) -> None:
    if value < 0:
        raise BadParameter(f"{kind}.{name}", value, "must be at least 0")


@dataclass(frozen=True)
class Effect:
    """What a transport must do to one call: wait, answer with a status, hang, reset or refuse."""

    action: str  # "delay" | "status" | "hang" | "reset" | "refuse" | "bad_payload"
    fault: str
    seconds: float = 0.0
    status: int | None = None


@dataclass(frozen=True)
class Fault:
    """Base of all fault kinds; ``kind`` is the name used in YAML, the CLI and the timeline."""

    kind: ClassVar[str] = ""

    def effect(self, rng: random.Random, nth_call: int, now: float) -> Effect | None:
        raise NotImplementedError


@dataclass(frozen=True)
class Latency(Fault):
    """Add ``ms`` of delay, plus or minus up to ``jitter_ms`` (uniform), to every call."""

    kind: ClassVar[str] = "latency"
    ms: float = 0.0
    jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        _check_non_negative(self.kind, "ms", self.ms)
        _check_non_negative(self.kind, "jitter_ms", self.jitter_ms)

    def effect(self, rng: random.Random, nth_call: int, now: float) -> Effect | None:
        jitter = rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        delay = max(0.0, self.ms + jitter) / 1000
        return Effect("delay", self.kind, seconds=delay) if delay else None


@dataclass(frozen=True)
class ErrorStatus(Fault):
    """Answer with HTTP ``status`` instead of calling the service, with a probability."""

    kind: ClassVar[str] = "error"
    status: int = 503
    probability: float = 1.0

    def __post_init__(self) -> None:
        _check_probability(self.kind, self.probability)
        if not 400 <= self.status <= 599:
            raise BadParameter(f"{self.kind}.status", self.status, "must be 400 to 599")

    def effect(self, rng: random.Random, nth_call: int, now: float) -> Effect | None:
        if self.probability and rng.random() < self.probability:
            return Effect("status", self.kind, status=self.status)
        return None


@dataclass(frozen=True)
class FailFirst(Fault):
    """Fail the first ``count`` calls with ``status``, then let every call through."""

    kind: ClassVar[str] = "fail_first"
    count: int = 1
    status: int = 503

    def __post_init__(self) -> None:
        _check_non_negative(self.kind, "count", self.count)

    def effect(self, rng: random.Random, nth_call: int, now: float) -> Effect | None:
        return Effect("status", self.kind, status=self.status) if nth_call <= self.count else None


@dataclass(frozen=True)
class Hang(Fault):
    """Accept the call and never answer (for ``seconds``): only the caller's deadline saves it."""

    kind: ClassVar[str] = "hang"
    probability: float = 1.0
    seconds: float = 3600.0

    def __post_init__(self) -> None:
        _check_probability(self.kind, self.probability)
        _check_non_negative(self.kind, "seconds", self.seconds)

    def effect(self, rng: random.Random, nth_call: int, now: float) -> Effect | None:
        if self.probability and rng.random() < self.probability:
            return Effect("hang", self.kind, seconds=self.seconds)
        return None


@dataclass(frozen=True)
class Reset(Fault):
    """Drop the connection mid-call (a TCP reset), with a probability."""

    kind: ClassVar[str] = "reset"
    probability: float = 1.0

    def __post_init__(self) -> None:
        _check_probability(self.kind, self.probability)

    def effect(self, rng: random.Random, nth_call: int, now: float) -> Effect | None:
        if self.probability and rng.random() < self.probability:
            return Effect("reset", self.kind)
        return None


@dataclass(frozen=True)
class Outage(Fault):
    """The service is down (connection refused) from ``start_s`` to ``end_s`` of the run."""

    kind: ClassVar[str] = "outage"
    start_s: float = 0.0
    end_s: float = float("inf")

    def __post_init__(self) -> None:
        _check_non_negative(self.kind, "start_s", self.start_s)
        if self.end_s < self.start_s:
            raise BadParameter(f"{self.kind}.end_s", self.end_s, "must not be before start_s")

    def effect(self, rng: random.Random, nth_call: int, now: float) -> Effect | None:
        return Effect("refuse", self.kind) if self.start_s <= now < self.end_s else None


@dataclass(frozen=True)
class BadPayload(Fault):
    """Answer 200 with a body that is not the JSON the client expects, with a probability."""

    kind: ClassVar[str] = "bad_payload"
    probability: float = 1.0

    def __post_init__(self) -> None:
        _check_probability(self.kind, self.probability)

    def effect(self, rng: random.Random, nth_call: int, now: float) -> Effect | None:
        if self.probability and rng.random() < self.probability:
            return Effect("bad_payload", self.kind, status=200)
        return None


@dataclass(frozen=True)
class Capacity(Fault):
    """The service can take ``per_s`` calls a second (bursts up to ``burst``); more get 503.

    A token bucket: it refills at ``per_s`` tokens a second up to ``burst``; each call takes
    one. This is what makes retry storms hurt: a crowd of callers retrying in lockstep
    arrives together and most of it is turned away, again and again.
    """

    kind: ClassVar[str] = "capacity"
    per_s: float = 100.0
    burst: float = 10.0
    status: int = 503
    bucket: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.per_s <= 0:
            raise BadParameter(f"{self.kind}.per_s", self.per_s, "must be above 0")
        if self.burst < 1:
            raise BadParameter(f"{self.kind}.burst", self.burst, "must be at least 1")

    def effect(self, rng: random.Random, nth_call: int, now: float) -> Effect | None:
        tokens = self.bucket.get("tokens", self.burst)
        last = self.bucket.get("at", now)
        tokens = min(self.burst, tokens + (now - last) * self.per_s)
        self.bucket["at"] = now
        if tokens >= 1:
            self.bucket["tokens"] = tokens - 1
            return None
        self.bucket["tokens"] = tokens
        return Effect("status", self.kind, status=self.status)


FAULT_KINDS: dict[str, type[Fault]] = {
    cls.kind: cls
    for cls in (Latency, ErrorStatus, FailFirst, Hang, Reset, Outage, BadPayload, Capacity)
}


@dataclass
class Rule:
    """One line of a plan: a fault aimed at a service (``"*"`` for all), a route prefix, and
    the window of run time in which it is active (always, by default)."""

    target: str
    fault: Fault
    route: str = ""
    rng: random.Random = field(default_factory=random.Random, repr=False)
    calls: int = 0
    start_s: float = 0.0
    end_s: float = float("inf")

    def matches(self, target: str, path: str, now: float) -> bool:
        return (
            self.target in ("*", target)
            and path.startswith(self.route)
            and self.start_s <= now < self.end_s
        )


class FaultPlan:
    """A seeded list of fault rules; ask it for the effects of each call.

    >>> plan = FaultPlan(seed=7).add("product", Latency(ms=50)).add("product", FailFirst(2))
    >>> [e.action for e in plan.effects("product", "/products/p1", now=0.0)]
    ['delay', 'status']
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.rules: list[Rule] = []

    def add(
        self,
        target: str,
        fault: Fault,
        *,
        route: str = "",
        start_s: float = 0.0,
        end_s: float = float("inf"),
    ) -> FaultPlan:
        """Add a rule; ``start_s``/``end_s`` limit it to a window of the run."""
        if end_s < start_s:
            raise BadParameter("end_s", end_s, f"must not be before start_s ({start_s:g})")
        rng = random.Random(f"{self.seed}:{len(self.rules)}:{target}:{fault.kind}")
        self.rules.append(Rule(target, fault, route, rng, 0, start_s, end_s))
        return self

    def effects(self, target: str, path: str, now: float) -> list[Effect]:
        """Effects for one call: delays first, then at most one effect that ends the call."""
        delays: list[Effect] = []
        ending: Effect | None = None
        for rule in self.rules:
            if not rule.matches(target, path, now):
                continue
            rule.calls += 1
            effect = rule.fault.effect(rule.rng, rule.calls, now)
            if effect is None:
                continue
            if effect.action == "delay":
                delays.append(effect)
            elif ending is None:
                ending = effect
        if ending is None:
            return delays
        # A refused connection fails at once: there is no server to be slow.
        return [ending] if ending.action == "refuse" else [*delays, ending]

    def __bool__(self) -> bool:
        return bool(self.rules)

    def to_config(self) -> list[dict[str, Any]]:
        """The plan as plain data (the shape :meth:`from_config` reads)."""
        out = []
        for r in self.rules:
            item = {"target": r.target, "route": r.route, "kind": r.fault.kind, **asdict(r.fault)}
            item.pop("bucket", None)
            if r.start_s or r.end_s != float("inf"):
                item.update(start_s=r.start_s, end_s=r.end_s)
            out.append(item)
        return out

    @classmethod
    def from_config(cls, items: Iterable[Mapping[str, Any]], *, seed: int = 0) -> FaultPlan:
        """A plan from dicts like ``{"target": "product", "kind": "latency", "ms": 50}``."""
        plan = cls(seed)
        for item in items:
            data = dict(item)
            kind = str(data.pop("kind", ""))
            if kind not in FAULT_KINDS:
                raise UnknownName("fault kind", kind, list(FAULT_KINDS))
            target = str(data.pop("target", "*"))
            route = str(data.pop("route", ""))
            try:
                start_s = float(data.pop("start_s", 0.0))
                end_s = float(data.pop("end_s", float("inf")))
            except (TypeError, ValueError):
                raise BadParameter(f"{kind}.start_s/end_s", item, "must be numbers") from None
            fault_cls = FAULT_KINDS[kind]
            defaults = {f.name: f.default for f in fields(fault_cls) if f.name != "bucket"}
            values: dict[str, Any] = {}
            for name, value in data.items():
                if name not in defaults:
                    raise UnknownName(f"setting of the {kind} fault", name, list(defaults))
                try:
                    values[name] = type(defaults[name])(value)
                except (TypeError, ValueError):
                    raise BadParameter(f"{kind}.{name}", value, "must be a number") from None
            fault = fault_cls(**values)
            plan.add(target, fault, route=route, start_s=start_s, end_s=end_s)
        return plan
