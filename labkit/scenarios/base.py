"""What a scenario module provides, and how the lab runs one.

A scenario module (``labkit/scenarios/<slug>.py``) declares:

* ``TITLE``: a few words for menus;
* ``PARAMS``: a list of :class:`~labkit.core.params.Param`;
* ``BACKENDS``: the backends it runs on, the first being the default;
* ``async def main(ctx: RunContext) -> dict``: the experiment; returns the summary;
* optionally ``backend_for(params, backend) -> str`` when some parameters need another backend.

:func:`run_scenario` does the rest the same way for every pattern: checks parameters, makes a
fresh event loop (virtual time for in-process backends), a timeline on that loop's clock, and
wraps everything in a :class:`~labkit.core.result.Result`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from labkit.core.clock import LoopClock, run_on_fresh_loop
from labkit.core.errors import UnknownName
from labkit.core.params import resolve
from labkit.core.result import Result
from labkit.core.timeline import Timeline

#: Backends on which time is virtual: nothing leaves the process, so nothing needs real time.
VIRTUAL_BACKENDS = ("inprocess", "memory")


@dataclass
class RunContext:
    """Everything a scenario's ``main`` receives."""

    params: dict[str, Any]
    seed: int
    backend: str
    timeline: Timeline
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def virtual(self) -> bool:
        return self.backend in VIRTUAL_BACKENDS

    def broker_namespace(self, prefix: str) -> str:
        """Where this run's queues and streams live on a broker. In memory the seed alone
        (runs repeat exactly); on a real broker, which a class may share, a random suffix too,
        so that two runs with the same seed never read each other's messages."""
        if self.virtual:
            return f"{prefix}{self.seed}"
        return f"{prefix}{self.seed}-{uuid.uuid4().hex[:8]}"


def run_scenario(
    slug: str,
    module: ModuleType,
    params: Mapping[str, Any],
    *,
    seed: int = 0,
    backend: str | None = None,
    record: bool = True,
) -> Result:
    """Run one scenario module and return its :class:`Result`."""
    backends: tuple[str, ...] = module.BACKENDS
    chosen = backend or backends[0]
    if chosen not in backends:
        raise UnknownName(f"backend for {slug}", chosen, backends)
    resolved = resolve(module.PARAMS, params, owner=slug)
    if hasattr(module, "backend_for"):
        chosen = module.backend_for(resolved, chosen)

    async def main() -> Result:
        timeline = Timeline(LoopClock(), enabled=record)
        ctx = RunContext(resolved, seed, chosen, timeline)
        summary = await module.main(ctx)
        return Result(slug, resolved, seed, chosen, summary, timeline, ctx.extras)

    return run_on_fresh_loop(main, virtual=chosen in VIRTUAL_BACKENDS)
