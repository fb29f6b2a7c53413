"""The panes of one session, in tabs: chat, team, graph, approvals, usage.

The live app and the replay screen each hold one :class:`SessionView` and feed it the same
way: :meth:`SessionView.rebuild` draws a whole :class:`~screens.state.SessionState`,
:meth:`SessionView.sync` draws what one frame of events changed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from textual.containers import Vertical
from textual.lazy import Lazy
from textual.widget import Widget
from textual.widgets import TabbedContent, TabPane

from screens.chat import ChatPane
from screens.state import CallKey, Changes, SessionState

if TYPE_CHECKING:
    from screens.approvals import ApprovalsPane
    from screens.graph_view import GraphSource, GraphView
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

_LATER = ("team", "graph", "approvals", "usage")
"""The panes that are not in the first frame."""


class _Later(Widget):
    """The place of a pane not built yet, in its tab, until :meth:`SessionView.reveal`
    mounts the pane there."""

    DEFAULT_CSS = """
    _Later {
        height: 0;
    }
    """

    def __init__(self, tab: str) -> None:
        super().__init__()
        self.tab = tab


class _Tabs(TabbedContent):
    """Tabs that a late focus message does not switch back.

    Textual shows the tab of a widget that gets the focus, through a message posted by that
    tab's pane. On a busy event loop that message can come after a later switch: F4 shows
    the graph and focuses it, then the message of a focus given to the chat just before
    arrives and shows the chat again, with the graph focused behind it. A message whose
    pane no longer holds the focus is dropped."""

    def _on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        focused = self.screen.focused
        if focused is None or event.tab_pane not in (focused, *focused.ancestors):
            event.prevent_default()  # stale: TabbedContent's own handler does not run
            event.stop()


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
        defer: Build and mount the panes other than the chat (their modules included) only
            when their tab is first shown or :meth:`reveal` is called (the app calls it
            once a prompt typed at once has its answer): else they are built now and
            mounted right after the first refresh.
        id: The widget's id.
        """
        super().__init__(id=id)
        self.read_only = read_only
        """A replay: nothing can be sent or decided."""
        self._deciding = deciding
        self._graph_source = graph_source
        self._defer = defer
        self.chat = ChatPane(read_only=read_only, id="chat")
        self._built: dict[str, Any] = {"chat": self.chat}
        self._mounting: dict[str, asyncio.Task[None]] = {}
        self._state: SessionState | None = None
        self._rules: list[Any] | None = None
        self._elsewhere: list[Any] | None = None
        self._pending = -1
        if not defer:
            for tab in _LATER:
                self._pane(tab)

    # The panes other than the chat are built on first use (their modules imported then).

    @property
    def team(self) -> TeamView:
        """The team pane."""
        return self._pane("team")  # type: ignore[no-any-return]

    @property
    def graph(self) -> GraphView:
        """The workflow graph pane."""
        return self._pane("graph")  # type: ignore[no-any-return]

    @property
    def approvals(self) -> ApprovalsPane:
        """The approvals pane."""
        return self._pane("approvals")  # type: ignore[no-any-return]

    @property
    def usage(self) -> UsageView:
        """The usage pane."""
        return self._pane("usage")  # type: ignore[no-any-return]

    def _pane(self, tab: str) -> Any:
        """The pane of ``tab``, built now if it was not (handed the state drawn so far)."""
        pane = self._built.get(tab)
        if pane is not None:
            return pane
        if tab == "team":
            from screens.team_view import TeamView

            pane = TeamView(id="team")
        elif tab == "graph":
            from screens.graph_view import GraphView

            pane = GraphView(graph_source=self._graph_source, id="graph")
        elif tab == "approvals":
            from screens.approvals import ApprovalsPane

            pane = ApprovalsPane(read_only=self.read_only, deciding=self._deciding, id="approvals")
            if self._rules is not None:
                pane.show_rules(self._rules)
            if self._elsewhere is not None:
                pane.set_elsewhere(self._elsewhere)
        elif tab == "usage":
            from screens.usage import UsageView

            pane = UsageView(id="usage")
        else:
            raise KeyError(tab)
        self._built[tab] = pane
        if self._state is not None:
            pane.show_state(self._state)
        return pane

    def built(self, tab: str) -> Any:
        """The pane of ``tab`` if it is built (never builds it)."""
        return self._built.get(tab)

    def show_rules(self, rules: list[Any]) -> None:
        """The rules in force, for the approvals pane (kept until it is built)."""
        self._rules = list(rules)
        if (pane := self.built("approvals")) is not None:
            pane.show_rules(rules)

    def set_elsewhere(self, approvals: list[Any]) -> None:
        """The calls waiting in other sessions, for the approvals pane (kept until it is
        built)."""
        self._elsewhere = list(approvals)
        if (pane := self.built("approvals")) is not None:
            pane.set_elsewhere(approvals)

    def refresh_queue(self) -> None:
        """Redraw the approvals queue (a decision made elsewhere), if the pane is built."""
        if (pane := self.built("approvals")) is not None:
            pane.refresh_queue()

    def compose(self) -> Any:
        with _Tabs(initial="tab-chat", id="tabs"):
            for key in TABS:
                title, fkey = TABS[key]
                with TabPane(f"{title} {fkey.upper()}", id=f"tab-{key}"):
                    # Only the chat is in the first frame; the rest mount right after it,
                    # or (defer) when shown or revealed.
                    if key == "chat":
                        yield self.chat
                    elif self._defer:
                        yield _Later(key)
                    else:
                        yield Lazy(self._pane(key))

    async def reveal(self, tab: str | None = None) -> None:
        """Build and mount the panes not mounted yet (only ``tab``'s, when given); what
        they were handed meanwhile is drawn as they mount. Concurrent calls for one pane
        mount it once, and each returns once it is mounted."""
        for key in _LATER if tab is None else (tab,):
            task = self._mounting.get(key)
            if task is None:
                task = self._mounting[key] = asyncio.create_task(self._mount_pane(key))
            await asyncio.shield(task)

    @property
    def panes_waiting(self) -> bool:
        """Whether some pane has not been asked to mount yet (see ``defer``)."""
        return self._defer and len(self._mounting) < len(_LATER)

    async def _mount_pane(self, tab: str) -> None:
        if not self.is_attached:
            return  # the view left the screen meanwhile (the app quits)
        later = next((w for w in self.query(_Later) if w.tab == tab), None)
        if later is None or later.parent is None:
            return  # not deferred, or already in place
        parent = later.parent
        assert isinstance(parent, Widget)
        await parent.mount(self._pane(tab), after=later)
        await later.remove()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """A tab clicked before its pane was mounted: mount it."""
        tab = (event.pane.id or "").removeprefix("tab-")
        if tab in _LATER and tab not in self._mounting and self._defer:
            self.run_worker(self.reveal(tab), group="reveal")

    @property
    def panes(self) -> tuple[Any, ...]:
        """The panes that draw state (those built so far)."""
        return tuple(self._built.values())

    def rebuild(self, state: SessionState) -> None:
        """Draw a whole state."""
        state.take_changes()
        self._state = state
        for pane in self.panes:
            pane.show_state(state)
        self._count_pending(state)

    def sync(self, state: SessionState, changes: Changes) -> None:
        """Draw one frame's changes."""
        self._state = state
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
        """Switch to a tab (chat, team, graph, approvals, usage) and focus its pane (a pane
        not mounted yet is mounted first, and focused if its tab is still shown then)."""
        if not self.is_mounted:
            return
        tabs = self.query_one(TabbedContent)
        tabs.active = f"tab-{tab}"
        if tab != "chat" and not self._pane(tab).is_mounted:
            self.run_worker(self._reveal_and_focus(tab), group="reveal")
            return
        self._focus(tab)

    async def _reveal_and_focus(self, tab: str) -> None:
        await self.reveal(tab)
        if self.active == tab and self._pane(tab).is_mounted:
            self._focus(tab)

    def _focus(self, tab: str) -> None:
        target: Any
        if tab == "chat":
            target = self.chat.transcript
        elif tab == "team":
            target = self.team.run_tree
            if target.cursor_line < 0 and target.last_line >= 0:
                # The keys start on the first run, shown as such (whether the tree was
                # filled before or after it mounted).
                target.cursor_line = 0
        elif tab == "graph":
            target = self.graph.canvas
        elif tab == "approvals":
            target = self.approvals.queue  # a query: only once mounted
        else:
            target = self.usage
        target.focus()

    @property
    def active(self) -> str:
        """The tab shown."""
        return (self.query_one(TabbedContent).active or "tab-chat").removeprefix("tab-")
