"""Start-up: a prompt typed at once is sent as soon as the workspace is loaded, never after
litellm unless its target needs it; a broken workbench.yaml is shown in place, refuses
prompts (keeping them) and recovers when the file is fixed."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

import workbench.models
from screens.app import WorkbenchApp
from tests.support.openai_server import FakeOpenAI
from tests.tui.conftest import events_of, wait_engine, wait_for
from tests.tui.screen_text import screen_text

SIZE = (120, 40)


def of_type(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


def seen(app: WorkbenchApp, kind: str) -> list[Any]:
    """The stored events of this type in the app's session (none before it has one)."""
    if app.engine is None or app.session_id is None:
        return []
    return of_type(events_of(app), kind)


def app_on(root: Path, db: str, gate: threading.Event | None = None, **kw: Any) -> WorkbenchApp:
    """The app on a real engine, warming models as in production (``warm_up=True``); the
    engine opens once ``gate`` is set."""

    def factory() -> Any:
        from workbench.engine import Engine

        if gate is not None:
            gate.wait(10)
        return Engine.open(root, db)

    kw.setdefault("animate", False)
    kw.setdefault("watch_workspace", False)
    return WorkbenchApp(root, db, engine_factory=factory, warm_up=True, **kw)


@pytest.fixture
def litellm_never_loads(monkeypatch: pytest.MonkeyPatch) -> concurrent.futures.Future[Any]:
    """litellm's import, as if it took forever: whatever waits for it never answers."""
    pending: concurrent.futures.Future[Any] = concurrent.futures.Future()
    pending.set_running_or_notify_cancel()
    monkeypatch.setattr(workbench.models, "_litellm", pending)
    return pending


def write(root: Path, text: str) -> Path:
    root.mkdir(exist_ok=True)
    path = root / "workbench.yaml"
    path.write_text(textwrap.dedent(text))
    return path


async def bump(path: Path) -> None:
    """Make sure the mtime moves even on coarse file systems."""
    st = path.stat()
    os.utime(path, (st.st_atime, max(time.time(), st.st_mtime + 1)))
    await asyncio.sleep(0)


def info_line(app: WorkbenchApp) -> str:
    return str(app.view.query_one("#target-info", Static).render())  # type: ignore[union-attr]


# -- nothing waits that need not -------------------------------------------------------------


async def test_the_engine_opens_while_the_panes_are_built_and_is_taken_with_them(
    tmp_path: Path, db_url: str
) -> None:
    """The engine starts opening right after the first frame, not after the panes: one
    that is open before them waits, unseen, until they are built; then a prompt typed in
    the first frame goes to the target the panes choose (the workspace's preferred one,
    not its first agent), and the rules are read."""
    root = tmp_path / "ws"
    write(
        root,
        """
        agents:
          first: {model: test, instructions: Hi.}
          second: {model: test, instructions: Hi.}
        teams:
          desk: {mode: route, members: [first, second]}
        """,
    )
    from workbench.approvals import Rule
    from workbench.engine import Engine

    engine = Engine.open(root, db_url)  # opened already: the factory returns at once
    engine.save_rules("", [Rule(tool="files.read", pattern="*", decision="allow")], "workspace")
    seen_at_open: list[bool] = []

    def factory() -> Any:
        seen_at_open.append(app.view is None)
        return engine

    app = WorkbenchApp(root, db_url, engine_factory=factory, animate=False, watch_workspace=False)
    async with app.run_test(size=SIZE) as pilot:
        app.prompt.focus()
        await pilot.press(*"ping one", "enter")
        await wait_for(pilot, lambda: app.engine is not None)
        assert seen_at_open == [True]  # opened before the panes existed
        assert app.view is not None and app._opened is None
        assert app.view.chat.target is not None
        assert (app.view.chat.target.kind, app.view.chat.target.name) == ("team", "desk")
        await wait_for(pilot, lambda: seen(app, "run.completed"), timeout=10)
        started = seen(app, "run.started")
        assert (started[0].target_kind, started[0].target) == ("team", "desk")
        await wait_for(pilot, lambda: [r.tool for r in app.rules] == ["files.read"])


