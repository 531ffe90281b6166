"""A lint in the spirit of ``istioctl analyze``: routes that can never be reached (IST0130).

Istio tries the HTTP routes of a VirtualService in order and stops at the first match. A route
with no ``match`` takes every request, so anything after it is dead configuration; so is a route
whose conditions are all covered by an earlier, broader match (``prefix: /`` before
``prefix: /orders``). Nothing fails at apply time: the dead route is simply never used, which is
why ``istioctl analyze`` reports it as *IST0130 VirtualServiceUnreachableRule*.

The check here is conservative: it reports a route only when an earlier route provably matches
every request the later one could match.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit.core.errors import LabError
from labkit.patterns.mesh_config import (
    HTTPRoute,
    MatchRequest,
    MeshConfig,
    StringMatch,
    load_mesh_config,
)

CODE = "IST0130"


@dataclass(frozen=True)
class Finding:
    """One lint finding; ``route_index`` is the unreachable route, ``shadowed_by`` the culprit."""

    code: str
    virtual_service: str
    route_index: int
    shadowed_by: int
    path: str
    message: str


def _covers(broad: StringMatch, narrow: StringMatch) -> bool:
    """Does every value that ``narrow`` accepts also satisfy ``broad``?"""
    if broad == narrow:
        return True
    if narrow.kind == "exact":
        return broad.matches(narrow.value)
    if narrow.kind == "prefix" and broad.kind == "prefix":
        return narrow.value.startswith(broad.value)
    return broad.kind == "regex" and broad.value in (".*", "^.*$")


def _clause_covers(broad: MatchRequest, narrow: MatchRequest) -> bool:
    """Does every request matching ``narrow`` also match ``broad``?"""
    for name, condition in broad.headers.items():
        other = narrow.headers.get(name)
        if other is None or not _covers(condition, other):
            return False
    for attr in ("uri", "method"):
        condition, other = getattr(broad, attr), getattr(narrow, attr)
        if condition is not None and (other is None or not _covers(condition, other)):
            return False
    return True


def shadows(earlier: HTTPRoute, later: HTTPRoute) -> bool:
    """True when ``earlier`` takes every request that ``later`` could match."""
    if not earlier.match:
        return True
    if not later.match:
        return False  # a catch-all can be partly shadowed, never wholly by a specific match
    return all(any(_clause_covers(e, n) for e in earlier.match) for n in later.match)


def _describe(route: HTTPRoute) -> str:
    if not route.match:
        return "has no match, so it takes every request"
    parts = []
    for clause in route.match:
        conds = [f"header {k} {m.kind} {m.value!r}" for k, m in clause.headers.items()]
        conds += [
            f"{a} {m.kind} {m.value!r}" for a in ("uri", "method") if (m := getattr(clause, a))
        ]
        parts.append(" and ".join(conds) or "anything")
    return "matches " + " or ".join(parts) + ", a superset"


def lint(config: MeshConfig) -> list[Finding]:
    """Every unreachable HTTP route of every VirtualService in ``config`` (empty when clean)."""
    findings = []
    for vs in config.virtual_services:
        for later in vs.http:
            for earlier in vs.http[: later.index]:
                if shadows(earlier, later):
                    message = (
                        f"{CODE}: VirtualService {vs.name}: spec.http[{later.index}] is never "
                        f"reached: spec.http[{earlier.index}] before it {_describe(earlier)}. "
                        f"Move the more specific route above the broader one."
                    )
                    findings.append(
                        Finding(
                            CODE,
                            vs.name,
                            later.index,
                            earlier.index,
                            f"spec.http[{later.index}]",
                            message,
                        )
                    )
                    break
    return findings


@dataclass(frozen=True)
class Analysis:
    """What an editor shows for a YAML text: the config or the one-line error, the findings."""

    config: MeshConfig | None
    error: str | None
    findings: list[Finding]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return self.config is not None


def analyze(text: str) -> Analysis:
    """Parse, check and lint ``text``; never raises for a user's mistake."""
    try:
        config = load_mesh_config(text)
    except LabError as exc:
        return Analysis(None, str(exc), [], [])
    return Analysis(config, None, lint(config), list(config.notes))
