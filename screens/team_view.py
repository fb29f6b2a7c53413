"""Team transcripts: one lane per member, the tree of runs, who is working now.

The tree is built from ``run.started`` events (``parent_run_id`` gives the shape: the team,
its leader's runs, its members, nested teams and their members). Every run below a team
belongs to the lane of its ``source`` (a member, or the leader), so a member that is asked
three times keeps one transcript. Lanes of running members show a spinner. Selecting a run
in the tree, clicking a lane, or ``[`` / ``]`` focuses a lane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, Vertical
from textual.events import Click
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from screens.pane import Pane
from screens.state import Changes, RunState, SessionState, format_cost, format_tokens
from screens.transcript import Transcript

__all__ = ["Lane", "TeamView", "run_label"]

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
"""Frames of the working marker."""

STATUS_ICON = {
    "completed": "✓",
    "failed": "✗",
    "cancelled": "■",
    "running": "●",
    "interrupted": "⏸",
}
"""A run's status at a glance."""


def run_label(run: RunState, frame: int = -1) -> Text:
    """One line for a run: status, kind, name, tokens, cost."""
    if run.status == "running":
        icon = "⚠" if run.waiting else (SPINNER[frame % len(SPINNER)] if frame >= 0 else "●")
    else:
        icon = STATUS_ICON[run.status]
    style = {
        "completed": "green",
        "failed": "red",
        "cancelled": "yellow",
        "running": "bold yellow",
        "interrupted": "yellow",
    }
    text = Text()
    text.append(f"{icon} ", style="magenta" if run.waiting else style[run.status])
    if run.kind != "agent":
        text.append(f"{run.kind} ", style="dim")
    text.append(run.target, style="bold" if run.depth == 0 else "")
    tokens = run.prompt_tokens + run.completion_tokens
    if tokens:
        text.append(f" {format_tokens(tokens)}t", style="dim")
    if run.cost:
        text.append(f" {format_cost(run.cost)}", style="dim")
    return text


class Lane(Vertical):
    """One member's transcript."""

    working: reactive[bool] = reactive(False)
    """One of its runs is in flight."""
    focused_lane: reactive[bool] = reactive(False)
    """The lane the user selected."""

    @dataclass
    class Selected(Message):
        """The user clicked a lane."""

        lane: Lane
        """The lane."""

        @property
        def control(self) -> Lane:
            """The lane."""
            return self.lane

    def __init__(self, name: str) -> None:
        super().__init__(classes="lane")
        self.member = name
        """The member (a run source)."""
        self.run_ids: set[str] = set()
        """Its runs."""
        self.header = Static(Text(name), classes="lane-header")
        self.transcript = Transcript(
            lambda _s, i: i.run_id in self.run_ids, classes="lane-transcript"
        )

    def compose(self) -> Any:
        yield self.header
        yield self.transcript

    def watch_working(self, working: bool) -> None:
        self.set_class(working, "-working")

    def watch_focused_lane(self, focused: bool) -> None:
        self.set_class(focused, "-focused")

    def on_click(self, event: Click) -> None:
        self.post_message(self.Selected(self))

    def draw_header(self, state: SessionState, frame: int) -> None:
        """Status of the member's latest run, and its totals."""
        runs = [state.runs[r] for r in self.run_ids if r in state.runs]
        latest = max(runs, key=lambda r: r.started_ts) if runs else None
        self.working = any(r.status == "running" for r in runs)
        label = run_label(latest, frame if self.working else -1) if latest else Text(self.member)
        tokens = sum(r.prompt_tokens + r.completion_tokens for r in runs)
        if len(runs) > 1:
            label.append(f"  ×{len(runs)} runs, {format_tokens(tokens)}t", style="dim")
        self.header.update(label)