@pytest.mark.parametrize("where", ["test model", "direct model"])
async def test_a_prompt_typed_at_once_is_sent_without_waiting_for_litellm(
    tmp_path: Path,
    db_url: str,
    fake_model: FakeOpenAI,
    litellm_never_loads: concurrent.futures.Future[Any],
    where: str,
) -> None:
    model = (
        "test"
        if where == "test model"
        else f'{{model: openai/fake, api_base: "{fake_model.base_url}", api_key: none}}'
    )
    root = tmp_path / "ws"
    write(root, f"models:\n  default: {model}\nagents:\n  helper:\n    instructions: Hi.\n")
    gate = threading.Event()
    app = app_on(root, db_url, gate)
    async with app.run_test(size=SIZE) as pilot:
        # Typed in the first frame, before the workspace is loaded.
        app.prompt.focus()
        await pilot.press(*"ping one", "enter")
        await pilot.pause()
        assert app.engine is None and app.view is not None and app.view.chat.queued == 1
        gate.set()
        await wait_engine(pilot)
        await wait_for(pilot, lambda: seen(app, "run.completed"), timeout=10)
        answer = seen(app, "run.completed")[0].output
        assert answer == (
            "[test model] You said: ping one" if where == "test model" else "echo: ping one"
        )
        assert not litellm_never_loads.done()  # nobody waited for it
        assert app._litellm == "idle" and "litellm" not in info_line(app)
        assert app.status.engine == "workspace ws"  # no "loading models…"


