"""Nothing thrown away: quitting with a run in flight asks first and leaves the run
resumable (interrupted, not cancelled); a replayed export leaves the chat on the real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from screens.quit import ConfirmQuit
from screens.state import ToolItem
from tests.tui.conftest import events_of, real_app, wait_engine, wait_for
from workbench.store import Store

SIZE = (120, 40)


def of_type(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


async def send(pilot: Any, text: str) -> None:
    app = pilot.app
    app.view.show("chat")
    await pilot.pause()
    app.prompt.focus()
    await pilot.press(*text)
    await pilot.press("enter")


async def test_quitting_with_a_run_in_flight_asks_and_leaves_it_resumable(
    tui_workspace: Path, db_url: str
) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await send(pilot, "write it")
        await wait_for(pilot, lambda: app.state.pending_approvals())
        session_id = app.session_id
        run_id = next(iter(app._active))
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmQuit))
        await pilot.press("n")  # stay: nothing changed
        await pilot.pause(0.1)
        assert app.is_running and app.state.pending_approvals()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmQuit))
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running)
    assert session_id is not None
    with Store.open(db_url) as store:
        events = store.events(session_id)
        (run,) = store.list_runs(session_id)
    assert not of_type(events, "run.cancelled") and run.status == "interrupted"
    # Opened again, the session resumes the run, which asks again.
    again = real_app(tui_workspace, db_url)
    async with again.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        again.open_session(session_id)
        await wait_for(pilot, lambda: again.session_id == session_id)
        # Shown as it is: interrupted, nothing to decide until it is resumed.
        assert again.state.runs[run_id].status == "interrupted"
        (tool,) = [i for i in again.state.items if isinstance(i, ToolItem)]
        assert tool.status == "interrupted" and not again.state.pending_approvals()
        await pilot.press("y")
        assert again.prompt.text == "y"
        again.prompt.load_text("")
        again.open_session(session_id, resume=True)
        await wait_for(pilot, lambda: again._active)
        await wait_for(pilot, lambda: again.state.pending_approvals())
        (tool,) = [i for i in again.state.items if isinstance(i, ToolItem)]
        assert tool.status == "awaiting" and again.state.runs[run_id].status == "running"
        await pilot.press("y")
        await wait_for(pilot, lambda: of_type(events_of(again), "run.completed"))
        done = [e for e in of_type(events_of(again), "run.completed") if e.run_id == run_id]
        assert done and (tui_workspace / "test").read_text() == "test"


async def test_quitting_with_nothing_in_flight_does_not_ask(
    tui_workspace: Path, db_url: str
) -> None:
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running)


async def test_after_replaying_an_export_the_chat_goes_to_the_real_store(
    tui_workspace: Path, db_url: str, tmp_path: Path
) -> None:
    """``workbench replay FILE``: the file is replayed from memory; what is typed after
    escape is kept in the real store (it went to a throwaway one and was lost on quit)."""
    from screens.replay import ReplayScreen
    from workbench.sessions import read_archive

    sample = Path(__file__).resolve().parents[2] / "sample_workspaces/debate/sessions"
    file = sample / "council.test-model.jsonl"
    header, events = read_archive(file)
    app = real_app(
        tui_workspace, db_url, replay=header.session_id, replay_file=file, replay_events=events
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen))
        replay = app.screen
        assert isinstance(replay, ReplayScreen)
        await pilot.press("4")  # instant
        await wait_for(pilot, lambda: replay.position == len(events))
        assert app.engine is not None
        assert app.engine.store.get_session(header.session_id) is None  # nothing imported
        await pilot.press("escape")
        app.choose_target("agent", "plain")
        await send(pilot, "kept after the replay")
        await wait_for(pilot, lambda: app.session_id and of_type(events_of(app), "run.completed"))
        kept = app.session_id
    with Store.open(db_url) as store:
        assert [s.id for s in store.list_sessions()] == [kept]
        assert store.events(kept or "")[0].input == "kept after the replay"  # type: ignore[union-attr]


async def test_forking_a_replayed_export_imports_it_then_forks(
    tui_workspace: Path, db_url: str
) -> None:
    from screens.replay import ReplayScreen
    from workbench.sessions import read_archive

    file = Path(__file__).resolve().parents[2] / "sample_workspaces/debate/sessions"
    file = file / "council.test-model.jsonl"
    header, events = read_archive(file)
    app = real_app(
        tui_workspace, db_url, replay=header.session_id, replay_file=file, replay_events=events
    )
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen))
        await pilot.press("4")
        await pilot.pause(0.5)
        await pilot.press("f")
        await wait_for(pilot, lambda: app.session_id not in (None, header.session_id))
    with Store.open(db_url) as store:
        ids = {s.id for s in store.list_sessions()}
        fork = store.get_session(app.session_id or "")
    assert header.session_id in ids and fork is not None
    assert fork.forked_from == header.session_id
