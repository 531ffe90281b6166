"""The timeline: one append-only record of everything that happened in a run.

Every request, response, injected fault, retry, breaker transition, message and event becomes a
:class:`Record` with a time, an actor, a kind and some fields. Kinds read ``noun.verb`` in the
past tense (``request.sent``, ``response.received``, ``fault.injected``). Charts, summaries,
tests and exercise checks all read the same records, so what a chart shows is exactly what
happened.

The design follows OpenTelemetry's in-memory span exporter: appending is cheap and
thread-safe, reading gives a snapshot.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labkit.core.clock import Clock, ManualClock

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, slots=True)
class Record:
    """One thing that happened: when (seconds since the run began), who, what, and details."""

    t: float
    actor: str
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-ready dict; time in milliseconds, rounded to the microsecond."""
        return {
            "t_ms": round(self.t * 1000, 3),
            "actor": self.actor,
            "kind": self.kind,
            **self.fields,
        }


class Timeline:
    """An append-only, thread-safe list of :class:`Record` objects sharing one clock.

    ``enabled=False`` turns recording into a no-op (for benchmarks that measure the cost of
    the pattern itself); ids are still handed out so the code paths stay the same.
    """

    def __init__(self, clock: Clock | None = None, *, enabled: bool = True) -> None:
        self.clock: Clock = clock or ManualClock()
        self.enabled = enabled
        self._records: list[Record] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def record(self, actor: str, kind: str, **fields: Any) -> Record | None:
        """Append a record stamped with the clock's current time."""
        if not self.enabled:
            return None
        rec = Record(self.clock.now(), actor, kind, fields)
        with self._lock:
            self._records.append(rec)
        return rec

    def absorb(self, other: Timeline, **extra: Any) -> None:
        """Append ``other``'s records (times kept as they are), each tagged with ``extra``."""
        if not self.enabled:
            return
        tagged = [Record(r.t, r.actor, r.kind, {**r.fields, **extra}) for r in other.records]
        with self._lock:
            self._records.extend(tagged)

    def new_id(self, prefix: str = "c") -> str:
        """A run-unique, deterministic id such as ``c7`` (same run, same ids)."""
        return f"{prefix}{next(self._ids)}"

    @property
    def records(self) -> list[Record]:
        """A snapshot copy of the records so far."""
        with self._lock:
            return list(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def of_kind(self, *kinds: str) -> list[Record]:
        """Records whose kind is one of ``kinds``; a kind ending in ``.`` matches a prefix."""
        return [
            r
            for r in self.records
            if any(r.kind == k or (k.endswith(".") and r.kind.startswith(k)) for k in kinds)
        ]

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every record as a flat dict (what ``--json`` prints)."""
        return [r.to_dict() for r in self.records]

    def to_frame(self) -> pd.DataFrame:
        """The records as a pandas DataFrame (pandas is imported only when this is called)."""
        import pandas as pd

        return pd.DataFrame(self.to_dicts(), columns=None)
