"""An event store on SQLite: the log of everything that happened, and nothing else.

Event sourcing keeps no "current row" for an order. It keeps the **events** (``OrderCreated``,
``OrderItemAdded``, ...) in the order they happened, and the current state is whatever you get
by replaying them. The store has three jobs:

* **Order.** Every event gets a *version* inside its stream (one stream per aggregate, e.g.
  ``order-42``: 1, 2, 3, ...) and a *global position* across all streams (the order a reader of
  "everything" sees). ``UNIQUE(stream, version)`` means two writers can never both write
  version *n*: the database refuses the second.
* **Optimistic concurrency.** A writer says which version it *expects* the stream to be at,
  as in KurrentDB/EventStoreDB: an exact number, :data:`NO_STREAM` (the stream must not exist
  yet), :data:`STREAM_EXISTS`, or :data:`ANY` (no check). If another writer got there first the
  append fails with :class:`WrongExpectedVersion`, naming the stream and both versions, and
  nothing is written. Several events appended together are all-or-nothing.
* **Idempotency.** Each event carries an id. Appending a batch whose ids are already stored
  (a retry after a timeout, say) returns the earlier result instead of writing them twice.

Reading gives back a stream from a version, or the whole log from a position (what catch-up
subscriptions and projections use). Old event shapes are **upcast** to the current shape when
read, so the stored log is never rewritten. **Snapshots** save an aggregate's state at a
version, so loading a long stream replays only the tail.

When not to use it: plain CRUD data nobody needs the history of; a store that must answer
ad-hoc queries (use a read model, see :mod:`labkit.patterns.cqrs`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit.core.errors import LabError
from labkit.patterns.events import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    DuplicateEventIds,
    Expected,
    NewEvent,
    Snapshot,
    StoredEvent,
    StreamState,
    Upcaster,
    WrongExpectedVersion,
    new_event_id,
)

if TYPE_CHECKING:
    from labkit.core.timeline import Timeline

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "DuplicateEventIds",
    "EventStore",
    "Expected",
    "NewEvent",
    "Snapshot",
    "StoredEvent",
    "StreamState",
    "Upcaster",
    "WrongExpectedVersion",
    "new_event_id",
]


_COLUMNS = "position, stream, version, type, data, schema, id, created_at"


class EventStore:
    """Streams of events in one SQLite database (tables ``events``, ``snapshots``).

    ``path`` is ``":memory:"`` or a file; a file is opened in WAL mode with a busy timeout so
    several connections (threads, processes) can write. One store object may be shared by
    threads: a lock serialises its use of the connection. ``clock`` stamps ``created_at``
    (informational only: order comes from versions and positions, never from timestamps).
    """

    def __init__(
        self,
        path: str = ":memory:",
        *,
        timeline: Timeline | None = None,
        clock: Callable[[], float] = time.time,
        upcasters: Mapping[tuple[str, int], Upcaster] | None = None,
        actor: str = "event-store",
    ) -> None:
        import sqlite_utils

        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60)
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA cache_size = -32000")  # 32 MB: the id index stays in memory
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        self.db = sqlite_utils.Database(conn)
        self.conn = conn
        self.timeline = timeline
        self.clock = clock
        self.upcasters = dict(upcasters or {})
        self.actor = actor
        self.conflicts = 0  # conflicts this store object raised (tests compare with writers)
        self._lock = threading.RLock()
        with self._lock:
            self._create_schema()

    def _create_schema(self) -> None:
        events = self.db["events"]
        if not events.exists():
            events.create(
                {
                    "position": int,
                    "stream": str,
                    "version": int,
                    "type": str,
                    "data": str,
                    "schema": int,
                    "id": str,
                    "created_at": float,
                },
                pk="position",
                not_null={"stream", "version", "type", "data", "id"},
                if_not_exists=True,
            )
            events.create_index(["stream", "version"], unique=True, if_not_exists=True)
            events.create_index(["id"], unique=True, if_not_exists=True)
        self.db["snapshots"].create(
            {"stream": str, "version": int, "state": str}, pk="stream", if_not_exists=True
        )

    # -- writing ---------------------------------------------------------------------------

    def append(
        self, stream: str, events: Sequence[NewEvent], expected: Expected = ANY
    ) -> AppendResult:
        """Append ``events`` to ``stream`` if it is at the ``expected`` version; all or none.

        Raises :class:`WrongExpectedVersion` on a conflict (nothing written). A batch whose ids
        are all stored already in this stream returns the original result (``duplicate``).
        """
        if not events:
            raise LabError(f"nothing to append to stream {stream!r}")
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")  # take the write lock before reading the version
            try:
                actual = self._version(stream)
                if not _satisfies(expected, actual):
                    earlier = self._already_stored(stream, events)
                    if earlier is not None:
                        self.conn.execute("ROLLBACK")
                        return earlier
                    raise WrongExpectedVersion(stream, expected, actual)
                now = self.clock()
                rows = [
                    (stream, actual + i, e.type, json.dumps(e.data), e.schema, e.id, now)
                    for i, e in enumerate(events, start=1)
                ]
                try:
                    self.conn.executemany(
                        "INSERT INTO events (stream, version, type, data, schema, id, created_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                except sqlite3.IntegrityError:
                    earlier = self._already_stored(stream, events)
                    self.conn.execute("ROLLBACK")
                    if earlier is not None:
                        return earlier
                    raise DuplicateEventIds(
                        f"some event ids of this batch are already stored; nothing appended to"
                        f" {stream!r}"
                    ) from None
                last = self.conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                self.conn.execute("COMMIT")
            except BaseException as exc:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                if isinstance(exc, WrongExpectedVersion):
                    self.conflicts += 1
                    self._record(
                        "event.conflict",
                        stream=stream,
                        expected=_show(expected),
                        actual=exc.actual,
                    )
                raise
        result = AppendResult(stream, actual + 1, actual + len(events), last)
        if self.timeline is not None and self.timeline.enabled:
            first_position = last - len(events) + 1
            for i, e in enumerate(events):
                self._record(
                    "event.appended",
                    stream=stream,
                    version=actual + 1 + i,
                    position=first_position + i,
                    type=e.type,
                )
        return result

    def _already_stored(self, stream: str, events: Sequence[NewEvent]) -> AppendResult | None:
        """The earlier result if every id of ``events`` is stored, in order, in ``stream``."""
        found = []
        for e in events:
            row = self.conn.execute(
                "SELECT stream, version, position FROM events WHERE id = ?", (e.id,)
            ).fetchone()
            if row is None or row[0] != stream:
                return None
            found.append(row)
        versions = [r[1] for r in found]
        if versions != list(range(versions[0], versions[0] + len(versions))):
            return None
        self._record("event.duplicate_ignored", stream=stream, count=len(events))
        return AppendResult(stream, versions[0], versions[-1], found[-1][2], duplicate=True)

    def _version(self, stream: str) -> int:
        row = self.conn.execute(
            "SELECT MAX(version) FROM events WHERE stream = ?", (stream,)
        ).fetchone()
        return int(row[0] or 0)

    # -- reading ---------------------------------------------------------------------------

    def version(self, stream: str) -> int:
        """The stream's current version: how many events it holds (0 = no stream)."""
        with self._lock:
            return self._version(stream)

    def head(self) -> int:
        """The global position of the last event in the log (0 when empty)."""
        with self._lock:
            row = self.conn.execute("SELECT MAX(position) FROM events").fetchone()
        return int(row[0] or 0)

    def streams(self) -> list[str]:
        with self._lock:
            rows = self.conn.execute("SELECT DISTINCT stream FROM events ORDER BY stream")
            return [r[0] for r in rows]

    def read_stream(
        self, stream: str, from_version: int = 1, to_version: int | None = None
    ) -> list[StoredEvent]:
        """Events of ``stream`` with ``from_version <= version <= to_version``, by version."""
        with self._lock:
            if to_version is None:
                rows = self.conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND version >= ?"
                    " ORDER BY version",
                    (stream, from_version),
                ).fetchall()
            else:
                rows = self.conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND version BETWEEN ? AND ?"
                    " ORDER BY version",
                    (stream, from_version, to_version),
                ).fetchall()
        return self._events(rows)

    def read_all(self, after: int = 0, limit: int | None = None) -> list[StoredEvent]:
        """Events of every stream with position > ``after``, in log order (``limit`` of them)."""
        with self._lock:
            rows = self.conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
                (after, -1 if limit is None else limit),
            ).fetchall()
        return self._events(rows)

    def _events(self, rows: list[tuple[Any, ...]]) -> list[StoredEvent]:
        """Decode rows, upcasting old schemas (the hot loop of every replay)."""
        loads, upcasters = json.loads, self.upcasters
        out = [StoredEvent(p, s, v, t, loads(d), n, i, c) for p, s, v, t, d, n, i, c in rows]
        if upcasters:
            for k, e in enumerate(out):
                if (e.type, e.schema) in upcasters:
                    out[k] = self._upcast(e)
        return out

    def _upcast(self, e: StoredEvent) -> StoredEvent:
        data, schema = e.data, e.schema
        while (e.type, schema) in self.upcasters:
            data = self.upcasters[(e.type, schema)](data)
            schema += 1
        return e._replace(data=data, schema=schema)

    # -- snapshots -------------------------------------------------------------------------

    def save_snapshot(self, stream: str, version: int, state: Mapping[str, Any]) -> None:
        """Remember ``state`` as the stream's state after ``version`` events (latest wins)."""
        with self._lock, self.db.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO snapshots (stream, version, state) VALUES (?, ?, ?)",
                (stream, version, json.dumps(dict(state))),
            )
        self._record("snapshot.taken", stream=stream, version=version)

    def load_snapshot(self, stream: str) -> Snapshot | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT version, state FROM snapshots WHERE stream = ?", (stream,)
            ).fetchone()
        return None if row is None else Snapshot(stream, int(row[0]), json.loads(row[1]))

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def _record(self, kind: str, **fields: Any) -> None:
        if self.timeline is not None:
            self.timeline.record(self.actor, kind, **fields)


def _satisfies(expected: Expected, actual: int) -> bool:
    if expected is ANY:
        return True
    if expected is NO_STREAM:
        return actual == 0
    if expected is STREAM_EXISTS:
        return actual > 0
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise LabError(f"expected version {expected!r}: must be a version >= 0 or a StreamState")
    return actual == expected


def _show(expected: Expected) -> str | int:
    return expected.value if isinstance(expected, StreamState) else expected