class TeamView(Horizontal, Pane):
    """The run tree and one lane per member."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("left_square_bracket", "lane(-1)", "Prev lane"),
        Binding("right_square_bracket", "lane(1)", "Next lane"),
        Binding("t", "toggle_tree", "Tree"),
    ]

    focused_member: reactive[str | None] = reactive(None)
    """The member whose lane is focused."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run_tree: Tree[str] = Tree("session", id="run-tree")
        self.lanes: dict[str, Lane] = {}
        self._tree_nodes: dict[str, TreeNode[str]] = {}
        self._state: SessionState | None = None
        self._frame = 0
        self._empty = Static(
            "No team has run in this session yet. Choose a team in the chat pane (F2).",
            id="team-empty",
        )

    def compose(self) -> Any:
        with Vertical(id="run-tree-box"):
            yield self.run_tree
        with Vertical(id="lanes-box"):
            yield self._empty
            yield HorizontalScroll(id="lanes")

    def on_mount(self) -> None:
        self.run_tree.show_root = False
        self.run_tree.guide_depth = 2
        self.set_interval(0.1, self._spin)
        self.catch_up()

    def _spin(self) -> None:
        if self._state is None or self.app.animation_level == "none" or not self.display:
            return
        if not any(lane.working for lane in self.lanes.values()):
            return
        self._frame += 1
        for lane in self.lanes.values():
            if lane.working:
                lane.draw_header(self._state, self._frame)
        for run_id, node in self._tree_nodes.items():
            run = self._state.runs.get(run_id)
            if run is not None and run.status == "running":
                node.set_label(run_label(run, self._frame))

    # -- drawing ---------------------------------------------------------------------------

    def _lane_key(self, state: SessionState, run: RunState) -> str | None:
        return run.target if state.team_of(run.run_id) is not None else None

    def rebuild(self, state: SessionState) -> None:
        """Draw a whole state."""
        self._state = state
        self.run_tree.clear()
        self._tree_nodes.clear()
        for lane in self.lanes.values():
            lane.remove()
        self.lanes.clear()
        self.focused_member = None
        for run in state.runs.values():
            self._add_run(state, run)
        self._refresh_lanes(state, set(state.runs))
        for lane in self.lanes.values():
            lane.transcript.rebuild(state)

    def sync(self, state: SessionState, changes: Changes) -> None:
        """Draw one frame's changes."""
        self._state = state
        fresh = [r for r in changes.runs if r not in self._tree_nodes]
        if fresh:
            order = {r: i for i, r in enumerate(state.runs)}
            fresh.sort(key=lambda r: order.get(r, 0))
        known = [r for r in changes.runs if r in self._tree_nodes]
        for run_id in fresh + known:
            run = state.runs.get(run_id)
            if run is None:
                continue
            if run_id not in self._tree_nodes:
                self._add_run(state, run)
            else:
                self._tree_nodes[run_id].set_label(
                    run_label(run, self._frame if run.status == "running" else -1)
                )
        if changes.runs:
            self._refresh_lanes(state, changes.runs)
        for lane in self.lanes.values():
            lane.transcript.sync(state, changes)

    def _add_run(self, state: SessionState, run: RunState) -> None:
        parent = self._tree_nodes.get(run.parent_run_id or "", self.run_tree.root)
        parent.allow_expand = True
        node = parent.add(run_label(run), data=run.run_id, expand=True, allow_expand=False)
        self._tree_nodes[run.run_id] = node
        key = self._lane_key(state, run)
        if key is None:
            return
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = Lane(key)
            self.query_one("#lanes", HorizontalScroll).mount(lane)
            self._size_lanes()
            if self.focused_member is None:
                self.focused_member = key
        lane.run_ids.add(run.run_id)

    def on_resize(self) -> None:
        self._size_lanes()

    def _size_lanes(self) -> None:
        """Lanes share the width, none narrower than a readable column."""
        if not self.lanes:
            return
        box = self.query_one("#lanes", HorizontalScroll)
        available = box.size.width or self.size.width
        least = 34 if self.app.has_class("-compact") else 40
        width = max(least, available // len(self.lanes) - 1)
        for lane in self.lanes.values():
            lane.styles.width = width

    def _refresh_lanes(self, state: SessionState, runs: set[str]) -> None:
        self._empty.display = not self.lanes
        for lane in self.lanes.values():
            if lane.run_ids & runs:
                lane.draw_header(state, self._frame)

    # -- selection -------------------------------------------------------------------------

    def watch_focused_member(self, member: str | None) -> None:
        for name, lane in self.lanes.items():
            lane.focused_lane = name == member
        focused = self.lanes.get(member or "")
        if focused is not None:
            self.query_one("#lanes", HorizontalScroll).scroll_to_widget(focused, animate=False)

    def action_lane(self, step: int) -> None:
        """Focus the previous or next lane."""
        names = list(self.lanes)
        if not names:
            return
        index = names.index(self.focused_member) if self.focused_member in names else -1
        self.focused_member = names[(index + step) % len(names)]

    def action_toggle_tree(self) -> None:
        """Show or hide the run tree."""
        box = self.query_one("#run-tree-box")
        box.display = not box.display

    @on(Lane.Selected)
    def _lane_clicked(self, event: Lane.Selected) -> None:
        self.focused_member = event.lane.member

    @on(Tree.NodeSelected, "#run-tree")
    @on(Tree.NodeHighlighted, "#run-tree")
    def _run_selected(self, event: Tree.NodeSelected[str] | Tree.NodeHighlighted[str]) -> None:
        run_id = event.node.data
        if self._state is None or run_id is None:
            return
        run = self._state.runs.get(run_id)
        if run is None:
            return
        if run.target in self.lanes:
            self.focused_member = run.target
