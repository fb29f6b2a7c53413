"""Approvals and cancellation across server processes, through the database alone.

A run lives in the process that started it: its task, and the future its pending tool call
awaits, exist only there. Another process that is asked to cancel the run or to decide the
call writes a row to ``control_requests`` (and, on PostgreSQL, a ``NOTIFY``); every process
looks at that table when notified, when one of its runs asks for a decision or is resumed
(a request may have been queued before), and otherwise polls it (one indexed query per
tick, and only while it has runs in flight). It takes up the rows meant for its own runs,
claiming each with a conditional ``UPDATE`` so that exactly one process acts on it. The
outcome reaches everybody the usual way: as events in the log.

Pending approvals are read from the log, not from a process's memory: an
``approval.required`` of a waiting run with no ``approval.resolved`` for the same call.
So every process lists the same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Connection, text

from workbench.events import ApprovalRequired

if TYPE_CHECKING:
    from workbench.approvals import PendingApproval, Resolution
    from workbench.engine import Engine
    from workbench.store import Store

__all__ = ["ControlPlane", "pending_from_log"]

log = logging.getLogger("workbench.server")

_KEEP_S = 3600.0
"""Requests older than this are deleted (nobody took them up: their process died)."""
_IDLE_S = 60.0
"""Seconds between looks while listening and nothing woke the control plane."""


def pending_from_log(store: Store) -> list[PendingApproval]:
    """Every pending approval in the database, oldest first (blocking; call in a thread).

    Args:
        store: The store (shared by every process of a deployment).
    """
    from workbench.approvals import PendingApproval

    out: list[PendingApproval] = []
    for run in store.runs_with_status("waiting"):
        asked: dict[str, ApprovalRequired] = {}
        for ev in store.events(run.session_id, run_id=run.id):
            if isinstance(ev, ApprovalRequired):
                asked[ev.call_id] = ev
            elif ev.type == "approval.resolved":
                asked.pop(getattr(ev, "call_id", ""), None)
        out.extend(PendingApproval.from_event(e) for e in asked.values())
    out.sort(key=lambda p: (p.created_at, p.session_id, p.seq))
    return out


def resolution_to_json(res: Resolution) -> str:
    """A decision as JSON, for the ``control_requests`` table."""
    return json.dumps(
        {
            "decision": res.decision,
            "scope": res.scope,
            "note": res.note,
            "edited_arguments": res.edited_arguments,
            "decided_by": res.decided_by,
        }
    )


def resolution_from_json(payload: str) -> Resolution:
    """The decision written by :func:`resolution_to_json`."""
    from workbench.approvals import Resolution

    data = json.loads(payload)
    return Resolution(
        decision=data["decision"],
        scope=data.get("scope", "once"),
        note=data.get("note"),
        edited_arguments=data.get("edited_arguments"),
        decided_by=data.get("decided_by") or "user",
    )


Via = Literal["local", "database"]


class ControlPlane:
    """Cancel runs and decide tool calls wherever they live.

    Args:
        engine: This process's engine.
        poll_interval: Seconds between looks at ``control_requests``.
    """

    def __init__(self, engine: Engine, *, poll_interval: float = 0.2) -> None:
        self.engine = engine
        self.poll_interval = poll_interval
        self.listening = False
        """True while database notifications arrive: look only when woken then."""
        self._task: asyncio.Task[None] | None = None
        self._last_cleanup = 0.0
        self._wake = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        """Start looking (and polling, until notifications arrive)."""
        self._task = asyncio.create_task(self._loop(), name="workbench-control-poller")
        # A run of this process asks: a decision for it may be queued already.
        self._unsubscribe = self.engine.broker.subscribe(
            lambda kind, _p: self.wake() if kind == "added" else None
        )

    def wake(self) -> None:
        """Look at the requests now."""
        self._wake.set()

    def set_listening(self, listening: bool) -> None:
        """Notifications started (look once now) or stopped (poll from now on)."""
        self.listening = listening
        self._wake.set()

    async def aclose(self) -> None:
        """Stop polling."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- what this process holds -------------------------------------------------------

    def local_pending(self, run_id: str, call_id: str) -> PendingApproval | None:
        """The broker's pending call, if this process holds it."""
        for p in self.engine.broker.pending():
            if p.call_id == call_id and p.run_id == run_id:
                return p
        return None

    def _root_run(self, run_id: str) -> str:
        store = self.engine.store
        seen = {run_id}
        info = store.get_run(run_id)
        while info is not None and info.parent_run_id is not None:
            if info.parent_run_id in seen:
                break
            seen.add(info.parent_run_id)
            run_id = info.parent_run_id
            info = store.get_run(run_id)
        return run_id

    # -- requests ----------------------------------------------------------------------

    async def cancel(self, run_id: str) -> tuple[Via, str]:
        """Cancel a run (through its top-level run) here, or ask its process to.

        Returns:
            How the request went out, and the top-level run it targets.
        """
        root = await asyncio.to_thread(self._root_run, run_id)
        if self.engine.cancel(root):
            return "local", root
        info = await asyncio.to_thread(self.engine.store.get_run, root)
        # Nobody runs it any more (its process died): end it here, in the log.
        if (
            info is not None
            and info.status == "interrupted"
            and await self.engine.end_interrupted(root, "cancelled while interrupted")
        ):
            return "local", root
        await asyncio.to_thread(self._insert, "cancel", root, None, None)
        return "database", root

    async def resolve(self, run_id: str, call_id: str, resolution: Resolution) -> Via:
        """Decide a pending call here, or ask the process that holds it to."""
        if self.local_pending(run_id, call_id) is not None and self._resolve_local(
            run_id, call_id, resolution
        ):
            return "local"
        payload = resolution_to_json(resolution)
        await asyncio.to_thread(self._insert, "approval", run_id, call_id, payload)
        return "database"

    def _resolve_local(self, run_id: str, call_id: str, resolution: Resolution) -> bool:
        return bool(self.engine.resolve_approval(run_id, call_id, resolution))

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.store.engine.connect() as conn:
            conn = conn.execution_options(workbench_immediate=True)
            with conn.begin():
                yield conn

    def _insert(self, kind: str, run_id: str, call_id: str | None, payload: str | None) -> None:
        from workbench.store import new_id, notify, process_owner

        with self._write() as conn:
            notify(conn, {"c": run_id})
            conn.execute(
                text(
                    "INSERT INTO control_requests (id, kind, run_id, call_id, payload, "
                    "created_at, requested_by, handled_at, handled_by) VALUES "
                    "(:id, :kind, :run_id, :call_id, :payload, :now, :by, NULL, NULL)"
                ),
                {
                    "id": new_id("c", 8),
                    "kind": kind,
                    "run_id": run_id,
                    "call_id": call_id,
                    "payload": payload,
                    "now": time.time(),
                    "by": process_owner(),
                },
            )

    # -- taking requests up ------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            # listening: when woken (and a slow look for housekeeping); else every tick.
            # (asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancellation that
            # comes as the event is set, and the server could not stop.)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_IDLE_S if self.listening else self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database blinked: try again next tick
                log.warning("polling control requests failed", exc_info=True)

    async def poll_once(self) -> int:
        """Take up the requests meant for this process's runs; returns how many."""
        running = set(self.engine.running())
        pending = {(p.run_id, p.call_id) for p in self.engine.broker.pending()}
        now = time.time()
        if now - self._last_cleanup > 60:
            self._last_cleanup = now
            await asyncio.to_thread(self._cleanup, now)
        if not running and not pending:
            return 0
        rows = await asyncio.to_thread(self._open_requests)
        done = 0
        for rid, kind, run_id, call_id, payload in rows:
            if kind == "cancel" and run_id in running:
                if await asyncio.to_thread(self._claim, rid):
                    self.engine.cancel(run_id)
                    done += 1
            elif kind == "approval" and call_id and (run_id, call_id) in pending and payload:
                if await asyncio.to_thread(self._claim, rid):
                    self._resolve_local(run_id, call_id, resolution_from_json(payload))
                    done += 1
        return done

    def _open_requests(self) -> list[tuple[str, str, str, str | None, str | None]]:
        with self.engine.store.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, kind, run_id, call_id, payload FROM control_requests "
                    "WHERE handled_at IS NULL ORDER BY created_at"
                )
            ).all()
        return [(str(r[0]), str(r[1]), str(r[2]), r[3], r[4]) for r in rows]

    def _claim(self, request_id: str) -> bool:
        from workbench.store import process_owner

        with self._write() as conn:
            result = conn.execute(
                text(
                    "UPDATE control_requests SET handled_at = :now, handled_by = :by "
                    "WHERE id = :id AND handled_at IS NULL"
                ),
                {"now": time.time(), "by": process_owner(), "id": request_id},
            )
        return bool(result.rowcount == 1)

    def _cleanup(self, now: float) -> None:
        with self._write() as conn:
            conn.execute(
                text("DELETE FROM control_requests WHERE created_at < :cutoff"),
                {"cutoff": now - _KEEP_S},
            )
