"""The memory broker: a teaching broker that models what test brokers usually skip.

It runs inside the process on the run's clock (virtual time by default), and behaves like the
real brokers where it matters for the lessons:

* **manual acknowledgement**: a delivery stays "in flight" until the consumer acks, nacks or
  rejects it; a consumer that crashes leaves its in-flight deliveries to come back, flagged
  *redelivered* (RabbitMQ);
* **ack wait**: a delivery nobody settles within ``ack_wait_s`` comes back too (JetStream);
* **prefetch**: at most ``prefetch`` unsettled deliveries per consumer;
* **delivery limit**: past ``max_deliveries`` a message is dead-lettered with reason
  ``delivery_limit`` instead of going round again (quorum queues, ``max_deliver``);
* **dead-lettering** with a death record (like RabbitMQ's ``x-death``): ``rejected``,
  ``delivery_limit`` or ``expired`` (past ``ttl_s`` before it was delivered);
* **topic routing** with both wildcard dialects, fan-out to every matching queue, and core
  pub/sub subscriptions that only see what is published while they listen;
* a **log** of everything published, to replay from a sequence number or a time.

Every step is a record on the timeline, so the accounting (published = acked + dead-lettered +
still queued, nothing lost) can be checked from the records alone.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from labkit.core.clock import Clock, ManualClock
from labkit.core.errors import BadParameter, UnknownName
from labkit.core.timeline import Timeline
from labkit.transport.brokers.base import (
    Broker,
    Consumer,
    DeadLetter,
    Handler,
    LogEntry,
    Message,
    NoResponders,
    QueueSpec,
    Responder,
    Subscription,
    check_history_request,
    check_subject,
    encode_body,
    subject_matches,
)
from labkit.transport.brokers.memory_parts import (
    _Entry,
    _MemoryConsumer,
    _MemoryDelivery,
    _MemoryResponder,
    _MemorySubscription,
    _Queue,
)


class MemoryBroker(Broker):
    """The in-process broker (see the module docstring for what it models)."""

    name = "memory"

    def __init__(self, *, clock: Clock | None = None, timeline: Timeline | None = None) -> None:
        if timeline is None:  # (an empty Timeline is falsy: it has a length)
            timeline = Timeline(clock if clock is not None else ManualClock())
        self.timeline = timeline
        self.clock = clock if clock is not None else timeline.clock
        self._queues: dict[str, _Queue] = {}
        self._subscriptions: list[_MemorySubscription] = []
        self._responders: list[_MemoryResponder] = []
        self._next_responder = 0
        self._tags = itertools.count(1)
        self._consumer_ids = itertools.count(1)
        self._message_ids = itertools.count(1)  # deterministic ids: same seed, same run
        self.log: list[tuple[int, float, Message]] = []
        self._routes: dict[str, list[_Queue]] = {}  # subject -> the queues it reaches
        self._background: set[asyncio.Task[None]] = set()

    # -- bookkeeping -----------------------------------------------------------------------------
    def _record(self, actor: str, kind: str, **fields: Any) -> None:
        self.timeline.record(actor, kind, **fields)

    def _queue(self, name: str) -> _Queue:
        if name not in self._queues:
            raise UnknownName("queue", name, list(self._queues) or ["(none declared)"])
        return self._queues[name]

    async def close(self) -> None:
        for queue in self._queues.values():
            for consumer in list(queue.consumers):
                await consumer.stop()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # -- the protocol ------------------------------------------------------------------------------
    async def declare(self, spec: QueueSpec) -> None:
        existing = self._queues.get(spec.name)
        if existing is not None and existing.spec != spec:
            raise BadParameter("queue", spec.name, "is already declared with other settings")
        if existing is None:
            self._queues[spec.name] = _Queue(spec)
            self._routes.clear()  # a new queue may match subjects already routed

    async def publish(
        self,
        subject: str,
        body: bytes | str | Mapping[str, Any] | list[Any],
        *,
        headers: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> str:
        routed = self._routes.get(subject)
        if routed is None:
            check_subject(subject)
            routed = self._routes[subject] = [
                q
                for q in self._queues.values()
                if any(subject_matches(b, subject) for b in q.spec.bindings)
            ]
        message = Message(
            message_id or f"m{next(self._message_ids)}",
            subject,
            encode_body(body),
            dict(headers) if headers else {},
        )
        now = self.clock.now()
        self.log.append((len(self.log) + 1, now, message))
        if self.timeline.enabled:
            self._record(
                "publisher",
                "message.published",
                id=message.id,
                subject=subject,
                queues=[q.spec.name for q in routed],
                bytes=len(message.body),
            )
        for queue in routed:
            queue.ready.append(_Entry(message, now))
            self._dispatch(queue)
        if self._subscriptions:
            for sub in list(self._subscriptions):
                if subject_matches(sub.pattern, subject):
                    self._spawn(self._notify(sub, message))
        return message.id

    async def _notify(self, sub: _MemorySubscription, message: Message) -> None:
        self._record("subscriber", "message.received", id=message.id, pattern=sub.pattern)
        await sub.handler(message)

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 1) -> Consumer:
        if prefetch < 1:
            raise BadParameter("prefetch", prefetch, "must be at least 1")
        q = self._queue(queue)
        consumer = _MemoryConsumer(
            self, q, handler, prefetch, f"consumer-{next(self._consumer_ids)}"
        )
        q.consumers.append(consumer)
        self._dispatch(q)
        return consumer

    async def subscribe(
        self, pattern: str, handler: Callable[[Message], Awaitable[None]]
    ) -> Subscription:
        check_subject(pattern, pattern=True)
        sub = _MemorySubscription(self, pattern, handler)
        self._subscriptions.append(sub)
        return sub

    async def respond(self, pattern: str, responder: Responder) -> Subscription:
        check_subject(pattern, pattern=True)
        answering = _MemoryResponder(self, pattern, responder)
        self._responders.append(answering)
        return answering

    def _new_request_id(self) -> str:
        return f"r{next(self._message_ids)}"  # deterministic: same seed, same run

    async def _ask(self, subject: str, data: bytes, headers: dict[str, str], rid: str) -> bytes:
        listening = [r for r in self._responders if subject_matches(r.pattern, subject)]
        if not listening:
            raise NoResponders(subject)
        chosen = listening[self._next_responder % len(listening)]  # they share the work
        self._next_responder += 1
        try:
            return encode_body(await chosen.responder(Message(rid, subject, data, headers)))
        except Exception as exc:  # a failed responder sends nothing back
            self._record(
                "responder", "responder.error", id=rid, error=f"{type(exc).__name__}: {exc}"
            )
            await asyncio.get_running_loop().create_future()  # until the caller's timeout
            raise  # (never reached)

    async def depth(self, queue: str) -> int:
        return len(self._queue(queue).ready)

    def in_flight(self, queue: str) -> int:
        """Deliveries of ``queue`` handed to consumers and not settled yet."""
        return len(self._queue(queue).in_flight)

    async def dead_letters(self, queue: str) -> list[DeadLetter]:
        return list(self._queue(queue).dlq)

    async def replay_dead_letters(self, queue: str) -> int:
        q = self._queue(queue)
        letters, q.dlq = q.dlq, []
        for letter in letters:
            self._record(
                "operator",
                "message.replayed",
                id=letter.message.id,
                queue=queue,
                reason=letter.reason,
            )
            q.ready.append(_Entry(letter.message, self.clock.now()))
        self._dispatch(q)
        return len(letters)

    async def history(
        self, pattern: str = "#", *, from_seq: int = 1, since: float | None = None
    ) -> list[LogEntry]:
        check_history_request(pattern, from_seq, since)
        return [
            LogEntry(seq, t, m)
            for seq, t, m in self.log[from_seq - 1 :]
            if (since is None or t >= since) and subject_matches(pattern, m.subject)
        ]

    # -- delivery ----------------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _dead_letter(self, queue: _Queue, entry: _Entry, reason: str) -> None:
        spec = queue.spec
        if not spec.dead_letter:
            self._record(
                "broker", "message.dropped", id=entry.message.id, queue=spec.name, reason=reason
            )
            return
        death = {
            "x-death-reason": reason,
            "x-death-queue": spec.name,
            "x-death-count": str(entry.deliveries),
        }
        message = replace(entry.message, headers={**entry.message.headers, **death})
        queue.dlq.append(DeadLetter(message, spec.name, reason, entry.deliveries, self.clock.now()))
        self._record(
            "broker",
            "message.dead_lettered",
            id=message.id,
            queue=spec.name,
            reason=reason,
            deliveries=entry.deliveries,
        )

    def _next_consumer(self, queue: _Queue) -> _MemoryConsumer | None:
        consumers = queue.consumers
        n = len(consumers)
        if n == 1:
            only = consumers[0]
            return only if only.active and len(only.unsettled) < only.prefetch else None
        for i in range(n):
            consumer = queue.consumers[(queue.turn + i) % n]
            if consumer.active and len(consumer.unsettled) < consumer.prefetch:
                queue.turn = (queue.turn + i + 1) % n
                return consumer
        return None

    def _dispatch(self, queue: _Queue) -> None:
        """Hand ready messages to consumers with room, until one or the other runs out."""
        ready = queue.ready
        if not ready:
            return
        spec = queue.spec
        ttl, limit, in_flight = spec.ttl_s, spec.max_deliveries, queue.in_flight
        loop = None
        while ready:
            consumer = self._next_consumer(queue)
            if consumer is None:
                return
            if loop is None:
                loop = asyncio.get_running_loop()
            entry = ready.popleft()
            if ttl is not None and self.clock.now() - entry.enqueued_at >= ttl:
                self._dead_letter(queue, entry, "expired")
                continue
            if limit is not None and entry.deliveries >= limit:
                self._dead_letter(queue, entry, "delivery_limit")
                continue
            entry.deliveries += 1
            tag = next(self._tags)
            delivery = _MemoryDelivery(self, queue, entry, tag, consumer)
            delivery.deadline = loop.time() + spec.ack_wait_s
            in_flight[tag] = delivery
            consumer.unsettled.add(tag)
            if queue.sweeper is None:
                queue.sweeper = loop.call_at(delivery.deadline, self._ack_wait_expired, queue)
            if self.timeline.enabled:
                self._record(
                    consumer.name,
                    "message.delivered",
                    id=entry.message.id,
                    queue=spec.name,
                    delivery=entry.deliveries,
                    redelivered=entry.deliveries > 1,
                )
            consumer.hand_over(delivery)

    async def _handle(self, consumer: _MemoryConsumer, delivery: _MemoryDelivery) -> None:
        try:
            await consumer.handler(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._record(
                consumer.name,
                "consumer.error",
                id=delivery.message.id,
                error=f"{type(exc).__name__}: {exc}",
            )
            if not delivery.settled:
                await delivery.nack(requeue=True)

    def _ack_wait_expired(self, queue: _Queue) -> None:
        """The queue's sweeper: send back every delivery whose ack wait has run out, then
        sleep until the next deadline."""
        queue.sweeper = None
        in_flight = queue.in_flight
        now = asyncio.get_running_loop().time()
        expired = []
        for tag, delivery in in_flight.items():
            if delivery.deadline > now + 1e-9:
                queue.sweeper = asyncio.get_running_loop().call_at(
                    delivery.deadline, self._ack_wait_expired, queue
                )
                break
            expired.append(tag)
        entries = []
        for tag in expired:
            delivery = in_flight.pop(tag)
            delivery.consumer.unsettled.discard(tag)
            self._record(
                "broker",
                "message.requeued",
                id=delivery.message.id,
                queue=queue.spec.name,
                reason="ack wait expired",
            )
            entries.append(delivery.entry)
        queue.ready.extendleft(reversed(entries))  # back at the head, in their original order
        if expired:
            self._dispatch(queue)
