"""The NATS backend: the messaging protocol on core NATS and JetStream, with nats-py.

Core NATS is fire-and-forget pub/sub: a message goes to whoever is subscribed *right now* and
is gone. **JetStream** adds storage: a **stream** captures the messages published on its
subjects and keeps them (a log, by sequence number); a **consumer** is a named cursor over a
stream that remembers what it delivered and what was acknowledged. The lab's words map so:

==========================  =====================================================================
protocol                    NATS (``ns`` is the broker's namespace, e.g. one per run)
==========================  =====================================================================
subject ``orders.created``  subject ``labkit.ns.pub.orders.created``: the namespace prefix keeps
                            runs apart; callers never see it
namespace                   one stream ``LAB_ns`` capturing ``labkit.ns.pub.>`` (everything
                            published) and ``labkit.ns.q.>`` (replays, see below); file storage
pattern ``orders.*``        filter subject ``labkit.ns.pub.orders.*``; ``>`` stays ``>`` (one or
                            more tokens), AMQP's ``#`` (zero or more) becomes two filters,
                            ``orders`` and ``orders.>``; a ``#`` or ``>`` before the last token
                            cannot be said in NATS and is refused by name
queue ``inventory``         **durable pull consumers** on ``LAB_ns``: ``inventory-f0``,
                            ``inventory-f1``, ... one per filter subject, plus
                            ``inventory-replay`` for ``labkit.ns.q.inventory``. Each starts at
                            the first message published after the declare (deliver policy
                            ``new``). The spec is kept as JSON in the consumers' description, so
                            another process can consume a queue it did not declare
``ack_wait_s``              the consumers' ``ack_wait``: an unacknowledged delivery comes back
``max_deliveries=N``        the consumers' ``max_deliver=N``
ack / nack / reject         ``+ACK`` / ``-NAK`` (redelivered at once) / ``+TERM`` (never again)
                            plus a dead letter published by this backend, reason ``rejected``
delivery limit              after ``max_deliver`` the server stops delivering the message, leaves
                            it in the stream and publishes an **advisory** on
                            ``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.LAB_ns.<consumer>``
                            (stream sequence, deliveries). This backend listens, fetches the
                            message by sequence and dead-letters it with reason
                            ``delivery_limit``
dead-letter queue           stream ``LAB_ns_DLQ``, subject ``labkit.ns.dlq.<queue>``; the death
                            record travels as headers (``x-death-reason``, ``x-death-queue``,
                            ``x-death-count``, as the memory broker writes them)
replay                      republish each letter on ``labkit.ns.q.<queue>`` (only that queue's
                            replay consumer reads it: republishing on the original subject would
                            copy it to every queue bound to that subject), then delete it from
                            the DLQ stream
prefetch                    this client's pull requests: it never asks for more messages than
                            ``prefetch`` minus what its handlers hold (``max_ack_pending``, 1000
                            by default, is per JetStream consumer and shared by every process:
                            it caps all of them together, it cannot bound one)
consumer crash              ``stop(crash=True)`` sends ``-NAK`` for what it held (see below)
depth                       the sum of the consumers' ``num_pending`` (never delivered yet)
subscription (pub/sub)      a core NATS subscription on the prefixed pattern: no stream, no
                            ack; it sees only what is published while it is there
==========================  =====================================================================

Why one consumer per filter subject? nats-server 2.9 (the Debian one) gives a consumer *one*
filter subject and silently ignores 2.10's ``filter_subjects`` list; a stream that *sources*
the namespace stream twice with two filters is accepted by 2.9 and then copies nothing; two
streams may not capture overlapping subjects (``orders.*`` and ``orders.>`` both want
``orders.created``). So a queue with several bindings is several consumers whose deliveries
this client merges under one prefetch budget. Bindings that cover one another are merged
(``orders.*`` inside ``orders.#``); bindings that only partly overlap (``a.*.c`` and ``a.b.*``)
are refused, as a message matching both would be delivered twice. With fewer prefetch slots
than filters, the filters take turns: a quick ``no_wait`` look at each and, when a whole round
found nothing, a 0.2 s wait on one of them, so a message on a quiet filter may wait about
0.2 s. With ``prefetch`` at least the number of filters, every filter keeps a request open.

The pull loop sends its own ``$JS.API.CONSUMER.MSG.NEXT`` requests rather than nats-py's
``fetch()``: ``fetch(n)`` returns only when *n* messages have come or the request expired,
which holds the first message back; here each message is handed to the handler as it arrives.
A pull request waits up to 1 s for messages (the server then answers ``408``) and is renewed;
the replay consumer is asked with ``no_wait`` about once a second, and at once when a broker of
the namespace announces a replay on ``labkit.ns.ctl.replayed``, so a replayed letter is back
within about a second. A pending pull request is cancelled by unsubscribing its inbox (the
server drops requests nobody listens to), and ``stop()`` drains that inbox first (deliveries
already on their way are nacked), so nothing is left "delivered" to a dead inbox until its
ack wait.

A crash, honestly: JetStream does not know that a pull client died. A killed process's
deliveries come back only after ``ack_wait`` (30 s by default), never at once as on RabbitMQ.
``stop(crash=True)`` models a consumer that dies *and tells the server* (``-NAK`` for every
delivery it held), so they come back at once, flagged redelivered, as the protocol promises;
to watch the real thing, stop without acking and wait out a short ``ack_wait_s``.

What differs from RabbitMQ
--------------------------

* A stream is a **log**, not a queue: an ack moves the consumer's ack floor, the message stays
  in the stream (until the stream's limits drop it), so a new consumer can replay from a
  sequence number or a time. On RabbitMQ an acked message is gone.
* **Ack wait** is per delivery (``ack_wait``); RabbitMQ has none (a delivery stays with its
  channel until the channel closes).
* **Dead-lettering** is not built in: ``max_deliver`` only stops delivery and publishes an
  advisory (core NATS, not stored: a delivery limit reached while no broker of the namespace
  listens leaves the message in the stream without a dead letter); ``term`` only stops it.
  The DLQ stream and its death records are this backend's work, like RabbitMQ's DLX + x-death.
* No per-message **TTL** into a DLQ (``ttl_s``) on 2.9: a stream's ``max_age`` drops old
  messages silently, for every queue at once. A ``QueueSpec`` with ``ttl_s`` is refused.
* Routing happens when a consumer reads (its filter subject), not when a message is published:
  a message nobody's filter matches is still stored in the stream.
* ``depth`` counts messages never delivered; a nacked message waiting to be redelivered is
  counted by the server as "ack pending", not in ``num_pending`` (RabbitMQ and the memory
  broker count it as ready).
* ``message.ack_timeout`` is recorded when this client's own ack-wait timer runs out for a
  delivery it holds (the server does not say); a late ack, nack or reject after it is recorded
  (``message.late_ack``...) and not sent, as in the memory broker.

Clean-up: ``close()`` stops this broker's consumers (waiting up to 5 s for handlers) and
subscriptions, deletes the streams and consumers it created (``cleanup=False`` keeps them),
and closes the connection without ``drain()``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext, JetStreamManager
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from labkit.core.errors import BadParameter, UnknownName
from labkit.transport.brokers.base import (
    BrokerUnavailable,
    Consumer,
    DeadLetter,
    Handler,
    LogEntry,
    Message,
    NetworkBroker,
    NoResponders,
    QueueSpec,
    Responder,
    Subscription,
    check_history_request,
    check_subject,
    encode_body,
    new_message_id,
    subject_matches,
)
from labkit.transport.brokers.nats_consumer import _NatsConsumer, _NatsSubscription
from labkit.transport.brokers.nats_history import read_stream
from labkit.transport.brokers.nats_names import (
    _DURABLE,
    _GONE,
    _INTERNAL_HEADERS,
    DEAD_AT_HEADER,
    DEFAULT_NATS_URL,
    ID_HEADER,
    REPLAYS_HEADER,
    REQUEST_TIMEOUT_S,
    SUBJECT_HEADER,
    _first_line,
    _spec_from_json,
    _spec_json,
    nats_filters,
    queue_filters,
)


# -- the broker --------------------------------------------------------------------------------
async def _no_handler(message: Message) -> None:
    """Responders answer in their own callback; their subscription holds no handler."""


class NatsBroker(NetworkBroker):
    """The messaging protocol on NATS JetStream (see the module docstring for the mapping)."""

    name = "nats"

    url_variable = "LABKIT_NATS_URL"
    default_url = DEFAULT_NATS_URL
    default_connect_timeout = 0.8

    def _setup(self) -> None:
        namespace = self.namespace
        self.root = f"labkit.{namespace}"
        self.stream = f"LAB_{namespace}"
        self.dlq_stream = f"LAB_{namespace}_DLQ"
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._jsm: JetStreamManager | None = None
        self._specs: dict[str, QueueSpec] = {}
        self._consumers: set[_NatsConsumer] = set()
        self._subscriptions: set[_NatsSubscription] = set()
        self._watch: list[NatsSubscription] = []
        self._created_streams: list[str] = []
        self._created_consumers: list[str] = []
        self._consumer_ids = itertools.count(1)
        self._last_error: str | None = None
        self._closing = False

    # -- names -------------------------------------------------------------------------------------
    def _pub(self, subject: str) -> str:
        return f"{self.root}.pub.{subject}"

    def _replay_subject(self, queue: str) -> str:
        return f"{self.root}.q.{queue}"

    def _dlq_subject(self, queue: str) -> str:
        return f"{self.root}.dlq.{queue}"

    def _durables(self, spec: QueueSpec) -> list[str]:
        filters = queue_filters(spec.bindings)
        return [f"{spec.name}-f{i}" for i in range(len(filters))] + [f"{spec.name}-replay"]

    def _plain(self, subject: str) -> str:
        prefix = f"{self.root}.pub."
        return subject[len(prefix) :] if subject.startswith(prefix) else subject

    # -- plumbing ----------------------------------------------------------------------------------
    def _unavailable(self, what: str, exc: BaseException | None = None) -> BrokerUnavailable:
        detail = f" ({_first_line(exc)})" if exc is not None else ""
        return BrokerUnavailable(
            f"NATS at {self.url} {what}{detail}; start nats-server -js, set LABKIT_NATS_URL, "
            "or use the memory backend"
        )

    def _conn(self) -> NatsClient:
        if self._nc is None or self._nc.is_closed:
            raise BrokerUnavailable(
                f"NATS at {self.url}: not connected (use `async with` or start())"
            )
        return self._nc

    def _jsx(self) -> tuple[JetStreamContext, JetStreamManager]:
        self._conn()
        assert self._js is not None and self._jsm is not None
        return self._js, self._jsm

    async def _guard(self, op: Awaitable[Any], what: str) -> Any:
        try:
            return await op
        except _GONE as exc:
            raise self._unavailable(what, exc) from None

    def _message_from(
        self,
        subject: str,
        headers: Mapping[str, str] | None,
        data: bytes | None,
        fallback_id: str,
    ) -> Message:
        headers = dict(headers or {})
        user = {k: v for k, v in headers.items() if not k.lower().startswith(_INTERNAL_HEADERS)}
        original = headers.get(SUBJECT_HEADER)
        mid = headers.get(ID_HEADER) or fallback_id or new_message_id()
        return Message(mid, original or self._plain(subject), data or b"", user)

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            return

        async def on_error(exc: Exception) -> None:  # keeps nats-py's tracebacks off stderr
            if isinstance(exc, TimeoutError):
                self._last_error = f"no answer within {self.connect_timeout} s"
            else:
                self._last_error = _first_line(exc)

        try:
            self._nc = await nats.connect(
                self.url,
                connect_timeout=self.connect_timeout,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                error_cb=on_error,
                name=f"labkit-{self.namespace}",
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            why = self._last_error or _first_line(exc)
            raise BrokerUnavailable(
                f"NATS at {self.url} does not answer ({why}); start nats-server -js, "
                "set LABKIT_NATS_URL, or use the memory backend"
            ) from None
        self._js = self._nc.jetstream(timeout=REQUEST_TIMEOUT_S)
        self._jsm = self._nc.jsm(timeout=REQUEST_TIMEOUT_S)
        try:
            await self._jsm.account_info()
        except (*_GONE, nats.js.errors.APIError):
            await self._nc.close()
            raise self._unavailable("answers, but JetStream is off") from None
        try:
            await self._ensure_stream(
                self.stream, [f"{self.root}.pub.>", f"{self.root}.q.>"], "everything published"
            )
            await self._ensure_stream(
                self.dlq_stream, [f"{self.root}.dlq.>"], "dead letters, with death records"
            )
            self._watch.append(
                await self._nc.subscribe(
                    f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{self.stream}.*",
                    cb=self._on_max_deliveries,
                )
            )
            self._watch.append(
                await self._nc.subscribe(f"{self.root}.ctl.replayed", cb=self._on_replayed)
            )
        except nats.js.errors.APIError as exc:
            await self._nc.close()
            raise self._unavailable("refused the namespace's streams", exc) from None

    async def _ensure_stream(self, name: str, subjects: list[str], what: str) -> None:
        _, jsm = self._jsx()
        try:
            await jsm.stream_info(name)
            return
        except nats.js.errors.NotFoundError:
            pass
        await jsm.add_stream(
            StreamConfig(
                name=name,
                subjects=subjects,
                storage=StorageType.FILE,
                description=f"labkit namespace {self.namespace}: {what}",
            )
        )
        self._created_streams.append(name)

    async def close(self) -> None:
        if self._closing or self._nc is None:
            return
        self._closing = True
        try:
            for consumer in list(self._consumers):
                await consumer.stop()
            for sub in list(self._subscriptions):
                await sub.unsubscribe()
            if self._nc.is_closed:
                return
            for sub in self._watch:
                with contextlib.suppress(*_GONE, nats.errors.BadSubscriptionError):
                    await sub.unsubscribe()
            self._watch.clear()
            with contextlib.suppress(*_GONE, TimeoutError):
                await self._nc.flush(timeout=2)  # acks and naks reach the server
            if self.cleanup:
                await self._delete_what_we_made()
        finally:
            await self._nc.close()  # not drain(): it can block 30 s on an expired pull

    async def _delete_what_we_made(self) -> None:
        _, jsm = self._jsx()
        with contextlib.suppress(*_GONE, nats.js.errors.APIError):
            if self.stream not in self._created_streams:
                for durable in self._created_consumers:
                    with contextlib.suppress(nats.js.errors.NotFoundError):
                        await jsm.delete_consumer(self.stream, durable)
            for stream in self._created_streams:
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await jsm.delete_stream(stream)
        self._created_streams.clear()
        self._created_consumers.clear()

    # -- queues ------------------------------------------------------------------------------------
    async def _load_spec(self, queue: str) -> QueueSpec | None:
        """A queue declared elsewhere: its spec from its replay consumer's description."""
        _, jsm = self._jsx()
        try:
            info = await jsm.consumer_info(self.stream, f"{queue}-replay")
        except nats.js.errors.NotFoundError:
            return None
        except _GONE as exc:
            raise self._unavailable("did not answer", exc) from None
        spec = _spec_from_json(info.config.description)
        if spec is not None:
            self._specs[queue] = spec
        return spec

    async def _spec(self, queue: str) -> QueueSpec:
        spec = self._specs.get(queue)
        if spec is None and re.fullmatch(r"[A-Za-z0-9_-]+", queue):
            spec = await self._load_spec(queue)
        if spec is None:
            raise UnknownName("queue", queue, list(self._specs) or ["(none declared)"])
        return spec

    async def declare(self, spec: QueueSpec) -> None:
        if spec.ttl_s is not None:
            raise BadParameter(
                "ttl_s",
                spec.ttl_s,
                "NATS JetStream 2.9 has no per-message TTL that dead-letters; leave it out, "
                "or use the memory or rabbitmq backend",
            )
        filters = queue_filters(spec.bindings)
        existing = self._specs.get(spec.name) or await self._load_spec(spec.name)
        if existing is not None:
            if existing != spec:
                raise BadParameter("queue", spec.name, "is already declared with other settings")
            return
        _, jsm = self._jsx()
        description = _spec_json(spec)
        subjects = [self._pub(f) for f in filters] + [self._replay_subject(spec.name)]
        for durable, subject in zip(self._durables(spec), subjects, strict=True):
            config = ConsumerConfig(
                durable_name=durable,
                description=description,
                filter_subject=subject,
                deliver_policy=DeliverPolicy.NEW,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=spec.ack_wait_s,
                max_deliver=spec.max_deliveries,
            )
            try:
                await jsm.add_consumer(self.stream, config)
            except _GONE as exc:
                raise self._unavailable("did not create the queue", exc) from None
            self._created_consumers.append(durable)
        self._specs[spec.name] = spec

    # -- the protocol ------------------------------------------------------------------------------
    async def publish(
        self,
        subject: str,
        body: bytes | str | Mapping[str, Any] | list[Any],
        *,
        headers: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> str:
        check_subject(subject)
        js, _ = self._jsx()
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
        try:  # waits for JetStream's PubAck: the message is in the stream
            await js.publish(self._pub(subject), data, headers={**(headers or {}), ID_HEADER: mid})
        except (*_GONE, nats.js.errors.APIError) as exc:
            self._record("publisher", "message.publish_failed", id=mid, error=_first_line(exc))
            raise self._unavailable("did not take the message", exc) from None
        return mid

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 1) -> Consumer:
        if prefetch < 1:
            raise BadParameter("prefetch", prefetch, "must be at least 1")
        spec = await self._spec(queue)
        consumer = _NatsConsumer(
            self, spec, handler, prefetch, f"consumer-{next(self._consumer_ids)}"
        )
        await self._guard(consumer.start(), "did not start the consumer")
        self._consumers.add(consumer)
        return consumer

    async def subscribe(
        self, pattern: str, handler: Callable[[Message], Awaitable[None]]
    ) -> Subscription:
        check_subject(pattern, pattern=True)
        filters = nats_filters(pattern)
        sub = _NatsSubscription(self, pattern, handler)
        nc = self._conn()
        for f in filters:
            sub.subs.append(
                await self._guard(nc.subscribe(self._pub(f), cb=sub.on_message), "refused")
            )
        self._subscriptions.add(sub)
        return sub

    async def history(
        self, pattern: str = "#", *, from_seq: int = 1, since: float | None = None
    ) -> list[LogEntry]:
        """The namespace stream read as a log (see :mod:`.nats_history`); ``since`` is Unix
        time, as the entries' ``at`` is."""
        check_history_request(pattern, from_seq, since)
        js, jsm = self._jsx()
        stored = []
        for f in nats_filters(pattern):
            stored += await self._guard(
                read_stream(js, jsm, self.stream, self._pub(f), from_seq=from_seq, since=since),
                "did not replay its stream",
            )
        stored.sort(key=lambda m: m.seq)
        return [
            LogEntry(m.seq, m.at, self._message_from(m.subject, m.headers, m.data, ""))
            for m in stored
        ]

    # -- request-reply (core NATS) -------------------------------------------------------------
    def _rpc(self, subject: str) -> str:
        """Requests live on ``labkit.ns.rpc.>``, a subject no stream captures: on a captured
        subject JetStream itself would answer every request with its publish acknowledgement."""
        return f"{self.root}.rpc.{subject}"

    async def respond(self, pattern: str, responder: Responder) -> Subscription:
        check_subject(pattern, pattern=True)
        nc = self._conn()
        answering = _NatsSubscription(self, pattern, _no_handler)
        prefix = f"{self.root}.rpc."

        async def on_request(msg: Msg) -> None:
            message = self._message_from(
                msg.subject.removeprefix(prefix), msg.headers, msg.data, ""
            )
            try:
                answer = await responder(message)
            except Exception as exc:  # no answer: the caller times out
                self._record(
                    "responder",
                    "responder.error",
                    id=message.id,
                    error=f"{type(exc).__name__}: {exc}",
                )
                return
            with contextlib.suppress(*_GONE):
                await nc.publish(msg.reply, encode_body(answer), headers={ID_HEADER: message.id})

        for f in nats_filters(pattern):
            # a queue group: several responders share the requests, one answers each
            sub = nc.subscribe(self._rpc(f), queue="responders", cb=on_request)
            answering.subs.append(await self._guard(sub, "refused a responder"))
        self._subscriptions.add(answering)
        return answering

    async def _ask(self, subject: str, data: bytes, headers: dict[str, str], rid: str) -> bytes:
        try:
            msg = await self._conn().request(
                self._rpc(subject),
                data,
                timeout=REQUEST_TIMEOUT_S * 60,  # the caller's own timeout ends the wait first
                headers={**headers, ID_HEADER: rid},
            )
        except nats.errors.NoRespondersError:
            raise NoResponders(subject) from None
        except nats.errors.TimeoutError:
            raise TimeoutError from None
        except _GONE as exc:
            raise self._unavailable("did not carry the request", exc) from None
        return msg.data

    async def depth(self, queue: str) -> int:
        spec = await self._spec(queue)
        _, jsm = self._jsx()
        total = 0
        for durable in self._durables(spec):
            info = await self._guard(jsm.consumer_info(self.stream, durable), "did not answer")
            total += info.num_pending or 0
        return total

    # -- dead letters ------------------------------------------------------------------------------
    async def _dead_letter(
        self, spec: QueueSpec, message: Message, reason: str, deliveries: int, seq: int
    ) -> None:
        if not spec.dead_letter:
            self._record("broker", "message.dropped", id=message.id, queue=spec.name, reason=reason)
            return
        js, _ = self._jsx()
        headers = {
            **message.headers,
            "x-death-reason": reason,
            "x-death-queue": spec.name,
            "x-death-count": str(deliveries),
            ID_HEADER: message.id,
            SUBJECT_HEADER: message.subject,
            DEAD_AT_HEADER: repr(self.timeline.clock.now()),
            # several brokers of a namespace all hear an advisory: one letter in the DLQ
            "Nats-Msg-Id": f"{spec.name}:{seq}:{message.id}",
        }
        ack = await self._guard(
            js.publish(self._dlq_subject(spec.name), message.body, headers=headers),
            "did not take a dead letter",
        )
        if ack.duplicate:
            return
        self._record(
            "broker",
            "message.dead_lettered",
            id=message.id,
            queue=spec.name,
            reason=reason,
            deliveries=deliveries,
        )

    async def _on_max_deliveries(self, msg: Msg) -> None:
        """JetStream gave up on a message (``max_deliver``): dead-letter it from the stream."""
        try:
            advisory = json.loads(msg.data)
            match = _DURABLE.match(str(advisory.get("consumer", "")))
            if match is None or advisory.get("stream") != self.stream:
                return
            spec = self._specs.get(match["queue"]) or await self._load_spec(match["queue"])
            if spec is None:
                return
            seq = int(advisory["stream_seq"])
            _, jsm = self._jsx()
            raw = await jsm.get_msg(self.stream, seq)
            message = self._message_from(
                raw.subject or "", raw.headers, raw.data, f"{self.stream}-{seq}"
            )
            await self._dead_letter(
                spec, message, "delivery_limit", int(advisory.get("deliveries", 0)), seq
            )
        except Exception as exc:  # a callback: record, never raise into nats-py
            self._record("broker", "broker.error", error=f"{type(exc).__name__}: {exc}")

    async def _letters(self, queue: str) -> list[tuple[int, DeadLetter, int]]:
        """The DLQ stream's letters of ``queue``: (sequence, letter, times replayed before)."""
        _, jsm = self._jsx()
        subject = self._dlq_subject(queue)
        letters: list[tuple[int, DeadLetter, int]] = []
        seq = 1
        while True:
            try:
                raw = await jsm.get_msg(self.dlq_stream, seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return letters
            except _GONE as exc:
                raise self._unavailable("did not answer", exc) from None
            assert raw.seq is not None
            headers = dict(raw.headers or {})
            message = self._message_from(subject, headers, raw.data, f"{self.dlq_stream}-{raw.seq}")
            try:
                at = float(headers.get(DEAD_AT_HEADER, "nan"))
            except ValueError:
                at = float("nan")
            letter = DeadLetter(
                message,
                headers.get("x-death-queue", queue),
                headers.get("x-death-reason", "rejected"),
                int(headers.get("x-death-count", "0") or 0),
                at,
            )
            replays = headers.get(REPLAYS_HEADER, "0")
            letters.append((raw.seq, letter, int(replays) if replays.isdigit() else 0))
            seq = raw.seq + 1

    async def dead_letters(self, queue: str) -> list[DeadLetter]:
        await self._spec(queue)
        return [letter for _, letter, _ in await self._letters(queue)]

    async def replay_dead_letters(self, queue: str) -> int:
        await self._spec(queue)
        js, jsm = self._jsx()
        letters = await self._letters(queue)
        for seq, letter, replays in letters:
            message = letter.message
            headers = {
                **message.headers,
                ID_HEADER: message.id,
                SUBJECT_HEADER: message.subject,
                REPLAYS_HEADER: str(replays + 1),
            }
            # into this queue only, then off the DLQ: a crash in between duplicates
            await self._guard(
                js.publish(self._replay_subject(queue), message.body, headers=headers),
                "did not take a replayed message",
            )
            await self._guard(jsm.delete_msg(self.dlq_stream, seq), "did not delete a letter")
            self._record(
                "operator", "message.replayed", id=message.id, queue=queue, reason=letter.reason
            )
        if letters:
            with contextlib.suppress(*_GONE):
                await self._conn().publish(f"{self.root}.ctl.replayed", queue.encode())
        return len(letters)

    async def _on_replayed(self, msg: Msg) -> None:
        """Another broker (or this one) replayed a queue's letters: its consumers look now."""
        queue = msg.data.decode(errors="replace")
        for consumer in list(self._consumers):
            if consumer.spec.name == queue:
                consumer.replay_waiting()
