"""The transcript: a windowed, streaming list of a few runs' items.

The chat pane, every team lane and a workflow node's transcript are each one
:class:`Transcript` over a different set of runs. It renders :mod:`screens.state` items:
it mounts at most :attr:`Transcript.window` of them (a session of 100,000 events must not
become 100,000 widgets; older items load on demand) and, while a message streams, appends
only the new text to its Markdown (the app batches deltas per frame before they get here).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.events import Click
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Collapsible, Static

from screens.state import (
    AssistantItem,
    Changes,
    EndItem,
    Item,
    NoteItem,
    SessionState,
    ToolItem,
    UserItem,
    format_cost,
    format_duration,
    format_tokens,
)
from workbench.termsafe import json_visible, visible

__all__ = [
    "AssistantMessage",
    "EndLine",
    "ItemFilter",
    "NoteLine",
    "ToolBlock",
    "Transcript",
    "UserMessage",
    "item_widget",
]

ItemFilter = Callable[[SessionState, Item], bool]
"""Which items a transcript shows."""


def _json(value: Any) -> str:
    try:
        return json_visible(json.dumps(value, indent=2, ensure_ascii=False, default=str))
    except (TypeError, ValueError):
        return visible(str(value))


class ItemWidget:
    """Mixin: a widget that draws one item and redraws when it changes."""

    item: Item
    shown_version: int = -1

    def update_item(self) -> None:
        """Redraw from :attr:`item`."""


class UserMessage(Static, ItemWidget):
    """The user's prompt (or a task a parent run gave)."""

    def __init__(self, item: UserItem) -> None:
        self.item = item
        who = f"task for {item.source}" if item.task else "you"
        text = Text.assemble((f"{who} › ", "bold"), item.text)
        super().__init__(text, classes="-task" if item.task else "")


class NoteLine(Static, ItemWidget):
    """A one-line note."""

    def __init__(self, item: NoteItem) -> None:
        self.item = item
        super().__init__(Text(item.text), classes=f"-{item.style}")


class EndLine(Static, ItemWidget):
    """The end of a run: status, time, usage and cost of the turn."""

    def __init__(self, item: EndItem) -> None:
        self.item = item
        body = Text(item.summary())
        if item.status == "failed" and item.error:
            body.append(f"\n{item.error}")
            if item.hint:
                body.append(f"\nhint: {item.hint}", style="italic")
        super().__init__(body, classes=f"-{item.status}")


SEGMENT = 1200
"""A streamed message is drawn in segments of about this many characters, cut at paragraph
breaks outside code fences. Finished segments are never drawn again; only the last one
grows. A long answer is a few dozen widgets, not one per paragraph, so a stream of 2,000
tokens a second costs one small Markdown render per frame, not a relayout of hundreds of
blocks."""


def next_cut(text: str, limit: int = SEGMENT) -> int | None:
    """Where to end the first segment of ``text``: after a blank line past ``limit``
    characters, with every code fence before it closed (None: not yet)."""
    if len(text) <= limit:
        return None
    at = text.find("\n\n", limit)
    while at != -1:
        cut = at + 2
        if text.count("```", 0, cut) % 2 == 0:
            return cut
        at = text.find("\n\n", cut)
    return None


