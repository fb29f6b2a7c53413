"""The sessions screen (F7): browse, filter, open, resume, replay or delete a session.

Typing in the search box filters by title and id at once, and searches every session's
messages, tool calls and tool results (the store's full-text search, in a worker) a moment
later: sessions found that way show the matching excerpt. ``enter`` opens a session in the
main view (new prompts continue it), ``r`` also resumes its unfinished runs, ``p`` replays
it, ``d`` deletes it after asking. It lists the sessions of the app's workspace; ``a``
shows every workspace's (with a workspace column), and continuing a session that ran in
another workspace asks first.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.types import CSSPathType
from textual.widgets import Button, DataTable, Input, Static

from screens.engine_api import EngineLike
from workbench.termsafe import visible

__all__ = ["ConfirmDelete", "ConfirmOtherWorkspace", "SessionsScreen", "format_when"]


def format_when(ts: float) -> str:
    """Local date and time of an epoch timestamp."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


class ConfirmDelete(ModalScreen[bool]):
    """Delete a session? y / n."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("y", "answer(True)", "Delete"),
        Binding("n,escape", "answer(False)", "Keep"),
    ]

    def __init__(self, session_id: str, title: str) -> None:
        super().__init__(classes="confirm-modal")
        self.session_id = session_id
        self.title_text = title

    def compose(self) -> Any:
        with Vertical(classes="dialog"):
            yield Static(Text(f"Delete session {self.session_id}?", style="bold"), classes="title")
            yield Static(
                Text(f"“{self.title_text}”\nIts runs and events go too. This cannot be undone.")
            )
            with Horizontal(classes="buttons"):
                yield Button("Delete (y)", variant="error", id="yes")
                yield Button("Keep (n)", id="no")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        """Answer."""
        self.dismiss(yes)


class ConfirmOtherWorkspace(ModalScreen[bool]):
    """Continue a session that ran in another workspace? y / n."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("y", "answer(True)", "Continue here"),
        Binding("n,escape", "answer(False)", "Back"),
    ]

    def __init__(self, session_id: str, theirs: str, ours: str) -> None:
        super().__init__(classes="confirm-modal")
        self.session_id = session_id
        self.theirs = visible(theirs)  # from the store: an imported session says anything
        self.ours = ours

    def compose(self) -> Any:
        with Vertical(classes="dialog"):
            yield Static(
                Text(f"Session {self.session_id} ran in another workspace", style="bold"),
                classes="title",
            )
            body = Text()
            body.append("It ran in   ")
            body.append(self.theirs or "(unknown)", style="bold")
            body.append("\nThis is     ")
            body.append(self.ours, style="bold")
            body.append(
                "\n\nContinued here, its next runs use this workspace's agents, tools, rules "
                "and files. To continue it where it ran: workbench -w "
                f"{self.theirs or 'DIR'}"
            )
            yield Static(body)
            with Horizontal(classes="buttons"):
                yield Button("Continue here (y)", variant="warning", id="yes")
                yield Button("Back (n)", id="no")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        """Answer."""
        self.dismiss(yes)


def _same_folder(a: str, b: str) -> bool:
    return bool(a) and bool(b) and os.path.abspath(a) == os.path.abspath(b)


