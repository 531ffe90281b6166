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

import asyncio
import contextlib
import itertools
import json
import os
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
from labkit.core.timeline import Timeline
from labkit.transport.brokers.base import (
    Broker,
    BrokerUnavailable,
    Consumer,
    DeadLetter,
    Delivery,
    Handler,
    LogEntry,
    Message,
    QueueSpec,
    Subscription,
    check_connection_settings,
    check_history_request,
    check_subject,
    encode_body,
    new_message_id,
    subject_matches,
)
from labkit.transport.brokers.nats_history import read_stream

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
ID_HEADER = "x-labkit-id"  # the protocol's message id (Nats-Msg-Id would deduplicate it)
SUBJECT_HEADER = "x-labkit-subject"  # the original subject of a dead or replayed message
DEAD_AT_HEADER = "x-labkit-dead-at"  # when it was dead-lettered, on the timeline's clock
REPLAYS_HEADER = "x-labkit-replays"  # how many times it came back from the DLQ
_INTERNAL_HEADERS = ("x-labkit-", "nats-")

LONG_POLL_S = 1.0  # a pull request waits this long for messages (then the server says 408)
SHORT_POLL_S = 0.2  # ... or this long while other filters of the queue wait for a turn
REPLAY_CHECK_S = 1.0  # how often a consumer looks for replayed dead letters unprompted
REQUEST_TIMEOUT_S = 5.0  # JetStream API calls and publish acknowledgements
STOP_GRACE_S = 5.0  # a graceful stop waits this long for running handlers
_DURABLE = re.compile(r"^(?P<queue>[A-Za-z0-9_-]+)-(?:f\d+|replay)$")
_SPEC_KEY = "labkit_queue"

_GONE = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    ConnectionError,
)


# -- subjects ----------------------------------------------------------------------------------
def nats_filters(pattern: str, *, what: str = "pattern") -> list[str]:
    """The NATS subject filters that match what the protocol's ``pattern`` matches.

    >>> nats_filters("orders.*"), nats_filters("orders.#"), nats_filters("#")
    (['orders.*'], ['orders', 'orders.>'], ['>'])
    """
    tokens = pattern.split(".")
    for i, token in enumerate(tokens[:-1]):
        if token in ("#", ">"):
            raise BadParameter(
                what,
                pattern,
                f"token {i + 1} is {token!r}: NATS matches several tokens only at the end "
                "(use '*' for one token, or put '>' last)",
            )
    if tokens[-1] == "#":  # AMQP: zero or more tokens; NATS '>' is one or more
        head = tokens[:-1]
        return [">"] if not head else [".".join(head), ".".join([*head, ">"])]
    return [pattern]


def _covers(general: str, specific: str) -> bool:
    """Does every subject matching ``specific`` also match ``general``?"""
    g, s = general.split("."), specific.split(".")
    for i, gt in enumerate(g):
        if gt == ">":
            return i < len(s)
        if i >= len(s) or s[i] == ">":
            return False
        if gt != "*" and gt != s[i]:
            return False
    return len(s) == len(g)


def _overlap(a: str, b: str) -> bool:
    """Is there a subject that matches both filters?"""
    ta, tb = a.split("."), b.split(".")
    for x, y in zip(ta, tb, strict=False):
        if ">" in (x, y):
            return True
        if x != y and "*" not in (x, y):
            return False
    return len(ta) == len(tb)


def queue_filters(bindings: tuple[str, ...]) -> list[str]:
    """One filter subject per consumer of a queue: covered ones merged, overlaps refused."""
    kept: list[str] = []
    for binding in bindings:
        for f in nats_filters(binding, what="bindings"):
            if any(_covers(k, f) for k in kept):
                continue
            kept = [k for k in kept if not _covers(f, k)]
            kept.append(f)
    for a, b in itertools.combinations(kept, 2):
        if _overlap(a, b):
            raise BadParameter(
                "bindings",
                bindings,
                f"{a!r} and {b!r} overlap: on NATS each is a consumer of its own and a "
                "message matching both would be delivered twice",
            )
    return kept


def _spec_json(spec: QueueSpec) -> str:
    return json.dumps(
        {
            _SPEC_KEY: {
                "name": spec.name,
                "bindings": list(spec.bindings),
                "max_deliveries": spec.max_deliveries,
                "dead_letter": spec.dead_letter,
                "ack_wait_s": spec.ack_wait_s,
                "ttl_s": spec.ttl_s,
            }
        },
        sort_keys=True,
    )


