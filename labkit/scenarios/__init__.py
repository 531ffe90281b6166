"""The runnable experiments: one module per pattern, all run through :func:`run`.

Modules are imported only when their pattern is run, so listing patterns stays cheap.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from labkit.core.errors import UnknownName
from labkit.core.params import Param
from labkit.core.result import Result
from labkit.scenarios.base import run_scenario

#: slug -> module path. Numbers order the course; slugs name everything else.
PATTERNS: dict[str, str] = {
    "request_response": "labkit.scenarios.request_response",
    "gateway": "labkit.scenarios.gateway",
    "circuit_breaker": "labkit.scenarios.circuit_breaker",
    "retry": "labkit.scenarios.retry",
    "deadline": "labkit.scenarios.deadline",
    "bulkhead": "labkit.scenarios.bulkhead",
    "message_queue": "labkit.scenarios.message_queue",
    "outbox": "labkit.scenarios.outbox",
    "pubsub": "labkit.scenarios.pubsub",
    "request_reply": "labkit.scenarios.request_reply",
    "tracing": "labkit.scenarios.tracing",
    "versioning": "labkit.scenarios.versioning",
    "jwt": "labkit.scenarios.jwt",
    "mtls": "labkit.scenarios.mtls",
    "event_sourcing": "labkit.scenarios.event_sourcing",
    "cqrs": "labkit.scenarios.cqrs",
    "service_mesh": "labkit.scenarios.service_mesh",
    "discovery": "labkit.scenarios.discovery",
}

#: Other names people reach for first.
ALIASES: dict[str, str] = {
    "api_gateway": "gateway",
    "bff": "gateway",
    "http": "request_response",
    "breaker": "circuit_breaker",
    "queue": "message_queue",
    "mesh": "service_mesh",
    "istio": "service_mesh",
    "service_discovery": "discovery",
}


def patterns() -> list[str]:
    """Every pattern slug that ``labkit run`` accepts, sorted."""
    return sorted(PATTERNS)


def scenario_module(pattern: str) -> ModuleType:
    slug = ALIASES.get(pattern, pattern)
    if slug not in PATTERNS:
        raise UnknownName("pattern", pattern, list(PATTERNS))
    return importlib.import_module(PATTERNS[slug])


def params_of(pattern: str) -> list[Param]:
    """The declared parameters of a pattern (for CLIs, sliders and docs)."""
    return list(scenario_module(pattern).PARAMS)


def backends_of(pattern: str) -> tuple[str, ...]:
    return tuple(scenario_module(pattern).BACKENDS)


def run(
    pattern: str,
    *,
    seed: int = 0,
    backend: str | None = None,
    record: bool = True,
    **params: Any,
) -> Result:
    """Run ``pattern`` with ``params`` and return its :class:`~labkit.core.result.Result`.

    >>> result = run("gateway", mode="concurrent", product_latency_ms=50)
    >>> result.summary["latency_ms"]["max"] < 100
    True
    """
    module = scenario_module(pattern)
    slug = ALIASES.get(pattern, pattern)
    return run_scenario(slug, module, params, seed=seed, backend=backend, record=record)


def cli_command(
    pattern: str,
    params: dict[str, Any],
    *,
    seed: int = 0,
    backend: str | None = None,
    preset: str | None = None,
) -> str:
    """The ``labkit run`` command that repeats a run: only values that differ from the
    defaults (or from ``preset``'s values, when a preset is named) are spelled out."""
    import shlex

    from labkit.scenarios.presets import preset as find_preset

    slug = ALIASES.get(pattern, pattern)
    spec = params_of(slug)
    base = {p.name: p.default for p in spec}
    words = ["labkit", "run", slug]
    if preset:
        base.update(find_preset(slug, preset).params)
        words += ["--preset", preset]
    for p in spec:
        if p.name in params and p.coerce(params[p.name]) != p.coerce(base[p.name]):
            words += ["--param", f"{p.name}={_cli_value(params[p.name])}"]
    if seed:
        words += ["--seed", str(seed)]
    if backend and backend != backends_of(slug)[0]:
        words += ["--backend", backend]
    return shlex.join(words)


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
