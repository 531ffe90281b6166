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
}

#: Other names people reach for first.
ALIASES: dict[str, str] = {
    "api_gateway": "gateway",
    "bff": "gateway",
    "http": "request_response",
    "breaker": "circuit_breaker",
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
    pattern: str, params: dict[str, Any], *, seed: int = 0, backend: str | None = None
) -> str:
    """The ``labkit run`` command that repeats a run: only non-default values are spelled out."""
    import shlex

    slug = ALIASES.get(pattern, pattern)
    parts = ["labkit", "run", slug]
    for p in params_of(slug):
        if p.name in params and params[p.name] != p.default:
            value = params[p.name]
            text = (
                str(value).lower()
                if isinstance(value, bool)
                else f"{value:g}"
                if isinstance(value, float)
                else str(value)
            )
            parts += ["--param", f"{p.name}={text}"]
    if seed:
        parts += ["--seed", str(seed)]
    if backend and backend != backends_of(slug)[0]:
        parts += ["--backend", backend]
    return shlex.join(parts)
