"""The chat pane: pick what to talk to, type, read the answer stream in.

Keys (in the prompt): ``enter`` sends; ``ctrl+j`` inserts a newline in every terminal
(``shift+enter`` and ``alt+enter`` too, where the terminal reports them: kitty, WezTerm,
foot, iTerm2 with CSI-u); ``up`` on the first line and ``down`` on the last walk the input
history. Pasted text keeps its newlines. Typing works before the engine is ready: what is
sent then is queued and goes out once it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import events, on
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Select, Static, TextArea

from screens.state import Item, SessionState
from screens.transcript import Transcript

__all__ = ["ChatPane", "PromptInput", "TargetChoice"]

NEWLINE_KEYS = frozenset({"ctrl+j", "shift+enter", "alt+enter", "ctrl+enter"})
"""Keys that insert a newline instead of sending (ctrl+j is the one every terminal sends)."""


@dataclass(frozen=True)
class TargetChoice:
    """Something to talk to."""

    kind: str
    """agent, team or workflow."""
    name: str
    """Its name in the workspace."""

    @property
    def value(self) -> str:
        """The Select value, ``agent:helper``."""
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, value: str) -> TargetChoice:
        """The choice for a Select value."""
        kind, _, name = value.partition(":")
        return cls(kind, name)


class PromptInput(TextArea):
    """A multi-line prompt: enter sends, ctrl+j adds a line, up/down walk the history."""

    DEFAULT_CSS = """
    PromptInput { height: auto; min-height: 3; max-height: 10; }
    """

    @dataclass
    class Submitted(Message):
        """The user sent a prompt."""

        prompt_input: PromptInput
        """The input it came from."""
        text: str
        """What was typed."""

        @property
        def control(self) -> PromptInput:
            """The input it came from."""
            return self.prompt_input

    def __init__(self, *, id: str | None = None, placeholder: str = "") -> None:
        super().__init__(
            id=id,
            soft_wrap=True,
            show_line_numbers=False,
            tab_behavior="focus",
            compact=True,
            placeholder=placeholder,
            highlight_cursor_line=False,
        )
        self.sent: list[str] = []
        """Prompts sent, oldest first (the history up and down walk)."""
        self._history_index: int | None = None
        self._draft = ""

    def remember(self, text: str) -> None:
        """Add a sent prompt to the history."""
        if text and (not self.sent or self.sent[-1] != text):
            self.sent.append(text)
        self._history_index = None

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "enter":
            event.stop()
            event.prevent_default()
            self._submit()
            return
        if key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        row, _ = self.cursor_location
        if key == "up" and row == 0 and self.sent:
            event.stop()
            event.prevent_default()
            self._walk(-1)
            return
        if (
            key == "down"
            and row == self.document.line_count - 1
            and self._history_index is not None
        ):
            event.stop()
            event.prevent_default()
            self._walk(1)
            return
        await super()._on_key(event)

    def _walk(self, step: int) -> None:
        if self._history_index is None:
            if step > 0:
                return
            self._draft = self.text
            index = len(self.sent) - 1
        else:
            index = self._history_index + step
        if index < 0:
            index = 0
        if index >= len(self.sent):
            self._history_index = None
            self.load_text(self._draft)
            self.move_cursor(self.document.end)
            return
        self._history_index = index
        self.load_text(self.sent[index])
        self.move_cursor((0, len(self.document.get_line(0))) if step < 0 else self.document.end)

    def _submit(self) -> None:
        text = self.text.strip("\n")
        if not text.strip():
            return
        self.remember(text)
        self.load_text("")
        self.post_message(self.Submitted(self, text))


def _chat_item(state: SessionState, item: Item) -> bool:
    run = state.runs.get(item.run_id)
    return run is None or run.parent_run_id is None


class ChatPane(Vertical):
    """Target picker, transcript of the top-level runs, prompt."""

    BINDINGS: ClassVar[list[Any]] = []

    read_only: reactive[bool] = reactive(False)
    """A replay shows the transcript only: no picker, no prompt."""
    queued: reactive[int] = reactive(0)
    """Prompts waiting to be sent (the engine is loading, or a run is in flight)."""

    @dataclass
    class Send(Message):
        """Send a prompt to a target."""

        pane: ChatPane
        """The pane."""
        text: str
        """The prompt."""
        target: TargetChoice | None
        """What to send it to (None: the default, once the engine knows it)."""

        @property
        def control(self) -> ChatPane:
            """The pane."""
            return self.pane

    def __init__(self, *, read_only: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_reactive(ChatPane.read_only, read_only)
        self.transcript = Transcript(
            _chat_item,
            empty="" if read_only else "Type a prompt and press enter.",
            id="chat-transcript",
        )
        self.prompt = PromptInput(
            id="prompt", placeholder="Ask something… (enter sends, ctrl+j newline)"
        )
        self.picker: Select[str] = Select(
            [], prompt="loading…", id="target", allow_blank=True, compact=True
        )

    def compose(self) -> Any:
        with Horizontal(id="target-bar"):
            yield Static("to", id="target-label")
            yield self.picker
            yield Static("", id="target-info", markup=False)
        yield self.transcript
        yield Static("", id="queued", markup=False)
        yield self.prompt
        yield Static(
            "enter send · ctrl+j newline · ↑↓ history · ctrl+c cancel run · F1 keys",
            id="prompt-hint",
        )

    def on_mount(self) -> None:
        self.watch_read_only(self.read_only)
        self.watch_queued(self.queued)

    def watch_read_only(self, read_only: bool) -> None:
        self.set_class(read_only, "-read-only")

    def watch_queued(self, queued: int) -> None:
        line = self.query_one("#queued", Static)
        line.display = queued > 0
        line.update(f"⧗ {queued} prompt{'s' if queued != 1 else ''} queued — sent when ready")

    @property
    def target(self) -> TargetChoice | None:
        """The chosen target."""
        value = self.picker.value
        if not isinstance(value, str):
            return None
        return TargetChoice.parse(value)

    def set_targets(self, choices: list[TargetChoice], default: TargetChoice | None) -> None:
        """Fill the picker (the engine loaded, or the workspace changed)."""
        current = self.target
        self.picker.set_options([(f"{c.kind} · {c.name}", c.value) for c in choices])
        keep = current if current in choices else default
        if keep is not None and keep in choices:
            self.picker.value = keep.value
        self.picker.prompt = "choose…"

    def set_info(self, text: str) -> None:
        """What is next to the picker: the model of the chosen agent."""
        self.query_one("#target-info", Static).update(text)

    @on(PromptInput.Submitted, "#prompt")
    def _send(self, event: PromptInput.Submitted) -> None:
        event.stop()
        self.post_message(self.Send(self, event.text, self.target))

    def rebuild(self, state: SessionState) -> None:
        """Draw a whole state."""
        self.transcript.rebuild(state)

    def sync(self, state: SessionState, changes: Any) -> None:
        """Draw one frame's changes."""
        self.transcript.sync(state, changes)
