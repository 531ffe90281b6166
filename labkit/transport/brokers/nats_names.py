"""Names and settings of the NATS backend: how the protocol's subjects, patterns and queue
specs are spelled on NATS and JetStream (see :mod:`labkit.transport.brokers.nats`)."""

from __future__ import annotations

import itertools
import json
import re

import nats
import nats.errors
import nats.js.errors

from labkit.core.errors import BadParameter
from labkit.transport.brokers.base import (
    QueueSpec,
)

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
