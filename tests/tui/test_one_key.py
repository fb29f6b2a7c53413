"""Approvals with one key, from where the person is, on the real engine and the ``test``
model (which numbers its call ids, so two members wait on ``call_t2_0`` at once).

- the card shows inline where the call is (the chat, the member's lane);
- with the prompt empty, ``y s a n e`` decide the oldest waiting call from the chat, a
  lane or the graph; text typed into a non-empty prompt never decides anything;
- in the approvals pane the cursor moves to the next waiting call after a decision;
- after ``e`` the card shows the edited arguments; a cancelled call shows as cancelled;
  rows show enough of the arguments to tell two calls apart.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from screens.approvals import EditArgumentsModal
from screens.state import ToolItem
from screens.transcript import ToolBlock
from tests.tui.conftest import events_of, real_app, wait_engine, wait_for
from tests.tui.screen_text import screen_text

SIZE = (120, 40)


@pytest.fixture
def pair_workspace(tmp_path: Path) -> Path:
    """Two members that each write a file (every write asks), in a broadcast team, and a
    workflow whose parallel steps do the same."""
    root = tmp_path / "pair"
    root.mkdir()
    (root / "workbench.yaml").write_text(
        textwrap.dedent(
            """\
            models:
              default: test
            agents:
              left: {instructions: Write., tools: [files.write]}
              right: {instructions: Write., tools: [files.write]}
              lead: {instructions: Merge.}
            teams:
              pair: {mode: broadcast, leader: lead, members: [left, right]}
            workflows:
              both:
                steps:
                  - parallel:
                      - {step: one, agent: left}
                      - {step: two, agent: right}
            approvals:
              default: ask
            """
        )
    )
    return root


def of_type(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


async def send(pilot: Any, text: str) -> None:
    app = pilot.app
    app.view.show("chat")
    await pilot.pause()
    app.prompt.focus()
    await pilot.press(*text)
    await pilot.press("enter")


def blocks(transcript: Any) -> list[ToolBlock]:
    return [w for w in transcript.children if isinstance(w, ToolBlock)]


def settled(app: Any) -> None:
    """Nothing is left waiting, running or pending once the runs ended."""
    state = app.state
    assert not state.pending_approvals()
    assert all(r.ended for r in state.runs.values())
    for item in state.items:
        if isinstance(item, ToolItem):
            assert item.settled, (item.run_id, item.call_id, item.status)


async def test_y_in_the_empty_prompt_decides_the_call_shown_as_a_card_in_the_chat(
    tui_workspace: Path, db_url: str
) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await send(pilot, "write it")
        await wait_for(pilot, lambda: app.state.pending_approvals())
        await pilot.pause(0.1)
        (card,) = blocks(app.view.chat.transcript)
        assert not card.collapsed and card.has_class("-awaiting")
        text = screen_text(app)
        assert "helper asks" in text and "y allow once · s session" in text
        assert "1 call waits" in text  # the hint under the prompt says which keys work
        assert app.prompt.has_focus and app.prompt.text == ""
        await pilot.press("y")
        await wait_for(pilot, lambda: of_type(events_of(app), "run.completed"))
        await pilot.pause(0.1)
        resolved = of_type(events_of(app), "approval.resolved")
        assert [(r.decision, r.scope) for r in resolved] == [("allow", "once")]
        assert app.prompt.text == ""  # the key decided; it was not typed
        assert card.collapsed and card.has_class("-done")  # the card folds once decided
        assert "1 call waits" not in screen_text(app)
        settled(app)


async def test_text_in_a_non_empty_prompt_never_decides(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await send(pilot, "write it")
        await wait_for(pilot, lambda: app.state.pending_approvals())
        await pilot.press("o", "k", " ", "y", "e", "s", "a", "n")
        await pilot.pause(0.2)
        assert app.prompt.text == "ok yesan"
        assert not of_type(events_of(app), "approval.resolved")
        assert app.state.pending_approvals()
        # Emptied again, the prompt decides.
        app.prompt.load_text("")
        await pilot.press("n")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "DenyNoteModal")
        await pilot.press("enter")
        await wait_for(pilot, lambda: of_type(events_of(app), "run.completed"))
        assert [r.decision for r in of_type(events_of(app), "approval.resolved")] == ["deny"]


async def test_two_members_waiting_on_the_same_call_id_are_decided_one_key_each(
    pair_workspace: Path, db_url: str
) -> None:
    app = real_app(pair_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        app.choose_target("team", "pair")
        await send(pilot, "write both")
        await wait_for(pilot, lambda: len(app.state.pending_approvals()) == 2)
        waiting = app.state.pending_approvals()
        assert {a.call_id for a in waiting} == {"call_t2_0"}  # the same id, two runs
        await pilot.press("f3")
        await pilot.pause(0.2)
        lanes = app.view.team.lanes
        for member in ("left", "right"):
            (card,) = blocks(lanes[member].transcript)
            assert card.has_class("-awaiting") and not card.collapsed
        # Both are in the chat too, as cards: the person need not go looking.
        assert len(blocks(app.view.chat.transcript)) == 2
        await pilot.press("y")
        await pilot.press("y")
        await wait_for(
            pilot, lambda: of_type(events_of(app), "run.completed") and not app._active, 20
        )
        await pilot.pause(0.2)
        resolved = of_type(events_of(app), "approval.resolved")
        assert sorted(r.run_id for r in resolved) == sorted(a.run_id for a in waiting)
        assert all(r.decision == "allow" for r in resolved)
        settled(app)
        for member in ("left", "right"):
            (card,) = blocks(lanes[member].transcript)
            assert card.has_class("-done") and card.collapsed


async def test_parallel_steps_keys_from_the_graph_and_the_pane_cursor_moves_on(
    pair_workspace: Path, db_url: str
) -> None:
    app = real_app(pair_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        app.choose_target("workflow", "both")
        await send(pilot, "write both")
        await wait_for(pilot, lambda: len(app.state.pending_approvals()) == 2)
        await pilot.press("f5")
        await pilot.pause(0.2)
        pane = app.view.approvals
        first, second = pane.waiting
        assert pane.highlighted is first  # oldest first
        label = str(pane.queue.get_option_at_index(0).prompt)
        assert "files.write" in label and "test" in label  # the path tells calls apart
        # Allow the first for the session; the second was already waiting, so it still
        # needs its own decision, and the cursor is on it.
        await pilot.press("s")
        await wait_for(pilot, lambda: pane.highlighted is second)
        assert pane.waiting == [second]
        await pilot.press("f4")
        await pilot.pause(0.1)
        await pilot.press("y")  # from the graph: the oldest waiting call
        await wait_for(
            pilot, lambda: of_type(events_of(app), "run.completed") and not app._active, 20
        )
        await pilot.pause(0.2)
        scopes = sorted(r.scope for r in of_type(events_of(app), "approval.resolved"))
        assert scopes == ["once", "session"]
        settled(app)


async def test_e_shows_the_edited_arguments_on_the_card(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await send(pilot, "write it")
        await wait_for(pilot, lambda: app.state.pending_approvals())
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditArgumentsModal))
        modal = app.screen
        modal.query_one("#edit-args").load_text(  # type: ignore[attr-defined]
            '{"path": "edited.txt", "content": "edited"}'
        )
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: of_type(events_of(app), "run.completed"))
        await pilot.pause(0.2)
        (approval,) = app.state.approvals.values()
        assert approval.edited_arguments == {"path": "edited.txt", "content": "edited"}
        (card,) = blocks(app.view.chat.transcript)
        assert "edited.txt" in str(card.title)
        await pilot.press("f5")
        await pilot.pause(0.2)
        text = screen_text(app)
        assert "arguments, as a person edited them" in text and "edited.txt" in text


async def test_a_cancelled_call_shows_as_cancelled(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await send(pilot, "write it")
        await wait_for(pilot, lambda: app.state.pending_approvals())
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: of_type(events_of(app), "run.cancelled"))
        await pilot.pause(0.2)
        (card,) = blocks(app.view.chat.transcript)
        assert card.has_class("-cancelled") and "cancelled" in str(card.title)
        (approval,) = app.state.approvals.values()
        assert approval.status == "cancelled"
        settled(app)
        # Nothing waits: y is an ordinary key again.
        await pilot.press("y")
        assert app.prompt.text == "y"


def test_the_one_line_summary_of_a_call_is_terminal_safe() -> None:
    """Arguments stay exact in the state (for editing): their one-line summary, shown in
    tool titles, approval rows and toasts, must not carry what a terminal obeys."""
    from screens.state import call_summary
    from workbench.termsafe import UNSAFE

    hostile = "echo hi\x1b]0;PWNED-TITLE\x07\x1b[2J\u202e"
    summary = call_summary({"cmd": hostile})
    assert not UNSAFE.search(summary) and "PWNED-TITLE" in summary
    assert not UNSAFE.search(call_summary({"n": 1, "t": hostile}))
