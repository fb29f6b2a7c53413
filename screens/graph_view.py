"""The workflow graph: boxes and edges, each node coloured by its state, updated live.

The graph comes from ``workflow.graph()`` (through the app's ``graph_source``); for a
session whose workflow is gone it is guessed from the step paths the events name. Node
states come only from ``workflow.step.*`` events (and the approvals of a step's child run):
waiting, running, done, failed, skipped, cancelled, awaiting approval; each box shows
tokens, cost and time. Arrows move the selection, ``enter`` opens the node's transcript
(the events of the child runs that did the step).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from screens.graph_layout import (
    BOX_H,
    GraphEdge,
    GraphNode,
    Layout,
    graph_from_object,
    graph_from_paths,
    layout_graph,
)
from screens.pane import Pane
from screens.state import (
    Changes,
    SessionState,
    StepState,
    WorkflowState,
    format_cost,
    format_duration,
    format_tokens,
)
from screens.transcript import Transcript

__all__ = [
    "GraphCanvas",
    "GraphSource",
    "GraphView",
    "NodeTranscriptScreen",
    "active_node",
    "graph_path",
    "graph_steps",
    "node_lines",
]

GraphSource = Callable[[str], Awaitable[Any]]
"""Gives ``workflow.graph()`` for a workflow name (None when unknown)."""

STATUS_TEXT = {
    "waiting": "○ waiting",
    "running": "◐ running",
    "done": "● done",
    "failed": "✗ failed",
    "skipped": "⊘ skipped",
    "cancelled": "■ cancelled",
    "approval": "⚠ approval",
    "notrun": "· not run",
    "stopped": "■ stopped",
}
"""How a node's state reads."""

KIND_ICON = {
    "step": "",
    "function": "ƒ ",
    "condition": "◇ ",
    "loop": "↺ ",
    "parallel": "⫴ ",
    "router": "⑂ ",
}
"""Marks the primitive in a box's title."""


def node_lines(
    node: GraphNode, step: StepState | None, now_ts: float, ended: str | None = None
) -> tuple[str, str, str, str]:
    """Title, label, status line and style name of a node's box.

    ``ended``: how the workflow run ended, once it has: a node it never reached reads
    "not run", one it left in flight "stopped" (never "waiting" or "running" any more).
    """
    status: str = step.status if step else "waiting"
    if ended is not None and status == "waiting":
        status = "notrun"
    elif ended is not None and status in ("running", "approval"):
        status = "stopped"
    if node.kind == "step":
        title = node.target or ""
    else:
        title = f"{KIND_ICON.get(node.kind, '')}{node.kind}"
    bits = [STATUS_TEXT.get(status, status)]
    if step is not None:
        tokens = step.prompt_tokens + step.completion_tokens
        if tokens:
            bits.append(f"{format_tokens(tokens)}t")
        if step.cost:
            bits.append(format_cost(step.cost))
        dur = step.duration_ms
        if dur is None and step.started_ts is not None and status in ("running", "approval"):
            dur = max(0.0, (now_ts - step.started_ts) * 1000)
        if dur is not None:
            bits.append(format_duration(dur))
        if step.runs > 1:
            bits.append(f"×{step.runs}")
    style = {"notrun": "skipped", "stopped": "cancelled"}.get(status, status)
    return title, node.label, " ".join(bits), f"node-{style}"


_ITERATION = re.compile(r"#\d+(?=/|$)")


def graph_path(path: str) -> str:
    """The graph's form of an event's path: ``polish#2/edit`` -> ``polish/edit``."""
    return _ITERATION.sub("", path)


def graph_steps(wf: WorkflowState) -> dict[str, StepState]:
    """The steps by graph path: a loop body's iterations fold into one node (the latest
    iteration's state, every iteration's runs, tokens and cost)."""
    out: dict[str, StepState] = {}
    for step in wf.steps.values():
        key = graph_path(step.path)
        if key == step.path and key not in out:
            out[key] = step
            continue
        prev = out.get(key)
        merged = replace(step, path=key, run_ids=list(step.run_ids))
        if prev is not None:
            merged.run_ids = prev.run_ids + merged.run_ids
            merged.runs = prev.runs + step.runs
            merged.prompt_tokens += prev.prompt_tokens
            merged.completion_tokens += prev.completion_tokens
            if prev.cost is not None:
                merged.cost = (merged.cost or 0.0) + prev.cost
        out[key] = merged
    return out


