"""Time, injected.

Every pattern reads time from a clock instead of calling ``time.time()`` itself. That lets the
lab run the same code in two worlds:

* **virtual time** (the default for in-process runs): a :class:`VirtualTimeLoop` is an asyncio
  event loop whose clock jumps straight to the next timer whenever there is nothing else to do.
  A 30 s breaker timeout or a two-minute retry schedule plays out in milliseconds of wall time,
  and two runs with the same seed produce the same timeline to the microsecond.
* **real time** (live HTTP over loopback, real brokers): an ordinary event loop.

Why not a library? ``looptime`` is built around pytest fixtures and ``aiotools.VirtualClock``
patches whatever loop is running; the lab needs a loop it can create per run, in a worker
thread when a notebook already owns the main loop, so this module subclasses the standard
selector loop and only changes what "waiting" means (about forty lines).

Virtual time assumes that all the work happens on the loop. Code that waits for a thread or a
socket while a timer is pending would see time jump; in-process runs therefore keep every
handler ``async``.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    """What a pattern needs to know about time."""

    def now(self) -> float:
        """Seconds since the run started."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait, in this clock's time."""
        ...


class LoopClock:
    """The clock of the running event loop, counted from the moment the clock was made.

    On a :class:`VirtualTimeLoop` this is virtual time; on any other loop it is monotonic
    wall time. Either way ``asyncio.sleep`` and ``asyncio.timeout`` agree with it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._origin = self._loop.time()

    @property
    def virtual(self) -> bool:
        return isinstance(self._loop, VirtualTimeLoop)

    def now(self) -> float:
        return self._loop.time() - self._origin

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to: for synchronous code and step-by-step tests."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


class _FastForwardSelector(selectors.BaseSelector):
    """A selector that, instead of blocking until the next timer, moves the loop's clock there."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj, events, data=None):  # type: ignore[no-untyped-def]
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj):  # type: ignore[no-untyped-def]
        return self._inner.unregister(fileobj)

    def modify(self, fileobj, events, data=None):  # type: ignore[no-untyped-def]
        return self._inner.modify(fileobj, events, data)

    def get_map(self):  # type: ignore[no-untyped-def]
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None):  # type: ignore[no-untyped-def]
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # No timer pending: only another thread can wake us (call_soon_threadsafe).
            return self._inner.select(None)
        self._loop._advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time: idle waiting costs no wall time at all."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(selector=_FastForwardSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def _advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_on_fresh_loop(main: Callable[[], Awaitable[T]], *, virtual: bool) -> T:
    """Run ``main()`` to completion on a new event loop and return its result.

    The loop is virtual or real as asked. When the calling thread already runs a loop (a
    Jupyter kernel does), the new loop runs in a short-lived worker thread, so the same call
    works from a script, a notebook cell, a Streamlit page and the CLI.
    """

    def target() -> T:
        loop: asyncio.AbstractEventLoop = VirtualTimeLoop() if virtual else asyncio.new_event_loop()
        try:
            return loop.run_until_complete(main())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return target()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="labkit-run") as pool:
        return pool.submit(target).result()
