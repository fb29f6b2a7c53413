"""What the routes share: the engine and the server's own parts, on ``app.state.wb``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from fastapi import HTTPException, Request

from ._config import ServerConfig
from ._control import ControlPlane, pending_from_log
from ._hub import EventHub
from ._leases import Ownership
from ._metrics import Metrics
from ._notify import Listener

if TYPE_CHECKING:
    from workbench.approvals import PendingApproval
    from workbench.engine import Engine

__all__ = ["ApprovalFeed", "ServerState", "state_of", "wait_until"]

T = TypeVar("T")


class ApprovalFeed:
    """The pending approvals of the whole database, shared by every approvals stream.

    Reads are coalesced: callers within ``max_age`` seconds of a read get its result.
    Streams wake up on this process's approval events at once, and every ``interval``
    seconds for other processes' ones.

    Args:
        engine: The engine (its store is read).
        interval: Seconds between looks when nothing happened here.
    """

    def __init__(self, engine: Engine, interval: float = 1.0, max_age: float = 0.05) -> None:
        self.engine = engine
        self.interval = interval
        self.listening = False
        """True while database notifications arrive: streams wait for them, no polling."""
        self.max_age = max_age
        self._cached: tuple[float, list[PendingApproval]] | None = None
        self._lock = asyncio.Lock()
        self._waiters: set[asyncio.Event] = set()

    async def current(self) -> list[PendingApproval]:
        """Pending approvals, oldest first."""
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] <= self.max_age:
                return self._cached[1]
            found = await asyncio.to_thread(pending_from_log, self.engine.store)
            self._cached = (time.monotonic(), found)
            return found

    def set_listening(self, listening: bool) -> None:
        """Notifications started or stopped: every stream looks again."""
        self.listening = listening
        self.changed()

    def changed(self) -> None:
        """Something about approvals happened (here, or elsewhere as notified): wake every
        stream."""
        self._cached = None
        for ev in self._waiters:
            ev.set()

    async def wait(self) -> None:
        """Until :meth:`changed` (or ``interval`` seconds, when not listening)."""
        ev = asyncio.Event()
        self._waiters.add(ev)
        try:
            async with asyncio.timeout(None if self.listening else self.interval):
                await ev.wait()
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(ev)


@dataclass
class ServerState:
    """The engine and the server's parts."""

    engine: Engine
    """The engine every route drives."""
    config: ServerConfig
    """The server's settings."""
    hub: EventHub
    """SSE fan-out."""
    control: ControlPlane
    """Cancel and decide across processes."""
    metrics: Metrics
    """Counters for ``/metrics``."""
    approvals: ApprovalFeed
    """Pending approvals for streams."""
    ownership: Ownership
    """Notices dead processes; takes their runs over when configured to."""
    listener: Listener | None = None
    """PostgreSQL LISTEN (None: polling only)."""
    started_at: float = field(default_factory=time.time)
    """When the server started."""

    def begin_shutdown(self) -> None:
        """End every event stream so that the server can stop."""
        self.hub.close()
        self.approvals.changed()


def state_of(request: Request) -> ServerState:
    """The server's state (a FastAPI dependency)."""
    wb: ServerState = request.app.state.wb
    if wb.hub.closing:
        raise HTTPException(503, "the server is shutting down")
    return wb


async def wait_until(
    check: Callable[[], Awaitable[T | None]], timeout: float, every: float = 0.05
) -> T | None:
    """Poll ``check`` until it returns something other than None, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found is not None or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(every)
