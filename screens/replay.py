"""Replay: play a stored session back through the same panes as a live run.

The panes only ever see events, so a replay is the session's events fed to a fresh
:class:`~screens.state.SessionState` at the recorded pace (1x, 2x, 10x) or all at once.
Events are read from the store page by page just ahead of the cursor, never all at
once: a session of 100,000 events opens at once and stays small. Jumping far (the
timeline, ``end``, stepping back) folds the events up to the target into a new state in
a worker thread, then swaps it in and redraws the panes (each draws a window, not every
item).

Keys: ``space`` play/pause; ``1`` ``2`` ``3`` ``4`` speed 1x, 2x, 10x, instant; ``.`` one
event forward, ``,`` one back; ``←`` ``→`` scrub by a hundredth, ``home`` ``end``; a click on
the timeline jumps there; ``f`` forks the session at the last message shown (a new session
to continue in the chat); ``escape`` closes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.events import Click
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.types import CSSPathType
from textual.widget import Widget
from textual.worker import get_current_worker

from screens.engine_api import EngineLike
from screens.graph_view import GraphSource
from screens.session_view import SessionView
from screens.state import SessionState
from screens.status import StatusBar

__all__ = [
    "SPEEDS",
    "EventSource",
    "MemorySource",
    "ReplayScreen",
    "Timeline",
    "source_for",
    "speed_index",
]

SPEEDS: tuple[float, ...] = (1.0, 2.0, 10.0, float("inf"))
"""1x, 2x, 10x, instant."""
PAGE = 2000
"""Events read from the store at a time."""
MAX_GAP = 1.5
"""Recorded idle time longer than this (seconds) is shortened to it."""
NEAR = 5000
"""A forward jump shorter than this is applied in place; a longer one rebuilds."""


class EventSource(Protocol):
    """A session's events, read in pages."""

    def total(self) -> int:
        """The seq of the last event."""
        ...

    def page(self, after_seq: int, limit: int) -> list[Any]:
        """Up to ``limit`` events with seq > after_seq, in order."""
        ...


class _StoreSource:
    def __init__(self, store: Any, session_id: str) -> None:
        self.store = store
        self.session_id = session_id

    def total(self) -> int:
        return int(self.store.last_seq(self.session_id))

    def page(self, after_seq: int, limit: int) -> list[Any]:
        return list(self.store.events(self.session_id, after_seq=after_seq, limit=limit))


class _EngineSource:
    """An engine without a store (an attached one): its events are read once, without
    blocking (:meth:`ReplayScreen._read`), then paged in memory."""

    def __init__(self, engine: EngineLike, session_id: str) -> None:
        self.engine = engine
        self.session_id = session_id
        self._events: list[Any] | None = None

    @property
    def loaded(self) -> bool:
        """Whether the events were read."""
        return self._events is not None

    def preload(self, events: list[Any]) -> None:
        """The session's events, read by the caller."""
        self._events = list(events)

    def _all(self) -> list[Any]:
        if self._events is None:
            self._events = list(self.engine.session_events(self.session_id))
        return self._events

    def total(self) -> int:
        events = self._all()
        return events[-1].seq if events else 0

    def page(self, after_seq: int, limit: int) -> list[Any]:
        return [e for e in self._all() if e.seq > after_seq][:limit]


class MemorySource:
    """A session's events held in memory: an exported JSONL file replayed as it is, without
    importing it anywhere."""

    def __init__(self, events: list[Any]) -> None:
        self._events = events
        self._seqs = [e.seq for e in events]

    def total(self) -> int:
        return self._seqs[-1] if self._seqs else 0

    def page(self, after_seq: int, limit: int) -> list[Any]:
        import bisect

        start = bisect.bisect_right(self._seqs, after_seq)
        return self._events[start : start + limit]


def source_for(engine: EngineLike, session_id: str) -> EventSource:
    """Page through the store when the engine has one, else through ``session_events``."""
    store = getattr(engine, "store", None)
    if store is not None and hasattr(store, "last_seq") and hasattr(store, "events"):
        return _StoreSource(store, session_id)
    return _EngineSource(engine, session_id)


