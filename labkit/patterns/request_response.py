"""Request-response: ask another service and wait for its answer.

The simplest way for services to talk, and the one with the most ways to go wrong quietly. A
careful client, the Python counterpart of the syllabus' ``GetUserDetails``, does four things:

1. **Bounds the wait.** A deadline on every call (here the request's timeout, which the lab's
   transport enforces in-process too). Without one a hung service hangs the caller.
2. **Keeps the cause.** Each failure becomes a :class:`DownstreamError` that names the service
   and the reason (``timeout``, ``unavailable``, ``status``, ``bad_payload``, ``not_found``)
   and chains the original exception (``raise ... from exc``, Go's ``%w``).
3. **Checks the status** before reading the body: a 503 with a JSON error body is not a user.
4. **Checks the payload**: a 200 with an HTML error page or a missing field is a failure of
   the service, not a crash of the caller.

:class:`NaiveUserClient` is the version people write first (no timeout, no status check,
``resp.json()["name"]``); the lab runs both side by side so the difference shows up as data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

REASONS = ("timeout", "unavailable", "status", "bad_payload", "not_found")


class DownstreamError(Exception):
    """A call to another service failed; ``reason`` says how, ``__cause__`` keeps the detail."""

    def __init__(self, service: str, reason: str, detail: str, status: int | None = None) -> None:
        self.service = service
        self.reason = reason
        self.status = status
        super().__init__(f"{service}: {reason}: {detail}")


@dataclass(frozen=True)
class UserDetails:
    id: str
    name: str
    email: str


async def fetch_json(
    http: httpx.AsyncClient, path: str, *, service: str, timeout_s: float | None
) -> dict[str, Any]:
    """GET ``path`` and return its JSON object, or raise one :class:`DownstreamError`."""
    try:
        response = await http.get(path, timeout=timeout_s)
    except httpx.TimeoutException as exc:
        raise DownstreamError(service, "timeout", f"no answer within {timeout_s} s") from exc
    except httpx.TransportError as exc:
        raise DownstreamError(service, "unavailable", str(exc) or type(exc).__name__) from exc
    if response.status_code == 404:
        raise DownstreamError(service, "not_found", path, status=404)
    if response.status_code != 200:
        raise DownstreamError(
            service, "status", f"answered {response.status_code}", status=response.status_code
        )
    try:
        data = response.json()
    except ValueError as exc:
        kind = response.headers.get("content-type", "unknown content type")
        raise DownstreamError(service, "bad_payload", f"body is not JSON ({kind})") from exc
    if not isinstance(data, dict):
        raise DownstreamError(
            service, "bad_payload", f"expected an object, got {type(data).__name__}"
        )
    return data


def require_fields(data: dict[str, Any], names: tuple[str, ...], *, service: str) -> None:
    """Refuse a payload that lacks a field the caller needs."""
    missing = [n for n in names if n not in data]
    if missing:
        raise DownstreamError(service, "bad_payload", f"missing field(s) {', '.join(missing)}")


class UserClient:
    """The careful client: deadline, status check, payload check, causes kept."""

    def __init__(self, http: httpx.AsyncClient, *, timeout_s: float = 1.0) -> None:
        self.http = http
        self.timeout_s = timeout_s

    async def get_user(self, user_id: str) -> UserDetails:
        data = await fetch_json(
            self.http, f"/users/{quote(user_id, safe='')}", service="user", timeout_s=self.timeout_s
        )
        require_fields(data, ("id", "name", "email"), service="user")
        return UserDetails(str(data["id"]), str(data["name"]), str(data["email"]))


class NaiveUserClient:
    """The first draft: no timeout, no status check, trusts the body. Do not copy."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def get_user(self, user_id: str) -> UserDetails:
        response = await self.http.get(f"/users/{user_id}", timeout=None)
        data = response.json()
        return UserDetails(data["id"], data["name"], data["email"])
