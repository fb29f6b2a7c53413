"""PostgreSQL ``LISTEN``: what other server processes did, as it happens.

The store sends ``NOTIFY workbench`` with every commit that stores events (the sessions
that moved and their last seq, and whether approvals changed), and the control plane with
every cancel or decision it queues for another process (see
:data:`workbench.store.NOTIFY_CHANNEL`). One connection per server listens and wakes the
parts concerned: event streams of those sessions, the approvals feed, the control plane.
While it listens, nothing polls; while it cannot (SQLite, the database away, a pooler that
does not pass ``LISTEN`` on: ``serve --no-listen``), everything polls as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL

from workbench.store import NOTIFY_CHANNEL

__all__ = ["Listener", "conninfo"]

log = logging.getLogger("workbench.server")

_CHECK_S = 30.0
"""Seconds of silence after which the connection is checked (a dead one says nothing)."""


def conninfo(url: URL) -> str:
    """A libpq connection string (``postgresql://...``) for a SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """``LISTEN`` on one connection of its own, reconnecting with back-off.

    Args:
        url: The database (PostgreSQL).
        on_events: Called with ``{session_id: last_seq}`` of sessions other processes
            (and this one) stored events in, and whether approvals changed.
        on_control: Called with the run id a cancel or decision was queued for.
        on_state: Called with True once listening (callers catch up then: notifications
            sent while not listening are lost) and False when the connection is gone.
    """

    def __init__(
        self,
        url: URL,
        *,
        on_events: Callable[[dict[str, int], bool], None],
        on_control: Callable[[str], None],
        on_state: Callable[[bool], None],
    ) -> None:
        self.url = url
        self.on_events = on_events
        self.on_control = on_control
        self.on_state = on_state
        self.listening = False
        """True while notifications arrive."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect and listen in the background."""
        self._task = asyncio.create_task(self._run(), name="workbench-listen")

    async def aclose(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._set(False)

    def _set(self, listening: bool) -> None:
        if listening != self.listening:
            self.listening = listening
            self.on_state(listening)

    async def _run(self) -> None:
        import psycopg

        backoff = 0.2
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(conninfo(self.url), autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._set(True)
                    backoff = 0.2
                    while True:
                        async for note in conn.notifies(timeout=_CHECK_S):
                            self.dispatch(note.payload)
                        await conn.execute("SELECT 1")  # silence: is it still there?
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: poll until it is back
                if self.listening:
                    log.warning("listening for notifications stopped (%s); polling", exc)
                else:
                    log.info("cannot listen for notifications (%s); polling", exc)
            self._set(False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def dispatch(self, payload: str) -> None:
        """Act on one notification's payload (malformed ones are ignored)."""
        try:
            data: Any = json.loads(payload)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        try:
            sessions = data.get("e")
            if isinstance(sessions, dict):
                self.on_events({str(k): int(v) for k, v in sessions.items()}, bool(data.get("a")))
            run_id = data.get("c")
            if isinstance(run_id, str):
                self.on_control(run_id)
        except Exception:  # a listener's bug must not stop listening
            log.exception("handling a notification failed")
