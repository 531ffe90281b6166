"""Names, settings and small helpers of the RabbitMQ backend (see
:mod:`labkit.transport.brokers.rabbitmq`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import aiormq

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
SUBJECT_HEADER = "x-labkit-subject"  # the original subject of a replayed message
REPLAYS_HEADER = "x-labkit-replays"  # how many times it came back from the DLQ
_BROKER_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count", "x-labkit-")
_CHANNEL_GONE = (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError)


class _QuietConnectFailure(logging.Filter):
    """aiormq logs a failed connect at ERROR before raising; the lab raises one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error when creating transport")


logging.getLogger("aiormq.connection").addFilter(_QuietConnectFailure())


def amqp_pattern(pattern: str) -> str:
    """A protocol pattern as an AMQP binding key: NATS ``>`` (one or more tokens) → ``*.#``."""
    return ".".join("*.#" if token == ">" else token for token in pattern.split("."))


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _user_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """The application's headers, without what RabbitMQ or this backend added."""
    if not headers:
        return {}
    return {k: _text(v) for k, v in headers.items() if not k.startswith(_BROKER_HEADERS)}


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    args = getattr(exc, "args", ())
    if len(args) == 2 and isinstance(args[0], int):  # aiormq: (errno, "Connect call failed ...")
        return os.strerror(args[0])
    text = (str(args[0]) if args else str(exc)) or type(exc).__name__
    return text.splitlines()[0][:160]
