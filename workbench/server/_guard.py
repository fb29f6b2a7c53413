"""The door: DNS-rebinding checks, the API token and the request size limit, as one ASGI
middleware.

It sits outside the routes (inside CORS, so a browser's preflight is answered without a
token), so nothing runs for a request that fails here: no route, no body parsing.

Without a token the server trusts whoever can reach it, which binding loopback makes "this
machine". A web page can still reach it: it makes its own name resolve to 127.0.0.1 (DNS
rebinding) and then talks to the server as a same-origin page. Such requests carry the
page's name in ``Host`` (and ``Origin``), so without a token every request must name this
server: a loopback name or address, or the address it is bound to, in ``Host`` and in
``Origin`` when there is one (or an origin allowed by ``--cors``). With a token, the token
is what counts.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections import deque
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "LOOPBACK_NAMES",
    "OPEN_PATHS",
    "GuardMiddleware",
    "error_body",
    "host_name",
    "is_openai_path",
    "openai_error",
    "openai_error_body",
]

OPEN_PATHS = frozenset({"/health"})
"""Routes that answer without a token."""

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
"""Names of this machine that every resolver keeps to it."""


def host_name(value: str) -> str:
    """The host of a ``Host`` header value (``[::1]:8765`` -> ``::1``), lower-cased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def error_body(kind: str, message: str, **extra: object) -> bytes:
    """The JSON every error answers with: ``{"error": {"type": ..., "message": ...}}``."""
    return json.dumps({"error": {"type": kind, "message": message, **extra}}).encode()


_OPENAI_CODES: dict[int, str] = {
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "rate_limit_exceeded",
}


def is_openai_path(path: str) -> bool:
    """Whether a path is under the OpenAI-compatible API (its errors take OpenAI's shape)."""
    return path == "/v1" or path.startswith("/v1/")


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    kind: str | None = None,
) -> dict[str, object]:
    """An error as OpenAI's API words it, so that its SDKs raise the right exception and
    show the message: ``{"error": {"message", "type", "param", "code"}}``."""
    return {
        "error": {
            "message": message,
            "type": kind or ("invalid_request_error" if status < 500 else "server_error"),
            "param": param,
            "code": code if code is not None else _OPENAI_CODES.get(status),
        }
    }


def openai_error_body(status: int, message: str, **fields: str | None) -> bytes:
    """:func:`openai_error` as JSON bytes."""
    return json.dumps(openai_error(status, message, **fields)).encode()


async def _respond(
    send: Send, status: int, body: bytes, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """Refuse requests that name another host (403, without a token), that lack the token
    (401), or with too big a body (413).

    Args:
        app: The application behind the door.
        token: The API token, or None for no authentication (loopback only).
        max_body_bytes: Largest request body accepted.
        bound_host: The address the server is bound to (also a name of this server).
        cors_origins: Origins allowed by CORS (their pages may call the server).
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        max_body_bytes: int,
        *,
        bound_host: str = "127.0.0.1",
        cors_origins: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes
        self.bound_host = host_name(bound_host)
        self.cors_origins = frozenset(o.rstrip("/").lower() for o in cors_origins)

    def _ours(self, host: str) -> bool:
        return _is_loopback(host) or host == self.bound_host

    def _foreign(self, scope: Scope) -> str | None:
        """Without a token: what names another host (``Host`` or ``Origin``), if anything."""
        if self.token is not None:
            return None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                if not self._ours(host_name(host)):
                    return f"Host {host!r}"
            elif name == b"origin":
                origin = value.decode("latin-1").strip()
                if origin.rstrip("/").lower() in self.cors_origins:
                    continue
                parts = urlsplit(origin)
                if parts.scheme not in ("http", "https") or not self._ours(
                    (parts.hostname or "").rstrip(".")
                ):
                    return f"Origin {origin!r}"
        return None

    def _authorized(self, scope: Scope) -> bool:
        if self.token is None or scope["path"] in OPEN_PATHS:
            return True
        given: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = credentials.strip()
                break
        if given is None and scope["method"] == "GET" and scope["path"].endswith("/stream"):
            # EventSource cannot send headers: event streams also take ?token=.
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            values = query.get("token")
            if values:
                given = values[0].encode("latin-1", "replace")
        # compare_digest over bytes: constant time whatever the given value is.
        return given is not None and hmac.compare_digest(given, self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        openai = is_openai_path(scope["path"])
        foreign = self._foreign(scope)
        if foreign is not None:
            why = (
                f"{foreign} does not name this server: without a token it answers "
                "only requests to localhost, a loopback address or the address it is "
                "bound to (a page elsewhere must not reach it through DNS rebinding); "
                "give the server a token to serve other names"
            )
            body = openai_error_body(403, why) if openai else error_body("forbidden", why)
            await _respond(send, 403, body)
            return
        if scope["method"] != "OPTIONS" and not self._authorized(scope):
            why = "missing or wrong API token: send 'Authorization: Bearer <token>'"
            await _respond(
                send,
                401,
                openai_error_body(401, why) if openai else error_body("unauthorized", why),
                ((b"www-authenticate", b'Bearer realm="workbench"'),),
            )
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
                break
        if length is not None and length > self.max_body_bytes:
            await self._too_large(send, openai)
            return
        if length is not None:
            # The HTTP server delivers exactly Content-Length bytes: nothing more to count.
            await self.app(scope, receive, send)
            return
        # A chunked body: read it all (up to the limit) before the app sees any of it.
        buffered = bytearray()
        pending: deque[Message] = deque()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                pending.append(message)
                break
            buffered.extend(message.get("body", b""))
            if len(buffered) > self.max_body_bytes:
                await self._too_large(send, openai)
                return
            if not message.get("more_body", False):
                break
        pending.appendleft({"type": "http.request", "body": bytes(buffered), "more_body": False})

        async def replay() -> Message:
            if pending:
                return pending.popleft()
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, openai: bool = False) -> None:
        message = f"the request body is larger than {self.max_body_bytes} bytes"
        await _respond(
            send,
            413,
            openai_error_body(413, message) if openai else error_body("request_too_large", message),
        )
