"""Fallbacks: what to answer when the real answer cannot be had.

A breaker that opens, a timeout that fires, a retry budget that runs dry: each leaves the caller
without data. A fallback decides what the user sees instead:

* ``cache``: the **last good value** for the same key, with its age, which is right for data
  that changes slowly (a user's name, a product's description);
* ``default``: a **static default** (a placeholder user, an empty recommendations list);
* ``none``: no fallback; the error reaches the caller.

Every answer says where it came from (``live``, ``cache``, ``default``), so a page can show
"prices may be out of date" and a test can count how often the fallback was used.
When *not* to fall back: for writes and for anything where a stale answer is a wrong answer
(an account balance, stock that is about to be sold).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from labkit.core.clock import Clock
from labkit.core.errors import UnknownName

T = TypeVar("T")
FALLBACKS = ("none", "cache", "default")


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A value and where it came from; ``age_s`` is how old a cached value is."""

    value: T
    source: str
    age_s: float = 0.0


class Fallback(Generic[T]):
    """Call, remember good answers, and fall back by ``strategy`` when the call fails."""

    def __init__(self, strategy: str, *, clock: Clock, default: T | None = None) -> None:
        if strategy not in FALLBACKS:
            raise UnknownName("fallback", strategy, FALLBACKS)
        self.strategy = strategy
        self.clock = clock
        self.default = default
        self._last_good: dict[Any, tuple[T, float]] = {}

    async def call(self, key: Any, fn: Callable[[], Awaitable[T]]) -> Answer[T]:
        try:
            value = await fn()
        except Exception:
            fallback = self.fallback_for(key)
            if fallback is None:
                raise
            return fallback
        self._last_good[key] = (value, self.clock.now())
        return Answer(value, "live")

    def fallback_for(self, key: Any) -> Answer[T] | None:
        """The fallback answer for ``key``, or None when the strategy has none to give."""
        if self.strategy == "cache" and key in self._last_good:
            value, at = self._last_good[key]
            return Answer(value, "cache", round(self.clock.now() - at, 6))
        if self.strategy in ("cache", "default") and self.default is not None:
            return Answer(self.default, "default")
        return None
