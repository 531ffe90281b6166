"""One small messaging protocol, three backends (memory, NATS, RabbitMQ).

Words, as the lab uses them:

* a **subject** names what a message is about (``orders.created``); publishers send to a
  subject, never to a queue. Dots separate tokens.
* a **queue** collects the messages whose subject matches one of its **bindings**
  (``orders.*`` matches one token, ``orders.#`` or ``orders.>`` any number). Consumers of one
  queue *compete*: each message goes to one of them.
* a **delivery** is one attempt to hand a message to a consumer. The consumer must
  :meth:`~Delivery.ack` it (done), :meth:`~Delivery.nack` it (try again later) or
  :meth:`~Delivery.reject` it (never: dead-letter it). An unacknowledged delivery whose consumer
  crashes, or whose ack wait runs out, comes back, flagged ``redelivered``.
* a **dead-letter queue** (``<queue>.dlq``) keeps what could not be processed, with a death
  record saying why: ``rejected``, ``delivery_limit`` or ``expired``.
* a **subscription** (core pub/sub) receives what is published while it is there, and nothing
  that was published while it was away.
* a **request** expects one answer: :meth:`Broker.request` waits for a **responder**
  (:meth:`Broker.respond`) on the subject, like an HTTP call that goes through the broker;
  with nobody listening it fails at once, with a slow responder it times out.
* the **history** of a broker that keeps a log (memory, a JetStream stream) can be read again
  from a sequence number or a time.

Every backend implements :class:`Broker`; the contract tests in ``tests/contract`` run the
same checks against each one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from labkit.core.errors import BadParameter, LabError
from labkit.core.timeline import Timeline

BROKERS = ("memory", "nats", "rabbitmq")
DEATH_REASONS = ("rejected", "delivery_limit", "expired")


class BrokerUnavailable(LabError):
    """The chosen broker does not answer; the message says where it looked."""


class NoResponders(LabError):
    """A request found no service listening on its subject (NATS says so at once)."""


class RequestTimeout(LabError):
    """A request got no reply in time: the responder is slow, stuck or failed."""


class BadMessage(LabError):
    """A message body that is not what the consumer expects (e.g. not JSON)."""


def hide_password(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def check_connection_settings(namespace: str, connect_timeout: float) -> None:
    """What every real backend checks before connecting, refused by name."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", namespace):
        raise BadParameter("namespace", namespace, "must be letters, digits, _ or -")
    if connect_timeout <= 0:
        raise BadParameter("connect_timeout", connect_timeout, "must be above 0")


def check_history_request(pattern: str, from_seq: int, since: float | None) -> None:
    """Refuse a bad replay request by name, before any backend work."""
    check_subject(pattern, pattern=True)
    if isinstance(from_seq, bool) or not isinstance(from_seq, int) or from_seq < 1:
        raise BadParameter("from_seq", from_seq, "must be a whole number, at least 1")
    if since is not None and not isinstance(since, int | float):
        raise BadParameter("since", since, "must be a time in seconds")


def new_message_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class QueueSpec:
    """A queue: its bindings, and what happens to messages that cannot be processed."""

    name: str
    bindings: tuple[str, ...]
    max_deliveries: int | None = None
    dead_letter: bool = True
    ack_wait_s: float = 30.0
    ttl_s: float | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise BadParameter("queue", self.name, "must be letters, digits, _ or -")
        if not self.bindings:
            raise BadParameter("bindings", self.bindings, "must name at least one subject")
        for pattern in self.bindings:
            check_subject(pattern, pattern=True)
        if self.max_deliveries is not None and self.max_deliveries < 1:
            raise BadParameter("max_deliveries", self.max_deliveries, "must be at least 1")
        if self.ack_wait_s <= 0:
            raise BadParameter("ack_wait_s", self.ack_wait_s, "must be above 0")
        if self.ttl_s is not None and self.ttl_s <= 0:
            raise BadParameter("ttl_s", self.ttl_s, "must be above 0")

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"


def check_subject(subject: str, *, pattern: bool = False) -> str:
    """Refuse empty tokens and (outside patterns) wildcards, naming the bad subject."""
    tokens = subject.split(".")
    if not subject or any(not t for t in tokens):
        raise BadParameter("subject", subject, "must be dot-separated, non-empty tokens")
    wild = {"*", "#", ">"}
    if not pattern and any(t in wild for t in tokens):
        raise BadParameter("subject", subject, "cannot contain wildcards when publishing")
    if not all(re.fullmatch(r"[A-Za-z0-9_*#>-]+", t) for t in tokens):
        raise BadParameter("subject", subject, "tokens must be letters, digits, _ or -")
    return subject


