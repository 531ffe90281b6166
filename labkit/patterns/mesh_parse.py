"""The field-by-field reading of Istio YAML for :mod:`labkit.patterns.mesh_config`.

Each reader takes the raw value and its path, accepts only known fields, and raises
:class:`~labkit.patterns.mesh_config.MeshConfigError` naming the path of the first bad one.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

from labkit.patterns.mesh_config import (
    API_VERSIONS,
    LB_POLICIES,
    Destination,
    DestinationRule,
    Fault,
    HTTPRoute,
    MatchRequest,
    MeshConfig,
    MeshConfigError,
    OutlierDetection,
    Retries,
    StringMatch,
    Subset,
    TrafficPolicy,
    VirtualService,
    parse_duration,
)

RETRY_ON = (
    "5xx", "gateway-error", "reset", "connect-failure", "refused-stream", "retriable-4xx",
    "unavailable", "cancelled", "deadline-exceeded", "retriable-status-codes",
)  # fmt: skip


#: The resource being read ("VirtualService order-service"), added to every error message.
_resource: ContextVar[str] = ContextVar("mesh_resource", default="")


def _fail(path: str, value: object, expected: str) -> MeshConfigError:
    suffix = f" (in {_resource.get()})" if _resource.get() else ""
    return MeshConfigError(path, value, expected + suffix)


def _mapping(raw: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    if not isinstance(raw, dict):
        raise _fail(path, raw, "must be a mapping of fields")
    for key in raw:
        if key not in allowed:
            raise _fail(f"{path}.{key}", raw[key], f"unknown field (known: {', '.join(allowed)})")
    for key in required:
        if key not in raw or raw[key] is None:
            raise _fail(f"{path}.{key}", None, "is required")
    return raw


def _list(raw: Any, path: str) -> list[Any]:
    if not isinstance(raw, list):
        raise _fail(path, raw, "must be a list")
    return raw


def _text(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _fail(path, raw, "must be non-empty text")
    return raw


def _int(raw: Any, path: str, low: int, high: int | None = None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _fail(path, raw, "must be a whole number")
    if raw < low or (high is not None and raw > high):
        return _out_of_range(path, raw, low, high)
    return raw


def _number(raw: Any, path: str, low: float, high: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _fail(path, raw, "must be a number")
    if not low <= raw <= high:
        _out_of_range(path, raw, low, high)
    return float(raw)


def _out_of_range(path: str, raw: object, low: float, high: float | None) -> Any:
    if high is None:
        raise _fail(path, raw, f"must be at least {low:g}")
    raise _fail(path, raw, f"must lie between {low:g} and {high:g}")


def _string_match(raw: Any, path: str) -> StringMatch:
    raw = _mapping(raw, path, ("exact", "prefix", "regex"))
    if len(raw) != 1:
        raise _fail(path, raw, "must hold exactly one of exact, prefix, regex")
    ((kind, value),) = raw.items()
    value = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(value, str):
        raise _fail(f"{path}.{kind}", value, "must be text")
    if kind == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            raise _fail(f"{path}.regex", value, f"is not a valid regex: {exc}") from None
    return StringMatch(kind, value)


def _match(raw: Any, path: str) -> MatchRequest:
    raw = _mapping(raw, path, ("name", "headers", "uri", "method"))
    headers = _mapping(raw.get("headers") or {}, f"{path}.headers", tuple(raw.get("headers") or ()))
    return MatchRequest(
        headers={
            str(k).lower(): _string_match(v, f"{path}.headers.{k}") for k, v in headers.items()
        },
        uri=_string_match(raw["uri"], f"{path}.uri") if "uri" in raw else None,
        method=_string_match(raw["method"], f"{path}.method") if "method" in raw else None,
    )


def _percentage(raw: dict[str, Any], path: str) -> float:
    if "percentage" not in raw:
        return 100.0
    pct = _mapping(raw["percentage"], f"{path}.percentage", ("value",), ("value",))
    return _number(pct["value"], f"{path}.percentage.value", 0, 100)


def _fault(raw: Any, path: str) -> Fault:
    raw = _mapping(raw, path, ("delay", "abort"))
    delay_s = delay_pct = abort_pct = 0.0
    status = None
    if "delay" in raw:
        d = _mapping(raw["delay"], f"{path}.delay", ("fixedDelay", "percentage"), ("fixedDelay",))
        delay_s = parse_duration(d["fixedDelay"], f"{path}.delay.fixedDelay")
        delay_pct = _percentage(d, f"{path}.delay")
    if "abort" in raw:
        a = _mapping(raw["abort"], f"{path}.abort", ("httpStatus", "percentage"), ("httpStatus",))
        status = _int(a["httpStatus"], f"{path}.abort.httpStatus", 200, 599)
        abort_pct = _percentage(a, f"{path}.abort")
    return Fault(delay_s, delay_pct, status, abort_pct)


def _retries(raw: Any, path: str) -> Retries:
    raw = _mapping(raw, path, ("attempts", "perTryTimeout", "retryOn"), ("attempts",))
    per_try = raw.get("perTryTimeout")
    conditions = tuple(c.strip() for c in str(raw.get("retryOn") or "5xx").split(",") if c.strip())
    for condition in conditions:
        if condition not in RETRY_ON and not condition.isdigit():
            raise _fail(f"{path}.retryOn", condition, f"must be one of {', '.join(RETRY_ON)}")
    return Retries(
        attempts=_int(raw["attempts"], f"{path}.attempts", 0, 100),
        per_try_timeout=parse_duration(per_try, f"{path}.perTryTimeout") if per_try else None,
        retry_on=conditions,
    )


def _destinations(raw: Any, path: str) -> tuple[Destination, ...]:
    items = _list(raw, path)
    if not items:
        raise _fail(path, raw, "must name at least one destination")
    out = []
    for i, item in enumerate(items):
        p = f"{path}[{i}]"
        item = _mapping(item, p, ("destination", "weight", "headers"), ("destination",))
        dest = _mapping(
            item["destination"], f"{p}.destination", ("host", "subset", "port"), ("host",)
        )
        subset = dest.get("subset")
        default_weight = 100 if len(items) == 1 else 0
        weight = _int(item.get("weight", default_weight), f"{p}.weight", 0, 100)
        host = _text(dest["host"], f"{p}.destination.host")
        subset_name = _text(subset, f"{p}.destination.subset") if subset is not None else None
        out.append(Destination(host, subset_name, weight))
    total = sum(d.weight for d in out)
    if total != 100:
        raise _fail(path, f"weights adding up to {total}", "the weights must add up to 100")
    return tuple(out)


def _http_route(raw: Any, index: int) -> HTTPRoute:
    path = f"spec.http[{index}]"
    known = ("name", "match", "route", "timeout", "retries", "fault")
    raw = _mapping(raw, path, known, ("route",))
    matches = tuple(
        _match(m, f"{path}.match[{i}]") for i, m in enumerate(_list(raw.get("match") or [], path))
    )
    return HTTPRoute(
        index=index,
        name=str(raw.get("name") or f"http[{index}]"),
        match=matches,
        route=_destinations(raw["route"], f"{path}.route"),
        timeout=parse_duration(raw["timeout"], f"{path}.timeout") if "timeout" in raw else None,
        retries=_retries(raw["retries"], f"{path}.retries") if "retries" in raw else None,
        fault=_fault(raw["fault"], f"{path}.fault") if "fault" in raw else None,
    )


def _outlier(raw: Any, path: str) -> OutlierDetection:
    known = ("consecutive5xxErrors", "interval", "baseEjectionTime", "maxEjectionPercent")
    raw = _mapping(raw, path, known)
    d = OutlierDetection()
    return OutlierDetection(
        consecutive_5xx_errors=_int(
            raw.get("consecutive5xxErrors", d.consecutive_5xx_errors),
            f"{path}.consecutive5xxErrors",
            0,
        ),
        interval=parse_duration(raw["interval"], f"{path}.interval")
        if "interval" in raw
        else d.interval,
        base_ejection_time=parse_duration(raw["baseEjectionTime"], f"{path}.baseEjectionTime")
        if "baseEjectionTime" in raw
        else d.base_ejection_time,
        max_ejection_percent=_number(
            raw.get("maxEjectionPercent", d.max_ejection_percent),
            f"{path}.maxEjectionPercent",
            0,
            100,
        ),
    )


def _policy(raw: Any, path: str, notes: list[str]) -> TrafficPolicy:
    raw = _mapping(raw, path, ("loadBalancer", "outlierDetection"))
    simple = None
    if "loadBalancer" in raw:
        lb = _mapping(raw["loadBalancer"], f"{path}.loadBalancer", ("simple",), ("simple",))
        simple = lb["simple"]
        if simple not in LB_POLICIES:
            raise _fail(f"{path}.loadBalancer.simple", simple, f"must be one of {LB_POLICIES}")
        if simple == "LEAST_CONN":
            notes.append(
                f"{path}.loadBalancer.simple: LEAST_CONN is deprecated in Istio; it means "
                "LEAST_REQUEST (write LEAST_REQUEST)"
            )
            simple = "LEAST_REQUEST"
    outlier = raw.get("outlierDetection")
    return TrafficPolicy(
        simple, _outlier(outlier, f"{path}.outlierDetection") if outlier is not None else None
    )


def _destination_rule(spec: Any, name: str, notes: list[str]) -> DestinationRule:
    spec = _mapping(spec, "spec", ("host", "trafficPolicy", "subsets"), ("host",))
    policy = spec.get("trafficPolicy")
    subsets = []
    for i, raw in enumerate(_list(spec.get("subsets") or [], "spec.subsets")):
        p = f"spec.subsets[{i}]"
        raw = _mapping(raw, p, ("name", "labels", "trafficPolicy"), ("name",))
        labels = _mapping(raw.get("labels") or {}, f"{p}.labels", tuple(raw.get("labels") or ()))
        sub_policy = raw.get("trafficPolicy")
        subsets.append(
            Subset(
                _text(raw["name"], f"{p}.name"),
                {str(k): str(v) for k, v in labels.items()},
                _policy(sub_policy, f"{p}.trafficPolicy", notes) if sub_policy else None,
            )
        )
    return DestinationRule(
        name,
        _text(spec["host"], "spec.host"),
        _policy(policy, "spec.trafficPolicy", notes) if policy else None,
        tuple(subsets),
    )


def parse_document(doc: Any, number: int, config: MeshConfig) -> None:
    """Read one YAML document into ``config``."""
    token = _resource.set(f"document {number + 1}")
    try:
        doc = _mapping(doc, "document", ("apiVersion", "kind", "metadata", "spec"), ("kind",))
        if doc.get("apiVersion", API_VERSIONS[0]) not in API_VERSIONS:
            raise _fail("apiVersion", doc["apiVersion"], f"must be one of {API_VERSIONS}")
        meta = _mapping(doc.get("metadata") or {}, "metadata", ("name", "namespace", "labels"))
        kind = doc["kind"]
        name = str(meta.get("name") or f"{kind}-{number + 1}")
        _resource.set(f"{kind} {name}")
        if kind == "VirtualService":
            spec = _mapping(doc.get("spec"), "spec", ("hosts", "http", "gateways"), ("hosts",))
            hosts = tuple(
                _text(h, f"spec.hosts[{i}]")
                for i, h in enumerate(_list(spec["hosts"], "spec.hosts"))
            )
            routes = _list(spec.get("http") or [], "spec.http")
            http = tuple(_http_route(r, i) for i, r in enumerate(routes))
            config.virtual_services.append(VirtualService(name, hosts, http))
        elif kind == "DestinationRule":
            config.destination_rules.append(_destination_rule(doc.get("spec"), name, config.notes))
        else:
            raise _fail("kind", kind, "must be VirtualService or DestinationRule")
    finally:
        _resource.reset(token)


def check_references(config: MeshConfig) -> None:
    """Every ``subset`` a route names must be defined by the host's DestinationRule."""
    for vs in config.virtual_services:
        token = _resource.set(f"VirtualService {vs.name}")
        try:
            for route in vs.http:
                for i, dest in enumerate(route.route):
                    if dest.subset is None:
                        continue
                    rule = config.destination_rule_for(dest.host)
                    known = [s.name for s in rule.subsets] if rule else []
                    if dest.subset not in known:
                        where = f"spec.http[{route.index}].route[{i}].destination.subset"
                        defined = ", ".join(known) or "none: no DestinationRule for the host"
                        raise _fail(
                            where,
                            dest.subset,
                            f"unknown subset of {dest.host} (defined: {defined})",
                        )
        finally:
            _resource.reset(token)
