"""Noticing dead servers, and taking their runs over (``serve --take-over``).

Every process holds a lease in the database (see :mod:`workbench.store.leases`). A server
looks every quarter of its lease for processes whose lease ran out and marks their runs
``interrupted`` (each with a ``run.interrupted`` event, so every stream of every server
says so); approvals those runs waited on leave the queue. With ``take_over`` it then
resumes, from their last checkpoint, the top-level runs of its own workspace that became
interrupted while it was up: each is claimed with one conditional update, so of several
such servers exactly one resumes a run. A resumed run asks again for the decisions it was
waiting on; decisions queued for it meanwhile (``control_requests``) are taken up as soon
as it asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import text

from workbench.runtime import RunError

if TYPE_CHECKING:
    from workbench.engine import Engine

__all__ = ["Ownership"]

log = logging.getLogger("workbench.server")


class Ownership:
    """Marks dead processes' runs interrupted and, when asked, resumes them.

    Args:
        engine: This server's engine (its store holds the lease).
        take_over: Resume the interrupted runs of this workspace.
        on_change: Called when runs were marked (approvals may have left the queue).
    """

    def __init__(
        self, engine: Engine, *, take_over: bool, on_change: Callable[[], None] | None = None
    ) -> None:
        self.engine = engine
        self.take_over = take_over
        self.on_change = on_change
        lease = engine.store.lease
        self.interval = max(0.05, (lease.lease_s if lease is not None else 10.0) / 4)
        """Seconds between looks (a quarter of the lease: a dead process is noticed within
        its lease and a quarter of this one)."""
        self._task: asyncio.Task[None] | None = None
        self._failed: set[str] = set()

    def start(self) -> None:
        """Start looking."""
        self._task = asyncio.create_task(self._loop(), name="workbench-leases")

    async def aclose(self) -> None:
        """Stop looking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database blinked: look again next time
                log.warning("looking for dead processes failed", exc_info=True)

    async def tick(self) -> list[str]:
        """Mark dead processes' runs interrupted, then take over what there is to take.

        Returns:
            The runs this server resumed.
        """
        marked = await asyncio.to_thread(self.engine.store.mark_interrupted)
        if marked and self.on_change is not None:
            self.on_change()
        if not self.take_over:
            return []
        resumed: list[str] = []
        for run_id in await asyncio.to_thread(self._candidates):
            try:
                handle = await self.engine.resume(run_id)
            except RunError as exc:  # another server won it, or it cannot run here
                log.info("not taking over run %s: %s", run_id, exc)
                self._failed.add(run_id)
                continue
            except Exception:
                log.exception("taking over run %s failed", run_id)
                self._failed.add(run_id)
                continue
            log.warning("took over run %s (its process died)", handle.run_id)
            resumed.append(handle.run_id)
        if resumed and self.on_change is not None:
            self.on_change()
        return resumed

    def _candidates(self) -> list[str]:
        """Top-level runs of this workspace that became interrupted while this server was up."""
        store = self.engine.store
        mine = next((p for p in store.processes() if p.id == store.owner), None)
        if mine is None:  # not registered (the database was away): nothing to take
            return []
        with store.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT r.id FROM runs r JOIN sessions s ON s.id = r.session_id "
                    "WHERE r.status = 'interrupted' AND r.parent_run_id IS NULL "
                    "AND s.workspace = :ws AND r.updated_at >= :since "
                    "ORDER BY r.updated_at, r.id"
                ),
                {"ws": str(self.engine.root), "since": mine.started_at},
            ).all()
        return [str(r[0]) for r in rows if str(r[0]) not in self._failed]