def active_node(steps: dict[str, StepState], placed: Any) -> str | None:
    """The node a run is at: one waiting for a decision first, else the step (not a
    container) that started last among those running; None when nothing runs."""
    live = [
        (p, st) for p, st in steps.items() if p in placed and st.status in ("approval", "running")
    ]
    if not live:
        return None

    def rank(item: tuple[str, StepState]) -> tuple[int, int, float]:
        path, st = item
        return (
            st.status == "approval",
            st.kind in ("step", "function"),
            st.started_ts or 0.0,
        )

    return max(live, key=rank)[0]


class GraphCanvas(ScrollView, can_focus=True):
    """Draws a :class:`Layout`; arrows move the selection, enter opens a node."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "graph--edge",
        "graph--edge-label",
        "graph--group",
        "graph--node-waiting",
        "graph--node-running",
        "graph--node-done",
        "graph--node-failed",
        "graph--node-skipped",
        "graph--node-cancelled",
        "graph--node-approval",
        "graph--selected",
    }

    BINDINGS: ClassVar[list[Any]] = [
        Binding("up", "move(0, -1)", "Up", show=False),
        Binding("down", "move(0, 1)", "Down", show=False),
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("enter", "open", "Open node"),
        Binding("f", "follow", "Follow run"),
    ]

    selected: reactive[str | None] = reactive(None)
    """The selected node's id."""
    following: reactive[bool] = reactive(True)
    """The selection follows the run (the node working now, or waiting for a decision);
    moving it by hand stops that until ``f``."""

    @dataclass
    class Open(Message):
        """Open a node's transcript."""

        canvas: GraphCanvas
        """The canvas."""
        node_id: str
        """The node."""

        @property
        def control(self) -> GraphCanvas:
            """The canvas."""
            return self.canvas

    @dataclass
    class Selected(Message):
        """The selection moved."""

        canvas: GraphCanvas
        """The canvas."""
        node_id: str | None
        """The node."""

        @property
        def control(self) -> GraphCanvas:
            """The canvas."""
            return self.canvas

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.layout_: Layout | None = None
        self.steps: dict[str, StepState] = {}
        self.now_ts = 0.0
        self.ended: str | None = None
        self._strips: list[Strip] = []
        self._styles: dict[str, Style] = {}

    def set_graph(self, nodes: list[GraphNode], edges: list[GraphEdge]) -> None:
        """Lay out a new graph."""
        self.layout_ = layout_graph(nodes, edges) if nodes else None
        if self.layout_ is not None and self.selected not in self.layout_.placed:
            self.selected = self.layout_.first()
        self.redraw()
        # The selection may have moved with the new layout (the workflow's full graph replacing
        # the one built from events): keep it in view once the new size is laid out.
        self.call_after_refresh(self.scroll_to_selected)

    def set_steps(
        self, steps: dict[str, StepState], now_ts: float, ended: str | None = None
    ) -> None:
        """New node states (``ended``: how the workflow run ended, once it has)."""
        self.steps = steps
        self.now_ts = now_ts
        self.ended = ended
        self.redraw()

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            base = name.removesuffix("-label")
            style = self.get_component_rich_style(f"graph--{base}", partial=True)
            if name.endswith("-label"):
                style += Style(bold=True)
            self._styles[name] = style
        return style

    def on_mount(self) -> None:
        self.watch(self.app, "theme", lambda: self._restyle(), init=False)

    def _restyle(self) -> None:
        self._styles.clear()
        self.redraw()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()

    def redraw(self) -> None:
        """Draw the boxes with their states into strips."""
        lay = self.layout_
        if lay is None:
            self._strips = []
            self.virtual_size = Size(0, 0)
            self.refresh()
            return
        canvas = lay.canvas
        # Boxes are drawn onto a copy so that the layout's edges stay clean.
        chars = [row[:] for row in canvas.chars]
        styles = [row[:] for row in canvas.styles]
        saved = canvas.chars, canvas.styles
        canvas.chars, canvas.styles = chars, styles
        try:
            for node_id, p in lay.placed.items():
                node = lay.nodes[node_id]
                title, label, line2, style = node_lines(
                    node, self.steps.get(node_id), self.now_ts, self.ended
                )
                canvas.box(p, title, label, line2, style, node_id == self.selected)
        finally:
            canvas.chars, canvas.styles = saved
        strips = []
        sel = self._style("selected")
        sel_rows: tuple[int, int, int, int] | None = None
        if self.selected in lay.placed:
            p = lay.placed[self.selected]
            sel_rows = (p.y, p.y + BOX_H - 1, p.x, p.x + p.w - 1)
        for y, row in enumerate(chars):
            segments = []
            run_text, run_style = "", None
            for x, ch in enumerate(row):
                name = styles[y][x]
                st = self._style(name) if name else Style()
                if sel_rows and sel_rows[0] <= y <= sel_rows[1] and sel_rows[2] <= x <= sel_rows[3]:
                    st = st + sel
                if st != run_style and run_text:
                    segments.append(Segment(run_text, run_style))
                    run_text = ""
                run_style = st
                run_text += ch
            if run_text:
                segments.append(Segment(run_text, run_style))
            strips.append(Strip(segments, canvas.width))
        self._strips = strips
        self.virtual_size = Size(canvas.width, canvas.height)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = y + scroll_y
        width = self.size.width
        if index >= len(self._strips):
            return Strip.blank(width, self.rich_style)
        return self._strips[index].crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def watch_following(self, following: bool) -> None:
        self.post_message(self.Selected(self, self.selected))

    def watch_selected(self, node_id: str | None) -> None:
        self.redraw()
        self.scroll_to_selected()
        self.call_after_refresh(self.scroll_to_selected)  # once a new virtual size is laid out
        self.post_message(self.Selected(self, node_id))

    def scroll_to_selected(self) -> None:
        """Bring the selected node into view (once the canvas has a size: a hidden pane
        scrolls when it is shown)."""
        lay = self.layout_
        node_id = self.selected
        if lay is None or node_id not in lay.placed or not self.size.area:
            return
        p = lay.placed[node_id]
        self.scroll_to_region(Region(p.x - 1, p.y - 1, p.w + 2, BOX_H + 2), animate=False)

    def on_resize(self) -> None:
        self.call_after_refresh(self.scroll_to_selected)

    def on_show(self) -> None:
        self.call_after_refresh(self.scroll_to_selected)

    def action_move(self, dx: int, dy: int) -> None:
        """Move the selection (and stop following the run)."""
        lay = self.layout_
        if lay is None:
            return
        self.following = False
        if self.selected is None:
            self.selected = lay.first()
            return
        nxt = lay.neighbour(self.selected, dx, dy)
        if nxt is not None:
            self.selected = nxt

    def action_follow(self) -> None:
        """Follow the run again (or stop following it)."""
        self.following = not self.following

    def action_open(self) -> None:
        """Open the selected node's transcript."""
        if self.selected is not None:
            self.post_message(self.Open(self, self.selected))

    def on_click(self, event: Any) -> None:
        lay = self.layout_
        if lay is None:
            return
        x = event.x + int(self.scroll_x)
        y = event.y + int(self.scroll_y)
        for node_id, p in lay.placed.items():
            if p.x <= x < p.x + p.w and p.y <= y < p.y + BOX_H:
                if self.selected == node_id and event.chain >= 2:
                    self.action_open()
                self.following = False
                self.selected = node_id
                return


