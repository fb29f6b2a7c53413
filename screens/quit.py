"""Quitting while runs are in flight: ask first, and leave them resumable."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

__all__ = ["ConfirmQuit"]


class ConfirmQuit(ModalScreen[bool]):
    """Quit with runs in flight? y leaves them interrupted (resumable), n stays."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("y,ctrl+q", "answer(True)", "Quit"),
        Binding("n,escape", "answer(False)", "Stay"),
    ]

    def __init__(self, runs: list[tuple[str, str]]) -> None:
        super().__init__(classes="confirm-modal")
        self.runs = runs
        """(run id, target) of each run in flight."""

    def compose(self) -> Any:
        n = len(self.runs)
        with Vertical(classes="dialog"):
            yield Static(
                Text(f"{n} run{'s are' if n != 1 else ' is'} in flight. Quit?", style="bold"),
                classes="title",
            )
            body = Text()
            for run_id, target in self.runs:
                body.append(f"  • {target}  ", style="bold")
                body.append(f"{run_id}\n", style="dim")
            them, they = ("them", "they") if n != 1 else ("it", "it")
            body.append(
                f"\nQuitting stops {them} where {they} {'are' if n != 1 else 'is'}, without "
                f"cancelling: {they} {'stay' if n != 1 else 'stays'} interrupted and "
                f"{'resume' if n != 1 else 'resumes'} from the last step (F7, r; or workbench "
                "run --resume ID). A call waiting for a decision is asked again then."
            )
            yield Static(body)
            with Horizontal(classes="buttons"):
                keep = "them" if n != 1 else "it"
                yield Button(f"Quit, keep {keep} resumable (y)", variant="warning", id="yes")
                yield Button("Stay (n)", id="no")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        """Answer."""
        self.dismiss(yes)