class AssistantMessage(Vertical, ItemWidget):
    """An assistant message as Markdown (rich's renderer), drawn in segments."""

    def __init__(self, item: AssistantItem) -> None:
        super().__init__(classes="-streaming" if not item.done else "")
        self.item = item
        self._frozen = 0
        self._shown = ""
        self._segments: list[Static] = []
        self._header = Static(self._header_text(), classes="header", markup=False)

    def _header_text(self) -> Content:
        item = self.item
        assert isinstance(item, AssistantItem)
        bits = [item.source]
        if item.model:
            bits.append(item.model)
        if item.done and (item.prompt_tokens or item.completion_tokens):
            bits.append(
                f"{format_tokens(item.prompt_tokens)}+{format_tokens(item.completion_tokens)} tok"
            )
        if item.cost:
            bits.append(format_cost(item.cost))
        if not item.done:
            bits.append("…")
        return Content(" · ".join(bits))

    def compose(self) -> Any:
        yield self._header
        yield from self._draw(self.item.text)  # type: ignore[attr-defined]

    def update_item(self) -> None:
        item = self.item
        assert isinstance(item, AssistantItem)
        self.set_class(not item.done, "-streaming")
        self._header.update(self._header_text())
        self.shown_version = item.version
        if item.text != self._shown:
            new = self._draw(item.text)
            if new:
                self.mount_all(new)

    @property
    def shown_text(self) -> str:
        """The text drawn so far."""
        return self._shown

    def _draw(self, text: str) -> list[Static]:
        """Draw ``text``: the open (last) segment takes the new text; segments that fill up
        are closed and new ones created. Returns the widgets to mount."""
        from rich.markdown import Markdown

        if not text.startswith(self._shown[: self._frozen]):
            # Rewritten, not extended (a final text that differs from the stream): redraw.
            for seg in self._segments:
                seg.remove()
            self._segments.clear()
            self._frozen = 0
        self._shown = text
        created: list[Static] = []
        if not self._segments:
            created.append(Static(classes="segment"))
            self._segments.append(created[-1])
        while True:
            tail = text[self._frozen :]
            cut = next_cut(tail)
            piece = tail if cut is None else tail[:cut]
            self._segments[-1].update(Markdown(piece.rstrip()))
            if cut is None:
                return created
            self._frozen += cut
            created.append(Static(classes="segment"))
            self._segments.append(created[-1])


_TOOL_ICONS: dict[str, str] = {
    "requested": "…",
    "awaiting": "⚠",
    "running": "⟳",
    "done": "✓",
    "failed": "✗",
    "denied": "⊘",
}


class ToolBlock(Collapsible, ItemWidget):
    """A tool call inline in a transcript: arguments, result or error, duration."""

    def __init__(self, item: ToolItem) -> None:
        self.item = item
        self._args = Static(classes="args", markup=False)
        self._result = Static(classes="result", markup=False)
        # Textual passes the title on to Content.from_text, which takes Content too (a str
        # would be parsed as markup); only its annotation says str.
        title = self._title_text()
        super().__init__(self._args, self._result, title=title, collapsed=True)  # type: ignore[arg-type]
        self._fill()

    def _title_text(self) -> Content:
        item = self.item
        assert isinstance(item, ToolItem)
        bits = [f"{_TOOL_ICONS[item.status]} {item.tool}"]
        if item.status == "awaiting":
            bits.append("awaiting approval")
        elif item.status == "running":
            bits.append(f"running {item.progress}" if item.progress else "running")
        elif item.status == "denied":
            bits.append("denied")
        if item.duration_ms is not None and item.status in ("done", "failed"):
            bits.append(format_duration(item.duration_ms))
        if item.status == "failed" and item.error:
            first = item.error.strip().splitlines()[0] if item.error.strip() else ""
            bits.append(first[:60])
        return Content(" · ".join(bits))

    def _fill(self) -> None:
        item = self.item
        assert isinstance(item, ToolItem)
        args = Text("arguments\n", style="bold")
        args.append(_json(item.arguments))
        self._args.update(args)
        result = Text()
        if item.decision:
            result.append(f"{item.decision}\n", style="italic")
        if item.error is not None:
            result.append("error\n", style="bold")
            result.append(item.error)
        elif item.output is not None:
            result.append("result\n", style="bold")
            out = item.output if len(item.output) <= 4000 else item.output[:4000] + " …"
            result.append(out)
        else:
            result.append("(no result yet)", style="dim")
        self._result.update(result)
        for status in _TOOL_ICONS:
            self.set_class(item.status == status, f"-{status}")

    def update_item(self) -> None:
        self.title = self._title_text()  # type: ignore[assignment]  # Content, as in __init__
        self._fill()
        self.shown_version = self.item.version


def item_widget(item: Item) -> Widget:
    """The widget that draws an item."""
    if isinstance(item, AssistantItem):
        return AssistantMessage(item)
    if isinstance(item, ToolItem):
        return ToolBlock(item)
    if isinstance(item, UserItem):
        return UserMessage(item)
    if isinstance(item, EndItem):
        return EndLine(item)
    assert isinstance(item, NoteItem)
    return NoteLine(item)