@lru_cache(maxsize=512)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for token in pattern.split("."):
        if token == "*":
            parts.append(r"[^.]+")
        elif token in ("#", ">"):
            parts.append(r".*" if token == "#" else r".+")
        else:
            parts.append(re.escape(token))
    regex = r"\.".join(parts)
    regex = regex.replace(r"\..*", r"(\..*)?")  # AMQP '#' also matches zero tokens
    return re.compile(f"^{regex}$")


def subject_matches(pattern: str, subject: str) -> bool:
    """Topic matching in both dialects: ``*`` one token; ``#`` (AMQP) or ``>`` (NATS) the rest.

    >>> subject_matches("orders.*", "orders.created"), subject_matches("orders.>", "orders")
    (True, False)
    """
    return bool(_pattern_regex(pattern).match(subject))


@dataclass(frozen=True, slots=True)
class Message:
    """What a publisher sent: an id, a subject, a body and headers."""

    id: str
    subject: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON, or :class:`BadMessage` naming the problem."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            preview = self.body[:40].decode("utf-8", "replace")
            raise BadMessage(
                f"message {self.id} is not JSON ({exc.__class__.__name__}): {preview!r}"
            ) from exc


def encode_body(body: bytes | str | Mapping[str, Any] | list[Any]) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class DeadLetter:
    """A message in a dead-letter queue, with its death record."""

    message: Message
    queue: str
    reason: str
    deliveries: int
    at: float


@dataclass(frozen=True)
class LogEntry:
    """One message as a broker's log keeps it: its sequence number in the log, when the broker
    stored it (the broker's clock: the run's clock in memory, Unix time on NATS), the message."""

    seq: int
    at: float
    message: Message


class Delivery(ABC):
    """One attempt to hand a message to a consumer; settle it exactly once."""

    message: Message
    queue: str
    delivery_count: int
    settled: bool = False

    @property
    def redelivered(self) -> bool:
        return self.delivery_count > 1

    def _note(self, timeline: Timeline, consumer: str, what: str, **extra: Any) -> None:
        """Record that this delivery was settled (``message.acked``, ``nacked`` or
        ``rejected``), with the same fields on every backend: the accounting reads them."""
        timeline.record(
            consumer,
            f"message.{what}",
            id=self.message.id,
            queue=self.queue,
            delivery=self.delivery_count,
            **extra,
        )

    @abstractmethod
    async def ack(self) -> None: ...

    @abstractmethod
    async def nack(self, *, requeue: bool = True) -> None: ...

    @abstractmethod
    async def reject(self, reason: str = "rejected") -> None:
        """Never deliver it again: dead-letter it with ``reason`` (the queue keeps a DLQ)."""


Handler = Callable[[Delivery], Awaitable[None]]

#: A responder turns a request into the body of its reply.
Responder = Callable[[Message], Awaitable[bytes | str | Mapping[str, Any] | list[Any]]]

REQUEST_ID_HEADER = "x-labkit-request-id"  # on a reply: the id of the request it answers


def check_request(subject: str, timeout_s: float) -> None:
    check_subject(subject)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0:
        raise BadParameter("timeout_s", timeout_s, "must be a number of seconds above 0")


class Consumer(ABC):
    """A running consumer of one queue."""

    @abstractmethod
    async def stop(self, *, crash: bool = False) -> None:
        """Stop consuming. ``crash=True`` abandons unsettled deliveries (they come back)."""


class Subscription(ABC):
    @abstractmethod
    async def unsubscribe(self) -> None: ...


