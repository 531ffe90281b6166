"""Does a broker answer? A quick, dependency-free knock on its port.

Used by ``labkit doctor`` and the playground's home page. It speaks just enough of each
protocol to tell a real broker from a closed port: a NATS server greets with ``INFO {...}``;
a RabbitMQ server answers the AMQP 0-9-1 protocol header with a ``connection.start`` frame.
No client library is imported, so the check costs milliseconds.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from labkit.transport.brokers.base import hide_password

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


@dataclass(frozen=True)
class BrokerStatus:
    name: str
    url: str
    answers: bool
    detail: str

    def line(self) -> str:
        state = "answers" if self.answers else "does not answer"
        return f"{self.name} at {self.url} {state} ({self.detail})"


def _knock(url: str, default_port: int, greeting: bytes | None, timeout: float) -> bytes:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        if greeting:
            sock.sendall(greeting)
        return sock.recv(512)


def nats_status(url: str | None = None, timeout: float = 0.5) -> BrokerStatus:
    url = url or os.environ.get("LABKIT_NATS_URL", DEFAULT_NATS_URL)
    try:
        data = _knock(url, 4222, None, timeout)
    except OSError as exc:
        return BrokerStatus("NATS", hide_password(url), False, exc.strerror or type(exc).__name__)
    if data.startswith(b"INFO"):
        jetstream = b'"jetstream":true' in data.replace(b" ", b"")
        return BrokerStatus("NATS", url, True, "JetStream on" if jetstream else "JetStream off")
    return BrokerStatus("NATS", url, False, "something answers, but not NATS")


def amqp_status(url: str | None = None, timeout: float = 0.5) -> BrokerStatus:
    url = url or os.environ.get("LABKIT_AMQP_URL", DEFAULT_AMQP_URL)
    shown = hide_password(url)
    try:
        data = _knock(url, 5672, AMQP_HEADER, timeout)
    except OSError as exc:
        return BrokerStatus("RabbitMQ", shown, False, exc.strerror or type(exc).__name__)
    if data[:1] == b"\x01":
        return BrokerStatus("RabbitMQ", shown, True, "AMQP 0-9-1")
    return BrokerStatus("RabbitMQ", shown, False, "something answers, but not AMQP 0-9-1")


def broker_statuses(timeout: float = 0.5) -> list[BrokerStatus]:
    return [nats_status(timeout=timeout), amqp_status(timeout=timeout)]