class SessionsScreen(Screen[tuple[str, str] | None]):
    """The stored sessions of this workspace (``a``: of every workspace), newest first.
    Dismisses with (action, session id)."""

    CSS_PATH: ClassVar[CSSPathType | None] = [Path(__file__).parent / "sessions.tcss"]
    AUTO_FOCUS = "#sessions-table"
    BINDINGS: ClassVar[list[Any]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "filter", "Filter"),
        Binding("enter", "choose('open')", "Open"),
        Binding("r", "choose('resume')", "Resume"),
        Binding("p", "choose('replay')", "Replay"),
        Binding("d", "delete", "Delete"),
        Binding("a", "toggle_all", "All workspaces"),
    ]

    SEARCH_DELAY = 0.25
    """Seconds of no typing before the full-text search runs."""

    @dataclass
    class Searched(Message):
        """The full-text search of a query came back."""

        query: str
        """What was searched."""
        hits: list[Any]
        """Matching sessions with excerpts (:class:`workbench.store.SearchHit`)."""

    def __init__(
        self,
        engine: EngineLike,
        *,
        current: str | None = None,
        limit: int = 1000,
        workspace: str | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.current = current
        self.limit = limit
        self.workspace = workspace if workspace is not None else str(engine.root)
        """The workspace folder the app is on: its sessions are listed first."""
        self.every_workspace = False
        """List the sessions of every workspace (with a workspace column)."""
        self.sessions: list[Any] = []
        """Every session loaded."""
        self.shown: list[Any] = []
        """The sessions that match the filter."""
        self.hits: dict[str, Any] = {}
        """Full-text matches of the current query, by session id."""
        self._hits_for = ""

    def compose(self) -> Any:
        yield Static(self._title(), id="sessions-title")
        yield Input(
            placeholder="/ search titles, ids, messages and tool calls", id="sessions-filter"
        )
        table: DataTable[Any] = DataTable(
            id="sessions-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static(
            "enter open · r resume · p replay · d delete · / search · escape back",
            id="sessions-hint",
        )

    def _title(self) -> Text:
        text = Text("Sessions", style="bold")
        if self.every_workspace:
            text.append(" of every workspace", style="bold")
            text.append("  a: only this one", style="dim")
        else:
            text.append(f" of {Path(self.workspace).name or self.workspace}", style="bold")
            text.append(f"  {self.workspace} · a: every workspace", style="dim")
        return text

    def _columns(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_column("", key="mark", width=1)
        table.add_column("session", key="id")
        table.add_column("title", key="title")
        if self.every_workspace:
            table.add_column("workspace", key="workspace")
        table.add_column("runs", key="runs")
        table.add_column("updated", key="updated")

    def on_mount(self) -> None:
        self._columns()
        self.query_one(DataTable).loading = True
        self._load()

    def action_toggle_all(self) -> None:
        """This workspace's sessions, or every workspace's."""
        self.every_workspace = not self.every_workspace
        self.query_one("#sessions-title", Static).update(self._title())
        self._columns()
        self.query_one(DataTable).loading = True
        self._load()

    @work(exclusive=True, group="sessions", description="list sessions", exit_on_error=False)
    async def _load(self) -> None:
        # async: an attached engine answers over HTTP, a local one reads in a thread
        workspace = None if self.every_workspace else self.workspace
        self._loaded(await self.engine.asessions(limit=self.limit, workspace=workspace))

    def _loaded(self, sessions: list[Any]) -> None:
        self.sessions = sessions
        table = self.query_one(DataTable)
        table.loading = False
        self._fill(self.query_one("#sessions-filter", Input).value)

    def _fill(self, query: str) -> None:
        q = query.strip().lower()
        hits = self.hits if q and self._hits_for == q else {}
        if not self.every_workspace:
            hits = {k: h for k, h in hits.items() if _same_folder(h.workspace, self.workspace)}
        self.shown = [
            s
            for s in self.sessions
            if not q or q in (s.title or "").lower() or q in s.id.lower() or s.id in hits
        ]
        known = {s.id for s in self.shown}
        extra = [  # found by the search, but older than the sessions loaded
            SimpleNamespace(
                id=h.session_id,
                title=h.title,
                updated_at=h.updated_at,
                run_count="",
                workspace=h.workspace,
            )
            for h in hits.values()
            if h.session_id not in known and h.session_id not in {x.id for x in self.sessions}
        ]
        if extra:
            self.shown = sorted([*self.shown, *extra], key=lambda s: s.updated_at, reverse=True)
        table = self.query_one(DataTable)
        table.clear()
        for s in self.shown:
            title: str | Text = visible((s.title or "(untitled)").replace("\n", " ")[:80])
            hit = hits.get(s.id)
            if hit is not None:
                title = Text(str(title))
                title.append("  ")
                for part, matched in hit.parts():
                    title.append(visible(re.sub(r"\s+", " ", part)), "bold" if matched else "dim")
                title.truncate(160)
            cells: list[Any] = ["●" if s.id == self.current else "", s.id, title]
            if self.every_workspace:
                where = getattr(s, "workspace", "") or ""
                here = _same_folder(where, self.workspace)
                name = visible(Path(where).name) or "?"
                cells.append(Text(name, style="" if here else "yellow"))
            cells += [str(getattr(s, "run_count", "")), format_when(s.updated_at)]
            table.add_row(*cells, key=s.id)
        if not self.shown:
            self.query_one("#sessions-hint", Static).update(
                "No sessions match."
                if q
                else (
                    "No sessions yet: send a prompt from the chat (escape)."
                    if self.every_workspace
                    else "No sessions in this workspace yet · a: every workspace · escape back"
                )
            )
        else:
            self.query_one("#sessions-hint", Static).update(
                f"{len(self.shown)} of {len(self.sessions)} · enter open · r resume · p replay · "
                "d delete · / search · a every workspace · escape back"
            )

    @on(Input.Changed, "#sessions-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)
        query = event.value.strip().lower()
        if query:
            self._search(query)

    @work(
        exclusive=True, group="sessions-search", description="search sessions", exit_on_error=False
    )
    async def _search(self, query: str) -> None:
        await asyncio.sleep(self.SEARCH_DELAY)  # a newer keystroke cancels this worker
        try:
            hits = list(await self.engine.asearch_sessions(query, limit=200, prefix=True))
        except Exception:  # the title filter still works
            hits = []
        self.post_message(self.Searched(query, hits))

    @on(Searched)
    def _searched(self, event: Searched) -> None:
        if event.query != self.query_one("#sessions-filter", Input).value.strip().lower():
            return  # typed on since
        self.hits = {h.session_id: h for h in event.hits}
        self._hits_for = event.query
        self._fill(event.query)

    @on(Input.Submitted, "#sessions-filter")
    def _filter_done(self) -> None:
        self.query_one(DataTable).focus()

    def action_filter(self) -> None:
        """Type a filter."""
        self.query_one("#sessions-filter", Input).focus()

    def action_back(self) -> None:
        """Back to the main view (or from the filter to the list)."""
        if self.focused is self.query_one("#sessions-filter", Input):
            self.query_one(DataTable).focus()
            return
        self.dismiss(None)

    @property
    def selected(self) -> Any | None:
        """The highlighted session."""
        table = self.query_one(DataTable)
        if (
            not self.shown
            or table.cursor_row is None
            or not 0 <= table.cursor_row < len(self.shown)
        ):
            return None
        return self.shown[table.cursor_row]

    @work(exclusive=True, group="choose-session", description="open a session")
    async def action_choose(self, action: str) -> None:
        """Open, resume or replay the highlighted session. Continuing (open, resume) a
        session of another workspace asks first: its next runs would use this one's."""
        s = self.selected
        if s is None:
            return
        where = getattr(s, "workspace", "") or ""
        if action in ("open", "resume") and where and not _same_folder(where, self.workspace):
            ok = await self.app.push_screen_wait(ConfirmOtherWorkspace(s.id, where, self.workspace))
            if not ok:
                return
        self.dismiss((action, s.id))

    @on(DataTable.RowSelected, "#sessions-table")
    def _row_selected(self) -> None:
        self.action_choose("open")

    @work(
        exclusive=True, group="delete-session", description="delete a session", exit_on_error=False
    )
    async def action_delete(self) -> None:
        """Delete the highlighted session after asking."""
        s = self.selected
        if s is None:
            return
        if not await self.app.push_screen_wait(ConfirmDelete(s.id, s.title or "(untitled)")):
            return
        try:
            await self.engine.adelete_session(s.id)
        except Exception as exc:  # a live run, the server away: said, not raised
            self.notify(str(exc), title="Could not delete", severity="error")
            return
        self.notify(f"Deleted {s.id}.", timeout=3)
        if s.id == self.current:
            self.dismiss(("deleted", s.id))
            return
        self.sessions = [x for x in self.sessions if x.id != s.id]
        self._fill(self.query_one("#sessions-filter", Input).value)
