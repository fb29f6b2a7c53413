"""The panes of one session, in tabs: chat, team, graph, approvals, usage.

The live app and the replay screen each hold one :class:`SessionView` and feed it the same
way: :meth:`SessionView.rebuild` draws a whole :class:`~screens.state.SessionState`,
:meth:`SessionView.sync` draws what one frame of events changed.
"""

from __future__ import annotations

from typing import Any

from textual.containers import Vertical
from textual.lazy import Lazy
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


class SessionView(Vertical):
    """Every pane of a session."""

    def __init__(
        self,
        *,
        read_only: bool = False,
        deciding: set[CallKey] | None = None,
        graph_source: GraphSource | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.read_only = read_only
        """A replay: nothing can be sent or decided."""
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
                    # Only the chat is in the first frame; the rest mount right after.
                    yield pane if key == "chat" else Lazy(pane)

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
        """Switch to a tab (chat, team, graph, approvals, usage) and focus its pane."""
        if not self.is_mounted:
            return
        tabs = self.query_one(TabbedContent)
        tabs.active = f"tab-{tab}"
        target: Any = {
            "chat": self.chat.transcript,
            "team": self.team.run_tree,
            "graph": self.graph.canvas,
            "approvals": self.approvals.queue,
            "usage": self.usage,
        }[tab]
        target.focus()

    @property
    def active(self) -> str:
        """The tab shown."""
        return (self.query_one(TabbedContent).active or "tab-chat").removeprefix("tab-")
