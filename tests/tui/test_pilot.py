"""Pilot tests on the real engine with the offline ``test`` model.

The test model calls every offered tool once (``files.write`` with ``path: test``), then
answers with the results, so each approval key visibly changes what the run does: the
tool result, the decision in the log, the rules saved, the file on disk.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from screens.app import WorkbenchApp
from screens.approvals import ConfirmRulesModal, DenyNoteModal, EditArgumentsModal
from screens.replay import ReplayScreen
from screens.transcript import AssistantMessage, ToolBlock, Transcript
from tests.tui.conftest import events_of, real_app, wait_engine, wait_for

SIZE = (120, 40)


def of_type(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


async def send(pilot: Any, text: str) -> None:
    """Type a prompt and press enter."""
    app = pilot.app
    app.view.show("chat")
    await pilot.pause()
    app.prompt.focus()
    await pilot.press(*text)
    await pilot.press("enter")


async def send_on(pilot: Any, text: str) -> None:
    """Send a prompt without leaving the pane shown."""
    app = pilot.app
    app.send_prompt(text)
    await pilot.pause()


async def ask_and_open_approvals(pilot: Any, text: str = "write it") -> None:
    app: WorkbenchApp = pilot.app
    await send(pilot, text)
    await wait_for(pilot, lambda: app.state.pending_approvals())
    await pilot.press("f5")
    await pilot.pause()


async def run_ended(pilot: Any) -> None:
    app: WorkbenchApp = pilot.app
    await wait_for(pilot, lambda: not app._active and app.state.runs and not app.state.running())
    await pilot.pause(0.1)


async def test_y_allows_once(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await ask_and_open_approvals(pilot)
        await pilot.press("y")
        await run_ended(pilot)
        events = events_of(app)
        resolved = of_type(events, "approval.resolved")
        assert [(r.decision, r.scope, r.decided_by) for r in resolved] == [
            ("allow", "once", "user")
        ]
        result = of_type(events, "tool.result")[0]
        assert result.error is None and "test" in (result.output or "")
        assert (tui_workspace / "test").read_text() == "test"
        assert of_type(events, "run.completed")
        # A second run in the session asks again: "once" saved nothing.
        await ask_and_open_approvals(pilot, "again")
        assert len(of_type(events_of(app), "approval.required")) == 2


async def test_a_call_waiting_in_another_session_joins_the_queue(
    tui_workspace: Path, db_url: str
) -> None:
    """A run of this engine in another session asks: its call is queued (named with its
    session) and highlighted, not the call decided just before; y decides it."""
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await ask_and_open_approvals(pilot)
        await pilot.press("y")
        await run_ended(pilot)
        pane = app.view.approvals  # type: ignore[union-attr]
        decided = pane.highlighted
        assert decided is not None and decided.status == "allowed"
        engine = app.engine
        assert engine is not None
        other = await engine.start_run("helper", "elsewhere")
        assert other.session_id != app.session_id
        await wait_for(pilot, lambda: app.status.pending == 1)
        shown = pane.highlighted
        assert shown is not None
        assert (shown.status, shown.session_id, shown.run_id) == (
            "pending",
            other.session_id,
            other.run_id,
        )
        await pilot.press("y")
        assert (await other.wait()).status == "completed"
        await wait_for(pilot, lambda: app.status.pending == 0)
        assert [e.type for e in await engine.asession_events(app.session_id or "")].count(
            "approval.resolved"
        ) == 1  # the session shown was not touched


async def test_s_allows_for_the_session(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await ask_and_open_approvals(pilot)
        await pilot.press("s")
        await run_ended(pilot)
        assert [(r.decision, r.scope) for r in of_type(events_of(app), "approval.resolved")] == [
            ("allow", "session")
        ]
        # The next run in the same session writes without asking.
        await send(pilot, "again")
        await wait_for(pilot, lambda: len(of_type(events_of(app), "run.completed")) == 2)
        events = events_of(app)
        assert len(of_type(events, "approval.required")) == 1
        assert [r.error for r in of_type(events, "tool.result")] == [None, None]


async def test_a_shows_the_rule_then_allows_always(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await ask_and_open_approvals(pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRulesModal))
        modal = app.screen
        assert isinstance(modal, ConfirmRulesModal)
        assert modal.rules and all("files.write" in r for r in modal.rules)
        await pilot.press("y")
        await run_ended(pilot)
        resolved = of_type(events_of(app), "approval.resolved")
        assert [(r.decision, r.scope) for r in resolved] == [("allow", "workspace")]
        assert resolved[0].rule and "files.write" in resolved[0].rule
        assert app.engine is not None
        assert [r.tool for r in app.engine.store.list_rules(str(tui_workspace))] == ["files.write"]
        # A new session does not ask either: the rule is in the workspace.
        app.action_new_session()
        await send(pilot, "new session")
        await wait_for(
            pilot, lambda: app.session_id is not None and of_type(events_of(app), "run.completed")
        )
        assert not of_type(events_of(app), "approval.required")


async def test_a_then_back_decides_nothing(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await ask_and_open_approvals(pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmRulesModal))
        await pilot.press("n")
        await pilot.pause(0.2)
        assert app.state.pending_approvals()
        assert not of_type(events_of(app), "approval.resolved")
        await pilot.press("y")
        await run_ended(pilot)


async def test_n_denies_with_a_note(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await ask_and_open_approvals(pilot)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, DenyNoteModal))
        await pilot.press(*"not that file")
        await pilot.press("enter")
        await run_ended(pilot)
        events = events_of(app)
        resolved = of_type(events, "approval.resolved")
        assert [(r.decision, r.note) for r in resolved] == [("deny", "not that file")]
        result = of_type(events, "tool.result")[0]
        assert result.output is None and "not that file" in (result.error or "")
        assert not of_type(events, "tool.call")
        assert not (tui_workspace / "test").exists()
        # The model heard the refusal: the answer quotes it.
        assert "not that file" in of_type(events, "run.completed")[0].output


async def test_e_edits_the_arguments_then_allows(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await ask_and_open_approvals(pilot)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditArgumentsModal))
        modal = app.screen
        assert isinstance(modal, EditArgumentsModal)
        area = modal.query_one("#edit-args")
        area.load_text("not json")  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, EditArgumentsModal)  # refused in place
        area.load_text('{"path": "edited.txt", "content": "edited"}')  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await run_ended(pilot)
        events = events_of(app)
        resolved = of_type(events, "approval.resolved")
        assert resolved[0].edited_arguments == {"path": "edited.txt", "content": "edited"}
        assert of_type(events, "tool.call")[0].arguments == {
            "path": "edited.txt",
            "content": "edited",
        }
        assert (tui_workspace / "edited.txt").read_text() == "edited"
        assert not (tui_workspace / "test").exists()


async def test_pending_approval_notifies_and_rings(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    rang: list[bool] = []
    app.bell = lambda: rang.append(True)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await send(pilot, "hi")
        await wait_for(pilot, lambda: app.state.pending_approvals())
        await pilot.pause(0.1)
        assert rang == [True]
        # In the chat the card and the prompt's hint say it: no toast over them (changed
        # on purpose: a toast per call piled up over the cards at 80x24).
        assert not any("files.write" in n.message for n in app._notifications)
        assert "1 call waits" in str(app.query_one("#prompt-hint").render())
        assert app.view.active == "chat"  # the user is not moved
        await pilot.press("y")
        await wait_for(pilot, lambda: not app._active)
        # Where nothing shows it (the usage pane), a toast does.
        await pilot.press("f6")
        await send_on(pilot, "again")
        await wait_for(pilot, lambda: len(app.state.approvals) == 2)
        await pilot.pause(0.1)
        assert rang == [True, True]
        assert any("files.write" in n.message for n in app._notifications)


async def test_ctrl_c_cancels_the_run_not_the_app(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await send(pilot, "hi")
        await wait_for(pilot, lambda: app.state.pending_approvals())
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: of_type(events_of(app), "run.cancelled"))
        await pilot.pause(0.1)
        assert app.is_running
        assert not app.state.pending_approvals()
        # Nothing runs now: ctrl+c again only says how to quit.
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.is_running


async def test_input_typed_before_the_engine_is_ready_is_sent_when_ready(
    tui_workspace: Path, db_url: str
) -> None:
    gate = threading.Event()

    def slow_factory() -> Any:
        from workbench.engine import Engine

        gate.wait(10)
        return Engine.open(tui_workspace, db_url)

    app = WorkbenchApp(
        tui_workspace,
        db_url,
        engine_factory=slow_factory,
        animate=False,
        watch_workspace=False,
        warm_up=False,
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.engine is None
        assert "loading engine" in app.status.engine
        await pilot.press(*"early bird")
        await pilot.press("enter")
        await pilot.pause()
        assert app.view.chat.queued == 1
        gate.set()
        await wait_engine(pilot)
        await wait_for(pilot, lambda: app.session_id and of_type(events_of(app), "run.completed"))
        assert app.view.chat.queued == 0
        assert of_type(events_of(app), "message.completed")[0].content == "early bird"
        # Sent to what the workspace opens on: its workflow (it went to the first agent).
        assert of_type(events_of(app), "run.started")[0].target == "brief"
        assert app.status.engine == "workspace ws"


async def test_prompt_history_and_newlines(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        prompt = app.prompt
        prompt.sent.extend(["first", "second"])
        prompt.focus()
        await pilot.press("up")
        assert prompt.text == "second"
        await pilot.press("up")
        assert prompt.text == "first"
        await pilot.press("down", "down")
        assert prompt.text == ""
        await pilot.press("a", "ctrl+j", "b")
        assert prompt.text == "a\nb"
        assert not app.state.runs


async def test_replay_ends_on_the_same_screen_as_the_live_run(
    tui_workspace: Path, db_url: str
) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await ask_and_open_approvals(pilot)
        await pilot.press("y")
        await run_ended(pilot)
        await pilot.press("f2")
        await pilot.pause(0.3)
        live = transcript_text(app.view.chat.transcript)
        assert "Tool results" in live
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen))
        replay = app.screen
        assert isinstance(replay, ReplayScreen)
        await pilot.press("4")  # instant
        total = len(events_of(app))
        await wait_for(pilot, lambda: replay.position == total and not replay.timeline.busy)
        await pilot.pause(0.3)
        assert transcript_text(replay.view.chat.transcript) == live
        # Step back one event and forward again: the same screen.
        await pilot.press("comma")
        await wait_for(pilot, lambda: replay.position == total - 1 and not replay.timeline.busy)
        await pilot.press("full_stop")
        await wait_for(pilot, lambda: replay.position == total)
        await pilot.pause(0.3)
        assert transcript_text(replay.view.chat.transcript) == live
        await pilot.press("escape")
        assert not isinstance(app.screen, ReplayScreen)


def transcript_text(t: Transcript) -> str:
    """The visible content of a transcript, block by block."""
    out = []
    for w in t.children:
        if not w.display:
            continue
        if isinstance(w, AssistantMessage):
            out.append(w.shown_text)
        elif isinstance(w, ToolBlock):
            out.append(f"{w.title} {w.collapsed}")
        else:
            out.append(str(w.render()) if hasattr(w, "render") else type(w).__name__)
    return "\n".join(out)


async def test_team_lanes_and_run_tree(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        app.choose_target("team", "desk")
        await send(pilot, "brief please")
        await wait_for(pilot, lambda: of_type(events_of(app), "run.completed") and not app._active)
        await pilot.press("f3")
        await pilot.pause(0.3)
        team = app.view.team
        members = {r.target for r in app.state.runs.values() if r.parent_run_id is not None}
        assert set(team.lanes) == members
        assert {"plain", "critic"} <= members
        # The tree has the team at the root and every child below it.
        root = team.run_tree.root.children
        assert len(root) == 1 and len(root[0].children) == len(app.state.runs) - 1
        await pilot.press("right_square_bracket")
        assert team.focused_member == list(team.lanes)[1]


async def test_workflow_graph_from_the_workflow(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        app.choose_target("workflow", "brief")
        await send(pilot, "go")
        await wait_for(pilot, lambda: of_type(events_of(app), "run.completed") and not app._active)
        await pilot.press("f4")
        await wait_for(
            pilot,
            lambda: app.view.graph.canvas.layout_ is not None and not app.view.graph._from_events,
        )
        canvas = app.view.graph.canvas
        assert canvas.layout_ is not None
        assert set(canvas.layout_.placed) == {"gather", "parallel1", "parallel1/a", "parallel1/b"}
        assert {p: s.status for p, s in canvas.steps.items()} == dict.fromkeys(
            canvas.layout_.placed, "done"
        )
        assert all(canvas.steps[p].run_ids for p in ("gather", "parallel1/a", "parallel1/b"))
        canvas.focus()
        await pilot.press("down", "down", "enter")
        await pilot.pause(0.2)
        assert "parallel1/" in getattr(app.screen, "path", "")


async def test_sessions_screen_opens_and_deletes(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        app.choose_target("agent", "plain")
        await send(pilot, "first session")
        await run_ended(pilot)
        first = app.session_id
        app.action_new_session()
        await send(pilot, "second session")
        await wait_for(
            pilot,
            lambda: (
                app.session_id not in (None, first) and of_type(events_of(app), "run.completed")
            ),
        )
        second = app.session_id
        await pilot.press("f7")
        await wait_for(
            pilot, lambda: type(app.screen).__name__ == "SessionsScreen" and app.screen.sessions
        )  # type: ignore[attr-defined]
        screen: Any = app.screen
        await pilot.press("slash", *"first", "enter")
        await pilot.pause(0.1)
        assert [s.id for s in screen.shown] == [first], (
            screen.query_one("#sessions-filter").value,
            [(s.id, s.title) for s in screen.sessions],
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.session_id == first)
        assert [r.input for r in app.state.top_runs()] == ["first session"]
        await pilot.press("f7")
        await wait_for(
            pilot, lambda: type(app.screen).__name__ == "SessionsScreen" and app.screen.sessions
        )  # type: ignore[attr-defined]
        screen = app.screen
        row = [s.id for s in screen.shown].index(second)
        screen.query_one("DataTable").move_cursor(row=row)
        await pilot.press("d")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDelete")
        await pilot.press("y")
        await wait_for(pilot, lambda: second not in [s.id for s in screen.sessions])
        assert app.engine is not None
        assert [s.id for s in app.engine.sessions()] == [first]


async def test_editing_the_workspace_reloads_it(tui_workspace: Path, db_url: str) -> None:
    app = real_app(tui_workspace, db_url, watch_workspace=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        yaml = tui_workspace / "workbench.yaml"
        text = yaml.read_text()
        yaml.write_text(
            text.replace(
                "  critic:\n    instructions: Criticise.\n",
                "  critic:\n    instructions: Criticise.\n  poet:\n    instructions: Rhyme.\n",
            )
        )
        await bump(yaml)
        await wait_for(
            pilot,
            lambda: app.engine is not None and "poet" in app.engine.workspace.agents,
            timeout=5,
        )
        assert any("+ agent poet" in n.message for n in app._notifications)
        assert "agent:poet" in [v for _, v in app.view.chat.picker._options]
        yaml.write_text(text + "agents: [oops\n")
        await bump(yaml)
        await wait_for(
            pilot,
            lambda: any("workbench.yaml:" in n.message for n in app._notifications),
            timeout=5,
        )
        assert "poet" in app.engine.workspace.agents  # the old definition stays


async def bump(path: Path) -> None:
    """Make sure the mtime moves even on coarse file systems."""
    import os
    import time

    st = path.stat()
    os.utime(path, (st.st_atime, max(time.time(), st.st_mtime + 1)))
    await asyncio.sleep(0)


async def test_palette_offers_every_action_and_each_target() -> None:
    from screens.palette import commands_for
    from tests.tui.fakes import FakeEngine

    engine = FakeEngine()
    app = WorkbenchApp(
        engine_factory=lambda: engine, animate=False, watch_workspace=False, warm_up=False
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        names = [name for name, _, _ in commands_for(app)]
        assert {"Show approvals", "Browse sessions", "Toggle light/dark theme", "Quit"} <= set(
            names
        )
        assert {"Talk to agent helper", "Talk to team desk", "Talk to workflow brief"} <= set(names)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"talk to team desk")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: app.view is not None and app.view.chat.picker.value == "team:desk"
        )
        await pilot.press("f1")
        await pilot.pause(0.1)
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.press("f8")
        assert app.theme == "textual-light"


async def test_the_app_sends_library_logs_to_the_log_file_before_the_engine_opens(
    tui_workspace: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare ``workbench`` leaves logging to the app (its first frame comes first); the
    engine worker routes every library logger into the file before anything logs."""
    import logging
    import os

    import workbench.logs

    monkeypatch.setattr(workbench.logs, "_configured", None)
    for name in ("workbench", "litellm", "httpx"):
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        for name in ("workbench", "litellm", "httpx"):
            (handler,) = logging.getLogger(name).handlers
            assert isinstance(handler, logging.FileHandler)
            assert handler.baseFilename == os.environ["WORKBENCH_LOG"]
            assert not logging.getLogger(name).propagate


async def test_a_stray_print_or_flush_inside_the_app_is_captured_not_a_crash(
    tui_workspace: Path, db_url: str
) -> None:
    """Textual captures stdout and stderr while the app runs and calls ``App._flush`` on a
    flush: the app's own redraw method must not shadow it."""
    import sys

    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        print("a library printed this", flush=True)
        sys.stderr.write("and this\n")
        sys.stderr.flush()
        await pilot.pause()
        assert app.is_running and app.return_code is None
