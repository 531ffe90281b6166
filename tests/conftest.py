"""Shared test set-up: markers that skip or fail depending on the environment."""

from __future__ import annotations

import os
import shutil

import pytest

from labkit.transport.probe import amqp_status, nats_status


def _required(name: str) -> bool:
    return os.environ.get(name) == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    broker_items = [i for i in items if i.get_closest_marker("broker")]
    if broker_items and not _required("LABKIT_REQUIRE_BROKERS"):
        nats, amqp = nats_status(), amqp_status()
        for item in broker_items:
            wants = {a for m in item.iter_markers("broker") for a in m.args} or {"nats", "rabbitmq"}
            down = [
                s
                for key, s in (("nats", nats), ("rabbitmq", amqp))
                if key in wants and not s.answers
            ]
            if down:
                item.add_marker(pytest.mark.skip(reason="; ".join(s.line() for s in down)))
    if not _required("LABKIT_REQUIRE_BROWSER") and not shutil.which("chromium"):
        for item in items:
            if item.get_closest_marker("browser"):
                item.add_marker(
                    pytest.mark.skip(reason="no chromium installed (apt-get install chromium)")
                )
