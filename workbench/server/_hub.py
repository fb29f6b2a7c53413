"""Fan-out of events to SSE clients that never blocks a run and never loses an event.

Each client gets a :class:`Subscription`: a bounded buffer that the engine's listener
fills without ever waiting. The client's stream (:meth:`EventHub.stream`) sends from the
buffer while it sees ``seq`` follow ``seq``; whenever it cannot be sure it has everything
(it reconnected with ``Last-Event-ID``, it fell behind and its buffer overflowed, a seq is
missing, or another process wrote to the session) it reads the store after the last seq it
sent, then goes back to the buffer. The store is the truth: every event is committed
before any listener sees it, so "read the store after ``seq``, then live" is exact.

Events written by other processes sharing the database do not pass through this process's
listener. On PostgreSQL the store's ``NOTIFY`` says which sessions moved (see
:mod:`workbench.server._notify`) and the clients of those sessions are woken at once;
otherwise (SQLite, or while not listening) a poller looks at the ``last_seq`` of every
watched session in one query per tick. Either way an SSE client of one server follows a
run of another through the database alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text

from workbench.events import TERMINAL_TYPES, Event, dump_event

if TYPE_CHECKING:
    from workbench.engine import Engine

__all__ = ["EventHub", "Subscription"]

log = logging.getLogger("workbench.server")

_PAGE = 500
"""Events read from the store at a time when catching up."""
_ENCODED_KEPT = 20_000
"""Recent events kept encoded for SSE (a burst fanned out to many clients is encoded once)."""


class Subscription:
    """One client's view of one session: a bounded buffer plus a wake-up flag."""

    __slots__ = ("_wake", "items", "maxsize", "overflow", "session_id", "stale")

    def __init__(self, session_id: str, maxsize: int) -> None:
        self.session_id = session_id
        """The session watched."""
        self.maxsize = maxsize
        """Events buffered at most; beyond that the client reads the store."""
        self.items: deque[Event] = deque()
        """Events not yet sent."""
        self.overflow = False
        """Events were dropped because the buffer was full."""
        self.stale = False
        """The store may hold events the buffer never got (another process wrote)."""
        self._wake = asyncio.Event()

    def push(self, event: Event) -> None:
        """Buffer an event (never blocks; drops and flags when full)."""
        if len(self.items) >= self.maxsize:
            self.overflow = True
        else:
            self.items.append(event)
        self._wake.set()

    def poke(self) -> None:
        """Ask the client to look in the store."""
        self.stale = True
        self._wake.set()

    def reset(self) -> None:
        """Forget buffered events: the client is about to read the store."""
        self.items.clear()
        self.overflow = False
        self.stale = False

    @property
    def needs_store(self) -> bool:
        """Whether only the store can tell what comes next."""
        return self.overflow or self.stale

    async def wait(self) -> None:
        """Until something was pushed or poked (returns at once if it already was)."""
        if self.items or self.needs_store:
            return
        self._wake.clear()
        await self._wake.wait()


class _RunTree:
    """Which run ids belong to a run (itself, its members and steps, theirs...)."""

    def __init__(self, root: str, ids: set[str]) -> None:
        self.root = root
        self.ids = ids | {root}

    def admit(self, event: Event) -> bool:
        if event.run_id in self.ids:
            return True
        if event.parent_run_id is not None and event.parent_run_id in self.ids:
            self.ids.add(event.run_id)
            return True
        return False


