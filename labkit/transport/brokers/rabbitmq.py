"""The RabbitMQ backend: the messaging protocol on AMQP 0-9-1, with aio-pika.

How the protocol's words map onto AMQP
--------------------------------------

AMQP separates *where a publisher sends* (an **exchange**) from *where messages wait* (a
**queue**); a **binding** with a routing-key pattern connects the two. The lab's names map so:

==========================  =====================================================================
protocol                    RabbitMQ (``ns`` is the broker's namespace, e.g. one per run)
==========================  =====================================================================
subject ``orders.created``  routing key ``orders.created`` on the topic exchange ``labkit.ns.topic``
pattern ``orders.*``        binding key ``orders.*``; ``#`` stays ``#`` (zero or more tokens) and
                            NATS' ``>`` (one or more) becomes ``*.#``, which means the same thing
queue ``inventory``         durable **quorum** queue ``labkit.ns.inventory``, bound once per pattern
``max_deliveries=N``        ``x-delivery-limit = N - 1`` (see "delivery limit" below)
``ttl_s``                   ``x-message-ttl`` in milliseconds; expired messages are dead-lettered
dead-letter queue           direct exchange ``labkit.ns.dlx`` (the queue's
                            ``x-dead-letter-exchange``, routing key = the queue's name) and a
                            durable classic queue ``labkit.ns.inventory.dlq`` bound to it
death record                the ``x-death`` header RabbitMQ adds: ``reason``, ``count``,
                            ``queue``, ``exchange``, ``routing-keys``, ``time``
delivery count              quorum queues add ``x-delivery-count`` (previous failed deliveries)
                            from the second delivery on: ``delivery_count`` is that + 1
ack / nack / reject         ``basic.ack`` / ``basic.reject(requeue=True)`` /
                            ``basic.reject(requeue=False)`` (→ DLX, reason ``rejected``)
prefetch                    ``basic.qos(prefetch_count)`` on a channel of the consumer's own
consumer crash              closing that channel without acking: RabbitMQ puts every unacked
                            delivery back, flagged ``redelivered``
depth                       ``message_count`` of a passive ``queue.declare`` (ready messages only)
subscription (pub/sub)      a server-named, exclusive, auto-delete queue bound to the pattern:
                            it exists only while subscribed, so it misses what came before
==========================  =====================================================================

Every publish waits for its **publisher confirm**: ``publish`` returns once the broker has the
message (persistent, in a quorum queue: on disk on a majority).

Delivery limit, as measured on RabbitMQ 3.10
--------------------------------------------

``x-delivery-limit`` works only on quorum queues (on a classic queue the declare fails with
``PRECONDITION_FAILED`` and the channel dies). A limit of *N* allows *N + 1* deliveries: the
first has no ``x-delivery-count`` header, the next ones count 1, 2, …, and a return that would
make the count exceed *N* dead-letters the message with reason ``delivery_limit`` instead. On
3.10 every return counts: ``basic.nack``/``basic.reject`` with requeue, and a consumer whose
channel closes. So ``max_deliveries=3`` is declared as ``x-delivery-limit=2``. RabbitMQ 4.x
sets a default limit of 20 on every quorum queue, and 4.3 stopped counting ``basic.nack``
requeues (only ``basic.reject`` counts, as a *failure*), which is why ``nack(requeue=True)``
here sends ``basic.reject(requeue=True)``: the same on 3.10, still counted on 4.3+.

Reading a dead-letter queue without emptying it
-----------------------------------------------

``dead_letters`` takes every message of the DLQ with ``basic.get`` (unacked), reads its
``x-death``, then puts them all back with one ``basic.nack(multiple=True, requeue=True)``; a
classic queue returns them to their old places, so the order holds and nothing is lost. (The
DLQ is classic on purpose: on a 4.x quorum DLQ, each peek would count towards the default
delivery limit of 20.) ``replay_dead_letters`` republishes each letter through the default
exchange straight into its queue (not through the topic exchange, which would copy it to every
other queue bound to its subject as well), without the ``x-death`` headers and with its subject
in ``x-labkit-subject``, waits for the confirm, then acks it off the DLQ.

The timeline gets the same records as the memory broker's. ``message.dead_lettered`` comes from
the broker itself: an exclusive "death watch" queue is bound to the DLX next to every DLQ, so
each dead letter is also copied to this broker, which records it when it arrives (and
``dead_letters`` records any it has not seen yet). Two numbers RabbitMQ does not keep are filled
in from what this process saw: a dead letter's ``deliveries`` (``x-death``'s ``count`` counts
deaths, not deliveries; ``delivery_limit`` means ``max_deliveries``) and a ``reject(reason)``
reason other than ``rejected``.

What differs from NATS JetStream
--------------------------------

* A RabbitMQ queue *is* the storage: an acked message is gone, there is no log to replay from a
  sequence number or a time (a JetStream stream keeps messages and consumers are cursors).
* RabbitMQ has **no per-delivery ack wait**: an unacked delivery stays with its consumer until
  the consumer's channel or connection closes (or the broker-wide ``consumer_timeout``, 30 min
  by default, closes the channel). ``QueueSpec.ack_wait_s`` is ignored here; JetStream's
  ``ack_wait`` redelivers after that time.
* Dead-lettering is built in (DLX + ``x-death``); JetStream only publishes a max-deliveries
  advisory and leaves the message in the stream.
* Routing happens in the exchange when the message is published; a message that matches no
  queue is dropped (``mandatory`` publishes would return it), while core NATS also drops it and
  a JetStream stream stores it if its subjects match.

Clean-up: ``close()`` cancels this broker's consumers and subscriptions, deletes the queues and
DLQs it declared and its namespace's exchanges (unless another client still binds to them), then
closes the connection. Pass ``cleanup=False`` to keep the queues (and their messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)

from labkit.core.errors import BadParameter, UnknownName
from labkit.transport.brokers.base import (
    BrokerUnavailable,
    Consumer,
    DeadLetter,
    Handler,
    Message,
    NetworkBroker,
    QueueSpec,
    Responder,
    Subscription,
    check_subject,
    encode_body,
    new_message_id,
    subject_matches,
)
from labkit.transport.brokers.rabbitmq_consumer import (
    _RabbitConsumer,
    _RabbitDelivery,
    _RabbitSubscription,
)
from labkit.transport.brokers.rabbitmq_names import (
    _CHANNEL_GONE,
    DEFAULT_AMQP_URL,
    REPLAYS_HEADER,
    SUBJECT_HEADER,
    _first_line,
    _text,
    _user_headers,
    amqp_pattern,
)
from labkit.transport.brokers.rabbitmq_rpc import RabbitRpc


class RabbitBroker(NetworkBroker):
    """The protocol on a real RabbitMQ (see the module docstring for the mapping).

    ``url`` defaults to ``LABKIT_AMQP_URL``, else ``amqp://guest:guest@127.0.0.1:5672/``.
    ``namespace`` prefixes every exchange and queue this broker makes, so runs never collide.
    """

    name = "rabbitmq"

    url_variable = "LABKIT_AMQP_URL"
    default_url = DEFAULT_AMQP_URL
    default_connect_timeout = 2.0

    def _setup(self) -> None:
        namespace = self.namespace
        self.prefix = f"labkit.{namespace}"
        self.exchange_name = f"{self.prefix}.topic"
        self.dlx_name = f"{self.prefix}.dlx"
        self._connection: AbstractConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._admin: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._watch_queue: AbstractQueue | None = None
        self._watch_tag: str | None = None
        self._specs: dict[str, QueueSpec] = {}
        self._consumers: set[_RabbitConsumer] = set()
        self._subscriptions: set[_RabbitSubscription] = set()
        self._consumer_ids = 0
        self._dlq_lock = asyncio.Lock()
        # what RabbitMQ does not keep: deliveries seen per (queue, id), reasons given to reject
        self._deliveries: dict[tuple[str, str], int] = {}
        self._reject_reasons: dict[tuple[str, str], str] = {}
        self._deaths_recorded: set[tuple[Any, ...]] = set()
        self._rpc = RabbitRpc(self)

    # -- names -----------------------------------------------------------------------------------
    def queue_name(self, queue: str) -> str:
        """The AMQP name of a protocol queue (``labkit.<namespace>.<queue>``)."""
        return f"{self.prefix}.{queue}"

    def dlq_name(self, queue: str) -> str:
        return f"{self.prefix}.{queue}.dlq"

    def _protocol_queue(self, amqp_name: str) -> str:
        return amqp_name.removeprefix(f"{self.prefix}.")

    # -- connection ------------------------------------------------------------------------------
    def _unavailable(
        self,
        exc: BaseException,
        what: str = "does not answer",
        hint: str = "start it with `rabbitmq-server -detached`",
    ) -> BrokerUnavailable:
        return BrokerUnavailable(
            f"RabbitMQ at {self.shown_url} {what} ({_first_line(exc)}); {hint}, "
            "set LABKIT_AMQP_URL, or use the memory backend"
        )

    async def start(self) -> None:
        """Connect, open the publishing channel (with confirms) and declare the exchanges."""
        try:
            async with asyncio.timeout(self.connect_timeout + 0.5):
                self._connection = await aio_pika.connect(
                    self.url,
                    timeout=self.connect_timeout,
                    client_properties={"connection_name": f"labkit {self.namespace}"},
                )
        except aiormq.exceptions.ProbableAuthenticationError as exc:
            raise self._unavailable(
                exc, "refused the login", "check the user and password"
            ) from None
        except aiormq.exceptions.InvalidFrameError:  # e.g. a virtual host it does not have
            raise BrokerUnavailable(
                f"RabbitMQ at {self.shown_url} refused the connection (does the virtual host "
                "in the URL exist?); set LABKIT_AMQP_URL, or use the memory backend"
            ) from None
        except (OSError, aiormq.exceptions.AMQPError, TimeoutError) as exc:
            raise self._unavailable(exc) from None
        try:
            self._publisher = await self._connection.channel(publisher_confirms=True)
            self._admin = await self._connection.channel(publisher_confirms=False)
            self._exchange = await self._publisher.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            await self._admin.declare_exchange(
                self.dlx_name, aio_pika.ExchangeType.DIRECT, durable=True
            )
            self._watch_queue = await self._admin.declare_queue(
                "", exclusive=True, auto_delete=True, arguments={"x-queue-type": "classic"}
            )
            self._watch_tag = await self._watch_queue.consume(self._on_death, no_ack=True)
        except BaseException:
            await self._connection.close()
            self._connection = None
            raise

    def _conn(self) -> AbstractConnection:
        if self._connection is None or self._connection.is_closed:
            raise BrokerUnavailable(
                f"RabbitMQ at {self.shown_url}: not connected (use `async with` or start())"
            )
        return self._connection

    async def _admin_channel(self) -> AbstractChannel:
        """The channel for declares; a refused declare closes a channel, so reopen it then."""
        if self._admin is None or self._admin.is_closed:
            self._admin = await self._conn().channel(publisher_confirms=False)
        return self._admin

    @staticmethod
    async def _close_channel(channel: AbstractChannel) -> None:
        if not channel.is_closed:
            with contextlib.suppress(*_CHANNEL_GONE, ConnectionError):
                await channel.close()

    async def close(self) -> None:
        """Stop consumers and subscriptions, delete what this broker declared, disconnect."""
        if self._connection is None:
            return
        for consumer in list(self._consumers):
            await consumer.stop()
        for sub in list(self._subscriptions):
            await sub.unsubscribe()
        await self._rpc.close()
        try:
            if self.cleanup and not self._connection.is_closed:
                await self._delete_everything()
        finally:
            with contextlib.suppress(*_CHANNEL_GONE, ConnectionError):
                await self._connection.close()
            self._connection = None

    async def _delete_everything(self) -> None:
        channel = await self._conn().channel(publisher_confirms=False)
        for name in self._specs:
            await channel.queue_delete(self.queue_name(name))
            await channel.queue_delete(self.dlq_name(name))
        if self._watch_queue is not None:
            if self._watch_tag is not None:  # else RabbitMQ cancels it, and aio-pika logs that
                with contextlib.suppress(*_CHANNEL_GONE):
                    await self._watch_queue.cancel(self._watch_tag)
            await channel.queue_delete(self._watch_queue.name)
        await self._close_channel(channel)
        for exchange in (self.exchange_name, self.dlx_name):
            # if_unused: another broker of this namespace may still have queues bound to it;
            # a refusal closes the channel, hence one throwaway channel per attempt
            channel = await self._conn().channel(publisher_confirms=False)
            with contextlib.suppress(aiormq.exceptions.ChannelPreconditionFailed):
                await channel.exchange_delete(exchange, if_unused=True)
            await self._close_channel(channel)
        self._specs.clear()

    # -- bookkeeping -----------------------------------------------------------------------------
    def _forget(self, queue: str, message_id: str) -> None:
        self._deliveries.pop((queue, message_id), None)
        self._reject_reasons.pop((queue, message_id), None)

    def _message(self, incoming: AbstractIncomingMessage) -> Message:
        headers = incoming.headers or {}
        subject = headers.get(SUBJECT_HEADER)
        return Message(
            incoming.message_id or f"amqp-{incoming.delivery_tag}",
            _text(subject) if subject is not None else (incoming.routing_key or ""),
            incoming.body,
            _user_headers(headers),
        )

    def _note_rejected(self, delivery: _RabbitDelivery, reason: str) -> None:
        key = (delivery.queue, delivery.message.id)
        self._deliveries[key] = delivery.delivery_count
        if reason != "rejected":
            self._reject_reasons[key] = reason
        spec = self._specs.get(delivery.queue)
        if spec is not None and not spec.dead_letter:
            self._record(
                "broker", "message.dropped", id=delivery.message.id, queue=spec.name, reason=reason
            )

    def _letter(self, queue: str, incoming: AbstractIncomingMessage) -> tuple[DeadLetter, tuple]:
        """A DLQ message as a :class:`DeadLetter`, and a key naming this one death."""
        headers = incoming.headers or {}
        deaths = headers.get("x-death") or [{}]
        amqp_queue = self.queue_name(queue)
        death = next((d for d in deaths if _text(d.get("queue", "")) == amqp_queue), deaths[0])
        reason = _text(death.get("reason", "rejected"))
        base = self._message(incoming)
        subject = headers.get(SUBJECT_HEADER)
        keys = death.get("routing-keys") or []
        if subject is None and keys:
            base = Message(base.id, _text(keys[0]), base.body, base.headers)
        key = (queue, base.id)
        spec = self._specs.get(queue)
        if reason == "delivery_limit" and spec is not None and spec.max_deliveries:
            deliveries = spec.max_deliveries
        else:
            deliveries = self._deliveries.get(key, 0)
        if reason == "rejected":
            reason = self._reject_reasons.get(key, reason)
        message = Message(
            base.id,
            base.subject,
            base.body,
            {
                **base.headers,
                "x-death-reason": reason,
                "x-death-queue": queue,
                "x-death-count": str(deliveries),
            },
        )
        died = death.get("time")
        age = max(0.0, time.time() - died.timestamp()) if hasattr(died, "timestamp") else 0.0
        at = self.timeline.clock.now() - age
        identity = (
            queue,
            base.id,
            reason,
            _text(death.get("count", "")),
            _text(died),
            _text(headers.get(REPLAYS_HEADER, "0")),
        )
        return DeadLetter(message, queue, reason, deliveries, at), identity

    def _record_death(self, letter: DeadLetter, identity: tuple) -> None:
        if identity in self._deaths_recorded:
            return
        self._deaths_recorded.add(identity)
        self._record(
            "broker",
            "message.dead_lettered",
            id=letter.message.id,
            queue=letter.queue,
            reason=letter.reason,
            deliveries=letter.deliveries,
        )

    async def _on_death(self, incoming: AbstractIncomingMessage) -> None:
        """A copy of each dead letter of this broker's queues (the death watch queue)."""
        queue = _text(incoming.routing_key or "")
        if queue in self._specs:
            self._record_death(*self._letter(queue, incoming))

    async def _resolve(self, queue: str) -> str:
        """The AMQP name of ``queue``, checking that it exists (declared here or elsewhere)."""
        if queue in self._specs:
            return self.queue_name(queue)
        if re.fullmatch(r"[A-Za-z0-9_-]+", queue):
            await self._passive_count(queue)
            return self.queue_name(queue)
        raise UnknownName("queue", queue, list(self._specs) or ["(none declared)"])

    async def _passive_count(self, queue: str, *, dlq: bool = False) -> int:
        name = self.dlq_name(queue) if dlq else self.queue_name(queue)
        channel = await self._admin_channel()
        try:
            declared = await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            raise UnknownName("queue", queue, list(self._specs) or ["(none declared)"]) from None
        result = declared.declaration_result
        return int(result.message_count or 0) if result is not None else 0

    # -- the protocol ----------------------------------------------------------------------------
    async def declare(self, spec: QueueSpec) -> None:
        existing = self._specs.get(spec.name)
        if existing == spec:
            return
        if existing is not None:
            raise BadParameter("queue", spec.name, "is already declared with other settings")
        arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        if spec.dead_letter:
            arguments["x-dead-letter-exchange"] = self.dlx_name
            arguments["x-dead-letter-routing-key"] = spec.name
        if spec.max_deliveries is not None:
            arguments["x-delivery-limit"] = spec.max_deliveries - 1
        if spec.ttl_s is not None:
            arguments["x-message-ttl"] = max(1, round(spec.ttl_s * 1000))
        channel = await self._admin_channel()
        try:
            if spec.dead_letter:
                dlq = await channel.declare_queue(
                    self.dlq_name(spec.name), durable=True, arguments={"x-queue-type": "classic"}
                )
                await dlq.bind(self.dlx_name, routing_key=spec.name)
                if self._watch_queue is not None:
                    await self._watch_queue.bind(self.dlx_name, routing_key=spec.name)
            queue = await channel.declare_queue(
                self.queue_name(spec.name), durable=True, arguments=arguments
            )
            for pattern in spec.bindings:
                await queue.bind(self.exchange_name, routing_key=amqp_pattern(pattern))
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            raise BadParameter(
                "queue",
                spec.name,
                f"exists on RabbitMQ with other settings ({_first_line(exc)})",
            ) from None
        self._specs[spec.name] = spec

    async def publish(
        self,
        subject: str,
        body: bytes | str | Mapping[str, Any] | list[Any],
        *,
        headers: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> str:
        check_subject(subject)
        if self._exchange is None:
            self._conn()
        assert self._exchange is not None
        mid = message_id or new_message_id()
        data = encode_body(body)
        if self.timeline.enabled:
            routed = [
                name
                for name, spec in self._specs.items()
                if any(subject_matches(b, subject) for b in spec.bindings)
            ]
            self._record(
                "publisher",
                "message.published",
                id=mid,
                subject=subject,
                queues=routed,
                bytes=len(data),
            )
        message = aio_pika.Message(
            data,
            message_id=mid,
            headers=dict(headers) if headers else None,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            # waits for the confirm; a subject no queue is bound to is dropped, as in the protocol
            await self._exchange.publish(message, routing_key=subject, mandatory=False)
        except (*_CHANNEL_GONE, ConnectionError) as exc:
            self._record("publisher", "message.publish_failed", id=mid, error=_first_line(exc))
            raise self._unavailable(exc, "did not take the message") from None
        return mid

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 1) -> Consumer:
        if prefetch < 1:
            raise BadParameter("prefetch", prefetch, "must be at least 1")
        amqp_name = await self._resolve(queue)
        channel = await self._conn().channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        self._consumer_ids += 1
        consumer = _RabbitConsumer(self, queue, channel, handler, f"consumer-{self._consumer_ids}")
        consumer.amqp_queue = await channel.get_queue(amqp_name, ensure=False)
        consumer.tag = await consumer.amqp_queue.consume(consumer.on_message, no_ack=False)
        self._consumers.add(consumer)
        return consumer

    async def subscribe(
        self, pattern: str, handler: Callable[[Message], Awaitable[None]]
    ) -> Subscription:
        check_subject(pattern, pattern=True)
        channel = await self._conn().channel(publisher_confirms=False)
        sub = _RabbitSubscription(self, pattern, channel, handler)
        queue = await channel.declare_queue(
            "", exclusive=True, auto_delete=True, arguments={"x-queue-type": "classic"}
        )
        await queue.bind(self.exchange_name, routing_key=amqp_pattern(pattern))
        sub.amqp_queue = queue
        await queue.consume(sub.on_message, no_ack=True)
        self._subscriptions.add(sub)
        return sub

    # -- request-reply (see rabbitmq_rpc) --------------------------------------------------------
    async def respond(self, pattern: str, responder: Responder) -> Subscription:
        return await self._rpc.respond(pattern, responder)

    async def _ask(self, subject: str, data: bytes, headers: dict[str, str], rid: str) -> bytes:
        return await self._rpc.ask(subject, data, headers, rid)

    async def depth(self, queue: str) -> int:
        await self._resolve(queue)
        return await self._passive_count(queue)

    async def dead_letters(self, queue: str) -> list[DeadLetter]:
        await self._resolve(queue)
        spec = self._specs.get(queue)
        if spec is not None and not spec.dead_letter:
            return []
        async with self._dlq_lock:
            await self._passive_count(queue, dlq=True)
            channel = await self._conn().channel(publisher_confirms=False)
            try:
                dlq = await channel.get_queue(self.dlq_name(queue), ensure=False)
                taken: list[AbstractIncomingMessage] = []
                while (incoming := await dlq.get(no_ack=False, fail=False)) is not None:
                    taken.append(incoming)
                letters = []
                for incoming in taken:
                    letter, identity = self._letter(queue, incoming)
                    self._record_death(letter, identity)
                    letters.append(letter)
                if taken:  # all back, in their places: reading must not lose a letter
                    await taken[-1].nack(multiple=True, requeue=True)
            finally:
                await self._close_channel(channel)
        return letters

    async def replay_dead_letters(self, queue: str) -> int:
        amqp_name = await self._resolve(queue)
        spec = self._specs.get(queue)
        if spec is not None and not spec.dead_letter:
            return 0
        async with self._dlq_lock:
            # only what is there now: a letter that dies again while we replay waits its turn
            waiting = await self._passive_count(queue, dlq=True)
            channel = await self._conn().channel(publisher_confirms=False)
            # confirms, and a message the queue did not take raises instead of being dropped
            publisher = await self._conn().channel(publisher_confirms=True, on_return_raises=True)
            replayed = 0
            try:
                dlq = await channel.get_queue(self.dlq_name(queue), ensure=False)
                while replayed < waiting:
                    incoming = await dlq.get(no_ack=False, fail=False)
                    if incoming is None:
                        break
                    letter, identity = self._letter(queue, incoming)
                    self._record_death(letter, identity)
                    headers = _user_headers(incoming.headers)
                    headers[SUBJECT_HEADER] = letter.message.subject
                    replays = int(_text((incoming.headers or {}).get(REPLAYS_HEADER, "0")))
                    headers[REPLAYS_HEADER] = str(replays + 1)
                    again = aio_pika.Message(
                        incoming.body,
                        message_id=letter.message.id,
                        headers=headers,
                        content_type=incoming.content_type,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    )
                    # straight into this queue (default exchange), confirmed before the DLQ ack
                    await publisher.default_exchange.publish(
                        again, routing_key=amqp_name, mandatory=True
                    )
                    await incoming.ack()
                    self._forget(queue, letter.message.id)
                    self._record(
                        "operator",
                        "message.replayed",
                        id=letter.message.id,
                        queue=queue,
                        reason=letter.reason,
                    )
                    replayed += 1
            finally:
                await self._close_channel(publisher)
                await self._close_channel(channel)
        return replayed
