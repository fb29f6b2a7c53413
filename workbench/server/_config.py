"""How a server is set up: address, token, CORS, limits, polling."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

__all__ = ["MAX_BODY_BYTES", "ServerConfig", "is_loopback", "new_token", "workbench_version"]

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body accepted (1 MiB); bigger ones get 413."""


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine.

    Args:
        host: An address or host name as given to ``--host``.
    """
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def workbench_version() -> str:
    """The installed workbench's version (the API's, MCP's ``serverInfo``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("workbench-agents")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


def new_token() -> str:
    """A fresh random API token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@dataclass
class ServerConfig:
    """Settings of one ``workbench serve`` process."""

    host: str = "127.0.0.1"
    """Address to bind."""
    port: int = 8765
    """Port to bind (0 picks a free one)."""
    token: str | None = None
    """When set, every route but ``/health`` needs ``Authorization: Bearer <token>``."""
    cors_origins: list[str] = field(default_factory=list)
    """Origins allowed by CORS; empty turns CORS off."""
    max_body_bytes: int = MAX_BODY_BYTES
    """Largest request body accepted."""
    client_queue_size: int = 1000
    """Events buffered per SSE client before it falls back to reading the store."""
    poll_interval: float = 0.2
    """Seconds between looks at the database for work of other processes (events of
    watched sessions, cancel requests, decisions)."""
    decision_wait: float = 5.0
    """Seconds a cancel or a decision routed through the database waits to be taken up
    before the answer says it is still queued."""
    sse_ping: float = 15.0
    """Seconds between keep-alive comments on idle SSE streams."""
    listen: bool = True
    """On PostgreSQL, learn what other processes did through ``LISTEN``/``NOTIFY`` (False:
    poll every ``poll_interval``, for poolers that do not pass ``LISTEN`` on)."""
    take_over: bool = False
    """Resume, from their last checkpoint, the runs of this workspace whose server died
    (its lease ran out) while this one is up."""
    lease: float | None = None
    """Seconds without a heartbeat after which the other processes sharing the database
    count this one dead and mark its runs interrupted (None: ``$WORKBENCH_LEASE``, else 10)."""

    def check(self) -> None:
        """Refuse settings that would expose the server.

        Raises:
            ValueError: A non-loopback address without a token, or a bad limit.
        """
        if not is_loopback(self.host) and not self.token:
            raise ValueError(
                f"binding {self.host} exposes the server to the network: a token is required"
            )
        if self.max_body_bytes <= 0 or self.client_queue_size <= 0 or self.poll_interval <= 0:
            raise ValueError("limits and intervals must be positive")
        if self.lease is not None and not self.lease > 0:
            raise ValueError("the lease must be a positive number of seconds")
