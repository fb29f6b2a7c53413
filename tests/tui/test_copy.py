"""Copy: text selected in the chat or a lane is copied with ctrl+c (OSC 52, through
Textual's copy_to_clipboard); ctrl+o copies the last answer; c copies a focused message."""

from __future__ import annotations

from typing import Any

from textual.selection import Selection

from screens.app import WorkbenchApp
from screens.transcript import AssistantMessage, MarkdownSegment, UserMessage
from tests.tui.conftest import wait_for
from tests.tui.fakes import ANSWER, FakeEngine, chat_session, team_session


async def fed(pilot: Any, events: list[Any]) -> WorkbenchApp:
    app = pilot.app
    await wait_for(pilot, lambda: app.engine is not None and app.view is not None)
    app.feed(events)
    await pilot.pause(0.3)
    return app


def new_app() -> WorkbenchApp:
    engine = FakeEngine()
    return WorkbenchApp(
        engine_factory=lambda: engine, animate=False, watch_workspace=False, warm_up=False
    )


async def test_ctrl_o_copies_the_last_answer() -> None:
    app = new_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await fed(pilot, chat_session().events)
        await pilot.press("ctrl+o")
        assert app.clipboard == ANSWER
        assert any("Copied helper's last answer" in n.message for n in app._notifications)


async def test_c_copies_the_focused_message_as_written() -> None:
    app = new_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await fed(pilot, chat_session().events)
        message = app.query_one(AssistantMessage)
        message.focus()
        await pilot.press("c")
        assert app.clipboard == ANSWER  # the Markdown source, fences and all
        app.query_one(UserMessage).focus()
        await pilot.press("c")
        assert app.clipboard == "Summarise notes.md and count its words"


async def test_selected_text_is_copied_with_ctrl_c_and_nothing_is_cancelled() -> None:
    app = new_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await fed(pilot, chat_session().events)
        segment = app.query_one(MarkdownSegment)
        # A finished message is drawn as text, so Textual can select it.
        assert segment.get_selection(Selection(None, None)) is not None
        app.screen.selections = {segment: Selection(None, None)}  # as a mouse drag does
        await pilot.pause()
        await pilot.press("ctrl+c")
        copied = app.clipboard
        assert "Here is what I found" in copied and "Workbench streams every event" in copied
        assert "**" not in copied  # what the screen shows, not the Markdown source
        assert not app.screen.selections
        assert app.engine is not None and not app.engine.cancelled  # type: ignore[attr-defined]


async def test_text_in_a_lane_can_be_selected_and_copied() -> None:
    app = new_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await fed(pilot, team_session(finished=True).events)
        await pilot.press("f3")
        await pilot.pause(0.3)
        lane = next(iter(app.view.team.lanes.values()))
        segments = list(lane.query(MarkdownSegment))
        assert segments
        app.screen.selections = {segments[-1]: Selection(None, None)}
        await pilot.press("ctrl+c")
        assert app.clipboard.strip()
