"""One line per request in the log file: who asked what, the answer, its size and time.

Written to the ``workbench.server.access`` logger at INFO, so it lands in the log file
(``WORKBENCH_LOG``) with everything else and never on the terminal (``serve`` copies only
warnings and errors to stderr). An event stream's line is written when the stream ends. A
``token`` in the query string (event streams take one) is never written.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLogMiddleware"]

log = logging.getLogger("workbench.server.access")


def _target(scope: Scope) -> str:
    path: str = scope.get("path", "")
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return path
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    query = urlencode([(k, "***" if k == "token" else v) for k, v in pairs])
    return f"{path}?{query}"


class AccessLogMiddleware:
    """Logs every HTTP request once its answer is sent (or the client left)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0
        size = 0

        async def sending(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            who = f"{client[0]}:{client[1]}" if client else "-"
            log.info(
                '%s "%s %s HTTP/%s" %s %dB %.1fms',
                who,
                scope.get("method", "?"),
                _target(scope),
                scope.get("http_version", "1.1"),
                status or "-",
                size,
                (time.perf_counter() - start) * 1000,
            )
