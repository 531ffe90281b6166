"""Messaging backends behind one protocol: ``memory`` (default), ``nats`` and ``rabbitmq``.

``LABKIT_BROKER`` picks the default; ``LABKIT_NATS_URL`` and ``LABKIT_AMQP_URL`` say where the
real brokers are. A broker that does not answer raises :class:`BrokerUnavailable` with one line
that names the address, and the faces offer the memory backend instead.
"""

from __future__ import annotations

import os

from labkit.core.errors import UnknownName
from labkit.core.timeline import Timeline
from labkit.transport.brokers.base import (
    BROKERS,
    BadMessage,
    Broker,
    BrokerUnavailable,
    Consumer,
    DeadLetter,
    Delivery,
    LogEntry,
    Message,
    NoResponders,
    QueueSpec,
    RequestTimeout,
    Subscription,
    subject_matches,
)

__all__ = [
    "BROKERS",
    "BadMessage",
    "Broker",
    "BrokerUnavailable",
    "Consumer",
    "DeadLetter",
    "Delivery",
    "LogEntry",
    "Message",
    "NoResponders",
    "QueueSpec",
    "RequestTimeout",
    "Subscription",
    "make_broker",
    "selected_broker",
    "subject_matches",
]


def selected_broker(name: str | None = None) -> str:
    """The backend to use: ``name``, else ``LABKIT_BROKER``, else ``memory``; checked."""
    chosen = (name or os.environ.get("LABKIT_BROKER") or "memory").strip().lower()
    if chosen not in BROKERS:
        raise UnknownName("broker backend", chosen, BROKERS)
    return chosen


def make_broker(name: str | None = None, *, timeline: Timeline, namespace: str = "lab") -> Broker:
    """A broker of the chosen backend, not yet started (``async with`` it)."""
    chosen = selected_broker(name)
    if chosen == "memory":
        from labkit.transport.brokers.memory import MemoryBroker

        return MemoryBroker(timeline=timeline)
    if chosen == "nats":
        from labkit.transport.brokers.nats import NatsBroker

        return NatsBroker(timeline=timeline, namespace=namespace)
    from labkit.transport.brokers.rabbitmq import RabbitBroker

    return RabbitBroker(timeline=timeline, namespace=namespace)