def _spec_from_json(text: str | None) -> QueueSpec | None:
    try:
        data = json.loads(text or "")[_SPEC_KEY]
        return QueueSpec(**{**data, "bindings": tuple(data["bindings"])})
    except (ValueError, KeyError, TypeError):
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- deliveries and consumers ------------------------------------------------------------------
class _NatsDelivery(Delivery):
    def __init__(
        self, consumer: _NatsConsumer, msg: Msg, message: Message, delivery_count: int
    ) -> None:
        self.consumer, self.msg, self.message = consumer, msg, message
        self.queue = consumer.spec.name
        self.delivery_count = delivery_count
        self.stream_seq = msg.metadata.sequence.stream
        self.settled = False
        self.expired = False  # this client's ack-wait timer ran out: the server redelivers it
        self.timer: asyncio.TimerHandle | None = None

    def _settle(self, what: str) -> bool:
        if self.settled:
            return False
        self.settled = True
        if self.timer is not None:
            self.timer.cancel()
        if self.expired:
            self.consumer.broker._record(
                "consumer", f"message.late_{what}", id=self.message.id, queue=self.queue
            )
            return False
        return True

    async def ack(self) -> None:
        if not self._settle("ack"):
            return
        try:
            await self.consumer.broker._guard(self.msg.ack(), "did not take an ack")
        finally:
            self.consumer._release(self)
        self.consumer.broker._record(
            self.consumer.name,
            "message.acked",
            id=self.message.id,
            queue=self.queue,
            delivery=self.delivery_count,
        )

    async def nack(self, *, requeue: bool = True) -> None:
        if not self._settle("nack"):
            return
        broker = self.consumer.broker
        broker._record(
            self.consumer.name,
            "message.nacked",
            id=self.message.id,
            queue=self.queue,
            requeue=requeue,
            delivery=self.delivery_count,
        )
        try:
            if requeue:
                await broker._guard(self.msg.nak(), "did not take a nak")
            else:
                await self._dead_letter("rejected")
        finally:
            self.consumer._release(self)

    async def reject(self, reason: str = "rejected") -> None:
        if not self._settle("reject"):
            return
        self.consumer.broker._record(
            self.consumer.name,
            "message.rejected",
            id=self.message.id,
            queue=self.queue,
            reason=reason,
        )
        try:
            await self._dead_letter(reason)
        finally:
            self.consumer._release(self)

    async def _dead_letter(self, reason: str) -> None:
        # the dead letter first, then +TERM: a crash in between duplicates, never loses
        broker = self.consumer.broker
        await broker._dead_letter(
            self.consumer.spec, self.message, reason, self.delivery_count, self.stream_seq
        )
        await broker._guard(self.msg.term(), "did not take a term")


class _Pull:
    """One durable consumer of a queue, as seen by one running consumer: its pull state."""

    def __init__(self, stream: str, durable: str, inbox: str, *, replay: bool) -> None:
        self.durable, self.inbox, self.replay = durable, inbox, replay
        self.next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.outstanding = 0  # messages asked for by the open pull request, not yet here
        self.blocked = False  # the last request failed (consumer deleted ...): ask slowly
        self.got = 0  # messages the open (or last) request brought
        self.probe = False  # the open request is a no_wait look at a filter taking turns
        self.asked_at = float("-inf")


