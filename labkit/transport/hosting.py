"""Serve a set of named ASGI apps, in-process or over loopback, and hand out clients to them.

* **in-process** (the default): each app is reached through ``httpx.ASGITransport``. No
  socket, no port, and with a virtual-time loop a run is instant and repeatable.
* **live**: each app is served by a real uvicorn on ``127.0.0.1`` and a free port, and
  clients keep pooled keep-alive connections. Same apps, same clients, same records; real time.

Either way a caller gets an ``httpx.AsyncClient`` whose transport is a :class:`LabTransport`,
so faults and the timeline behave the same in both worlds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from labkit.core.errors import UnknownName
from labkit.core.faults import FaultPlan
from labkit.core.timeline import Timeline
from labkit.transport.http import CallContext, LabTransport

HTTP_BACKENDS = ("inprocess", "live")


class Hosted:
    """Running services and the clients that reach them; close with ``aclose()``."""

    def __init__(
        self,
        timeline: Timeline,
        faults: FaultPlan | None,
        detach: bool = False,
        tracing: Any = None,
    ) -> None:
        self.detach = detach
        self.tracing = tracing
        self.timeline = timeline
        self.faults = faults or FaultPlan()
        self.base_urls: dict[str, str] = {}
        self._inner: dict[str, Any] = {}
        self._clients: list[httpx.AsyncClient] = []
        self._servers: list[tuple[Any, asyncio.Task[None]]] = []

    @property
    def live(self) -> bool:
        return bool(self._servers)

    def client(
        self, target: str, *, source: str, timeout: float | None = None
    ) -> httpx.AsyncClient:
        """A client that calls ``target`` as ``source``, through faults and the timeline."""
        if target not in self.base_urls:
            raise UnknownName("service", target, list(self.base_urls))
        inner = self._inner[target]
        if not isinstance(inner, httpx.ASGITransport):
            inner = httpx.AsyncHTTPTransport()  # one keep-alive pool per client
        transport = LabTransport(
            inner,
            target=target,
            source=source,
            timeline=self.timeline,
            faults=self.faults,
            detach=self.detach,
        )
        outer: httpx.AsyncBaseTransport = transport
        if self.tracing is not None:  # the client span covers what the caller waits for
            outer = self.tracing.client_transport(transport, source=source, target=target)
        base_url = self.base_urls[target]
        client = httpx.AsyncClient(transport=outer, base_url=base_url, timeout=timeout)
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        for server, _task in self._servers:
            server.should_exit = True
        for _, task in self._servers:
            await task


@contextlib.asynccontextmanager
async def host(
    apps: Mapping[str, Any],
    *,
    backend: str = "inprocess",
    timeline: Timeline,
    faults: FaultPlan | None = None,
    detach: bool = False,
    tracing: Any = None,
) -> AsyncIterator[Hosted]:
    """Start ``apps`` (name -> ASGI app) on ``backend`` and yield a :class:`Hosted`.

    ``detach=True``: in-process services keep working after their caller gives up, as real
    servers do (see :class:`~labkit.transport.http.LabTransport`).
    ``tracing``: a :class:`labkit.patterns.tracing.Tracing` (anything with ``server_app`` and
    ``client_transport``): every service and client is traced, W3C ``traceparent`` between them."""
    if backend not in HTTP_BACKENDS:
        raise UnknownName("backend", backend, HTTP_BACKENDS)
    hosted = Hosted(timeline, faults, detach, tracing)
    try:
        for name, app in apps.items():
            wrapped: Any = CallContext(app)
            if tracing is not None:
                wrapped = tracing.server_app(name, wrapped)
            if backend == "inprocess":
                hosted._inner[name] = httpx.ASGITransport(app=wrapped)
                hosted.base_urls[name] = f"http://{name}"
            else:
                server, task, port = await serve_on_loopback(wrapped)
                hosted._servers.append((server, task))
                hosted._inner[name] = None
                hosted.base_urls[name] = f"http://127.0.0.1:{port}"
        yield hosted
    finally:
        await hosted.aclose()


async def serve_on_loopback(
    app: Any, **uvicorn_options: Any
) -> tuple[Any, asyncio.Task[None], int]:
    """Serve ``app`` with uvicorn on 127.0.0.1 and a free port; returns (server, task, port).

    The socket is bound and listening before uvicorn starts, so the port is known at once
    and early connections wait in the backlog instead of being refused. It is made with an
    explicit ``IPPROTO_TCP``: asyncio only sets ``TCP_NODELAY`` on accepted sockets whose
    ``proto`` says TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK
    (Nagle's algorithm), measured here as 43 ms per call instead of 2 ms.

    ``uvicorn_options`` go to ``uvicorn.Config`` as they are (TLS settings, a protocol class).
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    # log_config=None: uvicorn must not reconfigure logging for every server it starts (in a
    # Jupyter kernel that deadlocks against the kernel's output thread for ~10 s per run)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        access_log=False,
        log_config=None,
        **uvicorn_options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    return server, task, port
