"""The prompt: a multi-line input where enter sends.

Keys: ``enter`` sends; ``ctrl+j`` inserts a newline in every terminal (``shift+enter``,
``alt+enter`` and ``ctrl+enter`` too, where the terminal reports them: kitty, WezTerm, foot,
iTerm2 with CSI-u); ``up`` on the first line and ``down`` on the last walk the history.
Pasted text keeps its newlines. It is part of the first frame: typing works at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea

__all__ = ["DECIDE_KEYS", "NEWLINE_KEYS", "PromptInput", "TargetChoice"]

DECIDE_KEYS = frozenset("ysane")
"""Keys that decide the oldest waiting call when typed into the empty prompt."""

NEWLINE_KEYS = frozenset({"ctrl+j", "shift+enter", "alt+enter", "ctrl+enter"})
"""Keys that insert a newline instead of sending (ctrl+j is the one every terminal sends)."""


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

    def __init__(
        self,
        *,
        id: str | None = None,
        placeholder: str = "",
        decide: Callable[[str], bool] | None = None,
    ) -> None:
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
        self.decide = decide
        """Given ``y s a n e`` typed into the empty prompt; True when it decided a waiting
        call (the key is then not typed). Text in a non-empty prompt never decides."""
        self._history_index: int | None = None
        self._draft = ""

    def remember(self, text: str) -> None:
        """Add a sent prompt to the history."""
        if text and (not self.sent or self.sent[-1] != text):
            self.sent.append(text)
        self._history_index = None

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if (
            self.decide is not None
            and key in DECIDE_KEYS
            and not self.text
            and not self.read_only
            and self.decide(key)
        ):
            event.stop()
            event.prevent_default()
            return
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