class _NatsConsumer(Consumer):
    def __init__(
        self, broker: NatsBroker, spec: QueueSpec, handler: Handler, prefetch: int, name: str
    ) -> None:
        self.broker, self.spec, self.handler, self.prefetch = broker, spec, handler, prefetch
        self.name = name
        self.active = True
        self.unsettled: dict[_NatsDelivery, None] = {}  # insertion-ordered set
        self.tasks: set[asyncio.Task[None]] = set()
        self.pulls: list[_Pull] = []
        self._wake = asyncio.Event()
        self._replay_due = True
        self._last_replay_check = 0.0
        self._turn = 0
        self._empty_probes = 0  # no_wait looks in a row that found nothing
        self._subs: list[NatsSubscription] = []
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        nc = self.broker._conn()
        inbox = nc.new_inbox()
        names = self.broker._durables(self.spec)
        self.pulls = [
            _Pull(self.broker.stream, d, f"{inbox}.{i}", replay=d.endswith("-replay"))
            for i, d in enumerate(names)
        ]
        for pull in self.pulls:  # (a delivery carries its own subject, not the inbox's)
            self._subs.append(await nc.subscribe(pull.inbox, cb=self._receiver(pull)))
        self._loop_task = asyncio.ensure_future(self._run())

    @property
    def _primaries(self) -> list[_Pull]:
        return [p for p in self.pulls if not p.replay]

    def replay_waiting(self) -> None:
        self._replay_due = True
        self._wake.set()

    # -- asking for messages -------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.active:
            self._wake.clear()
            try:
                await self._schedule(loop.time())
            except _GONE as exc:
                self.broker._record(
                    self.name, "consumer.error", queue=self.spec.name, error=_first_line(exc)
                )
                return
            try:
                async with asyncio.timeout(REPLAY_CHECK_S):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _schedule(self, now: float) -> None:
        credit = self.prefetch - len(self.unsettled) - sum(p.outstanding for p in self.pulls)
        if credit <= 0:
            return
        if now - self._last_replay_check >= REPLAY_CHECK_S:
            self._replay_due = True
        replay = next(p for p in self.pulls if p.replay)
        if self._replay_due and replay.outstanding == 0:
            # a quick look (no_wait): the server answers at once, with messages or a 404
            self._replay_due = False
            self._last_replay_check = now
            await self._pull(replay, credit, expires=None)
            return
        primaries = self._primaries
        rotated = primaries[self._turn :] + primaries[: self._turn]
        idle = [
            p
            for p in rotated
            if p.outstanding == 0 and not (p.blocked and now - p.asked_at < LONG_POLL_S)
        ]
        if not idle:
            return
        n = min(len(idle), credit)
        if n == len(idle):  # a slot for every filter: each waits for its own messages
            expires: float | None = LONG_POLL_S
        elif self._empty_probes < len(primaries):  # too few slots: look at each in turn,
            expires = None  # at once (no_wait), until a whole round found nothing,
        else:
            expires, self._empty_probes = SHORT_POLL_S, 0  # then wait a little on one
        share, extra = divmod(credit, n)
        self._turn = (self._turn + n) % len(primaries)
        for j, pull in enumerate(idle[:n]):
            await self._pull(pull, share + (1 if j < extra else 0), expires=expires)

    async def _pull(self, pull: _Pull, batch: int, *, expires: float | None) -> None:
        pull.asked_at = asyncio.get_running_loop().time()
        request: dict[str, Any] = {"batch": batch}
        if expires is None:
            request["no_wait"] = True  # (with "expires" too, 2.9 would wait after all)
        else:
            request["expires"] = int(expires * 1e9)
        pull.outstanding, pull.got, pull.probe = batch, 0, expires is None and not pull.replay
        await self.broker._conn().publish(
            pull.next_subject, json.dumps(request).encode(), reply=pull.inbox
        )

    # -- receiving -----------------------------------------------------------------------------
    def _receiver(self, pull: _Pull) -> Callable[[Msg], Awaitable[None]]:
        async def on_msg(msg: Msg) -> None:
            try:
                await self._on_msg(pull, msg)
            except Exception as exc:  # a callback: record, never raise into nats-py
                self.broker._record(
                    self.name, "consumer.error", queue=self.spec.name, error=_first_line(exc)
                )

        return on_msg

    async def _on_msg(self, pull: _Pull, msg: Msg) -> None:
        if not (msg.reply or "").startswith("$JS.ACK."):
            # a status: 404 no messages, 408 request expired, 409/503 ...: the request is over
            status = (msg.headers or {}).get("Status", "")
            if status == "100":  # a heartbeat
                return
            pull.outstanding = 0
            if pull.probe:
                self._empty_probes = self._empty_probes + 1 if pull.got == 0 else 0
            if status not in ("404", "408"):  # the consumer is gone, or never was: back off
                description = (msg.headers or {}).get("Description", "")
                if not pull.blocked:
                    self.broker._record(
                        self.name,
                        "consumer.error",
                        queue=self.spec.name,
                        error=f"{pull.durable}: {status} {description}".strip(),
                    )
                pull.blocked = True
            else:
                pull.blocked = False
            self._wake.set()
            return
        pull.blocked = False
        pull.got += 1
        pull.outstanding = max(0, pull.outstanding - 1)
        if pull.outstanding == 0:
            if pull.probe:
                self._empty_probes = 0
            self._wake.set()
        if not self.active:  # arrived while stopping: give it straight back
            with contextlib.suppress(*_GONE):
                await msg.nak()
            return
        meta = msg.metadata
        message = self.broker._message_from(
            msg.subject, msg.headers, msg.data, f"{meta.stream}-{meta.sequence.stream}"
        )
        delivery = _NatsDelivery(self, msg, message, meta.num_delivered)
        self.unsettled[delivery] = None
        delivery.timer = asyncio.get_running_loop().call_later(
            self.spec.ack_wait_s, self._ack_wait_expired, delivery
        )
        self.broker._record(
            self.name,
            "message.delivered",
            id=message.id,
            queue=self.spec.name,
            delivery=delivery.delivery_count,
            redelivered=delivery.redelivered,
        )
        task = asyncio.ensure_future(self._handle(delivery))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, delivery: _NatsDelivery) -> None:
        try:
            await self.handler(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.broker._record(
                self.name,
                "consumer.error",
                id=delivery.message.id,
                error=f"{type(exc).__name__}: {exc}",
            )
            if not delivery.settled:
                with contextlib.suppress(BrokerUnavailable):
                    await delivery.nack(requeue=True)

    def _ack_wait_expired(self, delivery: _NatsDelivery) -> None:
        if delivery.settled or delivery.expired:
            return
        delivery.expired = True
        self._release(delivery)
        self.broker._record(
            "broker", "message.ack_timeout", id=delivery.message.id, queue=self.spec.name
        )

    def _release(self, delivery: _NatsDelivery) -> None:
        self.unsettled.pop(delivery, None)
        self._wake.set()

    # -- stopping ------------------------------------------------------------------------------
    async def stop(self, *, crash: bool = False) -> None:
        if not self.active:
            return
        self.active = False
        self.broker._consumers.discard(self)
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if crash:
            self.broker._record(
                self.name, "consumer.crashed", queue=self.spec.name, in_flight=len(self.unsettled)
            )
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        # Unsubscribe, round trip, and nak whatever was already on its way: the server drops
        # the open pull requests of an inbox nobody listens to.
        for sub in self._subs:
            with contextlib.suppress(*_GONE, nats.errors.BadSubscriptionError, TimeoutError):
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    await sub.drain()
        if crash:
            for delivery in list(self.unsettled):
                delivery.settled = True
                if delivery.timer is not None:
                    delivery.timer.cancel()
                with contextlib.suppress(*_GONE):
                    await delivery.msg.nak()
            self.unsettled.clear()
        elif self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class _NatsSubscription(Subscription):
    def __init__(
        self, broker: NatsBroker, pattern: str, handler: Callable[[Message], Awaitable[None]]
    ) -> None:
        self.broker, self.pattern, self.handler = broker, pattern, handler
        self.subs: list[NatsSubscription] = []

    async def on_message(self, msg: Msg) -> None:
        message = self.broker._message_from(msg.subject, msg.headers, msg.data, "")
        self.broker._record("subscriber", "message.received", id=message.id, pattern=self.pattern)
        try:
            await self.handler(message)
        except Exception as exc:
            self.broker._record(
                "subscriber",
                "subscriber.error",
                id=message.id,
                pattern=self.pattern,
                error=f"{type(exc).__name__}: {exc}",
            )

    async def unsubscribe(self) -> None:
        self.broker._subscriptions.discard(self)
        subs, self.subs = self.subs, []
        for sub in subs:
            with contextlib.suppress(*_GONE, nats.errors.BadSubscriptionError):
                await sub.unsubscribe()


# -- the broker --------------------------------------------------------------------------------
class NatsBroker(Broker):
    """The messaging protocol on NATS JetStream (see the module docstring for the mapping)."""

    name = "nats"

    def __init__(
        self,
        *,
        timeline: Timeline | None = None,
        namespace: str = "lab",
        url: str | None = None,
        connect_timeout: float = 0.8,
        cleanup: bool = True,
    ) -> None:
        check_connection_settings(namespace, connect_timeout)
        self.timeline = timeline if timeline is not None else Timeline()  # empty = falsy
        self.namespace = namespace
        self.url = url or os.environ.get("LABKIT_NATS_URL") or DEFAULT_NATS_URL
        self.connect_timeout = connect_timeout
        self.cleanup = cleanup
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
    def _record(self, actor: str, kind: str, **fields: Any) -> None:
        self.timeline.record(actor, kind, **fields)

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
