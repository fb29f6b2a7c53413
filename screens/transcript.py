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
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Collapsible, Static

from screens.card import KEY_HINT, approval_detail
from screens.state import (
    AssistantItem,
    Changes,
    EndItem,
    Item,
    NoteItem,
    SessionState,
    ToolItem,
    UserItem,
    call_summary,
    format_cost,
    format_duration,
    format_tokens,
)
from workbench.termsafe import json_visible, visible

__all__ = [
    "AssistantMessage",
    "CopyRequested",
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


class CopyRequested(Message):
    """A focused message asks to be copied (``c``); the app puts it on the clipboard."""

    def __init__(self, text: str, what: str) -> None:
        super().__init__()
        self.text = text
        """What to copy."""
        self.what = what
        """What it is, in words (for the notification)."""


class UserMessage(Static, ItemWidget, can_focus=True):
    """The user's prompt (or a task a parent run gave); ``c`` copies it when focused."""

    BINDINGS: ClassVar[list[Any]] = [Binding("c", "copy", "Copy message")]

    def action_copy(self) -> None:
        """Copy the prompt."""
        item = self.item
        assert isinstance(item, UserItem)
        self.post_message(CopyRequested(item.text, "the prompt"))

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


class MarkdownSegment(Static):
    """A piece of an assistant message, as Markdown.

    While it streams it is drawn by rich's Markdown renderer (the fast path: one render a
    frame). Once finished it is drawn as styled text rendered from that Markdown, once per
    width, so that it can be selected with the mouse and copied (Textual selects text, not
    a rich renderable).
    """

    def __init__(self) -> None:
        super().__init__(classes="segment")
        self._markdown: Any = None
        self._live = True
        self._drawn: tuple[int, Text] | None = None

    def set_markdown(self, markdown: Any, *, live: bool = True) -> None:
        """Draw this Markdown (a :class:`screens.markdown.TextMarkdown`); ``live`` while it
        may still grow."""
        self._markdown = markdown
        self._live = live
        self._drawn = None
        self.refresh(layout=True)

    def finish(self) -> None:
        """It will not change any more: draw it as selectable text."""
        if self._live:
            self._live = False
            self._drawn = None
            self.refresh(layout=True)

    @property
    def markup_text(self) -> str:
        """The Markdown source."""
        return str(getattr(self._markdown, "markup", ""))

    def _text_at(self, width: int) -> Text:
        """The Markdown rendered at ``width`` columns, as styled text (cached)."""
        if self._drawn is not None and self._drawn[0] == width:
            return self._drawn[1]
        text = Text(end="", no_wrap=True)
        if self._markdown is not None:
            console = self.app.console
            lines = console.render_lines(
                self._markdown, console.options.update_width(width), pad=False, new_lines=False
            )
            for i, line in enumerate(lines):
                if i:
                    text.append("\n")
                for segment in line:
                    if not segment.control:
                        text.append(segment.text, segment.style)
            text.rstrip()
        self._drawn = (width, text)
        return text

    def render(self) -> Any:
        if self._markdown is None:
            return Text()
        if self._live:
            return self._markdown
        return self._text_at(self.content_size.width or max(20, self.app.size.width - 4))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if self._live or self._markdown is None:
            return super().get_content_height(container, viewport, width)
        text = self._text_at(max(1, width))
        return text.plain.count("\n") + 1 if text.plain else 0


class AssistantMessage(Vertical, ItemWidget, can_focus=True):
    """An assistant message as Markdown (rich's renderer, raw HTML off: the model's text is
    shown as written, ``<tags>`` and all), drawn in segments; ``c`` copies it (as written,
    Markdown and all) when focused."""

    BINDINGS: ClassVar[list[Any]] = [Binding("c", "copy", "Copy message")]

    def action_copy(self) -> None:
        """Copy the message's text."""
        item = self.item
        assert isinstance(item, AssistantItem)
        self.post_message(CopyRequested(item.text, f"{item.source}'s message"))

    def __init__(self, item: AssistantItem) -> None:
        super().__init__(classes="-streaming" if not item.done else "")
        self.item = item
        self._frozen = 0
        self._shown = ""
        self._segments: list[MarkdownSegment] = []
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
        elif item.done and self._segments:
            self._segments[-1].finish()  # the stream ended: selectable from now on

    @property
    def shown_text(self) -> str:
        """The text drawn so far."""
        return self._shown

    def _draw(self, text: str) -> list[MarkdownSegment]:
        """Draw ``text``: the open (last) segment takes the new text; segments that fill up
        are closed and new ones created. Returns the widgets to mount."""
        from screens.markdown import TextMarkdown

        if not text.startswith(self._shown[: self._frozen]):
            # Rewritten, not extended (a final text that differs from the stream): redraw.
            for seg in self._segments:
                seg.remove()
            self._segments.clear()
            self._frozen = 0
        self._shown = text
        created: list[MarkdownSegment] = []
        if not self._segments:
            created.append(MarkdownSegment())
            self._segments.append(created[-1])
        while True:
            tail = text[self._frozen :]
            cut = next_cut(tail)
            piece = tail if cut is None else tail[:cut]
            last = self._segments[-1]
            finished = cut is not None or bool(getattr(self.item, "done", False))
            last.set_markdown(TextMarkdown(piece.rstrip()), live=not finished)
            if cut is None:
                return created
            self._frozen += cut
            created.append(MarkdownSegment())
            self._segments.append(created[-1])


_TOOL_ICONS: dict[str, str] = {
    "requested": "…",
    "awaiting": "⚠",
    "running": "⟳",
    "done": "✓",
    "failed": "✗",
    "denied": "⊘",
    "cancelled": "■",
    "interrupted": "⏸",
}


class ToolBlock(Collapsible, ItemWidget):
    """A tool call inline in a transcript: arguments, result or error, duration.

    While the call waits for a decision it opens as a card: who asks and why, the
    command's parts or the file's diff, the arguments, and the keys that decide it. Once
    decided it folds back to one line that says how it was decided.
    """

    BINDINGS: ClassVar[list[Any]] = [Binding("c", "copy", "Copy result")]

    def action_copy(self) -> None:
        """Copy the call's result (or its error, or its arguments while it has neither)."""
        item = self.item
        assert isinstance(item, ToolItem)
        if item.output is not None:
            self.post_message(CopyRequested(item.output, f"the result of {item.tool}"))
        elif item.error is not None:
            self.post_message(CopyRequested(item.error, f"the error of {item.tool}"))
        else:
            self.post_message(CopyRequested(_json(item.arguments), f"the arguments of {item.tool}"))

    def __init__(self, item: ToolItem) -> None:
        self.item = item
        self._card = Static(classes="card")
        self._keys = Static(KEY_HINT, classes="approval-keys", markup=False)
        self._args = Static(classes="args", markup=False)
        self._result = Static(classes="result", markup=False)
        self._opened_as_card = False
        # Textual passes the title on to Content.from_text, which takes Content too (a str
        # would be parsed as markup); only its annotation says str.
        title = self._title_text()
        super().__init__(
            self._card,
            self._keys,
            self._args,
            self._result,
            title=title,  # type: ignore[arg-type]
            collapsed=item.status != "awaiting",
        )
        self._fill()

    def _title_text(self) -> Content:
        item = self.item
        assert isinstance(item, ToolItem)
        bits = [f"{_TOOL_ICONS[item.status]} {item.tool}"]
        if item.status == "awaiting":
            bits.append(f"{item.source} asks")
        summary = call_summary(item.arguments, 40)
        if summary:
            bits.append(summary)
        if item.status == "running":
            # What a running tool last said (progress), or that it waits for input.
            bits.append(f"running {item.progress}" if item.progress else "running")
        elif item.status in ("denied", "cancelled"):
            bits.append(item.status)
        elif item.status == "interrupted":
            bits.append("interrupted: resume the run (F7, r)")
        if item.duration_ms is not None and item.status in ("done", "failed"):
            bits.append(format_duration(item.duration_ms))
        if item.status == "failed" and item.error:
            first = item.error.strip().splitlines()[0] if item.error.strip() else ""
            bits.append(first[:60])
        return Content(" · ".join(bits))

    def _fill(self) -> None:
        item = self.item
        assert isinstance(item, ToolItem)
        card = item.status == "awaiting" and item.asked is not None
        self._card.display = card
        self._keys.display = card
        self._args.display = not card
        if card:
            assert item.asked is not None
            self._card.update(approval_detail(item.asked, header=False))
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
        elif not card:
            result.append("(no result yet)", style="dim")
        self._result.display = not card
        self._result.update(result)
        for status in _TOOL_ICONS:
            self.set_class(item.status == status, f"-{status}")
        # A waiting call opens as a card; once decided, the card folds (unless the person
        # opened it themselves).
        if card and self.collapsed:
            self.collapsed = False
            self._opened_as_card = True
        elif card:
            self._opened_as_card = self._opened_as_card or not self.collapsed
        elif self._opened_as_card:
            self._opened_as_card = False
            self.collapsed = True

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
        self.empty_text: Any = empty
        """Shown while there is nothing."""
        self._widgets: dict[int, Widget] = {}
        self._hidden: list[Item] = []
        self._more = MoreLine(classes="more")
        self._empty = Static(empty, classes="empty", markup=False)
        self._state: SessionState | None = None
        self._unmounted: list[Item] = []
        # Every item that matched (shown, hidden or waiting to mount): an item that starts
        # to match later (a member's call that asks for a decision, in the chat) is added
        # when it changes.
        self._seen: set[int] = set()

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

    def rebuild(self, state: SessionState) -> None:
        """Forget what is shown and draw the state's items from scratch (windowed)."""
        self._state = state
        for w in list(self._widgets.values()):
            w.remove()
        self._widgets.clear()
        self._unmounted.clear()
        items = [i for i in state.items if self.match(state, i)]
        self._seen = {i.uid for i in items}
        self._hidden = items[: -self.window] if len(items) > self.window else []
        self._mount_items(items[len(self._hidden) :])
        self._update_more()
        self.anchor()

    def sync(self, state: SessionState, changes: Changes) -> None:
        """Apply one frame's changes."""
        self._state = state
        new = [i for i in changes.new_items if self.match(state, i)]
        fresh = {i.uid for i in changes.new_items}
        for uid, item in changes.updated.items():
            w = self._widgets.get(uid)
            if isinstance(w, ItemWidget) and w.shown_version != item.version:
                w.update_item()
            elif (
                w is None and uid not in self._seen and uid not in fresh and self.match(state, item)
            ):
                new.append(item)
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
        self._seen.update(i.uid for i in items)
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

    def set_empty(self, content: Any) -> None:
        """What shows while there is nothing (text, or any renderable)."""
        self.empty_text = content
        self._empty.update(content)
        self._update_more()

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