async def test_a_target_whose_model_needs_litellm_says_so_and_waits_for_it_alone(
    tmp_path: Path,
    db_url: str,
    fake_model: FakeOpenAI,
    litellm_never_loads: concurrent.futures.Future[Any],
) -> None:
    base = fake_model.base_url
    root = tmp_path / "ws"
    write(
        root,
        f"""
        models:
          fast: {{model: openai/fake, api_base: "{base}", api_key: none}}
          via_litellm: {{model: openai/fake, api_base: "{base}", api_key: none, direct: false}}
        agents:
          quick: {{model: fast, instructions: Hi.}}
          slow: {{model: via_litellm, instructions: Hi.}}
        """,
    )
    app = app_on(root, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        assert app.view is not None
        # The first target is called directly: nothing to load.
        assert app._litellm == "idle" and "litellm" not in info_line(app)
        app.choose_target("agent", "slow")
        await pilot.pause()
        assert "loading litellm…" in info_line(app)
        assert "loading litellm…" in app.status.model
        app.prompt.focus()
        await pilot.press(*"to slow", "enter")
        await wait_for(pilot, lambda: seen(app, "run.started"))
        assert any("waiting for litellm" in (n.title or "") for n in app._notifications)
        await pilot.pause(0.3)
        assert not seen(app, "run.completed")  # it waits for litellm
        assert fake_model.chat_requests == []
        # litellm arrives: the waiting run goes on through it, and the line says nothing more.
        module = await asyncio.to_thread(workbench.models._import_litellm)
        litellm_never_loads.set_result(module)
        await wait_for(pilot, lambda: seen(app, "run.completed"), timeout=30)
        app.choose_target("agent", "slow")
        await wait_for(pilot, lambda: "litellm" not in info_line(app), timeout=5)
        assert seen(app, "run.completed")[0].output == "echo: to slow"
    assert fake_model.chat_requests[-1].messages[-1]["content"] == "to slow"


async def test_quick_targets_answer_while_litellm_loads_for_another(
    tmp_path: Path,
    db_url: str,
    fake_model: FakeOpenAI,
    litellm_never_loads: concurrent.futures.Future[Any],
) -> None:
    base = fake_model.base_url
    root = tmp_path / "ws"
    write(
        root,
        f"""
        models:
          via_litellm: {{model: openai/fake, api_base: "{base}", api_key: none, direct: false}}
        agents:
          slow: {{model: via_litellm, instructions: Hi.}}
          quick: {{model: test, instructions: Hi.}}
        """,
    )
    app = app_on(root, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        # The first target needs litellm: its import starts at once and the line says so.
        assert app._litellm == "loading" and "loading litellm…" in info_line(app)
        app.choose_target("agent", "quick")
        await pilot.pause()
        assert "litellm" not in info_line(app)
        app.prompt.focus()
        await pilot.press(*"hello", "enter")
        await wait_for(pilot, lambda: seen(app, "run.completed"), timeout=10)
        assert seen(app, "run.completed")[0].output == "[test model] You said: hello"


# -- a broken workbench.yaml recovers ---------------------------------------------------------

BROKEN = """\
models:
  default: test
agents:
  helper:
    instructions: Hi.
    model: 3
"""

FIXED = """\
models:
  default: test
agents:
  helper:
    instructions: Hi.
"""


async def test_a_broken_workspace_is_shown_in_place_refuses_prompts_and_recovers(
    tmp_path: Path, db_url: str
) -> None:
    root = tmp_path / "ws"
    path = write(root, BROKEN)
    app = app_on(root, db_url, watch_workspace=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app._load == "failed")
        panel = app.query_one("#load-error", Static)
        shown = str(panel.render())
        assert "workbench.yaml has an error" in shown
        assert "workbench.yaml:6: agents.helper.model" in shown  # file, line and key
        assert "reloads by itself" in shown
        assert app.status.failed and "workbench.yaml has an error" in app.status.engine
        assert "loading" not in app.status.engine
        # A prompt is refused with the reason, and kept.
        app.prompt.focus()
        await pilot.press(*"keep me", "enter")
        await pilot.pause()
        assert app.prompt.text == "keep me"
        assert app.view is not None and app.view.chat.queued == 0
        refusal = [n for n in app._notifications if n.title == "Not sent"]
        assert refusal and "agents.helper.model" in refusal[-1].message
        # Fixed: it reloads by itself, the error goes, and the kept prompt is sent.
        path.write_text(FIXED)
        await bump(path)
        await wait_engine(pilot)
        await wait_for(  # a toast is a message: drawn a moment after the engine opens
            pilot, lambda: any(n.title == "workbench.yaml fixed" for n in app._notifications)
        )
        await wait_for(pilot, lambda: not app.query("#load-error"))
        assert app._load == "ready" and not app.status.failed
        assert app.status.engine == "workspace ws"
        await pilot.press("enter")
        await wait_for(pilot, lambda: seen(app, "run.completed"))
        assert seen(app, "run.completed")[0].output == "[test model] You said: keep me"


async def test_prompts_queued_while_loading_come_back_when_the_workspace_fails(
    tmp_path: Path, db_url: str
) -> None:
    root = tmp_path / "ws"
    path = write(root, BROKEN)
    gate = threading.Event()
    app = app_on(root, db_url, gate, watch_workspace=True)
    async with app.run_test(size=SIZE) as pilot:
        app.prompt.focus()
        await pilot.press(*"first", "enter")
        await pilot.press(*"second", "enter")
        await pilot.pause()
        assert app.view is not None and app.view.chat.queued == 2
        gate.set()
        await wait_for(pilot, lambda: app._load == "failed")
        assert app.view.chat.queued == 0
        assert app.prompt.text == "first\n\nsecond"
        assert any(n.title == "2 prompts not sent" for n in app._notifications)
        # Broken again by a second edit: still failed, the panel says the new error.
        path.write_text(BROKEN.replace("model: 3", "model: 3\n    nope: 1"))
        await bump(path)
        await wait_for(pilot, lambda: "nope" in str(app.query_one("#load-error", Static).render()))
        assert app._load == "failed" and app.engine is None


# -- the garbage collector waits for the start-up (workbench.startup) ----------------------


@pytest.fixture
def paused_collector() -> Any:
    """The collector paused as the command line pauses it; afterwards enabled and nothing
    left frozen in this (long-lived) test process."""
    import gc

    import workbench.startup as startup

    startup.pause_collector()
    assert startup.collector_paused() and not gc.isenabled()
    try:
        yield startup
    finally:
        startup._paused = False
        gc.enable()
        gc.unfreeze()


@pytest.mark.parametrize("text", [FIXED, BROKEN], ids=["opens", "fails"])
async def test_the_collector_resumes_once_the_engine_is_taken_or_has_failed(
    tmp_path: Path, paused_collector: Any, text: str
) -> None:
    """The command line pauses the collector for the imports; the app resumes it, with the
    start-up's objects frozen, when its engine is open and shown, or when the workspace
    fails to load."""
    import gc

    root = tmp_path / "ws"
    write(root, text)
    gate = threading.Event()
    app = app_on(root, f"sqlite:///{tmp_path}/wb.db", gate=gate)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        assert paused_collector.collector_paused() and not gc.isenabled()
        gate.set()
        await wait_for(pilot, lambda: app.engine is not None or app._load == "failed")
        assert gc.isenabled() and not paused_collector.collector_paused()
        assert gc.get_freeze_count() > 0


async def test_the_collector_resumes_at_the_latest_after_a_while(
    tmp_path: Path, paused_collector: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine that never opens does not keep the collector paused."""
    import gc

    import screens.app

    monkeypatch.setattr(screens.app, "RESUME_AFTER_S", 0.5)
    root = tmp_path / "ws"
    write(root, FIXED)
    gate = threading.Event()  # never set while the app runs
    app = app_on(root, f"sqlite:///{tmp_path}/wb.db", gate=gate)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.1)
            assert not gc.isenabled()
            await wait_for(pilot, gc.isenabled, timeout=5)
            assert app.engine is None and gc.get_freeze_count() > 0
    finally:
        gate.set()


def test_resuming_a_collector_nobody_paused_freezes_nothing() -> None:
    import gc

    import workbench.startup as startup

    assert gc.isenabled() and not startup.collector_paused()
    before = gc.get_freeze_count()
    startup.resume_collector()
    assert gc.isenabled() and gc.get_freeze_count() == before


# -- the panes other than the chat are built after the first answer ----------------------

LATER = ("team", "graph", "approvals", "usage")


def _built(app: WorkbenchApp) -> dict[str, bool]:
    assert app.view is not None
    return {tab: app.view.built(tab) is not None for tab in LATER}


def _mounted(app: WorkbenchApp) -> dict[str, bool]:
    assert app.view is not None
    return {tab: bool(getattr(app.view.built(tab), "is_mounted", False)) for tab in LATER}


async def test_a_prompt_typed_at_once_is_answered_before_the_other_panes_are_built(
    tmp_path: Path, db_url: str
) -> None:
    """The answer to a prompt typed at once does not wait for the team, graph, approvals
    and usage panes (their modules, widgets and first layout): they are built once its run
    has ended, and draw what happened meanwhile (the usage row, the rules read at
    start)."""
    root = tmp_path / "ws"
    write(root, FIXED)
    from workbench.approvals import Rule
    from workbench.engine import Engine

    Engine.open(root, db_url).save_rules(
        "", [Rule(tool="files.read", pattern="*", decision="allow")], "workspace"
    )
    gate = threading.Event()
    at_start: list[dict[str, bool]] = []

    def factory() -> Any:
        gate.wait(10)
        engine = Engine.open(root, db_url)
        start_run = engine.start_run

        async def recorded(*args: Any, **kw: Any) -> Any:
            at_start.append(_built(app))
            return await start_run(*args, **kw)

        engine.start_run = recorded  # type: ignore[method-assign]
        return engine

    app = WorkbenchApp(root, db_url, engine_factory=factory, animate=False, watch_workspace=False)
    async with app.run_test(size=SIZE) as pilot:
        app.prompt.focus()
        await pilot.press(*"ping one", "enter")
        await wait_for(pilot, lambda: app.view is not None)
        await pilot.pause(0.2)
        assert not any(_built(app).values())
        gate.set()
        await wait_for(pilot, lambda: seen(app, "run.completed"), timeout=10)
        assert at_start == [dict.fromkeys(LATER, False)]
        await wait_for(pilot, lambda: all(_mounted(app).values()), timeout=5)
        await pilot.press("f6")
        await wait_for(pilot, lambda: app.view is not None and app.view.active == "usage")
        await pilot.pause(0.2)
        shown = screen_text(app)
        assert "helper" in shown and "No model calls" not in shown
        await pilot.press("f5")
        await pilot.pause(0.2)
        assert app.view is not None
        rules = app.view.approvals.rules_list
        assert rules.option_count == 1
        assert "allow files.read" in str(rules.get_option_at_index(0).prompt)


async def test_a_tab_shown_before_its_pane_is_built_builds_it_shows_it_and_focuses_it(
    tmp_path: Path, db_url: str
) -> None:
    root = tmp_path / "ws"
    write(root, FIXED)
    gate = threading.Event()
    app = app_on(root, db_url, gate)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.view is not None)
        await pilot.pause(0.2)
        assert not any(_built(app).values())
        await pilot.press("f3")  # before the workspace is loaded
        await wait_for(pilot, lambda: _mounted(app)["team"])
        await pilot.pause(0.1)
        assert app.view is not None and app.view.active == "team"
        assert _mounted(app) == {"team": True, "graph": False, "approvals": False, "usage": False}
        assert app.screen.focused is app.view.team.run_tree
        await pilot.press("f4", "f2")  # the graph asked for, then the chat before it mounts
        await wait_for(pilot, lambda: _mounted(app)["graph"])
        await pilot.pause(0.1)
        assert app.view.active == "chat"  # the graph, mounted late, did not take the focus
        assert app.screen.focused is not app.view.graph.canvas
        gate.set()
        await wait_engine(pilot)  # no prompt in flight: the rest are built at once
        await wait_for(pilot, lambda: all(_mounted(app).values()), timeout=5)


async def test_a_late_focus_message_does_not_switch_the_tab_back(
    tmp_path: Path, db_url: str
) -> None:
    """On a busy loop the message that the chat got the focus can arrive after F4 has
    shown and focused the graph (seen under load: the graph followed a run behind the
    chat). Such a message is dropped; a focus given now still shows its tab."""
    from textual.widgets import TabPane

    root = tmp_path / "ws"
    write(root, FIXED)
    app = app_on(root, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        view = app.view
        assert view is not None
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.screen.focused is view.graph.canvas)
        chat_tab = view.query_one("#tab-chat", TabPane)
        chat_tab.post_message(TabPane.Focused(chat_tab))  # late: the focus is elsewhere
        await pilot.pause(0.2)
        assert view.active == "graph"
        view.chat.transcript.focus()  # a focus given now shows its tab, as Textual does
        await wait_for(pilot, lambda: view.active == "chat")


async def test_a_tab_key_pressed_before_the_panes_exist_is_shown_once_they_do(
    tmp_path: Path, db_url: str
) -> None:
    """F4 typed ahead, while the app starts (the first frame is the prompt and the status
    bar only), is not lost: the graph is shown once the panes are built."""
    root = tmp_path / "ws"
    write(root, FIXED)
    gate = threading.Event()
    app = app_on(root, db_url, gate)  # the engine opens once the panes are shown
    async with app.run_test(size=SIZE) as pilot:
        assert app.view is None
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.view is not None and app.view.active == "graph")
        await wait_for(pilot, lambda: app.screen.focused is app.view.graph.canvas)  # type: ignore[union-attr]
        gate.set()
        await wait_engine(pilot)


async def test_a_finished_answer_and_a_call_to_decide_are_drawn_at_once_not_with_the_next_batch(
    tmp_path: Path, db_url: str
) -> None:
    """Streamed events are drawn in batches (at most one per ``frame_interval``); the end
    of an answer, a call waiting for a decision and a run's end are drawn as they come.
    With batches 5 s apart, the test model's answer and its call's card show well before
    the next batch."""
    root = tmp_path / "ws"
    write(
        root,
        """
        models: {default: test}
        agents:
          helper: {instructions: Hi.}
          writer: {instructions: Write., tools: [files.write]}
        approvals: {default: ask}
        """,
    )
    from tests.tui.conftest import real_app

    app = real_app(root, db_url, frame_interval=5.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        app.send_prompt("ping one")
        await wait_for(pilot, lambda: "You said: ping one" in screen_text(app), timeout=3)
        await wait_for(pilot, lambda: seen(app, "run.completed"))
        app.choose_target("agent", "writer")
        app.send_prompt("write it")
        await wait_for(pilot, lambda: app.state.pending_approvals(), timeout=3)
        await wait_for(pilot, lambda: "y allow once" in screen_text(app), timeout=3)


async def test_show_saved_rules_from_the_palette_mounts_the_pane_and_focuses_its_rules(
    tmp_path: Path, db_url: str
) -> None:
    root = tmp_path / "ws"
    write(root, FIXED)
    from workbench.approvals import Rule
    from workbench.engine import Engine

    Engine.open(root, db_url).save_rules(
        "", [Rule(tool="files.read", pattern="*", decision="allow")], "workspace"
    )
    gate = threading.Event()
    app = app_on(root, db_url, gate)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.view is not None)
        assert app.view is not None and app.view.built("approvals") is None
        gate.set()
        await wait_engine(pilot)
        app.show_rules()  # "Show saved rules" in the command palette
        await wait_for(pilot, lambda: app.view is not None and app.view.active == "approvals")
        pane = app.view.approvals
        await wait_for(pilot, lambda: pane.is_mounted and pane.rules_list.has_focus)
        await wait_for(pilot, lambda: pane.rules_list.option_count == 1)
        assert "allow files.read" in str(pane.rules_list.get_option_at_index(0).prompt)
