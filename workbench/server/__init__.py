"""The headless server: REST + SSE, OpenAI-compatible chat, MCP, Prometheus metrics.

``workbench serve`` runs it over a workspace; :func:`create_app` builds the FastAPI
application for an :class:`~workbench.engine.Engine`, and :class:`ServerThread` runs one in
a thread (tests, benchmarks, embedding). Several server processes can share one PostgreSQL
database: runs, their events, approvals and cancellation are visible and actionable from
any of them (see :mod:`workbench.server._control`).

This package never imports the UI (``textual`` or ``screens``).
"""

from __future__ import annotations

from ._app import create_app
from ._config import MAX_BODY_BYTES, ServerConfig, is_loopback, new_token
from ._serve import ServerThread, serve

__all__ = [
    "MAX_BODY_BYTES",
    "ServerConfig",
    "ServerThread",
    "create_app",
    "is_loopback",
    "new_token",
    "serve",
]
