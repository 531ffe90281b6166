"""Istio traffic configuration, read from YAML into small checked dataclasses.

A service mesh is configured, not coded. Two Istio resources decide where a request goes:

* a **VirtualService** says *which version*: an ordered list of HTTP routes, each with an
  optional ``match`` (headers, uri) and weighted destinations (``host`` + ``subset``), plus a
  timeout, retries and injected faults. The first route whose match fits wins.
* a **DestinationRule** says *which versions exist and how to treat them*: ``subsets`` pick
  instances by label (``version: v2``), and a ``trafficPolicy`` picks the load balancer and
  outlier detection, for all subsets or per subset.

Only the fields the lab acts on are accepted, so a typo is refused instead of silently ignored
(``kubectl apply`` with a schema does the same). Every mistake raises one :class:`MeshConfigError`
naming the path of the bad field, e.g. ``spec.http[0].route[1].weight=-5: must lie between 0
and 100``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from labkit.core.errors import BadParameter

API_VERSIONS = (
    "networking.istio.io/v1alpha3", "networking.istio.io/v1beta1", "networking.istio.io/v1",
)  # fmt: skip
LB_POLICIES = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "LEAST_CONN")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(h|ms|us|m|s)$")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}


class MeshConfigError(BadParameter):
    """A mesh YAML document has a bad field; ``path`` is where (``spec.http[0].timeout``)."""

    def __init__(self, path: str, value: object, expected: str) -> None:
        self.path = path
        super().__init__(path, value, expected)


@dataclass(frozen=True)
class StringMatch:
    """One of ``exact``, ``prefix`` or ``regex`` (the regex must match the whole value)."""

    kind: str
    value: str

    def matches(self, text: str | None) -> bool:
        if text is None:
            return False
        if self.kind == "exact":
            return text == self.value
        if self.kind == "prefix":
            return text.startswith(self.value)
        return re.fullmatch(self.value, text) is not None


@dataclass(frozen=True)
class MatchRequest:
    """Conditions that must all hold: header values, the uri, the method."""

    headers: dict[str, StringMatch] = field(default_factory=dict)
    uri: StringMatch | None = None
    method: StringMatch | None = None

    def matches(self, method: str, path: str, headers: dict[str, str]) -> bool:
        if self.uri and not self.uri.matches(path):
            return False
        if self.method and not self.method.matches(method):
            return False
        return all(m.matches(headers.get(name)) for name, m in self.headers.items())


@dataclass(frozen=True)
class Destination:
    host: str
    subset: str | None
    weight: int


@dataclass(frozen=True)
class Retries:
    attempts: int
    per_try_timeout: float | None
    retry_on: tuple[str, ...]


@dataclass(frozen=True)
class Fault:
    """Istio fault injection: a delay and/or an abort, each for a percentage of requests."""

    delay_s: float = 0.0
    delay_percent: float = 0.0
    abort_status: int | None = None
    abort_percent: float = 0.0


@dataclass(frozen=True)
class HTTPRoute:
    index: int
    name: str
    match: tuple[MatchRequest, ...]  # empty: matches every request
    route: tuple[Destination, ...]
    timeout: float | None = None
    retries: Retries | None = None
    fault: Fault | None = None

    def matches(self, method: str, path: str, headers: dict[str, str]) -> bool:
        return not self.match or any(m.matches(method, path, headers) for m in self.match)


@dataclass(frozen=True)
class VirtualService:
    name: str
    hosts: tuple[str, ...]
    http: tuple[HTTPRoute, ...]


@dataclass(frozen=True)
class OutlierDetection:
    """Envoy's passive health check; defaults are Istio's."""

    consecutive_5xx_errors: int = 5
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_percent: float = 10.0


@dataclass(frozen=True)
class TrafficPolicy:
    load_balancer: str | None = None
    outlier_detection: OutlierDetection | None = None

    def over(self, base: TrafficPolicy | None) -> TrafficPolicy:
        """This (subset) policy on top of ``base``: fields it sets win, the rest are inherited."""
        if base is None:
            return self
        return TrafficPolicy(
            self.load_balancer or base.load_balancer,
            self.outlier_detection or base.outlier_detection,
        )


@dataclass(frozen=True)
class Subset:
    name: str
    labels: dict[str, str]
    traffic_policy: TrafficPolicy | None = None


@dataclass(frozen=True)
class DestinationRule:
    name: str
    host: str
    traffic_policy: TrafficPolicy | None
    subsets: tuple[Subset, ...]

    def subset(self, name: str | None) -> Subset | None:
        return next((s for s in self.subsets if s.name == name), None)

    def policy_for(self, subset: str | None) -> TrafficPolicy:
        """The policy that applies to ``subset``: its own fields over the rule's."""
        found = self.subset(subset)
        own = found.traffic_policy if found else None
        top = self.traffic_policy or TrafficPolicy()
        return own.over(top) if own else top


@dataclass
class MeshConfig:
    """Every VirtualService and DestinationRule of a YAML text, plus notes for the learner."""

    virtual_services: list[VirtualService] = field(default_factory=list)
    destination_rules: list[DestinationRule] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def virtual_service_for(self, host: str) -> VirtualService | None:
        return next((v for v in self.virtual_services if host in v.hosts), None)

    def destination_rule_for(self, host: str) -> DestinationRule | None:
        return next((d for d in self.destination_rules if d.host == host), None)

    def with_canary(self, weight: int) -> MeshConfig:
        """A copy where every two-way split sends ``weight``% to its second destination (the
        canary) and the rest to the first: what a canary slider does."""
        if not 0 <= weight <= 100:
            raise MeshConfigError("canary_weight", weight, "must lie between 0 and 100")
        services = []
        for vs in self.virtual_services:
            routes = []
            for r in vs.http:
                if len(r.route) == 2:
                    stable, canary = r.route
                    r = replace(
                        r,
                        route=(
                            replace(stable, weight=100 - weight),
                            replace(canary, weight=weight),
                        ),
                    )
                routes.append(r)
            services.append(replace(vs, http=tuple(routes)))
        return MeshConfig(services, list(self.destination_rules), list(self.notes))


def parse_duration(value: Any, path: str) -> float:
    """An Istio duration (``"1s"``, ``"250ms"``, ``"1.5s"``, ``"2m"``) in seconds."""
    found = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if not found:
        raise MeshConfigError(path, value, 'must be a duration such as "1s" or "250ms"')
    return float(found.group(1)) * _UNIT[found.group(2)]


def load_mesh_config(text: str) -> MeshConfig:
    """Parse and check a (multi-document) Istio YAML text; raises :class:`MeshConfigError`."""
    import yaml

    from labkit.patterns.mesh_parse import parse_document

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster
        documents = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc)
        raise MeshConfigError("yaml", where, f"does not parse: {problem}") from None
    if not documents:
        raise MeshConfigError("yaml", "", "holds no VirtualService or DestinationRule")
    config = MeshConfig()
    for number, doc in enumerate(documents):
        parse_document(doc, number, config)
    from labkit.patterns.mesh_parse import check_references

    check_references(config)
    return config
