"""Outlier detection: a sidecar stops sending to an instance that keeps failing.

Envoy watches real traffic (a *passive* health check): an endpoint that answers
``consecutive5xxErrors`` errors in a row is **ejected** from the load-balancing pool. It stays
out for ``baseEjectionTime`` times the number of times it has been ejected, so an instance that
fails again and again is kept out longer each time (a healthy interval takes one off the count).
Ejected endpoints come back at the next ``interval`` sweep after their time is up.

``maxEjectionPercent`` caps how much of the pool may be out at once: ejecting every instance of a
service because all of them are failing would turn errors into "no healthy upstream" for
everyone. Istio's default is 10%, which in a pool of fewer than ten instances ejects none.

Not to be confused with active health checks (a registry probing ``/health``, see
:mod:`labkit.patterns.discovery`): outlier detection needs traffic to notice anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from labkit.core.timeline import Timeline
from labkit.patterns.load_balancing import Endpoint
from labkit.patterns.mesh_config import OutlierDetection


@dataclass
class _State:
    consecutive: int = 0
    ejections: int = 0  # the multiplier of baseEjectionTime
    ejected_until: float | None = None


class OutlierDetector:
    """Tracks one pool (one subset of one host) and says which endpoints may be picked."""

    def __init__(
        self,
        policy: OutlierDetection,
        endpoints: Sequence[Endpoint],
        timeline: Timeline,
        *,
        actor: str = "sidecar",
        pool: str = "",
    ) -> None:
        self.policy = policy
        self.endpoints = list(endpoints)
        self.timeline = timeline
        self.actor = actor
        self.pool = pool
        self._state = {e.name: _State() for e in self.endpoints}
        self._swept = 0  # index of the last interval sweep done

    def ejected(self) -> list[str]:
        return [n for n, s in self._state.items() if s.ejected_until is not None]

    def available(self, now: float) -> list[Endpoint]:
        """The endpoints not ejected at ``now`` (sweeps that fell due run first)."""
        self._sweep(now)
        return [e for e in self.endpoints if self._state[e.name].ejected_until is None]

    def observe(self, endpoint: Endpoint, status: int | None, now: float) -> None:
        """Count one answer: a 5xx (or ``None``: no answer at all) or a success."""
        self._sweep(now)
        state = self._state[endpoint.name]
        if status is not None and status < 500:
            state.consecutive = 0
            return
        state.consecutive += 1
        limit = self.policy.consecutive_5xx_errors
        if limit and state.consecutive >= limit and state.ejected_until is None:
            self._eject(endpoint.name, state, now)

    def _eject(self, name: str, state: _State, now: float) -> None:
        out = len(self.ejected())
        # Envoy: eject only if the share of the pool out *after* this ejection stays within the cap
        if 100.0 * (out + 1) / len(self.endpoints) > self.policy.max_ejection_percent:
            self.timeline.record(
                self.actor, "ejection.refused", instance=name, pool=self.pool, ejected=out,
                max_ejection_percent=self.policy.max_ejection_percent,
            )  # fmt: skip
            return
        state.ejections += 1
        seconds = self.policy.base_ejection_time * state.ejections
        state.ejected_until = now + seconds
        state.consecutive = 0
        self.timeline.record(
            self.actor, "instance.ejected", instance=name, pool=self.pool,
            ejections=state.ejections, seconds=seconds,
        )  # fmt: skip

    def _sweep(self, now: float) -> None:
        """Run every interval sweep due by ``now``: return endpoints whose time is up."""
        interval = self.policy.interval
        due = math.floor(now / interval + 1e-9) if interval > 0 else 0
        while self._swept < due:
            self._swept += 1
            tick = self._swept * interval
            for name, state in self._state.items():
                if state.ejected_until is None:
                    if state.ejections and state.consecutive == 0:
                        state.ejections -= 1  # a healthy interval lowers the multiplier
                    continue
                if state.ejected_until <= tick + 1e-9:
                    state.ejected_until = None
                    self.timeline.record(
                        self.actor, "instance.returned", instance=name, pool=self.pool, t_sweep=tick
                    )
