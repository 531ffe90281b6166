"""The RabbitMQ backend's consumers and deliveries: manual acks on a channel with a prefetch,
and plain subscriptions on an exclusive queue (see :mod:`labkit.transport.brokers.rabbitmq`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
)

from labkit.transport.brokers.base import (
    Consumer,
    Delivery,
    Handler,
    Message,
    Subscription,
)
from labkit.transport.brokers.rabbitmq_names import (
    _CHANNEL_GONE,
)

if TYPE_CHECKING:
    from labkit.transport.brokers.rabbitmq import RabbitBroker


class _RabbitDelivery(Delivery):
    def __init__(
        self,
        consumer: _RabbitConsumer,
        incoming: AbstractIncomingMessage,
        message: Message,
        delivery_count: int,
    ) -> None:
        self.consumer, self.incoming, self.message = consumer, incoming, message
        self.queue = consumer.queue
        self.delivery_count = delivery_count
        self.amqp_redelivered = bool(incoming.redelivered)
        self.settled = False

    @property
    def redelivered(self) -> bool:
        return self.delivery_count > 1 or self.amqp_redelivered

    async def _settle(self, what: str, send: Callable[[], Awaitable[None]]) -> bool:
        if self.settled:
            return False
        self.settled = True
        self.consumer.unsettled.discard(self)
        try:
            await send()
        except _CHANNEL_GONE:
            # the consumer's channel is closed: RabbitMQ has already taken the message back
            self.consumer.broker._record(
                "consumer", f"message.late_{what}", id=self.message.id, queue=self.queue
            )
            return False
        return True

    async def ack(self) -> None:
        broker = self.consumer.broker
        if await self._settle("ack", self.incoming.ack):
            broker._forget(self.queue, self.message.id)
            self._note(broker.timeline, self.consumer.name, "acked")

    async def nack(self, *, requeue: bool = True) -> None:
        # basic.reject, not basic.nack: RabbitMQ 4.3+ counts only rejects towards the limit
        if await self._settle("nack", lambda: self.incoming.reject(requeue=requeue)):
            self._note(self.consumer.broker.timeline, self.consumer.name, "nacked", requeue=requeue)
            if not requeue:
                self.consumer.broker._note_rejected(self, "rejected")

    async def reject(self, reason: str = "rejected") -> None:
        if await self._settle("reject", lambda: self.incoming.reject(requeue=False)):
            self._note(self.consumer.broker.timeline, self.consumer.name, "rejected", reason=reason)
            self.consumer.broker._note_rejected(self, reason)


class _RabbitConsumer(Consumer):
    """One consumer on a channel of its own (its prefetch, and what a crash takes down)."""

    def __init__(
        self,
        broker: RabbitBroker,
        queue: str,
        channel: AbstractChannel,
        handler: Handler,
        name: str,
    ) -> None:
        self.broker, self.queue, self.channel, self.handler = broker, queue, channel, handler
        self.name = name
        self.amqp_queue: AbstractQueue | None = None
        self.tag: str | None = None
        self.unsettled: set[_RabbitDelivery] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.active = True

    async def on_message(self, incoming: AbstractIncomingMessage) -> None:
        if not self.active:
            return  # arrived while stopping: the closing channel gives it back
        broker = self.broker
        message = broker._message(incoming)
        raw = (incoming.headers or {}).get("x-delivery-count")
        count = int(raw) + 1 if raw is not None else 1
        if incoming.redelivered and count == 1:
            count = 2  # a broker that does not count this return still flags it
        delivery = _RabbitDelivery(self, incoming, message, count)
        broker._deliveries[(self.queue, message.id)] = count
        self.unsettled.add(delivery)
        broker._record(
            self.name,
            "message.delivered",
            id=message.id,
            queue=self.queue,
            delivery=count,
            redelivered=delivery.redelivered,
        )
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            await self.handler(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            broker._record(
                self.name, "consumer.error", id=message.id, error=f"{type(exc).__name__}: {exc}"
            )
            if not delivery.settled:
                await delivery.nack(requeue=True)
        finally:
            if task is not None:
                self.tasks.discard(task)

    async def stop(self, *, crash: bool = False) -> None:
        if not self.active:
            return
        self.active = False
        self.broker._consumers.discard(self)
        me = asyncio.current_task()
        others = [t for t in self.tasks if t is not me]
        if crash:
            self.broker._record(
                self.name, "consumer.crashed", queue=self.queue, in_flight=len(self.unsettled)
            )
            for delivery in sorted(self.unsettled, key=lambda d: d.incoming.delivery_tag or 0):
                delivery.settled = True  # a late ack from the dead handler changes nothing
                self.broker._record(
                    "broker",
                    "message.requeued",
                    id=delivery.message.id,
                    queue=self.queue,
                    reason="consumer crashed",
                )
            self.unsettled.clear()
            for task in others:
                task.cancel()
        else:
            if self.amqp_queue is not None and self.tag is not None:
                with contextlib.suppress(*_CHANNEL_GONE):
                    await self.amqp_queue.cancel(self.tag)
            if others:
                await asyncio.gather(*others, return_exceptions=True)
        # Closing the channel hands every unacked delivery back to the queue. Shielded: a
        # handler that stops its own consumer may be cancelled along with the channel.
        await asyncio.shield(asyncio.ensure_future(self.broker._close_channel(self.channel)))


class _RabbitSubscription(Subscription):
    def __init__(
        self,
        broker: RabbitBroker,
        pattern: str,
        channel: AbstractChannel,
        handler: Callable[[Message], Awaitable[None]],
    ) -> None:
        self.broker, self.pattern, self.channel, self.handler = broker, pattern, channel, handler
        self.amqp_queue: AbstractQueue | None = None
        self.active = True

    async def on_message(self, incoming: AbstractIncomingMessage) -> None:
        message = self.broker._message(incoming)
        self.broker._record("subscriber", "message.received", id=message.id, pattern=self.pattern)
        try:
            await self.handler(message)
        except Exception as exc:
            self.broker._record(
                "subscriber",
                "subscriber.error",
                id=message.id,
                error=f"{type(exc).__name__}: {exc}",
            )

    async def unsubscribe(self) -> None:
        if not self.active:
            return
        self.active = False
        self.broker._subscriptions.discard(self)
        if self.amqp_queue is not None:
            with contextlib.suppress(*_CHANNEL_GONE):
                await self.amqp_queue.delete(if_unused=False, if_empty=False)
        await self.broker._close_channel(self.channel)
