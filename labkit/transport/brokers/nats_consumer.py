"""The NATS backend's consumers: pull requests against durable JetStream consumers, the
deliveries they produce, and core NATS subscriptions (see
:mod:`labkit.transport.brokers.nats` for how the protocol maps onto NATS)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from labkit.transport.brokers.base import (
    BrokerUnavailable,
    Consumer,
    Delivery,
    Handler,
    Message,
    QueueSpec,
    Subscription,
)
from labkit.transport.brokers.nats_names import (
    _GONE,
    LONG_POLL_S,
    REPLAY_CHECK_S,
    REQUEST_TIMEOUT_S,
    SHORT_POLL_S,
    STOP_GRACE_S,
    _first_line,
)

if TYPE_CHECKING:
    from labkit.transport.brokers.nats import NatsBroker


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
        self._note(self.consumer.broker.timeline, self.consumer.name, "acked")

    async def nack(self, *, requeue: bool = True) -> None:
        if not self._settle("nack"):
            return
        broker = self.consumer.broker
        self._note(broker.timeline, self.consumer.name, "nacked", requeue=requeue)
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
        self._note(self.consumer.broker.timeline, self.consumer.name, "rejected", reason=reason)
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
