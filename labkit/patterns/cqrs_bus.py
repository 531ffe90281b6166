"""Carrying the event store's events to the read side through a real broker.

The syllabus' command service saves its events, then publishes each one to the other services
(here: the read side's projection). Three pieces make that concrete on any broker of the lab:

* **the message**: one event per message, on subject ``orders.<event type>``
  (``orders.OrderCreated``), with the event's id as the message id and the stored event (with
  its global log position) as a JSON body;
* :class:`FlakyPublish`: the network between the service and the broker. A share of publishes
  fail before they reach the broker, as :class:`BrokerUnavailable`, the way a blip would;
* :class:`EventOutbox`: the fix from the outbox lesson, on the event store itself. A trigger
  writes an outbox row **in the same SQLite transaction** as each appended event, so there is
  no moment where an event exists and its "to be published" note does not. The lab's
  :class:`~labkit.patterns.outbox.OutboxRelay` publishes the rows and marks them sent;
* :class:`BusProjector`: the read side's consumer on a durable queue. It holds what arrives,
  and each time the projection runs it applies the held events in batches (one transaction
  each, idempotent by event id, checkpoint included) and only then acks them. A crash in the
  middle of a batch rolls the batch back and hands its messages back to the broker.

The projector can also ignore what the messages carry and **catch up from the store** after its
checkpoint: then a message is only a nudge, and losing one costs nothing.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from labkit.core.errors import BadParameter
from labkit.core.timeline import Timeline
from labkit.patterns.cqrs import OrderProjection, ProjectionCrash
from labkit.patterns.event_store import EventStore, StoredEvent
from labkit.transport.brokers import BadMessage, BrokerUnavailable, Delivery, Message

SUBJECT_PREFIX = "orders"
_FIELDS = StoredEvent._fields


def subject_for(event_type: str) -> str:
    """The subject an event is published on: ``orders.<event type>``."""
    return f"{SUBJECT_PREFIX}.{event_type}"


def event_body(e: StoredEvent) -> dict[str, Any]:
    """The message body for one stored event: every field, its log position included."""
    return e._asdict()


def event_from_message(message: Message) -> StoredEvent:
    """The stored event a message carries, or :class:`BadMessage` naming what is missing."""
    body = message.json()
    if not isinstance(body, dict) or any(f not in body for f in _FIELDS):
        raise BadMessage(f"message {message.id} is not a stored event (needs {', '.join(_FIELDS)})")
    return StoredEvent(**{f: body[f] for f in _FIELDS})


class FlakyPublish:
    """``publish`` with a network in front of it: ``share`` of the calls never reach the broker.

    A failed call raises :class:`BrokerUnavailable` (what the real backends raise when the
    broker does not answer), so the caller cannot tell a blip from an outage.
    """

    def __init__(
        self,
        publish: Callable[..., Awaitable[str]],
        share: float,
        rng: random.Random,
    ) -> None:
        if not 0 <= share <= 1:
            raise BadParameter("publish_failure_share", share, "must be between 0 and 1")
        self.publish, self.share, self.rng = publish, share, rng
        self.failures = 0
        self.sent = 0

    async def __call__(
        self,
        subject: str,
        body: Mapping[str, Any],
        *,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        if self.share and self.rng.random() < self.share:
            self.failures += 1
            raise BrokerUnavailable(
                f"publish of {message_id} on {subject} never reached the broker (network blip)"
            )
        mid = await self.publish(subject, body, message_id=message_id, headers=headers)
        self.sent += 1
        return mid


class EventOutbox:
    """An ``outbox`` table in the event store's database, filled by a trigger on ``events``.

    The trigger runs inside the append's transaction: an event and its outbox row are committed
    together or not at all. :meth:`pending` and :meth:`mark_sent` are what
    :class:`~labkit.patterns.outbox.OutboxRelay` needs.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        conn = store.conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL,"
            " position INTEGER NOT NULL, subject TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0)"
        )
        conn.execute(
            "CREATE TRIGGER IF NOT EXISTS events_to_outbox AFTER INSERT ON events BEGIN"
            " INSERT INTO outbox (event_id, position, subject)"
            f" VALUES (NEW.id, NEW.position, '{SUBJECT_PREFIX}.' || NEW.type); END"
        )

    def pending(self, limit: int = 100) -> list[dict[str, Any]]:
        """Rows not yet published, oldest first, each with the event as its JSON payload."""
        rows = self.store.conn.execute(
            "SELECT seq, event_id, position, subject FROM outbox WHERE sent = 0"
            " ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        if not rows:
            return []
        first, last = rows[0][2], rows[-1][2]
        span = self.store.read_all(after=first - 1, limit=last - first + 1)
        events = {e.position: e for e in span}
        return [
            {"seq": seq, "event_id": eid, "subject": subject,
             "payload": json.dumps(event_body(events[pos]))}
            for seq, eid, pos, subject in rows
        ]  # fmt: skip

    def mark_sent(self, seq: int) -> None:
        self.store.conn.execute("UPDATE outbox SET sent = 1 WHERE seq = ?", (seq,))

    def count(self, *, sent: bool) -> int:
        row = self.store.conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE sent = ?", (int(sent),)
        ).fetchone()
        return int(row[0])


