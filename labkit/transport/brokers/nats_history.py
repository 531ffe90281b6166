"""Reading a JetStream stream as a log, from a sequence number or a time.

A stream keeps every message it captured, acknowledged or not, until its limits drop it. To
replay, the lab creates a short-lived **ephemeral** pull consumer on the stream with a
*deliver policy*: ``by_start_sequence`` (``opt_start_seq``) or ``by_start_time``
(``opt_start_time``), no acks (``ack_policy=none``: reading a log does not consume it), and a
filter subject. It asks the consumer how many messages are pending, fetches exactly that many,
and deletes it. The durable consumers that feed the lab's queues are not touched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from nats.js import JetStreamContext, JetStreamManager
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

BATCH = 256


@dataclass(frozen=True)
class StoredMessage:
    seq: int
    at: float  # Unix time at which the server stored it
    subject: str
    headers: dict[str, str]
    data: bytes


async def read_stream(
    js: JetStreamContext,
    jsm: JetStreamManager,
    stream: str,
    filter_subject: str,
    *,
    from_seq: int,
    since: float | None,
    timeout: float = 5.0,
) -> list[StoredMessage]:
    """Every message of ``stream`` on ``filter_subject`` from ``from_seq`` (and ``since``)."""
    if since is not None:
        # the server keeps nanoseconds, Python datetimes microseconds (rounded): ask from one
        # microsecond earlier, then keep what is at or after ``since`` as the entries report it
        start = dt.datetime.fromtimestamp(since - 1e-6, tz=dt.UTC)
        policy = {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": start}
    else:
        policy = {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": from_seq}
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        filter_subject=filter_subject,
        inactive_threshold=30.0,  # the server removes it even if this process dies first
        **policy,
    )
    info = await jsm.add_consumer(stream, config=config)
    sub = await js.pull_subscribe_bind(stream=stream, name=info.name)
    out: list[StoredMessage] = []
    try:
        left = info.num_pending or 0
        while left > 0:
            for msg in await sub.fetch(min(BATCH, left), timeout=timeout):
                meta = msg.metadata
                left -= 1
                at = meta.timestamp.timestamp()
                if meta.sequence.stream < from_seq or (since is not None and at < since):
                    continue
                out.append(
                    StoredMessage(
                        meta.sequence.stream,
                        at,
                        msg.subject,
                        dict(msg.headers or {}),
                        msg.data,
                    )
                )
    finally:
        await sub.unsubscribe()  # not drain(): after a fetch it can block 30 s (STACK-NOTES)
        await jsm.delete_consumer(stream, info.name)
    return out