class MoreLine(Static):
    """Says how many older items are not shown; a click shows more."""

    class Pressed(Message):
        """Show more, please."""

    def on_click(self, event: Click) -> None:
        event.stop()
        self.post_message(self.Pressed())


class Transcript(VerticalScroll):
    """The items of some runs, newest at the bottom, following the stream."""

    DEFAULT_CSS = """
    Transcript { height: 1fr; }
    """

    window: ClassVar[int] = 60
    """Items mounted at most after a rebuild (more as they stream in, up to twice that)."""

    def __init__(
        self,
        match: ItemFilter,
        *,
        empty: str = "",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.match = match
        """Which items belong here."""
        self.empty_text = empty
        """Shown while there is nothing."""
        self._widgets: dict[int, Widget] = {}
        self._hidden: list[Item] = []
        self._more = MoreLine(classes="more")
        self._empty = Static(empty, classes="empty", markup=False)
        self._state: SessionState | None = None
        self._unmounted: list[Item] = []

    def compose(self) -> Any:
        yield self._more
        yield self._empty

    def on_mount(self) -> None:
        self._more.display = False
        self._empty.display = bool(self.empty_text)
        self.anchor()
        self.call_after_refresh(self._drain)

    def _drain(self) -> None:
        """Mount the items that arrived before the transcript was mounted."""
        if self._unmounted:
            items, self._unmounted = self._unmounted, []
            self._mount_items(items)
            self._update_more()

    @property
    def item_count(self) -> int:
        """Items shown plus hidden."""
        return len(self._widgets) + len(self._hidden)

    def rebuild(self, state: SessionState) -> None:
        """Forget what is shown and draw the state's items from scratch (windowed)."""
        self._state = state
        for w in list(self._widgets.values()):
            w.remove()
        self._widgets.clear()
        self._unmounted.clear()
        items = [i for i in state.items if self.match(state, i)]
        self._hidden = items[: -self.window] if len(items) > self.window else []
        self._mount_items(items[len(self._hidden) :])
        self._update_more()
        self.anchor()

    def sync(self, state: SessionState, changes: Changes) -> None:
        """Apply one frame's changes."""
        self._state = state
        for uid, item in changes.updated.items():
            w = self._widgets.get(uid)
            if isinstance(w, ItemWidget) and w.shown_version != item.version:
                w.update_item()
        new = [i for i in changes.new_items if self.match(state, i)]
        if new:
            self._mount_items(new)
            overflow = len(self._widgets) - 2 * self.window
            if overflow > 0:
                for uid in list(self._widgets)[:overflow]:
                    w = self._widgets.pop(uid)
                    self._hidden.append(w.item)  # type: ignore[attr-defined]
                    w.remove()
            self._update_more()

    def _mount_items(self, items: list[Item]) -> None:
        if not items:
            return
        if not self.is_mounted:
            self._unmounted.extend(items)  # mounted with the transcript itself
            return
        widgets = []
        for item in items:
            w = item_widget(item)
            self._widgets[item.uid] = w
            widgets.append(w)
        self.mount_all(widgets)
        self._empty.display = False

    def _update_more(self) -> None:
        n = len(self._hidden)
        self._more.display = n > 0
        if n:
            self._more.update(f"▲ {n} earlier items — click to show more")
        self._empty.display = not self._widgets and not n and bool(self.empty_text)

    @on(MoreLine.Pressed)
    def show_more(self) -> None:
        """Mount the next window of older items."""
        if not self._hidden:
            return
        batch = self._hidden[-self.window :]
        del self._hidden[-self.window :]
        widgets = []
        for item in batch:
            w = item_widget(item)
            widgets.append(w)
        # Older items go above the ones shown.
        first = next(iter(self._widgets.values()), None)
        if first is not None:
            self.mount_all(widgets, before=first)
        else:
            self.mount_all(widgets)
        shown = dict(self._widgets)
        self._widgets = {item.uid: w for item, w in zip(batch, widgets, strict=True)}
        self._widgets.update(shown)
        self.release_anchor()
        self._update_more()
