"""`labkit play` binds the playground to this machine unless told otherwise."""

import subprocess

from labkit.cli import main


def _command(monkeypatch, capsys, *argv):
    seen = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: seen.append(cmd) or 0)
    assert main(["play", *argv]) == 0
    (cmd,) = seen
    return cmd, capsys.readouterr().out


def test_play_listens_on_loopback_by_default(monkeypatch, capsys):
    cmd, out = _command(monkeypatch, capsys)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert out == ""


def test_a_classroom_binds_on_purpose_and_is_warned(monkeypatch, capsys):
    cmd, out = _command(monkeypatch, capsys, "--host", "0.0.0.0", "--port", "8600")
    assert cmd[cmd.index("--server.address") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert "anyone who can reach this machine" in out