class BusProjector:
    """The projection as a consumer: hold deliveries, apply them when it runs, then ack.

    ``from_store=False`` applies the events the messages carry (sorted by log position, in
    batches of ``batch_size``). ``from_store=True`` treats a message as a nudge only and reads
    the events themselves from ``store`` after the checkpoint. Either way a message is acked
    only after the transaction holding its event (and the checkpoint) has committed.
    """

    def __init__(
        self,
        projection: OrderProjection,
        *,
        batch_size: int,
        store: EventStore | None = None,
        from_store: bool = False,
        timeline: Timeline | None = None,
    ) -> None:
        if from_store and store is None:
            raise BadParameter("store", None, "is needed to catch up from the store")
        self.projection, self.batch_size, self.store = projection, batch_size, store
        self.from_store = from_store
        self.timeline = timeline
        self.held: list[Delivery] = []
        self.acked = 0
        self.batches = 0
        self.rejected = 0

    async def on_delivery(self, delivery: Delivery) -> None:
        """The consumer's handler: keep it (unacked) until the projection runs."""
        self.held.append(delivery)

    async def run_once(self, *, crash_at: int = 0) -> bool:
        """Apply what is there; ``crash_at`` (a log position) kills the batch holding it.

        Returns True when the projection crashed (the rest waits for the next run).
        """
        held, self.held = self.held, []
        if self.from_store:
            crashed = self._catch_up(crash_at)
            if crashed:
                await self._hand_back(held)
            else:
                await self._ack(held)
            return crashed
        events: list[tuple[StoredEvent, Delivery]] = []
        for d in held:
            try:
                events.append((event_from_message(d.message), d))
            except BadMessage as exc:
                self.rejected += 1
                self._record("projection.bad_message", id=d.message.id, error=str(exc))
                await d.reject()
        events.sort(key=lambda pair: pair[0].position)
        for k in range(0, len(events), self.batch_size):
            chunk = events[k : k + self.batch_size]
            batch = [e for e, _ in chunk]
            try:
                self.projection.apply_batch(batch, crash_after=_crash_index(batch, crash_at))
            except ProjectionCrash:
                await self._hand_back([d for _, d in events[k:]])
                return True
            self.batches += 1
            await self._ack([d for _, d in chunk])
        return False

    def _catch_up(self, crash_at: int) -> bool:
        assert self.store is not None
        while True:
            batch = self.store.read_all(after=self.projection.checkpoint, limit=self.batch_size)
            if not batch:
                return False
            try:
                self.projection.apply_batch(batch, crash_after=_crash_index(batch, crash_at))
            except ProjectionCrash:
                return True
            self.batches += 1

    async def _ack(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            await d.ack()
            self.acked += 1

    async def _hand_back(self, deliveries: Sequence[Delivery]) -> None:
        """The process died: its unacked messages go back to the broker, in their order."""
        for d in reversed(deliveries):
            await d.nack(requeue=True)

    def _record(self, kind: str, **fields: Any) -> None:
        if self.timeline is not None:
            self.timeline.record("projection", kind, **fields)


def _crash_index(batch: Sequence[StoredEvent], at: int) -> int | None:
    """Where in ``batch`` a crash at log position ``at`` happens (None: not in this batch)."""
    if not at or not batch or not (batch[0].position <= at <= batch[-1].position):
        return None
    return next(i for i, e in enumerate(batch) if e.position >= at)
