"""What an event is, to the store: ids, new and stored events, expected versions, conflicts.

Kept apart from :mod:`labkit.patterns.event_store` (which does the storing) so that both the
store and the code that uses it can name these without reading the SQL.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from labkit.core.errors import LabError


class StreamState(StrEnum):
    """Expected-version values that are not a number (KurrentDB's names)."""

    ANY = "any"
    NO_STREAM = "no_stream"
    STREAM_EXISTS = "stream_exists"


ANY = StreamState.ANY
NO_STREAM = StreamState.NO_STREAM
STREAM_EXISTS = StreamState.STREAM_EXISTS

#: What a writer may expect: an exact version (0 = empty stream) or one of the states above.
Expected = int | StreamState

#: An upcaster turns the data of one schema version of an event into the next version's data.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class WrongExpectedVersion(LabError):
    """Another writer appended first: the stream is not at the version this writer expected."""

    def __init__(self, stream: str, expected: Expected, actual: int) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        shown = expected.value if isinstance(expected, StreamState) else f"version {expected}"
        now = "does not exist" if actual == 0 else f"is at version {actual}"
        super().__init__(
            f"concurrency conflict on stream {stream!r}: expected {shown}, but it {now}"
        )


class DuplicateEventIds(LabError):
    """Some, not all, of a batch's event ids are already stored: not a clean retry."""


_ids = random.Random(os.urandom(16))  # ids must be unique, not secret: no syscall per id


def new_event_id() -> str:
    """A time-ordered UUID (version 7: milliseconds since 1970, then random bits).

    Ids that grow with time land at the end of the ``id`` index, so appending touches a few
    index pages instead of one random page per event (random uuid4 ids halve append speed).
    """
    value = (
        (time.time_ns() // 1_000_000) << 80
        | 0x7 << 76  # version 7
        | _ids.getrandbits(12) << 64
        | 0b10 << 62  # the RFC 9562 variant
        | _ids.getrandbits(62)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended: its type, its data, its id and its schema version."""

    type: str
    data: Mapping[str, Any]
    id: str = field(default_factory=new_event_id)
    schema: int = 1


class StoredEvent(NamedTuple):
    """An event as read back: where it sits in its stream and in the whole log.

    (A named tuple rather than a dataclass: replay builds one per event, and tuples are the
    cheapest immutable records Python has.)
    """

    position: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]
    schema: int
    id: str
    created_at: float


@dataclass(frozen=True)
class AppendResult:
    """What an append wrote: the stream's versions and the log position of the last event."""

    stream: str
    first_version: int
    last_version: int
    last_position: int
    duplicate: bool = False


@dataclass(frozen=True)
class Snapshot:
    stream: str
    version: int
    state: dict[str, Any]
