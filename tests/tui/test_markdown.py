"""Markdown keeps the model's text: ``List<String>``, ``<your answer>`` and HTML-like tags
are shown as written, in the rendered Markdown and in the chat, streamed or whole."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from screens.app import WorkbenchApp
from screens.markdown import TextMarkdown
from tests.tui.conftest import wait_for
from tests.tui.fakes import FakeEngine, Script
from tests.tui.screen_text import screen_text

ANSWER = (
    "Return a `List<String>`, or List<String> without code.\n\n"
    "Fill in <your answer> here, then <b>bold</b> & <i>this</i>.\n\n"
    "<details>\n<summary>more</summary>\nhidden?\n</details>\n\n"
    "- a **list** item with <T>\n"
    "- `code <kept>`"
)
KEPT = [
    "List<String>",
    "<your answer>",
    "<b>bold</b>",
    "<i>this</i>",
    "<details>",
    "<summary>more</summary>",
    "</details>",
    "<T>",
    "code <kept>",
]


def rendered(markup: str) -> str:
    console = Console(width=100, file=io.StringIO(), color_system=None)
    with console.capture() as cap:
        console.print(TextMarkdown(markup))
    return " ".join(cap.get().split())


@pytest.mark.parametrize("piece", KEPT)
def test_html_like_text_is_rendered_as_written(piece: str) -> None:
    assert piece in rendered(ANSWER)


def test_markdown_still_renders() -> None:
    out = rendered("# Title\n\n**bold** and *it*\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~")
    assert "**" not in out and "Title" in out and "bold and it" in out
    assert "| a" not in out and "a" in out and "1" in out


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "whole"])
async def test_the_chat_shows_angle_brackets_as_written(streaming: bool) -> None:
    s = Script()
    s.start("r_1", "agent", "helper", "types?")
    s.user("r_1", "helper", "types?")
    s.stream("r_1", "helper", ANSWER, complete=not streaming)
    if not streaming:
        s.done("r_1", "helper", ANSWER)
    engine = FakeEngine()
    app = WorkbenchApp(
        engine_factory=lambda: engine, animate=False, watch_workspace=False, warm_up=False
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None and app.view is not None)
        app.feed(s.events)
        await pilot.pause(0.3)
        text = " ".join(screen_text(app).split())
        for piece in KEPT:
            assert piece in text, piece