def speed_index(speed: float) -> int:
    """The index in :data:`SPEEDS` nearest to ``speed`` (0 or inf: instant)."""
    if speed <= 0 or math.isinf(speed):
        return len(SPEEDS) - 1
    finite = [i for i, s in enumerate(SPEEDS) if math.isfinite(s)]
    return min(finite, key=lambda i: abs(math.log(SPEEDS[i] / speed)))


def last_message_seq(source: EventSource, seq: int) -> int | None:
    """The seq of the last ``message.completed`` at or before ``seq`` (read backwards a page
    at a time), or None."""
    end = seq
    while end > 0:
        start = max(0, end - PAGE)
        found = [
            int(e.seq)
            for e in source.page(start, end - start)
            if e.seq <= seq and getattr(e, "type", "") == "message.completed"
        ]
        if found:
            return found[-1]
        end = start
    return None


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Timeline(Widget, can_focus=True):
    """Where the replay is, as a bar; click or ←/→ to scrub."""

    DEFAULT_CSS = """
    Timeline { height: 1; padding: 0 1; }
    Timeline:focus { background: $boost; }
    """
    BINDINGS: ClassVar[list[Any]] = [
        Binding("left", "scrub(-1)", "Back", show=False),
        Binding("right", "scrub(1)", "Forward", show=False),
        Binding("home", "jump(0)", "Start", show=False),
        Binding("end", "jump(1)", "End", show=False),
    ]

    position: reactive[int] = reactive(0)
    """Events applied (the seq of the last one)."""
    total: reactive[int] = reactive(0)
    """Events in the session."""
    playing: reactive[bool] = reactive(False)
    """Playing or paused."""
    speed: reactive[float] = reactive(1.0)
    """Playback speed."""
    elapsed: reactive[float] = reactive(0.0)
    """Recorded seconds from the first event to the cursor."""
    duration: reactive[float] = reactive(0.0)
    """Recorded seconds of the whole session."""
    busy: reactive[bool] = reactive(False)
    """A jump is being prepared."""

    @dataclass
    class Seek(Message):
        """Jump to an event."""

        timeline: Timeline
        """The timeline."""
        seq: int
        """The event to stop after."""

        @property
        def control(self) -> Timeline:
            """The timeline."""
            return self.timeline

    def _left(self) -> Text:
        speed = "instant" if self.speed == float("inf") else f"{self.speed:g}x"
        return Text.assemble(("▶ " if self.playing else "❚❚ ", "bold"), (f"{speed:<7} ", "bold"))

    def _right(self) -> Text:
        busy = " ⧗" if self.busy else ""
        return Text(
            f" {self.position:,}/{self.total:,}  {_clock(self.elapsed)}/{_clock(self.duration)}{busy}"
        )

    def _bar_span(self) -> tuple[int, int]:
        left = self._left().cell_len
        right = self._right().cell_len
        return left, max(1, self.content_size.width - left - right)

    def render(self) -> Text:
        left, width = self._bar_span()
        frac = self.position / self.total if self.total else 0.0
        filled = int(frac * width)
        bar = Text()
        bar.append("━" * filled, style="bold")
        if filled < width:
            bar.append("╸" if filled else "─", style="bold" if filled else "dim")
            bar.append("─" * (width - filled - 1), style="dim")
        return Text.assemble(self._left(), bar, self._right())

    def on_click(self, event: Click) -> None:
        left, width = self._bar_span()
        x = event.x - self.styles.padding.left - left
        if self.total and 0 <= x <= width:
            self.post_message(self.Seek(self, round(x / width * self.total)))

    def action_scrub(self, direction: int) -> None:
        """Move by a hundredth of the session (at least one event)."""
        step = max(1, self.total // 100)
        self.post_message(
            self.Seek(self, max(0, min(self.total, self.position + direction * step)))
        )

    def action_jump(self, where: int) -> None:
        """To the start or the end."""
        self.post_message(self.Seek(self, self.total if where else 0))


class ReplayScreen(Screen[None]):
    """A stored session, played back through the live panes."""

    CSS_PATH: ClassVar[CSSPathType | None] = [Path(__file__).parent / "replay.tcss"]
    AUTO_FOCUS = "#timeline"
    BINDINGS: ClassVar[list[Any]] = [
        Binding("space", "toggle_play", "Play/pause", priority=True),
        Binding("1", "speed(0)", "1x", priority=True),
        Binding("2", "speed(1)", "2x", priority=True),
        Binding("3", "speed(2)", "10x", priority=True),
        Binding("4", "speed(3)", "Instant", priority=True),
        Binding("full_stop", "step(1)", "Step", priority=True),
        Binding("comma", "step(-1)", "Back", priority=True),
        Binding("f", "fork", "Fork here"),
        Binding("escape", "close", "Close replay"),
    ]

    @dataclass
    class Opened(Message):
        """The session's size and first page are known."""

        total: int
        """Events in it."""
        first: list[Any]
        """The first page."""
        last_ts: float
        """Timestamp of its last event."""

    @dataclass
    class Paged(Message):
        """The next page arrived."""

        after: int
        """It follows this seq."""
        events: list[Any]
        """The events."""

    @dataclass
    class Rebuilt(Message):
        """A state folded up to an event, off the UI thread."""

        state: SessionState
        """The state."""
        position: int
        """The seq it stops after."""
        target: int
        """The seq asked for."""

    @dataclass
    class Forked(Message):
        """A fork of the replayed session was made (or could not be)."""

        session_id: str | None
        """The new session."""
        at_seq: int
        """The event it ends with."""
        error: str | None = None
        """Why there is none."""

    def __init__(
        self,
        engine: EngineLike,
        session_id: str,
        *,
        graph_source: GraphSource | None = None,
        autoplay: bool = True,
        speed: int = 0,
        source: EventSource | None = None,
        fork_from: Callable[[], str] | None = None,
        frame_interval: float = 1 / 30,
    ) -> None:
        super().__init__()
        self.engine = engine
        """The engine (its store is forked from)."""
        self.session_id = session_id
        """The session replayed."""
        self.source = source or source_for(engine, session_id)
        """Where the events come from."""
        self.fork_from = fork_from
        """Puts the replayed session in the store and says its id (a replayed file is
        imported when it is forked, not before); called in a worker thread."""
        self.state = SessionState(session_id)
        """What has been replayed so far."""
        self.view = SessionView(read_only=True, graph_source=graph_source, id="replay-view")
        self.timeline = Timeline(id="timeline")
        self.status = StatusBar(id="replay-status")
        self.frame_interval = frame_interval
        self._autoplay = autoplay
        self._speed_index = speed
        self._buffer: deque[Any] = deque()
        self._buffer_end = 0
        self._fetching = False
        self._exhausted = False
        self._first_ts: float | None = None
        self._vts = 0.0
        self._last_tick = 0.0
        self._timer: Timer | None = None
        self._target: int | None = None

    def compose(self) -> Any:
        yield self.view
        yield self.timeline
        yield self.status

    def on_mount(self) -> None:
        self.status.mode = "replay"
        self.status.engine = f"session {self.session_id}"
        self.status.session = (
            "space play/pause · 1-4 speed · . , step · ←→ scrub · f fork · esc close"
        )
        self.timeline.speed = SPEEDS[self._speed_index]
        self.view.rebuild(self.state)
        if isinstance(self.source, _EngineSource) and not self.source.loaded:
            self._read()
        else:
            self._open()

    @work(exclusive=True, group="replay-read", description="read the session", exit_on_error=False)
    async def _read(self) -> None:
        """Read an attached engine's events without blocking the UI, then open them."""
        assert isinstance(self.source, _EngineSource)
        try:
            self.source.preload(await self.engine.asession_events(self.session_id))
        except Exception as exc:  # shown, never raised into the UI
            self.notify(str(exc), title="Could not read the session", severity="error")
            self.source.preload([])
        self._open()

    @property
    def position(self) -> int:
        """The seq of the last event applied."""
        return self.timeline.position

    @work(
        thread=True,
        exclusive=True,
        group="replay-open",
        description="open the session",
        exit_on_error=False,
    )
    def _open(self) -> None:
        total = self.source.total()
        first = self.source.page(0, PAGE)
        last = self.source.page(total - 1, 1) if total > 1 else first[-1:]
        last_ts = last[-1].ts if last else 0.0
        self.post_message(self.Opened(total, first, last_ts))

    @on(Opened)
    def _opened(self, event: Opened) -> None:
        self.timeline.total = event.total
        self._buffer.extend(event.first)
        self._buffer_end = event.first[-1].seq if event.first else 0
        self._exhausted = self._buffer_end >= event.total
        self._first_ts = event.first[0].ts if event.first else 0.0
        self._vts = self._first_ts
        self.timeline.duration = max(0.0, event.last_ts - (self._first_ts or 0.0))
        if not event.total:
            self.notify("This session has no events.", timeout=4)
            return
        if self._autoplay:
            self.play()

    # -- playing -------------------------------------------------------------------------

    def play(self) -> None:
        """Start playing from the cursor."""
        if self.position >= self.timeline.total:
            self.seek(0)
        self.timeline.playing = True
        if SPEEDS[self._speed_index] == float("inf"):
            self.timeline.playing = False
            self.seek(self.timeline.total)
            return
        self._last_tick = time.monotonic()
        if self._buffer:
            # Start the clock at the next event: no waiting for the recorded pause before it.
            self._vts = max(self._vts, self._buffer[0].ts - 0.05)
        if self._timer is None:
            self._timer = self.set_interval(self.frame_interval, self._tick, name="replay tick")

    def pause(self) -> None:
        """Stop at the cursor."""
        self.timeline.playing = False
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def action_toggle_play(self) -> None:
        """Play or pause."""
        if self.timeline.playing:
            self.pause()
        else:
            self.play()

    def action_speed(self, index: int) -> None:
        """1x, 2x, 10x or instant."""
        self._speed_index = index
        self.timeline.speed = SPEEDS[index]
        if SPEEDS[index] == float("inf"):
            self.pause()
            self.seek(self.timeline.total)

    def _tick(self) -> None:
        now = time.monotonic()
        dt, self._last_tick = now - self._last_tick, now
        self._vts += dt * SPEEDS[self._speed_index]
        due: list[Any] = []
        while self._buffer and self._buffer[0].ts <= self._vts and len(due) < 20_000:
            due.append(self._buffer.popleft())
        if self._buffer and self._buffer[0].ts - self._vts > MAX_GAP:
            self._vts = self._buffer[0].ts - MAX_GAP
        if due:
            self._apply(due)
        self._prefetch()
        if not self._buffer and self._exhausted:
            self.pause()

    def _apply(self, events: list[Any]) -> None:
        for ev in events:
            self.state.apply(ev)
        changes = self.state.take_changes()
        self.view.sync(self.state, changes)
        self._moved(events[-1].seq, events[-1].ts)

    def _moved(self, seq: int, ts: float) -> None:
        self.timeline.position = seq
        self.timeline.elapsed = max(0.0, ts - (self._first_ts or ts))

    def _prefetch(self) -> None:
        if self._fetching or self._exhausted or len(self._buffer) > PAGE // 2:
            return
        self._fetching = True
        self._fetch(self._buffer_end)

    @work(
        thread=True,
        exclusive=True,
        group="replay-page",
        description="read events",
        exit_on_error=False,
    )
    def _fetch(self, after: int) -> None:
        self.post_message(self.Paged(after, self.source.page(after, PAGE)))

    @on(Paged)
    def _paged(self, event: Paged) -> None:
        self._fetching = False
        if event.after != self._buffer_end:
            return  # a jump happened meanwhile
        self._buffer.extend(event.events)
        if event.events:
            self._buffer_end = event.events[-1].seq
        self._exhausted = not event.events or self._buffer_end >= self.timeline.total

    def action_step(self, direction: int) -> None:
        """One event forward or back."""
        self.pause()
        if direction > 0:
            if self._buffer:
                self._apply([self._buffer.popleft()])
                self._prefetch()
            elif not self._exhausted:
                self._prefetch()
        elif self.position > 0:
            self.seek(self.position - 1)

    # -- jumping -------------------------------------------------------------------------

    @on(Timeline.Seek)
    def _seek_requested(self, event: Timeline.Seek) -> None:
        self.seek(event.seq)

    def seek(self, seq: int) -> None:
        """Show the session as it was after event ``seq``."""
        seq = max(0, min(seq, self.timeline.total))
        if seq == self.position and self._target is None:
            return
        ahead = seq - self.position
        if 0 < ahead <= NEAR and self._buffer and self._buffer[-1].seq >= seq:
            batch = []
            while self._buffer and self._buffer[0].seq <= seq:
                batch.append(self._buffer.popleft())
            if batch:
                self._apply(batch)
            self._vts = batch[-1].ts if batch else self._vts
            self._prefetch()
            return
        self._target = seq
        self.timeline.busy = True
        self._rebuild(seq)

    @work(
        thread=True,
        exclusive=True,
        group="replay-seek",
        description="fold events up to a point",
        exit_on_error=False,
    )
    def _rebuild(self, seq: int) -> None:
        worker = get_current_worker()
        state = SessionState(self.session_id)
        after = 0
        while after < seq:
            page = self.source.page(after, min(PAGE * 5, seq - after))
            if not page or worker.is_cancelled:
                break
            state.extend(page)
            after = page[-1].seq
        if not worker.is_cancelled:
            self.post_message(self.Rebuilt(state, after, seq))

    @on(Rebuilt)
    def _rebuilt(self, event: Rebuilt) -> None:
        if event.target != self._target:
            return  # a later jump is coming
        self._target = None
        self.timeline.busy = False
        self.state = event.state
        self.view.rebuild(self.state)
        self._buffer.clear()
        self._buffer_end = event.position
        self._exhausted = event.position >= self.timeline.total
        self._vts = self.state.last_ts or (self._first_ts or 0.0)
        self._moved(event.position, self.state.last_ts or (self._first_ts or 0.0))
        self._prefetch()

    # -- the rest ------------------------------------------------------------------------

    def action_fork(self) -> None:
        """Fork the session at the last message shown; the fork opens in the chat."""
        if self.position <= 0:
            self.notify("Play or step to the message to fork at first.", timeout=3)
            return
        self.pause()
        self._fork(self.position)

    @work(exclusive=True, group="replay-fork", description="fork the session", exit_on_error=False)
    async def _fork(self, position: int) -> None:
        at = await asyncio.to_thread(last_message_seq, self.source, position) or position
        try:  # the local engine forks in its store; an attached one asks its server
            stored = self.fork_from() if self.fork_from is not None else self.session_id
            new = await self.engine.afork_session(stored, at_seq=at)
        except Exception as exc:  # shown, never raised into the UI
            self.post_message(self.Forked(None, at, str(exc)))
            return
        self.post_message(self.Forked(new.id, at))

    @on(Forked)
    def _forked(self, event: Forked) -> None:
        if event.session_id is None:
            self.notify(event.error or "fork failed", title="Could not fork", severity="error")
            return
        self.notify(
            f"Forked at event {event.at_seq} into {event.session_id}: type to continue it.",
            timeout=6,
        )
        open_session = getattr(self.app, "open_session", None)
        if open_session is not None:
            self.action_close()
            open_session(event.session_id)

    def action_close(self) -> None:
        """Back to where the replay was opened from."""
        self.pause()
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
        else:
            self.app.exit(0)
