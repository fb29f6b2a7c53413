"""The chat pane: what the prompt talks to, and the transcript of the top-level runs.

The prompt itself (:mod:`screens.prompt`) sits below the panes, in the first frame.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Select, Static

from screens.pane import Pane
from screens.prompt import TargetChoice
from screens.state import Item, SessionState, ToolItem
from screens.transcript import Transcript

__all__ = ["ChatPane", "TargetChoice"]


def _chat_item(state: SessionState, item: Item) -> bool:
    """The top-level runs' items, and every call that asked a person (a member's, a
    workflow step's): its card shows where the person is, and stays as the record."""
    run = state.runs.get(item.run_id)
    if run is None or run.parent_run_id is None:
        return True
    return isinstance(item, ToolItem) and item.asked is not None


class ChatPane(Vertical, Pane):
    """Target picker, transcript of the top-level runs, prompt."""

    BINDINGS: ClassVar[list[Any]] = []

    read_only: reactive[bool] = reactive(False)
    """A replay shows the transcript only: no picker, no prompt."""
    queued: reactive[int] = reactive(0)
    """Prompts waiting to be sent (the engine is loading, or a run is in flight)."""

    def __init__(self, *, read_only: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_reactive(ChatPane.read_only, read_only)
        self.transcript = Transcript(
            _chat_item,
            empty="" if read_only else "Type a prompt and press enter.",
            id="chat-transcript",
        )
        self.choices: list[TargetChoice] = []
        """What the picker offers."""
        self.picker: Select[str] = Select(
            [], prompt="loading…", id="target", allow_blank=True, compact=True
        )
        self.info = Static("", id="target-info", markup=False)
        """What is next to the picker; built here, not in compose, because the picker's
        first Changed message can reach the app before the pane's children are mounted."""

    def compose(self) -> Any:
        with Horizontal(id="target-bar"):
            yield Static("to", id="target-label")
            yield self.picker
            yield self.info
        yield self.transcript
        yield Static("", id="queued", markup=False)

    def on_mount(self) -> None:
        self.watch_read_only(self.read_only)
        self.watch_queued(self.queued)
        self.catch_up()

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
        self.choices = list(choices)
        self.picker.set_options([(f"{c.kind} · {c.name}", c.value) for c in choices])
        keep = current if current in choices else default
        if keep is not None and keep in choices:
            self.picker.value = keep.value
        self.picker.prompt = "choose…"

    def choose(self, target: TargetChoice) -> bool:
        """Talk to ``target`` (False when the workspace has no such target)."""
        if target not in self.choices:
            return False
        self.picker.value = target.value
        return True

    def set_welcome(self, content: Any) -> None:
        """The first screen, shown while the session is empty."""
        self.transcript.set_empty(content)

    def set_info(self, text: str) -> None:
        """What is next to the picker: the model of the chosen agent."""
        self.info.update(text)

    def rebuild(self, state: SessionState) -> None:
        """Draw a whole state."""
        self.transcript.rebuild(state)

    def sync(self, state: SessionState, changes: Any) -> None:
        """Draw one frame's changes."""
        self.transcript.sync(state, changes)