class NodeTranscriptScreen(ModalScreen[None]):
    """The transcript of the child runs that did one step."""

    BINDINGS: ClassVar[list[Any]] = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, state: SessionState, path: str, step: StepState | None) -> None:
        super().__init__(classes="node-transcript")
        self.state = state
        self.path = path
        self.step = step

    def compose(self) -> Any:
        run_ids = set(self.step.run_ids) if self.step else set()
        for r in list(run_ids):
            run_ids.update(d.run_id for d in self.state.descendants(r))
        with Vertical(classes="dialog"):
            head = Text(f"{self.path}", style="bold")
            if self.step is not None:
                head.append(f"  {STATUS_TEXT.get(self.step.status, self.step.status)}")
                if self.step.error:
                    head.append(f"\n{self.step.error}", style="red")
            head.append("   escape closes", style="dim")
            yield Static(head, classes="title")
            empty = "No run did this step's work yet." if not run_ids else ""
            yield Transcript(lambda _s, i: i.run_id in run_ids, empty=empty, id="node-transcript")

    def on_mount(self) -> None:
        self.query_one(Transcript).rebuild(self.state)

    async def action_dismiss(self, result: None = None) -> None:
        """Close."""
        self.dismiss(result)


class GraphView(Vertical, Pane):
    """The graph of the session's latest workflow run."""

    workflow_run: reactive[str | None] = reactive(None)
    """The workflow run drawn."""

    def __init__(self, *, graph_source: GraphSource | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.graph_source = graph_source
        """Where ``workflow.graph()`` comes from."""
        self.canvas = GraphCanvas(id="graph-canvas")
        self._state: SessionState | None = None
        self._graph_for: str | None = None
        self._from_events = False
        self._known_paths: int = 0

    def compose(self) -> Any:
        yield Static("No workflow has run in this session yet.", id="graph-head", markup=False)
        yield self.canvas
        yield Static("", id="graph-detail", markup=False)

    def on_mount(self) -> None:
        self.catch_up()

    def _wf(self) -> WorkflowState | None:
        state = self._state
        if state is None or self.workflow_run is None:
            return None
        return state.workflows.get(self.workflow_run)

    def rebuild(self, state: SessionState) -> None:
        """Draw a whole state."""
        self._state = state
        self._graph_for = None
        wf = state.latest_workflow()
        self.workflow_run = wf.run_id if wf else None
        self._update()

    def sync(self, state: SessionState, changes: Changes) -> None:
        """Draw one frame's changes."""
        self._state = state
        if not changes.steps and not (self.workflow_run and self.workflow_run in changes.runs):
            return
        wf = state.latest_workflow()
        self.workflow_run = wf.run_id if wf else None
        self._update()

    def _update(self) -> None:
        heads = self.query("#graph-head")
        if not heads:  # not composed yet (or going away): drawn when it mounts
            return
        wf = self._wf()
        state = self._state
        head = heads.first(Static)
        if wf is None or state is None:
            head.update(
                "No workflow has run in this session yet. Choose a workflow in the chat pane (F2)."
            )
            self.canvas.set_graph([], [])
            return
        run = state.runs.get(wf.run_id)
        if self._graph_for != wf.run_id:
            self._graph_for = wf.run_id
            self.canvas.following = True  # a new run: follow it
            self._from_events = True
            self._known_paths = -1
            if self.graph_source is not None:
                self._load_graph(wf.name, wf.run_id)
        if self._from_events and self._known_paths != len(wf.steps):
            self._known_paths = len(wf.steps)
            nodes, edges = graph_from_paths([(p, s.kind) for p, s in graph_steps(wf).items()])
            self.canvas.set_graph(nodes, edges)
        steps = graph_steps(wf)
        ended = run.status if run is not None and run.ended else None
        self.canvas.set_steps(steps, state.last_ts, ended)
        lay = self.canvas.layout_
        placed = lay.placed if lay is not None else steps
        if self.canvas.following and run is not None and not run.ended:
            active = active_node(steps, placed)
            if active is not None and active != self.canvas.selected:
                self.canvas.selected = active  # scrolls it into view
        # Nodes and executions apart: a loop's body runs several times, one node each.
        done = sum(1 for p, st in steps.items() if p in placed and st.status in ("done", "skipped"))
        started = sum(1 for p, st in steps.items() if p in placed and st.runs)
        executions = sum(st.runs for st in wf.steps.values())
        text = Text()
        text.append(f"workflow {wf.name}", style="bold")
        if run is not None:
            text.append(f"  {run.status}")
            tokens = run.prompt_tokens + run.completion_tokens
            if tokens:
                text.append(f" · {format_tokens(tokens)} tokens")
            if run.cost:
                text.append(f" · {format_cost(run.cost)}")
        text.append(f" · {done}/{len(placed)} nodes done", style="dim")
        if executions > started:  # a loop ran its body again
            text.append(f" · {executions} executions", style="dim")
        follow = "on" if self.canvas.following else "off"
        text.append(f"   arrows move · enter opens · f follows the run ({follow})", style="dim")
        head.update(text)
        self._detail(self.canvas.selected)

    @work(exclusive=True, group="graph", description="load workflow graph", exit_on_error=False)
    async def _load_graph(self, name: str, run_id: str) -> None:
        assert self.graph_source is not None
        graph = await self.graph_source(name)
        if graph is None or self._graph_for != run_id:
            return
        nodes, edges = graph_from_object(graph)
        if not nodes:
            return
        self._from_events = False
        self.canvas.set_graph(nodes, edges)
        self._update()

    @on(GraphCanvas.Selected)
    def _selected(self, event: GraphCanvas.Selected) -> None:
        if self._wf() is not None:
            self._update()  # the head says whether the selection follows the run
        else:
            self._detail(event.node_id)

    def _detail(self, node_id: str | None) -> None:
        detail = self.query_one("#graph-detail", Static)
        wf = self._wf()
        lay = self.canvas.layout_
        if node_id is None or lay is None or node_id not in lay.nodes:
            detail.update("")
            return
        node = lay.nodes[node_id]
        step = graph_steps(wf).get(node_id) if wf else None
        text = Text()
        text.append(node_id, style="bold")
        text.append(f" ({node.kind})")
        if node.label and node.label != node_id.rsplit("/", 1)[-1]:
            text.append(f" {node.label}")  # in full: a box cuts a long one
        if step is not None:
            if step.error:
                text.append(f" — {step.error}", style="red")
            elif step.output:
                out = step.output.strip().replace("\n", " ")
                text.append(f" — {out[:200]}")
        detail.update(text)

    @on(GraphCanvas.Open)
    def _open(self, event: GraphCanvas.Open) -> None:
        if self._state is None:
            return
        wf = self._wf()
        step = graph_steps(wf).get(event.node_id) if wf else None
        self.app.push_screen(NodeTranscriptScreen(self._state, event.node_id, step))
