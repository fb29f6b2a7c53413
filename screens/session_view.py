"""The panes of one session, in tabs: chat, team, graph, approvals, usage.

The live app and the replay screen each hold one :class:`SessionView` and feed it the same
way: :meth:`SessionView.rebuild` draws a whole :class:`~screens.state.SessionState`,
:meth:`SessionView.sync` draws what one frame of events changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.containers import Vertical
from textual.lazy import Lazy
from textual.widget import Widget
from textual.widgets import TabbedContent, TabPane

from screens.approvals import ApprovalsPane
from screens.chat import ChatPane
from screens.graph_view import GraphSource, GraphView
from screens.state import CallKey, Changes, SessionState
from screens.team_view import TeamView
from screens.usage import UsageView

__all__ = ["TABS", "SessionView"]

TABS = {
    "chat": ("Chat", "f2"),
    "team": ("Team", "f3"),
    "graph": ("Graph", "f4"),
    "approvals": ("Approvals", "f5"),
    "usage": ("Usage", "f6"),
}
"""Tab id -> (title, key)."""


class _Later(Widget):
    """A pane's place in its tab until :meth:`reveal` mounts the pane there (like
    :class:`textual.lazy.Lazy`, but when asked rather than after the first refresh)."""

    DEFAULT_CSS = """
    _Later {
        display: none;
    }
    """

    def __init__(self, pane: Widget) -> None:
        super().__init__()
        self.pane = pane
        self._revealed = False

    async def reveal(self) -> None:
        """Mount the pane in this place (once)."""
        parent = self.parent
        if self._revealed or parent is None or not self.is_mounted:
            return
        self._revealed = True
        assert isinstance(parent, Widget)
        await parent.mount(self.pane, after=self)
        await self.remove()


class SessionView(Vertical):
    """Every pane of a session."""

    def __init__(
        self,
        *,
        read_only: bool = False,
        deciding: set[CallKey] | None = None,
        graph_source: GraphSource | None = None,
        defer: bool = False,
        id: str | None = None,
    ) -> None:
        """Args:
        read_only: A replay: nothing can be sent or decided.
        deciding: The calls decided here whose resolution has not come back yet.
        graph_source: Reads a workflow's graph for the graph pane.
        defer: Mount the panes other than the chat only when their tab is first shown or
            :meth:`reveal` is called (the app does once it has started): else right after
            the first refresh. Mounting them is ≈ 50 ms of CPU that a prompt typed at once
            would wait for.
        id: The widget's id.
        """
        super().__init__(id=id)
        self.read_only = read_only
        """A replay: nothing can be sent or decided."""
        self._defer = defer
        self.chat = ChatPane(read_only=read_only, id="chat")
        self.team = TeamView(id="team")
        self.graph = GraphView(graph_source=graph_source, id="graph")
        self.approvals = ApprovalsPane(read_only=read_only, deciding=deciding, id="approvals")
        self.usage = UsageView(id="usage")
        self._pending = -1

    def compose(self) -> Any:
        with TabbedContent(initial="tab-chat", id="tabs"):
            for key, pane in (
                ("chat", self.chat),
                ("team", self.team),
                ("graph", self.graph),
                ("approvals", self.approvals),
                ("usage", self.usage),
            ):
                title, fkey = TABS[key]
                with TabPane(f"{title} {fkey.upper()}", id=f"tab-{key}"):
                    # Only the chat is in the first frame; the rest mount after it, or
                    # when first shown (defer).
                    if key == "chat":
                        yield pane
                    else:
                        yield _Later(pane) if self._defer else Lazy(pane)

    async def reveal(self, tab: str | None = None) -> None:
        """Mount the panes not mounted yet (only ``tab``'s, when given); a state they were
        handed meanwhile is drawn as they mount."""
        for later in list(self.query(_Later)):
            if tab is None or later.pane is self._pane(tab):
                await later.reveal()

    def _pane(self, tab: str) -> Any:
        return {
            "chat": self.chat,
            "team": self.team,
            "graph": self.graph,
            "approvals": self.approvals,
            "usage": self.usage,
        }[tab]

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A tab clicked before its pane was mounted: mount it."""
        tab = (event.pane.id or "").removeprefix("tab-")
        if tab in TABS and not self._pane(tab).is_mounted:
            self.call_later(self.reveal, tab)

    @property
    def panes(self) -> tuple[Any, ...]:
        """The panes that draw state."""
        return (self.chat, self.team, self.graph, self.approvals, self.usage)

    def rebuild(self, state: SessionState) -> None:
        """Draw a whole state."""
        state.take_changes()
        for pane in self.panes:
            pane.show_state(state)
        self._count_pending(state)

    def sync(self, state: SessionState, changes: Changes) -> None:
        """Draw one frame's changes."""
        for pane in self.panes:
            pane.show_changes(state, changes)
        if changes.approvals:
            self._count_pending(state)

    def _count_pending(self, state: SessionState) -> None:
        n = len(state.pending_approvals())
        if n == self._pending or not self.is_mounted:
            return
        self._pending = n
        tab = self.query_one(TabbedContent).get_tab("tab-approvals")
        title, fkey = TABS["approvals"]
        tab.label = f"{title} ({n}) {fkey.upper()}" if n else f"{title} {fkey.upper()}"
        tab.set_class(n > 0, "-pending")

    def show(self, tab: str) -> None:
        """Switch to a tab (chat, team, graph, approvals, usage) and focus its pane (mounted
        first, if it was not yet)."""
        if not self.is_mounted:
            return
        if not self._pane(tab).is_mounted:
            self.call_later(self._reveal_and_show, tab)
            return
        tabs = self.query_one(TabbedContent)
        tabs.active = f"tab-{tab}"
        focus: dict[str, Callable[[], Any]] = {
            "chat": lambda: self.chat.transcript,
            "team": lambda: self.team.run_tree,
            "graph": lambda: self.graph.canvas,
            "approvals": lambda: self.approvals.queue,  # a query: only once mounted
            "usage": lambda: self.usage,
        }
        focus[tab]().focus()

    @property
    def active(self) -> str:
        """The tab shown."""
        return (self.query_one(TabbedContent).active or "tab-chat").removeprefix("tab-")

    async def _reveal_and_show(self, tab: str) -> None:
        await self.reveal(tab)
        if self._pane(tab).is_mounted:
            self.show(tab)
