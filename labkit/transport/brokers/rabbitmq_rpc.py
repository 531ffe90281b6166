"""Request-reply on RabbitMQ, the classic RPC pattern.

AMQP has no request primitive: a request is a message with two properties, ``reply_to`` (the
queue where the answer should go) and ``correlation_id`` (which request an answer belongs to).
Here:

* requests go to their own topic exchange, ``labkit.ns.rpc``, so a queue bound to the same
  subject for events never sees them;
* each requester owns one exclusive, auto-deleted **callback queue** and waits on a future per
  correlation id;
* responders for one pattern share one queue (``labkit.ns.rpc.<pattern>``), so they compete for
  requests and one answers each, as a NATS queue group does;
* a request is published ``mandatory`` on a channel with publisher confirms: if no responder's
  queue is bound to its subject, RabbitMQ returns it and the request fails at once with
  :class:`NoResponders` instead of waiting for a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from labkit.transport.brokers.base import (
    Message,
    NoResponders,
    Responder,
    Subscription,
    check_subject,
    encode_body,
    new_message_id,
)
from labkit.transport.brokers.rabbitmq_names import _CHANNEL_GONE, _user_headers, amqp_pattern

if TYPE_CHECKING:
    from labkit.transport.brokers.rabbitmq import RabbitBroker


def _queue_safe(pattern: str) -> str:
    """A pattern as part of a queue name (AMQP names take no ``*``, ``#`` or ``>``)."""
    return pattern.replace("*", "_one_").replace("#", "_any_").replace(">", "_rest_")


class _Responder(Subscription):
    def __init__(self, rpc: RabbitRpc, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self.rpc, self.channel, self.queue = rpc, channel, queue

    async def unsubscribe(self) -> None:
        if self in self.rpc.responders:
            self.rpc.responders.remove(self)
            with contextlib.suppress(*_CHANNEL_GONE):
                await self.channel.close()


class RabbitRpc:
    """The request-reply side of a :class:`RabbitBroker` (made on first use)."""

    def __init__(self, broker: RabbitBroker) -> None:
        self.broker = broker
        self.exchange_name = f"{broker.prefix}.rpc"
        self.channel: AbstractChannel | None = None
        self.exchange: AbstractExchange | None = None
        self.callback: AbstractQueue | None = None
        self.waiting: dict[str, asyncio.Future[AbstractIncomingMessage]] = {}
        self.responders: list[_Responder] = []

    async def _ready(self) -> tuple[AbstractExchange, AbstractQueue]:
        if self.exchange is None or self.callback is None:
            self.channel = await self.broker._conn().channel(
                publisher_confirms=True, on_return_raises=True
            )
            self.exchange = await self.channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC
            )
            self.callback = await self.channel.declare_queue(
                "", exclusive=True, auto_delete=True, arguments={"x-queue-type": "classic"}
            )
            await self.callback.consume(self._on_reply, no_ack=True)
        return self.exchange, self.callback

    async def _on_reply(self, incoming: AbstractIncomingMessage) -> None:
        waiter = self.waiting.pop(incoming.correlation_id or "", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(incoming)

    async def respond(self, pattern: str, responder: Responder) -> Subscription:
        check_subject(pattern, pattern=True)
        exchange, _ = await self._ready()
        channel = await self.broker._conn().channel(publisher_confirms=False)
        queue = await channel.declare_queue(
            f"{self.exchange_name}.{_queue_safe(pattern)}",
            auto_delete=True,
            arguments={"x-queue-type": "classic"},
        )
        await queue.bind(exchange, routing_key=amqp_pattern(pattern))
        record = self.broker._record

        async def on_request(incoming: AbstractIncomingMessage) -> None:
            message = Message(
                incoming.message_id or new_message_id(),
                incoming.routing_key or "",
                incoming.body,
                _user_headers(incoming.headers),
            )
            try:
                answer = await responder(message)
            except Exception as exc:  # no answer: the caller times out
                record("responder", "responder.error", id=message.id, error=f"{exc!r}")
                return
            if incoming.reply_to:
                reply = aio_pika.Message(
                    encode_body(answer), correlation_id=incoming.correlation_id
                )
                with contextlib.suppress(*_CHANNEL_GONE):
                    await channel.default_exchange.publish(reply, routing_key=incoming.reply_to)

        await queue.consume(on_request, no_ack=True)
        answering = _Responder(self, channel, queue)
        self.responders.append(answering)
        return answering

    async def ask(self, subject: str, data: bytes, headers: dict[str, str], rid: str) -> bytes:
        exchange, callback = await self._ready()
        waiter: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()
        self.waiting[rid] = waiter
        outgoing = aio_pika.Message(
            data,
            message_id=rid,
            correlation_id=rid,
            reply_to=callback.name,
            headers=dict(headers) if headers else None,
        )
        try:
            try:
                await exchange.publish(outgoing, routing_key=subject, mandatory=True)
            except aiormq.exceptions.PublishError:
                raise NoResponders(subject) from None
            return (await waiter).body
        finally:
            self.waiting.pop(rid, None)

    async def close(self) -> None:
        for answering in list(self.responders):
            await answering.unsubscribe()
        if self.channel is not None:
            with contextlib.suppress(*_CHANNEL_GONE):
                if self.broker.cleanup and self.exchange is not None:
                    await self.exchange.delete()
                await self.channel.close()
        self.channel = self.exchange = self.callback = None
