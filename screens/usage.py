"""The usage view: tokens and cost per agent over the session, as horizontal bars.

Textual has no chart widget; the bars are drawn with rich, in eighths of a cell.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from screens.pane import Pane
from screens.state import AgentUsage, Changes, SessionState, format_cost, format_tokens

__all__ = ["UsageView", "bar", "usage_table"]

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(value: float, maximum: float, width: int) -> str:
    """A bar of ``width`` cells filled to value/maximum, in eighths."""
    if maximum <= 0 or width <= 0:
        return ""
    cells = max(0.0, min(1.0, value / maximum)) * width
    full = int(cells)
    rest = int((cells - full) * 8)
    out = "█" * full
    if rest and full < width:
        out += _EIGHTHS[rest]
    return out


def usage_table(usage: dict[str, AgentUsage], width: int = 80) -> Table:
    """A table of agents with a tokens bar and a cost bar each."""
    bar_w = max(8, min(40, (width - 44) // 2))
    table = Table(box=None, expand=False, pad_edge=False, show_footer=True)
    table.add_column("agent", footer="total", style="bold", no_wrap=True)
    table.add_column("tokens (prompt+completion)", no_wrap=True)
    table.add_column("", justify="right", no_wrap=True)
    table.add_column("cost", no_wrap=True)
    table.add_column("", justify="right", no_wrap=True)
    table.add_column("calls", justify="right")
    rows = sorted(usage.items(), key=lambda kv: kv[1].total, reverse=True)
    max_tokens = max((u.total for _, u in rows), default=0)
    max_cost = max((u.cost or 0.0 for _, u in rows), default=0.0)
    tot_p = tot_c = calls = 0
    tot_cost: float | None = None
    for name, u in rows:
        prompt_part = bar(u.prompt_tokens, max_tokens, bar_w)
        total_part = bar(u.total, max_tokens, bar_w)
        tokens_bar = Text()
        tokens_bar.append(prompt_part, style="blue")
        tokens_bar.append(total_part[len(prompt_part) :], style="cyan")
        table.add_row(
            name,
            tokens_bar,
            f"{format_tokens(u.prompt_tokens)}+{format_tokens(u.completion_tokens)}",
            Text(bar(u.cost or 0.0, max_cost, bar_w), style="green"),
            format_cost(u.cost) or "n/a",
            str(u.calls),
        )
        tot_p += u.prompt_tokens
        tot_c += u.completion_tokens
        calls += u.calls
        if u.cost is not None:
            tot_cost = (tot_cost or 0.0) + u.cost
    table.columns[2].footer = f"{format_tokens(tot_p)}+{format_tokens(tot_c)}"
    table.columns[4].footer = format_cost(tot_cost) or "n/a"
    table.columns[5].footer = str(calls)
    return table


class UsageView(VerticalScroll, Pane):
    """Tokens and cost per agent, over the session."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._state: SessionState | None = None
        self._body = Static("", id="usage-body")

    def compose(self) -> Any:
        yield Static(
            Text.assemble(
                ("Usage per agent", "bold"),
                ("   █ prompt ", "blue"),
                ("█ completion ", "cyan"),
                ("█ cost", "green"),
            ),
            id="usage-head",
        )
        yield self._body

    def rebuild(self, state: SessionState) -> None:
        """Draw a whole state."""
        self._state = state
        self._draw()

    def sync(self, state: SessionState, changes: Changes) -> None:
        """Draw one frame's changes."""
        self._state = state
        if changes.usage:
            self._draw()

    def on_mount(self) -> None:
        self.catch_up()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        if self._state is None or not self._state.usage:
            self._body.update(Text("No model calls in this session yet.", style="dim"))
            return
        self._body.update(usage_table(self._state.usage, self.size.width or 80))