class Broker(ABC):
    """The messaging protocol every backend implements."""

    name: str = "broker"

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:  # noqa: B027 (optional: the memory broker needs no connection)
        """Connect to the broker."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def declare(self, spec: QueueSpec) -> None:
        """Create the queue (and its DLQ) if needed; idempotent for the same spec."""

    @abstractmethod
    async def publish(
        self,
        subject: str,
        body: bytes | str | Mapping[str, Any] | list[Any],
        *,
        headers: Mapping[str, str] | None = None,
        message_id: str | None = None,
    ) -> str:
        """Send a message; returns its id once the broker has it (publisher confirm)."""

    @abstractmethod
    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 1) -> Consumer:
        """Call ``handler`` for each delivery, at most ``prefetch`` unsettled at once."""

    @abstractmethod
    async def subscribe(
        self, pattern: str, handler: Callable[[Message], Awaitable[None]]
    ) -> Subscription:
        """Core pub/sub: receive what matches ``pattern`` from now on, while subscribed."""

    @abstractmethod
    async def depth(self, queue: str) -> int:
        """Messages waiting in ``queue`` (not counting ones handed out and not yet settled)."""

    @abstractmethod
    async def dead_letters(self, queue: str) -> list[DeadLetter]:
        """What ``queue``'s DLQ holds, oldest first, with why each message died."""

    @abstractmethod
    async def replay_dead_letters(self, queue: str) -> int:
        """Move every dead letter of ``queue`` back into it; returns how many."""

    timeline: Timeline

    async def request(
        self,
        subject: str,
        body: bytes | str | Mapping[str, Any] | list[Any],
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 2.0,
    ) -> Message:
        """Request-reply: send ``body`` to whichever responder listens on ``subject`` and wait
        for its answer. One responder answers even when several listen (they share the work,
        like a NATS queue group or competing consumers of one RabbitMQ queue). Raises
        :class:`NoResponders` when nobody listens and :class:`RequestTimeout` when no answer
        comes within ``timeout_s``. Requests travel apart from published events: a queue bound
        to the same subject never sees them."""
        check_request(subject, timeout_s)
        rid = self._new_request_id()
        record = self.timeline.record
        record("requester", "request.sent", id=rid, subject=subject)
        try:
            async with asyncio.timeout(timeout_s):
                answer = await self._ask(subject, encode_body(body), dict(headers or {}), rid)
        except NoResponders:
            record("requester", "request.no_responders", id=rid, subject=subject)
            raise NoResponders(f"no responder listens on {subject!r} ({self.name})") from None
        except TimeoutError:
            record("requester", "request.timed_out", id=rid, subject=subject)
            raise RequestTimeout(
                f"no reply on {subject!r} within {timeout_s:g} s (request {rid})"
            ) from None
        record("requester", "reply.received", id=rid, bytes=len(answer))
        return Message(self._new_request_id(), f"_INBOX.{rid}", answer, {REQUEST_ID_HEADER: rid})

    def _new_request_id(self) -> str:
        return new_message_id()

    @abstractmethod
    async def _ask(self, subject: str, data: bytes, headers: dict[str, str], rid: str) -> bytes:
        """The backend's half of :meth:`request`: hand the request to one responder and return
        the body of its answer; raise :class:`NoResponders` when nobody listens. The wait is
        bounded by the caller (a timeout cancels this)."""

    @abstractmethod
    async def respond(self, pattern: str, responder: Responder) -> Subscription:
        """Answer every request on subjects matching ``pattern`` with ``responder``'s result.
        A responder that raises sends no answer: its caller times out, as over a network."""

    async def history(
        self, pattern: str = "#", *, from_seq: int = 1, since: float | None = None
    ) -> list[LogEntry]:
        """Replay from the log: every message published on a subject matching ``pattern``,
        from sequence ``from_seq`` on, and (if given) stored at or after ``since``, oldest first.

        Acknowledging a message does not remove it from a log, so a new reader can start
        wherever it likes. A broker that keeps no log (RabbitMQ's queues forget what was acked)
        says so instead."""
        check_history_request(pattern, from_seq, since)
        raise LabError(
            f"the {self.name} backend keeps no log of published messages: an acked message is "
            "gone, so there is nothing to replay from a sequence or a time (the memory and nats "
            "backends keep one)"
        )


class NetworkBroker(Broker):
    """What the real backends share: a namespace that keeps runs apart, a URL taken from the
    environment unless given, a connect timeout, and whether to delete what they made."""

    #: the environment variable that names the server, and the URL used without it
    url_variable: str = ""
    default_url: str = ""
    default_connect_timeout: float = 2.0

    def __init__(
        self,
        *,
        timeline: Timeline | None = None,
        namespace: str = "lab",
        url: str | None = None,
        connect_timeout: float | None = None,
        cleanup: bool = True,
    ) -> None:
        if connect_timeout is None:
            connect_timeout = self.default_connect_timeout
        check_connection_settings(namespace, connect_timeout)
        self.timeline = timeline if timeline is not None else Timeline()  # empty = falsy
        self.namespace = namespace
        self.url = url or os.environ.get(self.url_variable) or self.default_url
        self.shown_url = hide_password(self.url)
        self.connect_timeout = connect_timeout
        self.cleanup = cleanup
        self._setup()

    def _setup(self) -> None:
        """The backend's own state (names derived from the namespace, connections to come)."""

    def _record(self, actor: str, kind: str, **fields: Any) -> None:
        self.timeline.record(actor, kind, **fields)
