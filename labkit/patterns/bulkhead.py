"""Bulkheads: a slow dependency may fill its own compartment, not the whole ship.

A service that calls several dependencies has a limited number of calls it can have in flight
(threads, connections, memory). If one dependency turns slow, calls to it pile up and hold
those slots; soon calls to the *healthy* dependencies find none free, and everything fails.
A **bulkhead** gives each dependency its own limit: the slow one fills its own pool and is
refused beyond it, while the others keep their slots.

:class:`Bulkhead` is a concurrency limit with an optional short wait for a free slot
(``max_wait_s``); a call that finds no slot in time fails at once with :class:`BulkheadFull`,
which is cheaper for everyone than queueing forever. asyncio's semaphore does the counting;
what it lacks, and what is written here, is the bounded wait, the rejection and the records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from labkit.core.errors import BadParameter
from labkit.core.timeline import Timeline

T = TypeVar("T")


class BulkheadFull(Exception):
    """No slot came free in time: the call was refused without being made."""


class Bulkhead:
    """At most ``max_concurrent`` calls at once; wait up to ``max_wait_s`` for a slot."""

    def __init__(
        self,
        name: str,
        max_concurrent: int,
        *,
        max_wait_s: float = 0.0,
        timeline: Timeline | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise BadParameter("max_concurrent", max_concurrent, "must be at least 1")
        if max_wait_s < 0:
            raise BadParameter("max_wait_s", max_wait_s, "must be at least 0")
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_wait_s = max_wait_s
        self.timeline = timeline
        self._slots = asyncio.Semaphore(max_concurrent)
        self.in_flight = 0
        self.peak = 0
        self.rejected = 0

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        if not await self._acquire():
            self.rejected += 1
            if self.timeline is not None:
                self.timeline.record(
                    self.name, "bulkhead.rejected", bulkhead=self.name, in_flight=self.in_flight
                )
            raise BulkheadFull(f"{self.name}: all {self.max_concurrent} slots busy")
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await fn(*args, **kwargs)
        finally:
            self.in_flight -= 1
            self._slots.release()

    async def _acquire(self) -> bool:
        if not self._slots.locked():
            await self._slots.acquire()
            return True
        if self.max_wait_s <= 0:
            return False
        try:
            async with asyncio.timeout(self.max_wait_s):
                await self._slots.acquire()
        except TimeoutError:
            return False
        return True