class EventHub:
    """Every SSE client of this process, fed by the engine and, across processes, the store.

    Args:
        engine: The engine whose events are fanned out.
        queue_size: Events buffered per client.
        poll_interval: Seconds between looks at the database for other processes' events.
    """

    def __init__(
        self, engine: Engine, *, queue_size: int = 1000, poll_interval: float = 0.2
    ) -> None:
        self.engine = engine
        self.queue_size = queue_size
        self.poll_interval = poll_interval
        self._subs: dict[str, set[Subscription]] = {}
        self._local_last: dict[str, int] = {}
        self._watchers: list[Callable[[Event], None]] = []
        self._remove_listener: Callable[[], None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self.overflows = 0
        """Times a client fell so far behind that it had to catch up from the store."""
        self._starting: dict[str, asyncio.Future[None]] = {}
        self._encoded: OrderedDict[tuple[str, int, float], bytes] = OrderedDict()
        self.listening = False
        """True while database notifications arrive: no polling then."""
        self._poll_now = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Listen to the engine and start polling the database."""
        self._remove_listener = self.engine.add_listener(self._on_event)
        self._poller = asyncio.create_task(self._poll_loop(), name="workbench-sse-poller")

    def set_listening(self, listening: bool) -> None:
        """Notifications started (look once now: some may have been missed) or stopped
        (poll from now on)."""
        self.listening = listening
        self._poll_now.set()

    def moved(self, sessions: dict[str, int]) -> None:
        """Sessions reached these last seqs (a notification): wake their clients."""
        for sid, last in sessions.items():
            subs = self._subs.get(sid)
            if subs and last > self._local_last.get(sid, 0):
                self._local_last[sid] = last
                for sub in subs:
                    sub.poke()

    def close(self) -> None:
        """End every stream (the server is shutting down)."""
        self._closing.set()
        self._poll_now.set()
        for subs in self._subs.values():
            for sub in subs:
                sub.poke()

    async def aclose(self) -> None:
        """End every stream, stop listening and polling."""
        self.close()
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    @property
    def closing(self) -> bool:
        """True once the server began shutting down."""
        return self._closing.is_set()

    @property
    def client_count(self) -> int:
        """Streams open now."""
        return sum(len(s) for s in self._subs.values())

    # -- feeding -----------------------------------------------------------------------

    def add_watcher(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``fn`` with every local event (after the subscriptions got it)."""
        self._watchers.append(fn)
        return lambda: self._watchers.remove(fn) if fn in self._watchers else None

    async def started(self, run_id: str, task: asyncio.Future[Any], timeout: float = 10.0) -> None:
        """Until a run's ``run.started`` is stored (or the run ended): a client may ask for
        the run as soon as it has its id."""
        fut = self._starting.setdefault(run_id, asyncio.get_running_loop().create_future())
        try:
            await asyncio.wait({fut, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._starting.pop(run_id, None)

    def _on_event(self, event: Event) -> None:
        if event.type == "run.started" and self._starting:
            fut = self._starting.get(event.run_id)
            if fut is not None and not fut.done():
                fut.set_result(None)
        sid = event.session_id
        if event.seq > self._local_last.get(sid, 0):
            self._local_last[sid] = event.seq
        for sub in self._subs.get(sid, ()):
            sub.push(event)
        for fn in self._watchers:
            fn(event)

    def sse(self, event: Event) -> bytes:
        """The event as one SSE message (``id: seq``), encoded once for all its clients."""
        # ts too: a deleted session's id may be used again, with other events at its seqs
        key = (event.session_id, event.seq, event.ts)
        found = self._encoded.get(key)
        if found is None:
            # JSON has no raw newline, so the event is exactly one data: line
            found = f"id: {event.seq}\ndata: {dump_event(event)}\n\n".encode()
            self._encoded[key] = found
            if len(self._encoded) > _ENCODED_KEPT:
                self._encoded.popitem(last=False)
        return found

    def subscribe(self, session_id: str) -> Subscription:
        """A new subscription to a session's events (from now on)."""
        sub = Subscription(session_id, self.queue_size)
        self._subs.setdefault(session_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop feeding a subscription."""
        subs = self._subs.get(sub.session_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.session_id]
            self._local_last.pop(sub.session_id, None)

    # -- polling the database ----------------------------------------------------------

    async def _poll_loop(self) -> None:
        while not self._closing.is_set():
            # listening: only when asked (a catch-up); else every poll_interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if self.listening else self.poll_interval):
                    await self._poll_now.wait()
            self._poll_now.clear()
            watched = list(self._subs)
            if not watched:
                continue
            try:
                found = await asyncio.to_thread(self._db_last_seqs, watched)
            except Exception:  # the database blinked: try again next tick
                log.warning("polling sessions failed", exc_info=True)
                continue
            for sid, last in found.items():
                if last > self._local_last.get(sid, 0):
                    self._local_last[sid] = last
                    for sub in self._subs.get(sid, ()):
                        sub.poke()

    def _db_last_seqs(self, session_ids: list[str]) -> dict[str, int]:
        query = text("SELECT id, last_seq FROM sessions WHERE id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        out: dict[str, int] = {}
        with self.engine.store.engine.connect() as conn:
            for i in range(0, len(session_ids), 500):
                for sid, last in conn.execute(query, {"ids": session_ids[i : i + 500]}):
                    out[str(sid)] = int(last)
        return out

    # -- streams -----------------------------------------------------------------------

    async def stream(
        self,
        session_id: str,
        after_seq: int = 0,
        *,
        run_id: str | None = None,
    ) -> AsyncGenerator[Event, None]:
        """A session's events after ``after_seq``: first from the store, then live.

        Args:
            session_id: The session.
            after_seq: The last seq the client has (``Last-Event-ID``).
            run_id: Only this run and its descendants; the stream ends after the run's
                terminal event (or at once if it already ended before ``after_seq``).

        Yields:
            Events in seq order, each once, none missing.
        """
        async with contextlib.aclosing(self.batches(session_id, after_seq, run_id=run_id)) as it:
            async for batch in it:
                for ev in batch:
                    yield ev

    async def batches(
        self,
        session_id: str,
        after_seq: int = 0,
        *,
        run_id: str | None = None,
    ) -> AsyncGenerator[list[Event], None]:
        """Like :meth:`stream`, in batches: whatever is available at once goes together
        (one write to the client for a burst of events, not one per event)."""
        store = self.engine.store
        sub = self.subscribe(session_id)
        try:
            tree: _RunTree | None = None
            run_over = False
            if run_id is not None:
                runs = await asyncio.to_thread(store.list_runs, session_id)
                tree = _RunTree(
                    run_id, _descendants(run_id, [(r.id, r.parent_run_id) for r in runs])
                )
                root = next((r for r in runs if r.id == run_id), None)
                run_over = root is not None and root.status in ("completed", "failed", "cancelled")
            last = after_seq
            need_store = True
            while not self._closing.is_set():
                out: list[Event] = []
                ended = False
                if need_store:
                    need_store = False
                    sub.reset()  # before reading: whatever comes after is in the buffer
                    while not ended:
                        page = await asyncio.to_thread(
                            store.events, session_id, after_seq=last, limit=_PAGE
                        )
                        for ev in page:
                            last = ev.seq
                            if tree is None or tree.admit(ev):
                                out.append(ev)
                                if _ends(ev, run_id):
                                    ended = True
                                    break
                        if len(page) < _PAGE:
                            break
                        if out:
                            yield out
                            out = []
                    ended = ended or run_over
                while sub.items and not ended:
                    ev = sub.items.popleft()
                    if ev.seq <= last:
                        continue
                    if ev.seq != last + 1:  # a gap: the store has what is missing
                        need_store = True
                        break
                    last = ev.seq
                    if tree is None or tree.admit(ev):
                        out.append(ev)
                        ended = _ends(ev, run_id)
                if out:
                    yield out
                if ended:
                    return
                if need_store or sub.needs_store:
                    if sub.overflow:
                        self.overflows += 1
                    need_store = True
                    continue
                await sub.wait()
        finally:
            self.unsubscribe(sub)


def _ends(event: Event, run_id: str | None) -> bool:
    return run_id is not None and event.run_id == run_id and event.type in TERMINAL_TYPES


def _descendants(root: str, edges: list[tuple[str, str | None]]) -> set[str]:
    children: dict[str, list[str]] = {}
    for rid, parent in edges:
        if parent is not None:
            children.setdefault(parent, []).append(rid)
    out = {root}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out
