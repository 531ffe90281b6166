"""The memory broker's moving parts: queued entries, deliveries that must be settled once,
consumers with their worker tasks, subscriptions and responders (see
:mod:`labkit.transport.brokers.memory` for what the broker models)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labkit.transport.brokers.base import (
    Consumer,
    DeadLetter,
    Delivery,
    Handler,
    Message,
    QueueSpec,
    Responder,
    Subscription,
)

if TYPE_CHECKING:
    from labkit.transport.brokers.memory import MemoryBroker


@dataclass(slots=True)
class _Entry:
    message: Message
    enqueued_at: float
    deliveries: int = 0


class _Queue:
    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        self.ready: deque[_Entry] = deque()
        self.in_flight: dict[int, _MemoryDelivery] = {}
        self.consumers: list[_MemoryConsumer] = []
        self.dlq: list[DeadLetter] = []
        self.turn = 0
        # One ack-wait timer per queue, not one per delivery: the ack wait is the same for every
        # delivery of a queue, so ``in_flight`` (in delivery order) is also in deadline order.
        self.sweeper: asyncio.TimerHandle | None = None


class _MemoryDelivery(Delivery):
    def __init__(
        self,
        broker: MemoryBroker,
        queue: _Queue,
        entry: _Entry,
        tag: int,
        consumer: _MemoryConsumer,
    ) -> None:
        self.broker, self._queue, self.entry, self.tag = broker, queue, entry, tag
        self.consumer = consumer
        self.message = entry.message
        self.queue = queue.spec.name
        self.delivery_count = entry.deliveries
        self.settled = False
        self.deadline = 0.0

    def _settle(self, what: str) -> bool:
        if self.settled:
            return False
        if self._queue.in_flight.get(self.tag) is not self:
            # the ack wait ran out and the message went back: this settlement comes too late
            self.broker._record(
                "consumer", f"message.late_{what}", id=self.message.id, queue=self.queue
            )
            self.settled = True
            return False
        self.settled = True
        in_flight = self._queue.in_flight
        del in_flight[self.tag]
        self.consumer.unsettled.discard(self.tag)
        if not in_flight and self._queue.sweeper is not None:
            self._queue.sweeper.cancel()
            self._queue.sweeper = None
        return True

    async def ack(self) -> None:
        if self._settle("ack"):
            if self.broker.timeline.enabled:
                self._note(self.broker.timeline, self.consumer.name, "acked")
            self.broker._dispatch(self._queue)

    async def nack(self, *, requeue: bool = True) -> None:
        if not self._settle("nack"):
            return
        self._note(self.broker.timeline, self.consumer.name, "nacked", requeue=requeue)
        if requeue:
            self._queue.ready.appendleft(self.entry)
        else:
            self.broker._dead_letter(self._queue, self.entry, "rejected")
        self.broker._dispatch(self._queue)

    async def reject(self, reason: str = "rejected") -> None:
        if self._settle("reject"):
            self._note(self.broker.timeline, self.consumer.name, "rejected", reason=reason)
            self.broker._dead_letter(self._queue, self.entry, reason)
            self.broker._dispatch(self._queue)


class _MemoryConsumer(Consumer):
    """A consumer runs its handler on at most ``prefetch`` deliveries at once.

    Deliveries wait in ``pending`` for a worker task. A worker takes deliveries one after the
    other; a new worker starts only while every worker is inside the handler, so a handler
    that never waits costs no task per message, and one that does wait (a slow consumer) still
    gets as many concurrent calls as its prefetch allows. Workers end when nothing is pending.
    """

    #: a worker lets the event loop run after this many deliveries in a row, as a network
    #: round trip would: a consumer that requeues a message forever must not freeze the process
    YIELD_EVERY = 32

    def __init__(
        self, broker: MemoryBroker, queue: _Queue, handler: Handler, prefetch: int, name: str
    ) -> None:
        self.broker, self.queue, self.handler, self.prefetch = broker, queue, handler, prefetch
        self.name = name
        self.unsettled: set[int] = set()
        self.pending: deque[_MemoryDelivery] = deque()
        self.workers: set[asyncio.Task[None]] = set()
        self.busy = 0
        self.active = True

    def hand_over(self, delivery: _MemoryDelivery) -> None:
        self.pending.append(delivery)
        self._start_worker_if_all_busy()

    def _start_worker_if_all_busy(self) -> None:
        if len(self.workers) == self.busy and len(self.workers) < self.prefetch:
            self.workers.add(asyncio.ensure_future(self._work()))

    async def _work(self) -> None:
        pending, handled = self.pending, 0
        try:
            while pending:
                delivery = pending.popleft()
                self.busy += 1
                if pending:
                    self._start_worker_if_all_busy()
                try:
                    await self.broker._handle(self, delivery)
                finally:
                    self.busy -= 1
                handled += 1
                if handled % self.YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        finally:
            # leave the set now, not in a done callback: until then hand_over would count
            # this worker as free and start nobody
            self.workers.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def stop(self, *, crash: bool = False) -> None:
        self.active = False
        if self in self.queue.consumers:
            self.queue.consumers.remove(self)
        if crash:
            self.broker._record(
                self.name,
                "consumer.crashed",
                queue=self.queue.spec.name,
                in_flight=len(self.unsettled),
            )
            for task in list(self.workers):
                task.cancel()
            self.pending.clear()
            for tag in sorted(self.unsettled, reverse=True):
                delivery = self.queue.in_flight.pop(tag)
                delivery.settled = True
                self.queue.ready.appendleft(delivery.entry)
                self.broker._record(
                    "broker",
                    "message.requeued",
                    id=delivery.message.id,
                    queue=self.queue.spec.name,
                    reason="consumer crashed",
                )
            self.unsettled.clear()
        else:
            await asyncio.gather(*self.workers, return_exceptions=True)
        self.broker._dispatch(self.queue)


class _MemorySubscription(Subscription):
    def __init__(
        self, broker: MemoryBroker, pattern: str, handler: Callable[[Message], Awaitable[None]]
    ) -> None:
        self.broker, self.pattern, self.handler = broker, pattern, handler

    async def unsubscribe(self) -> None:
        if self in self.broker._subscriptions:
            self.broker._subscriptions.remove(self)


class _MemoryResponder(Subscription):
    def __init__(self, broker: MemoryBroker, pattern: str, responder: Responder) -> None:
        self.broker, self.pattern, self.responder = broker, pattern, responder

    async def unsubscribe(self) -> None:
        if self in self.broker._responders:
            self.broker._responders.remove(self)
