"""The door: the API token and the request size limit, as one ASGI middleware.

It sits outside the routes (inside CORS, so a browser's preflight is answered without a
token), so nothing runs for a request that fails here: no route, no body parsing.
"""

from __future__ import annotations

import hmac
import json
from collections import deque
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["OPEN_PATHS", "GuardMiddleware", "error_body"]

OPEN_PATHS = frozenset({"/health"})
"""Routes that answer without a token."""

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def error_body(kind: str, message: str, **extra: object) -> bytes:
    """The JSON every error answers with: ``{"error": {"type": ..., "message": ...}}``."""
    return json.dumps({"error": {"type": kind, "message": message, **extra}}).encode()


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
    """Refuse requests without the token (401) or with too big a body (413).

    Args:
        app: The application behind the door.
        token: The API token, or None for no authentication (loopback only).
        max_body_bytes: Largest request body accepted.
    """

    def __init__(self, app: ASGIApp, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes

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
        if scope["method"] != "OPTIONS" and not self._authorized(scope):
            await _respond(
                send,
                401,
                error_body(
                    "unauthorized",
                    "missing or wrong API token: send 'Authorization: Bearer <token>'",
                ),
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
            await self._too_large(send)
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
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break
        pending.appendleft({"type": "http.request", "body": bytes(buffered), "more_body": False})

        async def replay() -> Message:
            if pending:
                return pending.popleft()
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await _respond(
            send,
            413,
            error_body(
                "request_too_large",
                f"the request body is larger than {self.max_body_bytes} bytes",
            ),
        )
