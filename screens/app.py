"""The Workbench app: the product's main face.

``workbench`` with no subcommand calls :func:`run_app`. The first frame comes before any
heavy import: this module imports Textual and the panes only (no litellm, no SQLAlchemy,
no engine, not even pydantic); the engine opens in a thread worker after mount while the
user can already type.

Start-up is a small state machine: *loading* (prompts are queued and sent the moment the
workspace is loaded), *ready*, or *failed* (the workspace has an error: it is shown in
place, prompts are refused with that reason and kept in the prompt, and the app reloads
when ``workbench.yaml`` changes). Models are not waited for: a model called directly needs
nothing more, and a target whose model needs litellm starts its run at once while litellm
imports in a thread (the status says so); the model call awaits that import alone.

Events come in through the engine's listener, are queued, and are folded into the
session's :class:`~screens.state.SessionState` once per frame; the panes then draw what the
frame changed. A burst of 2,000 deltas a second is one update per pane per frame.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.containers import Vertical
from textual.events import Resize
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.types import CSSPathType
from textual.widgets import Static

from screens.prompt import PromptInput, TargetChoice
from screens.status import StatusBar
from workbench.startup import RESUME_AFTER_S, resume_collector

if TYPE_CHECKING:
    from screens.approvals import ApprovalsPane
    from screens.engine_api import EngineLike
    from screens.session_view import SessionView
    from screens.state import ApprovalState, CallKey, SessionState
    from workbench.events import TargetKind

__all__ = ["EngineFactory", "WorkbenchApp", "run_app"]

EngineFactory = Callable[[], "EngineLike"]
"""Opens an engine (called in a worker thread)."""

_HERE = Path(__file__).parent

PANES_AFTER_S = 1.0
"""Seconds after the engine is ready when the panes other than the chat are mounted, at the
latest, while a prompt typed at once is answered."""

PANES_AFTER_RUN_S = 0.25
"""Seconds after that prompt's run ended when they are mounted (its answer drawn first)."""

DRAW_AT_ONCE = frozenset(
    {
        "message.completed",
        "approval.required",
        "run.completed",
        "run.failed",
        "run.cancelled",
        "run.interrupted",
    }
)
"""Events drawn as soon as they arrive, not with the next batch of streamed ones (at most
``frame_interval`` later): what a person waits for (a finished answer, a call to decide,
a run's end), a few per run."""

PROMPT_HINT = "enter send · ctrl+j newline · ↑↓ history · ctrl+c cancel run · F1 keys"
"""The line under the prompt while no call waits for a decision."""


def workbench_commands() -> type[Any]:
    """The palette's provider, imported when the palette first opens."""
    from screens.palette import WorkbenchCommands

    return WorkbenchCommands


class WorkbenchApp(App[int]):
    """Chat with agents, watch teams and workflows, decide tool calls, replay sessions.

    Args:
        workspace: The workspace folder (default: the current folder).
        db: SQLAlchemy URL of the store (default: the user data dir, or $WORKBENCH_DB).
        replay: A session id to open in the replay view at start.
        replay_file: The JSONL export it was read from, when it is a file: replayed from
            memory (nothing is imported unless it is forked); the app's store stays the
            real one, so the chats after the replay are kept.
        replay_events: That file's events (read already, by the command line).
        replay_speed: Its speed (times faster than recorded; ``inf`` instant), snapped to
            the replay view's 1x, 2x, 10x or instant.
        engine_factory: Opens the engine (tests inject one); runs in a thread.
        warm_up: Import litellm in a thread for a target that needs it; read the price
            map and start the MCP servers (``Engine.warm_up``) once the engine is open
            (default: only with the real, local engine).
        watch_workspace: Reload ``workbench.yaml`` when it changes.
        animate: Spinners and the blinking cursor (off for snapshot tests).
        frame_interval: Seconds between two redraws of streamed events.
    """

    CSS_PATH: ClassVar[CSSPathType | None] = [_HERE / "app.tcss"]
    PANE_CSS: ClassVar[list[Path]] = [
        _HERE / "session_view.tcss",
        _HERE / "dialogs.tcss",
        _HERE / "transcript.tcss",
        _HERE / "chat.tcss",
        _HERE / "approvals.tcss",
        _HERE / "team_view.tcss",
        _HERE / "graph_view.tcss",
        _HERE / "usage.tcss",
    ]
    """The panes' styles, read with the panes (after the first frame)."""
    TITLE = "Workbench"
    COMMANDS: ClassVar[set[Any]] = App.COMMANDS | {workbench_commands}
    BINDINGS: ClassVar[list[Any]] = [
        Binding("ctrl+c", "cancel_run", "Cancel run", priority=True),
        Binding("f1", "help", "Keys", priority=True),
        Binding("question_mark", "help", "Keys", show=False),
        Binding("f2", "show('chat')", "Chat", show=False, priority=True),
        Binding("f3", "show('team')", "Team", show=False, priority=True),
        Binding("f4", "show('graph')", "Graph", show=False, priority=True),
        Binding("f5", "show('approvals')", "Approvals", show=False, priority=True),
        Binding("f6", "show('usage')", "Usage", show=False, priority=True),
        Binding("f7", "sessions", "Sessions", priority=True),
        Binding("f8", "toggle_theme", "Theme", show=False, priority=True),
        Binding("f9", "mcp", "MCP", show=False, priority=True),
        Binding("ctrl+o", "copy_answer", "Copy answer", priority=True),
        Binding("ctrl+n", "new_session", "New session", show=False),
        Binding("ctrl+r", "replay_session", "Replay", show=False),
        Binding("escape", "focus_prompt", "Prompt", show=False),
        # One key decides the oldest waiting call from wherever the person is (the chat's
        # transcript, a lane, the graph); the prompt does the same when it is empty.
        *(
            Binding(key, f"decide_key('{key}')", what, show=False)
            for key, what in (
                ("y", "Allow once"),
                ("s", "Allow for the session"),
                ("a", "Allow always"),
                ("n", "Deny"),
                ("e", "Edit, then allow"),
            )
        ),
    ]

    engine_ready: reactive[bool] = reactive(False)
    """The engine is open."""
    compact: reactive[bool] = reactive(False)
    """The terminal is small (under 100x30): panes stack and hints hide."""
    session_id: reactive[str | None] = reactive(None)
    """The session the panes show ('None' until the first run creates one)."""

    @dataclass
    class EngineReady(Message):
        """The engine opened."""

        engine: EngineLike
        """The engine."""

    @dataclass
    class ModelsReady(Message):
        """litellm's import, started for a target that needs it, ended."""

        error: str | None = None
        """Why it failed, or ``None``."""

    @dataclass
    class EngineFailed(Message):
        """The engine could not open."""

        error: Exception
        """Why (a WorkspaceError names file, line and key)."""

    @dataclass
    class WorkspaceReloaded(Message):
        """``workbench.yaml`` changed and loaded."""

        workspace: Any
        """The new workspace."""
        changes: list[str]
        """What changed, one line each."""

    @dataclass
    class WorkspaceInvalid(Message):
        """``workbench.yaml`` changed and has an error."""

        error: Exception
        """The error, with file and line."""

    @dataclass
    class SessionLoaded(Message):
        """A stored session was folded into a state, off the UI thread."""

        session_id: str
        """The session."""
        state: SessionState
        """Its state."""
        resume: bool = False
        """Resume its unfinished runs once shown."""

    def __init__(
        self,
        workspace: Path | str | None = None,
        db: str | None = None,
        *,
        replay: str | None = None,
        replay_speed: float | None = None,
        replay_file: Path | None = None,
        replay_events: list[Any] | None = None,
        engine_factory: EngineFactory | None = None,
        warm_up: bool | None = None,
        watch_workspace: bool = True,
        animate: bool = True,
        frame_interval: float = 1 / 30,
    ) -> None:
        super().__init__()
        self.workspace_path = Path(workspace) if workspace is not None else None
        """Where the workspace is."""
        self.db = db
        """The store's URL."""
        self.replay_id = replay
        """A session to replay at start."""
        self.replay_speed = replay_speed
        """The speed of that replay (None: the replay view's default)."""
        self.replay_file = replay_file
        """The export file it comes from, if a file."""
        self.replay_events = replay_events
        """Its events, when it comes from a file."""
        self.engine: EngineLike | None = None
        """The engine, once open."""
        self._engine_factory = engine_factory or self._open_default_engine
        self._warm_up = engine_factory is None if warm_up is None else warm_up
        self._litellm = "idle"
        """litellm in this process: idle (not needed yet), loading, ready, or the error."""
        self._load: Literal["loading", "ready", "failed"] = "loading"
        """Start-up: the engine is opening, is open, or could not open."""
        self._engine_error: Exception | None = None
        """Why the engine could not open (shown in place until it does)."""
        self._watch_workspace = watch_workspace
        self.animations = animate
        """Spinners and cursor blink."""
        self.frame_interval = frame_interval
        """Seconds between redraws of streamed events."""
        if not animate:
            self.animation_level = "none"
        self._state: SessionState | None = None
        self._inbox: deque[Any] = deque()
        self._orphans: deque[Any] = deque(maxlen=50_000)
        self._flush_timer: Timer | None = None
        self._wake_pending = False
        self._last_flush = 0.0
        self._thread = threading.get_ident()
        self._unlisten: Callable[[], None] | None = None
        self._unbroker: Callable[[], None] | None = None
        self._elsewhere: dict[tuple[str, str], ApprovalState] = {}
        """Calls waiting for a decision in other sessions (the broker's; for an attached
        TUI, every server's), shown in the same queue."""
        self._elsewhere_waiting = 0
        self._followed: str | None = None
        """An opened session whose events an attached engine follows live."""
        self._queue: list[tuple[str, TargetChoice | None]] = []
        self.deciding: set[CallKey] = set()
        """Calls decided here whose ``approval.resolved`` has not come back yet."""
        self.rules: list[Any] = []
        """The rules in force, as last read (the approvals pane and the palette list them)."""
        self._active: dict[str, Any] = {}
        self._targets: dict[str, str] = {}
        self._starting = 0
        self._ws_mtime: float | None = None
        self._ws_file: Path | None = None
        self._ws_timer: Timer | None = None
        self.view: SessionView | None = None
        """The panes; mounted right after the first frame (their imports wait too)."""
        self._tab_wanted: str | None = None
        """A tab key pressed before the panes existed: shown once they do."""
        self._opened: EngineLike | None = None
        """The engine, opened before the panes were built and not taken yet."""
        self.prompt = PromptInput(
            id="prompt",
            placeholder="Ask something… (enter sends, ctrl+j newline)",
            decide=self.decide_key,
        )
        """The prompt, in the first frame."""
        self.status = StatusBar(id="status")

    @property
    def state(self) -> SessionState:
        """The session shown, folded from its events (made on first use: its module is
        not needed for the first frame)."""
        if self._state is None:
            from screens.state import SessionState

            self._state = SessionState(self.session_id)
        return self._state

    @state.setter
    def state(self, state: SessionState) -> None:
        self._state = state

    # -- start-up ------------------------------------------------------------------------

    def compose(self) -> Any:
        yield Vertical(id="session-box")
        with Vertical(id="prompt-bar"):
            yield self.prompt
            yield Static(PROMPT_HINT, id="prompt-hint", markup=False)
        yield self.status

    def on_mount(self) -> None:
        self.theme = "textual-dark"
        if not self.animations:
            self.prompt.cursor_blink = False
        self.prompt.focus()
        # The first frame is the prompt and the status bar. Soon after it the engine starts
        # opening in its thread (its imports are most of what a prompt typed at once waits
        # for), while the panes are built. Not at once: Textual writes the frame from its
        # own thread, which the engine's imports would keep waiting for the GIL (first
        # paint 1.3-1.4x the hello world's under load when started right after the first
        # refresh; 1.1x with these 50 ms, and the same first answer).
        self.set_timer(0.05, self._open_engine, name="open the engine")
        self.set_timer(0.1, self._build_panes, name="build panes")
        # The command line paused the garbage collector for the start-up; it resumes when
        # the engine is taken or fails (workbench.startup), and at the latest by then.
        self.set_timer(RESUME_AFTER_S, resume_collector, name="resume the collector")

    async def _build_panes(self) -> None:
        from textual.widgets import Footer

        from screens.session_view import SessionView

        for path in self.PANE_CSS:
            if not self.stylesheet.has_source(str(path)):
                self.stylesheet.read(path)
        view = SessionView(
            deciding=self.deciding, graph_source=self._graph_source, defer=True, id="session"
        )
        await self.query_one("#session-box").mount(view)
        await self.mount(Footer(compact=True))
        self.view = view
        view.rebuild(self.state)
        wanted, self._tab_wanted = self._tab_wanted, None
        if wanted is not None:
            self.action_show(wanted)
        view.chat.queued = len(self._queue)
        # An engine that opened while the panes were built is taken now: the app has an
        # engine only once it can show it (its target, its prompts, its rules).
        opened, self._opened = self._opened, None
        if opened is not None:
            self._engine_ready(self.EngineReady(opened))
        elif self._load == "failed":
            view.chat.picker.prompt = "not loaded"

    def _reveal_panes(self) -> None:
        """Mount the panes other than the chat, if they are not yet."""
        if self.view is not None:
            self.call_later(self.view.reveal)

    def _open_default_engine(self) -> EngineLike:
        from workbench.engine import Engine

        return Engine.open(self.workspace_path, self.db, kind="tui")

    @work(
        thread=True,
        exclusive=True,
        group="engine",
        description="open the engine",
        exit_on_error=False,
    )
    def _open_engine(self) -> None:
        # Logging (ours and every library's, into the log file, never over the screen) is
        # set up here, after the first frame and before anything that logs is imported.
        from workbench.logs import setup_logging

        setup_logging()
        try:
            engine = self._engine_factory()
        except Exception as exc:  # a bad workspace must not take the app down
            self.post_message(self.EngineFailed(exc))
            return
        self.post_message(self.EngineReady(engine))

    @work(exclusive=True, group="litellm", description="import litellm", exit_on_error=False)
    async def _import_litellm(self) -> None:
        # The import runs in its own thread (workbench.models); this only awaits it, so
        # quitting never waits for it.
        from asyncio import wrap_future

        from workbench.models import start_litellm_import

        try:
            await wrap_future(start_litellm_import())
        except Exception as exc:
            self.post_message(self.ModelsReady(_one_line(exc)))
            return
        self.post_message(self.ModelsReady())

    @on(ModelsReady)
    def _models_ready(self, event: ModelsReady) -> None:
        self._litellm = "ready" if event.error is None else f"failed: {event.error}"
        self._show_target()

    def _needs_litellm(self, target: TargetChoice | None) -> bool:
        """Whether a model of this target is called through litellm (in this process)."""
        engine = self.engine
        if target is None or engine is None or not self._warm_up:
            return False
        from workbench.providers import needs_litellm

        try:
            specs = engine.workspace.target_models(target.kind, target.name)
        except (AttributeError, KeyError):
            return False
        return any(needs_litellm(spec.model, spec.params) for spec in specs)

    def _litellm_for(self, target: TargetChoice | None) -> str:
        """'' when the target needs nothing; else what its litellm is doing (and start
        importing it if nobody has)."""
        if not self._needs_litellm(target):
            return ""
        if self._litellm == "idle":
            from workbench.models import litellm_loaded

            if litellm_loaded():
                self._litellm = "ready"
            else:
                self._litellm = "loading"
                self._import_litellm()
        return self._litellm

    @on(EngineReady)
    def _engine_ready(self, event: EngineReady) -> None:
        if self.view is None:
            self._opened = event.engine  # taken when the panes are built
            return
        engine = self.engine = event.engine
        resume_collector()  # the start-up is over (workbench.startup)
        recovered = self._engine_error is not None
        self._load, self._engine_error = "ready", None
        self._show_load_error(None)
        self._unlisten = engine.add_listener(self._listen)
        subscribe = getattr(engine.broker, "subscribe", None)
        if callable(subscribe):
            # Calls waiting anywhere (for an attached TUI: the server's approvals stream).
            self._unbroker = subscribe(self._broker_changed)
            for pending in engine.broker.pending():
                self._elsewhere_changed("added", pending, announce=False)
        self.engine_ready = True
        self._show_workspace()
        if self._warm_up:
            # The engine's one warm-up: the price map, and the MCP servers started in the
            # background, concurrently (the MCP pane shows them). litellm is imported only
            # for a target that needs it (_litellm_for), so not here.
            warm_up = getattr(engine, "warm_up", None)
            if warm_up is not None:
                warm_up(litellm=False)
        if self._watch_workspace:
            self._ws_file = self._workspace_file()
            self._ws_mtime = self._mtime()
            self._start_watching()
        if recovered:
            self.notify("The workspace loaded.", title="workbench.yaml fixed", timeout=4)
        self._send_queued()
        if self._starting or self._active:
            # A prompt typed at once is on its way: its answer is drawn first, the other
            # panes mount after it (when its run ends, at the latest after PANES_AFTER_S,
            # or when their tab is shown). Mounting them is ≈ 50 ms of CPU.
            self.set_timer(PANES_AFTER_S, self._reveal_panes, name="mount the other panes")
        else:
            self._reveal_panes()
        self.load_rules()
        if self.replay_id:
            self.open_replay(
                self.replay_id,
                speed=self.replay_speed,
                file=self.replay_file,
                events=self.replay_events,
            )

    @on(EngineFailed)
    def _engine_failed(self, event: EngineFailed) -> None:
        resume_collector()
        self._load, self._engine_error = "failed", event.error
        self.status.failed = True
        self.status.engine = f"{_failure_title(event.error)}: {_one_line(event.error)}"
        self._show_load_error(event.error)
        self._refuse_queued()
        if self._watch_workspace:
            # Watch the file even so: fixing it opens the engine.
            self._ws_file = (self.workspace_path or Path.cwd()) / "workbench.yaml"
            self._ws_mtime = self._mtime()
            self._start_watching()

    def _show_load_error(self, error: Exception | None) -> None:
        """The reason the workspace did not load, in place of the conversation (or none)."""
        box = self.query_one("#session-box")
        panel = next(iter(box.query("#load-error")), None)
        if error is None:
            if panel is not None:
                panel.remove()
            return
        from rich.text import Text

        errors = getattr(error, "errors", None) or [error]
        text = Text()
        text.append(_failure_title(error), style="bold")
        # The advice first: on a small terminal the list of errors scrolls.
        text.append(
            " · fix it and save: the workspace reloads by itself. Until then prompts are "
            "not sent (what you type is kept).\n",
            style="italic",
        )
        for e in errors[:10]:
            text.append(f"\n{e}")
        if len(errors) > 10:
            text.append(f"\n… and {len(errors) - 10} more")
        if self.view is not None:
            self.view.chat.picker.prompt = "not loaded"
        if panel is None:
            box.mount(Static(text, id="load-error", markup=False), before=0)
        else:
            panel.update(text)  # type: ignore[attr-defined]

    def _refuse(self, texts: list[str]) -> None:
        """Prompts that cannot be sent (the workspace has an error): kept in the prompt."""
        error = self._engine_error
        if not texts or error is None:
            return
        if not self.prompt.text.strip():
            self.prompt.load_text("\n\n".join(texts))
            self.prompt.move_cursor(self.prompt.document.end)
        n = len(texts)
        self.notify(
            f"{_failure_title(error)}: {_one_line(error)}\n"
            + ("It is back in the prompt; " if n == 1 else f"{n} prompts are back in the prompt; ")
            + "fix workbench.yaml and send again.",
            title="Not sent" if n == 1 else f"{n} prompts not sent",
            severity="error",
            timeout=8,
            markup=False,
        )

    def _refuse_queued(self) -> None:
        texts = [text for text, _ in self._queue]
        self._queue.clear()
        if self.view is not None:
            self.view.chat.queued = 0
        self._refuse(texts)

    def _show_workspace(self) -> None:
        engine = self.engine
        if engine is None:
            return
        ws = engine.workspace
        self.status.failed = False
        self.status.engine = f"workspace {getattr(ws, 'name', '') or Path(str(ws.root)).name}"
        choices = [TargetChoice("agent", n) for n in ws.agents]
        choices += [TargetChoice("team", n) for n in ws.teams]
        choices += [TargetChoice("workflow", n) for n in ws.workflows]
        if self.view is None:
            return
        from screens.welcome import preferred_target

        current = self.view.chat.target
        preferred = preferred_target(ws)
        default = current if current in choices else preferred or (choices[0] if choices else None)
        self.view.chat.set_targets(choices, default)
        self._show_target()

    def choose_target(self, kind: str, name: str) -> None:
        """Send the next prompts to this agent, team or workflow."""
        if self.view is None:
            return
        self.view.chat.picker.value = TargetChoice(kind, name).value
        self._show_target()
        if self.screen is self.screen_stack[0]:
            self.action_show("chat")

    def _show_target(self) -> None:
        if self.view is None:
            return
        target = self.view.chat.target
        info = self.describe_target(target) if target else ""
        litellm = self._litellm_for(target)
        if litellm == "loading":
            info += " · loading litellm…"
        elif litellm.startswith("failed"):
            info += f" · litellm {litellm}"
        self.view.chat.set_info(info)
        self.status.model = f"{target.name} ({info})" if target else ""
        if self.engine is not None:
            from screens.welcome import welcome

            self.view.chat.set_welcome(welcome(self.engine.workspace, target))

    def describe_target(self, target: TargetChoice) -> str:
        """The model of an agent, the members of a team, the steps of a workflow."""
        engine = self.engine
        if engine is None:
            return ""
        ws = engine.workspace
        try:
            if target.kind == "agent":
                model = ws.resolve_model(ws.agents[target.name].model).model
                return "test model — offline" if model == "test" else model
            if target.kind == "team":
                team = ws.teams[target.name]
                return f"{team.mode} · {len(team.members)} members"
            return "workflow"
        except (KeyError, AttributeError):
            return ""

    @on(PromptInput.Submitted, "#prompt")
    def _prompt_sent(self, event: PromptInput.Submitted) -> None:
        event.stop()
        self.send_prompt(event.text, self.view.chat.target if self.view else None)

    def on_select_changed(self, event: Any) -> None:
        if getattr(event.select, "id", None) == "target":
            self._show_target()

    # -- sending and cancelling ----------------------------------------------------------

    def send_prompt(self, text: str, target: TargetChoice | None = None) -> None:
        """Send a prompt, or queue it until the workspace is loaded and no run is in flight
        (refused, and kept in the prompt, while the workspace has an error)."""
        if self._load == "failed":
            self._refuse([text])
            return
        self._queue.append((text, target))
        self._send_queued()

    def _send_queued(self) -> None:
        ready = self.engine is not None and not self._active and not self._starting
        if ready and self._queue:
            text, target = self._queue.pop(0)
            target = target or (self.view.chat.target if self.view else None)
            if self._litellm_for(target) == "loading":
                self.notify(
                    "Its model is called through litellm, which is still loading: the answer "
                    "starts once it is imported (the first time only).",
                    title=f"{target.name if target else 'The target'} is waiting for litellm",
                    timeout=6,
                )
            self._starting += 1
            self._drive_run(text, target)
        if self.view is not None:
            self.view.chat.queued = len(self._queue)

    @work(group="runs", description="run a prompt", exit_on_error=False)
    async def _drive_run(self, text: str, target: TargetChoice | None) -> None:
        engine = self.engine
        assert engine is not None
        try:
            if target is None:
                names = engine.catalogue_names()
                if not names:
                    self.notify("The workspace has no agent, team or workflow.", severity="error")
                    return
                target = TargetChoice(engine.target_kind(names[0]), names[0])
            try:
                # The picker's kinds are the workspace's (agent, team, workflow).
                kind = cast("TargetKind", target.kind)
                handle = await engine.start_run(
                    target.name, text, session_id=self.session_id, kind=kind
                )
            except Exception as exc:
                hint = getattr(exc, "hint", None)
                self.notify(
                    f"{exc}" + (f"\n{hint}" if hint else ""),
                    title="Could not start",
                    severity="error",
                )
                return
            self._adopt_session(handle.session_id)
            self._active[handle.run_id] = handle
            self._targets[handle.run_id] = target.name
        finally:
            self._starting -= 1
        self.status.running = len(self._active)
        try:
            await handle.wait()
        finally:
            self._active.pop(handle.run_id, None)
            self._targets.pop(handle.run_id, None)
            self.status.running = len(self._active)
            self._send_queued()
            if self.view is not None and self.view.panes_waiting:
                # Its answer is drawn by the next frames: the other panes mount after them.
                self.set_timer(PANES_AFTER_RUN_S, self._reveal_panes, name="mount the other panes")

    def _adopt_session(self, session_id: str) -> None:
        if self.session_id == session_id:
            return
        self.session_id = session_id
        self.state.session_id = session_id
        self.status.session = session_id
        orphans = [e for e in self._orphans if e.session_id == session_id]
        self._orphans.clear()
        self._inbox.extendleft(reversed(orphans))
        self._schedule_flush()

    def action_copy_answer(self) -> None:
        """Copy the last answer of the session shown (ctrl+o)."""
        from screens.state import AssistantItem

        state = self._state if self.screen is self.screen_stack[0] else None
        state = state or getattr(self.screen, "state", None)
        answer = None
        for item in reversed(state.items if state is not None else []):
            run = state.runs.get(item.run_id) if state is not None else None
            top = run is None or run.parent_run_id is None
            if isinstance(item, AssistantItem) and top and item.text.strip():
                answer = item
                break
        if answer is None:
            self.notify("No answer to copy yet.", timeout=3)
            return
        self._copy(answer.text, f"{answer.source}'s last answer")

    def on_copy_requested(self, event: Any) -> None:
        """``c`` on a focused message or tool call (named, not ``@on``: the transcript's
        module is imported after the first frame)."""
        self._copy(event.text, event.what)

    def _copy(self, text: str, what: str) -> None:
        """Onto the clipboard: OSC 52, which most terminals honour (tmux with
        ``set-clipboard on``; not macOS Terminal)."""
        self.copy_to_clipboard(text)
        lines = text.count("\n") + 1
        self.notify(
            f"Copied {what} ({len(text):,} characters, {lines} line{'s' if lines != 1 else ''}).",
            timeout=3,
            markup=False,
        )

    def action_cancel_run(self) -> None:
        """Copy the selected text if there is some (ctrl+c copies, as in a terminal);
        otherwise cancel the runs in flight. ctrl+q quits."""
        selected = self.screen.get_selected_text()
        if not selected and self.focused is self.prompt:
            selected = self.prompt.selected_text
        if selected:
            self._copy(selected, "the selection")
            self.screen.clear_selection()
            return
        dropped = len(self._queue)
        self._queue.clear()
        if self.view is not None:
            self.view.chat.queued = 0
        if self.engine is None or not self._active:
            extra = (
                f" ({dropped} queued prompt{'s' if dropped != 1 else ''} dropped)"
                if dropped
                else ""
            )
            self.notify(f"Nothing is running{extra}. ctrl+q quits.", timeout=3)
            return
        for run_id in list(self._active):
            self.engine.cancel(run_id)
        self.notify("Cancelling the run…", timeout=3)

    # -- events in -----------------------------------------------------------------------

    def _listen(self, event: Any) -> None:
        """The engine's listener: queue the event; the next frame draws it (an answer
        finished, a call that waits for a decision, a run's end: at once)."""
        self._inbox.append(event)
        if getattr(event, "type", "") in DRAW_AT_ONCE:
            self._in_app(self._flush_now)
            return
        if self._wake_pending:
            return
        self._wake_pending = True
        self._in_app(self._schedule_flush)

    def _in_app(self, callback: Callable[[], None]) -> None:
        # The listener runs in the engine's tasks (or threads): schedule the frame from the
        # app's own message loop, where timers belong.
        if threading.get_ident() == self._thread:
            self.call_later(callback)
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self.call_later, callback)

    def _flush_now(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        if self._inbox:
            self._flush_events()

    def feed(self, events: list[Any]) -> None:
        """Draw events as if the engine had published them (tests, scripted feeds)."""
        if self.session_id is None and events:
            self._adopt_session(events[0].session_id)
        self._inbox.extend(events)
        self._flush_events()
        self._talk_to_session_target()

    def _talk_to_session_target(self) -> None:
        """The picker shows what the session shown last talked to (a stored session that
        is opened, a scripted one that is fed)."""
        top = self.state.top_runs()
        if self.view is not None and top:
            if self.view.chat.choose(TargetChoice(top[-1].kind, top[-1].target)):
                self._show_target()

    def _schedule_flush(self) -> None:
        self._wake_pending = False
        if self._flush_timer is not None:
            return
        wait = max(0.001, self.frame_interval - (time.monotonic() - self._last_flush))
        self._flush_timer = self.set_timer(wait, self._flush_events, name="draw events")

    def _flush_events(self) -> None:
        self._flush_timer = None
        self._last_flush = time.monotonic()
        state = self.state
        while self._inbox:
            ev = self._inbox.popleft()
            if self.session_id is None:
                # Not ours yet: a run we are starting may be about to claim its session.
                self._orphans.append(ev)
                continue
            if ev.session_id == self.session_id:
                state.apply(ev)
        if self.view is None:
            return  # the panes draw the whole state when they mount
        changes = state.take_changes()
        if not changes:
            return
        if changes.approvals and self.deciding:
            # Decided here and now in the log: no longer "being decided". A call asked again
            # (an edit judged as a new call) is decidable again.
            self.deciding.difference_update([a.key for a in changes.new_approvals])
            self.deciding.difference_update([k for k in self.deciding if k not in state.waiting])
        self.view.sync(state, changes)
        for approval in changes.new_approvals:
            if approval.status == "pending":
                self._announce(approval)
        if changes.approvals:
            self._show_elsewhere()

    # -- calls waiting elsewhere ---------------------------------------------------------

    def _broker_changed(self, kind: str, pending: Any) -> None:
        """The broker's listener (the engine's loop, maybe another thread)."""
        if threading.get_ident() == self._thread:
            self._elsewhere_changed(kind, pending)
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._elsewhere_changed, kind, pending)

    def _elsewhere_changed(self, kind: str, p: Any, *, announce: bool = True) -> None:
        from screens.state import ApprovalState

        key = (p.run_id, p.call_id)
        if kind != "added":
            if self._elsewhere.pop(key, None) is not None:
                self._show_elsewhere()
            return
        if key in self._elsewhere:
            return
        approval = ApprovalState(
            call_id=p.call_id,
            tool=p.tool,
            arguments=dict(p.arguments),
            reason=p.reason,
            run_id=p.run_id,
            source=p.source,
            seq=0,
            ts=p.created_at,
            parts=list(p.parts),
            diff=p.diff,
            session_id=p.session_id,
        )
        self._elsewhere[key] = approval
        self._show_elsewhere()
        if announce and p.session_id != self.session_id:
            self._announce(approval)

    def _show_elsewhere(self) -> None:
        """The calls waiting in other sessions join the approvals queue and the count."""
        here = {(a.run_id, a.call_id) for a in self.state.pending_approvals()}
        elsewhere = [
            a
            for key, a in self._elsewhere.items()
            if a.session_id != self.session_id and key not in here and key not in self.deciding
        ]
        self._elsewhere_waiting = len(elsewhere)
        if self.view is not None:
            self.view.set_elsewhere(elsewhere)
        self._waiting_changed()

    def _follow(self, session_id: str, after_seq: int) -> None:
        """Follow an opened session live (an attached engine streams only the sessions it
        watches); stop following the one opened before, unless a run of ours is in it."""
        engine = self.engine
        watch = getattr(engine, "watch", None)
        if engine is None or not callable(watch):
            return  # a local engine hears every event of its process
        previous, self._followed = self._followed, session_id
        unwatch = getattr(engine, "unwatch", None)
        busy = {getattr(h, "session_id", None) for h in self._active.values()}
        if previous not in (None, session_id) and previous not in busy and callable(unwatch):
            unwatch(previous)
        watch(session_id, after_seq)

    def _announce(self, approval: ApprovalState) -> None:
        """A bell, always; a toast only where neither the card nor the hint under the
        prompt is in sight (another screen, the usage pane): a toast per call would pile
        up over the cards it repeats."""
        self.bell()
        view = self.view
        in_sight = (
            view is not None
            and self.screen is self.screen_stack[0]
            and view.active in ("chat", "team", "graph", "approvals")
        )
        if in_sight:
            return
        from screens.card import KEY_HINT
        from screens.state import call_summary

        what = call_summary(approval.arguments, 50)
        self.notify(
            f"{approval.source} wants to run {approval.tool}"
            + (f": {what}" if what else "")
            + f"\n{KEY_HINT} (F5: the queue)",
            title="Approval needed",
            severity="warning",
            timeout=10,
            markup=False,
        )

    # -- approvals out -------------------------------------------------------------------

    def waiting_call(self) -> ApprovalState | None:
        """The oldest call of the session shown that waits for a decision (and is not being
        decided already): what ``y s a n e`` decide from the chat, a lane or the graph."""
        if self._state is None:
            return None
        for a in self._state.waiting.values():
            if a.key not in self.deciding:
                return a
        return None

    def decide_key(self, key: str) -> bool:
        """``y s a n e`` typed where no text is being written: decide the oldest waiting
        call. False (the key is not used) when nothing waits or a dialog is open."""
        from screens.card import DECIDE_KEYS

        how = DECIDE_KEYS.get(key)
        call = self.waiting_call()
        if how is None or call is None or self.screen is not self.screen_stack[0]:
            return False
        self.decide(call, how)
        return True

    def action_decide_key(self, key: str) -> None:
        """The app's binding of ``y s a n e`` (see :meth:`decide_key`)."""
        self.decide_key(key)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "decide_key":
            return self.screen is self.screen_stack[0] and self.waiting_call() is not None
        return True

    def decide(self, call: ApprovalState, how: str) -> None:
        """Decide a waiting call: ``once`` and ``session`` at once; ``always`` after the rules
        it saves are shown and confirmed; ``deny`` with an optional note; ``edit`` the
        arguments, then allow."""
        from screens.approvals import DenyNoteModal, EditArgumentsModal

        if call.status != "pending" or call.key in self.deciding:
            return
        if call.kind == "input" and how in ("session", "always"):
            how = "once"  # an answer to a tool's question, never a rule to save
        if how in ("once", "session"):
            self._resolve(call, "allow", "session" if how == "session" else "once")
        elif how == "always":
            self._confirm_always(call)
        elif how == "deny":
            self.push_screen(
                DenyNoteModal(call),
                lambda note: (
                    None if note is None else self._resolve(call, "deny", note=note or None)
                ),
            )
        elif how == "edit":
            self.push_screen(
                EditArgumentsModal(call),
                lambda args: None if args is None else self._resolve(call, "allow", edited=args),
            )

    @work(
        exclusive=True,
        group="approval-rules",
        description="the rules an 'allow always' saves",
        exit_on_error=False,
    )
    async def _confirm_always(self, call: ApprovalState) -> None:
        from screens.approvals import ConfirmRulesModal

        rules = await self._rules_preview(call)
        if await self.push_screen_wait(ConfirmRulesModal(call, rules)):
            self._resolve(call, "allow", "workspace")

    def _resolve(
        self,
        call: ApprovalState,
        decision: str,
        scope: str = "once",
        *,
        note: str | None = None,
        edited: dict[str, Any] | None = None,
    ) -> None:
        engine = self.engine
        if engine is None or call.key in self.deciding:
            return
        from workbench.approvals import Resolution

        resolution = Resolution(
            decision=decision,  # type: ignore[arg-type]
            scope=scope,  # type: ignore[arg-type]
            note=note,
            edited_arguments=edited,
        )
        if not engine.resolve_approval(call.run_id, call.call_id, resolution):
            self.notify(
                "This call is not waiting in this process any more (its run ended, or another "
                "face decided). Resume the run from the sessions screen (F7, r).",
                severity="warning",
            )
            return
        # It leaves the queue now; the log's approval.resolved confirms it a moment later.
        self.deciding.add(call.key)
        self._waiting_changed()
        if scope != "once":
            self.load_rules()

    def on_approvals_pane_decide(self, event: ApprovalsPane.Decide) -> None:
        """A key in the approvals pane (named, not ``@on``: the pane's module is imported
        after the first frame)."""
        self.decide(event.approval, event.how)

    def _waiting_changed(self) -> None:
        """The queue of waiting calls changed: the approvals pane, the prompt's hint, and
        the app's y s a n e (enabled only while a call waits)."""
        self.refresh_bindings()
        if self.view is not None:
            self.view.refresh_queue()
        waiting = 0 if self._state is None else len(self._state.waiting)
        if self._state is not None:  # (a call of another session may be being decided)
            waiting -= sum(1 for key in self.deciding if key in self._state.waiting)
        # the status bar counts other sessions' calls too (their rows are in the queue)
        self.status.pending = max(0, waiting) + self._elsewhere_waiting
        hint = self.query_one("#prompt-hint", Static)
        hint.set_class(waiting > 0, "-waiting")
        if waiting > 0:
            from screens.card import KEY_HINT

            calls = "1 call waits" if waiting == 1 else f"{waiting} calls wait"
            if self.compact:
                hint.update(f"⚠ {calls} · y s a n e decide (prompt empty) · F5 the queue")
            else:
                hint.update(f"⚠ {calls} · with the prompt empty: {KEY_HINT} · F5 the queue")
        else:
            hint.update(PROMPT_HINT)

    # -- saved rules ---------------------------------------------------------------------

    def load_rules(self) -> None:
        """Show the rules in force in the approvals pane (read off the UI thread)."""
        if self.engine is not None and self.view is not None:
            self._read_rules(self.session_id or "")

    @work(exclusive=True, group="rules", description="read the saved rules", exit_on_error=False)
    async def _read_rules(self, session_id: str) -> None:
        # async: an attached engine answers over HTTP, a local one reads in a thread
        engine = self.engine
        if engine is None:
            return
        try:
            rules = list(await engine.asaved_rules(session_id))
        except Exception as exc:  # shown, never raised into the UI
            self.notify(str(exc), title="Could not read the rules", severity="error")
            return
        self._show_rules(rules)

    def _show_rules(self, rules: list[Any]) -> None:
        self.rules = rules
        if self.view is not None:
            self.view.show_rules(rules)

    def show_rules(self) -> None:
        """The approvals pane, on its list of saved rules."""
        self.action_show("approvals")
        if self.view is not None:
            self.run_worker(self._focus_rules(self.view), group="reveal")
        self.load_rules()

    async def _focus_rules(self, view: SessionView) -> None:
        await view.reveal("approvals")  # (mounted first, if it was not yet)
        if view.active == "approvals":
            view.approvals.add_class("-show-rules")
            view.approvals.rules_list.focus()

    def on_approvals_pane_remove_rule(self, event: ApprovalsPane.RemoveRule) -> None:
        """``del`` on a rule in the approvals pane."""
        self.remove_rule(event.rule)

    @work(group="remove-rule", description="remove a rule", exit_on_error=False)
    async def remove_rule(self, rule: Any) -> None:
        """Remove a rule in force (a session rule, or one saved in the store): the next call
        it matched asks again."""
        engine = self.engine
        if engine is None:
            return
        from workbench.termsafe import visible

        text = visible(rule.display() if hasattr(rule, "display") else str(rule))
        try:
            removed = await engine.aremove_rule(rule, self.session_id or "")
        except Exception as exc:
            self.notify(str(exc), title="Could not remove the rule", severity="error")
            return
        message = f"Removed: {text}" if removed else f"Already gone: {text}"
        self.notify(message, timeout=4, markup=False)
        self.load_rules()

    async def _rules_preview(self, approval: ApprovalState) -> list[str]:
        """The rules an 'allow always' on this call would save."""
        engine = self.engine
        if engine is None:
            return []
        try:
            from workbench.approvals import rules_for_decision

            broker = engine.broker
            pending = broker.get(approval.run_id, approval.call_id) if broker is not None else None
            if pending is not None and getattr(pending, "verdict", None) is not None:
                return [r.display() for r in pending.rules_for("workspace", root=engine.root)]
            match_on = await self._match_on(approval.tool)
            saved = await engine.asaved_rules(self.session_id or "")
            verdict = engine.policy.evaluate(
                approval.tool, match_on, approval.arguments, saved, root=engine.root
            )
            rules = rules_for_decision(
                approval.tool, match_on, approval.arguments, verdict, "workspace", root=engine.root
            )
            return [r.display() for r in rules]
        except Exception as exc:  # the preview must not block the decision
            return [f"(cannot preview the rules: {exc})"]

    async def _match_on(self, tool: str) -> Any:
        engine = self.engine
        if engine is None or "." not in tool:
            return None
        try:
            tools = await engine.tools_for([tool])
        except Exception:
            return None
        return next((t.match_on for t in tools if t.name == tool), None)

    async def _graph_source(self, name: str) -> Any:
        """``workflow.graph()`` of a workflow of the workspace."""
        engine = self.engine
        if engine is None or name not in engine.workspace.workflows:
            return None
        try:
            workflow = await engine.build_target("workflow", name)
            return workflow.graph()
        except Exception:
            return None

    # -- the workspace file --------------------------------------------------------------

    def _start_watching(self) -> None:
        if self._ws_timer is None:
            self._ws_timer = self.set_interval(
                1.0, self._check_workspace, name="watch workbench.yaml"
            )

    def _workspace_file(self) -> Path | None:
        engine = self.engine
        if engine is None:
            return None
        path = getattr(engine.workspace, "path", None)
        return Path(path) if path else Path(str(engine.workspace.root)) / "workbench.yaml"

    def _mtime(self) -> float | None:
        try:
            return os.stat(self._ws_file).st_mtime if self._ws_file else None
        except OSError:
            return None

    def _check_workspace(self) -> None:
        mtime = self._mtime()
        if mtime != self._ws_mtime:
            self._ws_mtime = mtime
            if self.engine is None:
                # Try again: prompts typed meanwhile are queued (refused if it fails again).
                self._load = "loading"
                self.status.engine = "loading engine…"
                self.status.failed = False
                self._open_engine()
            else:
                self._reload_workspace()

    @work(
        thread=True,
        exclusive=True,
        group="workspace",
        description="reload workbench.yaml",
        exit_on_error=False,
    )
    def _reload_workspace(self) -> None:
        engine = self.engine
        if engine is None:
            return
        from workbench.registry import available_toolkits
        from workbench.workspace import diff_workspaces, load_workspace

        old = engine.workspace
        try:
            new = load_workspace(old.root, known_toolkits=set(available_toolkits()) | {"mcp"})
        except Exception as exc:
            self.post_message(self.WorkspaceInvalid(exc))
            return
        self.post_message(self.WorkspaceReloaded(new, diff_workspaces(old, new)))

    @on(WorkspaceReloaded)
    def _workspace_reloaded(self, event: WorkspaceReloaded) -> None:
        engine = self.engine
        if engine is None:
            return
        use = getattr(engine, "use_workspace", None)
        if callable(use):
            use(event.workspace)
        else:
            _swap_workspace(engine, event.workspace)
        self._show_workspace()
        changes = "\n".join(event.changes) or "no change in agents, teams, workflows or approvals"
        self.notify(
            f"{changes}\nRuns in flight finish on the old definition.",
            title="workbench.yaml reloaded",
            timeout=8,
            markup=False,
        )

    @on(WorkspaceInvalid)
    def _workspace_invalid(self, event: WorkspaceInvalid) -> None:
        errors = getattr(event.error, "errors", None) or [event.error]
        text = "\n".join(str(e) for e in errors[:5])
        self.notify(
            f"{text}\nThe previous definition stays in use.",
            title="workbench.yaml has an error",
            severity="error",
            timeout=20,
            markup=False,
        )

    # -- sessions and replay -------------------------------------------------------------

    def action_new_session(self) -> None:
        """Start a new, empty session."""
        from screens.state import SessionState

        self.session_id = None
        self.state = SessionState()
        self.status.session = ""
        self.deciding.clear()
        if self.view is not None:
            self.view.rebuild(self.state)
        self._show_elsewhere()
        self.load_rules()
        self.action_show("chat")

    def action_sessions(self) -> None:
        """Browse stored sessions."""
        from screens.sessions import SessionsScreen

        if self.engine is None:
            self.notify("The engine is still loading.", timeout=3)
            return
        if isinstance(self.screen, SessionsScreen):
            return
        self.push_screen(SessionsScreen(self.engine, current=self.session_id), self._session_chosen)

    def _session_chosen(self, choice: tuple[str, str] | None) -> None:
        if choice is None:
            return
        action, session_id = choice
        if action == "replay":
            self.open_replay(session_id)
        elif action == "deleted":
            if session_id == self.session_id:
                self.action_new_session()
        else:
            self.open_session(session_id, resume=action == "resume")

    def open_session(self, session_id: str, *, resume: bool = False) -> None:
        """Show a stored session and continue it (new prompts add to it)."""
        self._load_session(session_id, resume)

    @work(exclusive=True, group="load-session", description="load a session", exit_on_error=False)
    async def _load_session(self, session_id: str, resume: bool) -> None:
        from screens.state import SessionState

        engine = self.engine
        assert engine is not None
        state = SessionState(session_id)
        state.extend(await engine.asession_events(session_id))
        # A run whose process stopped it shows as interrupted (resumable), not running.
        runs = await engine.aruns(session_id)
        state.mark_interrupted(r.id for r in runs if r.status == "interrupted")
        self.post_message(self.SessionLoaded(session_id, state, resume))

    @on(SessionLoaded)
    def _session_loaded(self, event: SessionLoaded) -> None:
        self.session_id = event.session_id
        self.state = event.state
        self.status.session = event.session_id
        self._inbox.clear()
        self.deciding.clear()
        self._follow(event.session_id, event.state.last_seq)
        if self.view is not None:
            self.view.rebuild(self.state)
            self._talk_to_session_target()  # continuing a session talks to what it did
        self._show_elsewhere()
        self.load_rules()
        self.action_show("chat")
        if event.resume:
            self._resume(event.session_id)

    @work(group="runs", description="resume runs", exit_on_error=False)
    async def _resume(self, session_id: str) -> None:
        engine = self.engine
        assert engine is not None
        runs = [
            r
            for r in await engine.aruns(session_id)
            if r.parent_run_id is None and r.status not in ("completed", "failed", "cancelled")
        ]
        if not runs:
            self.notify("Every run of this session has ended: nothing to resume.", timeout=4)
            return
        for info in runs:
            try:
                handle = await engine.resume(info.id)
            except Exception as exc:
                self.notify(str(exc), title="Could not resume", severity="error")
                continue
            self._active[handle.run_id] = handle
            self._targets[handle.run_id] = info.target
            self.status.running = len(self._active)
            self.notify(f"Resumed {info.target} ({info.id}).", timeout=4)
            try:
                await handle.wait()
            finally:
                self._active.pop(handle.run_id, None)
                self.status.running = len(self._active)

    def open_replay(
        self,
        session_id: str,
        *,
        speed: float | None = None,
        file: Path | None = None,
        events: list[Any] | None = None,
    ) -> None:
        """Replay a stored session (or the events of an export ``file``) through the same
        panes (at ``speed``, snapped to the nearest of 1x, 2x, 10x and instant)."""
        from screens.replay import MemorySource, ReplayScreen, speed_index

        if self.engine is None:
            self.notify("The engine is still loading.", timeout=3)
            return
        source = MemorySource(events) if events is not None else None
        fork_from = None
        if events is not None and file is not None:

            def fork_from() -> str:
                return self._keep_replayed(session_id, file)

        self.push_screen(
            ReplayScreen(
                self.engine,
                session_id,
                graph_source=self._graph_source,
                speed=0 if speed is None else speed_index(speed),
                source=source,
                fork_from=fork_from,
            )
        )

    def _keep_replayed(self, session_id: str, file: Path) -> str:
        """The replayed export, in the store (imported now, once, to be forked)."""
        store = getattr(self.engine, "store", None)
        if store is None:
            raise RuntimeError("this engine has no local store to keep the session in")
        if store.get_session(session_id) is not None:
            return session_id
        from workbench.sessions import SessionExistsError, import_session

        try:
            return str(import_session(store, file).id)
        except SessionExistsError:  # its runs are here in another session: a copy
            return str(import_session(store, file, as_new=True).id)

    def action_replay_session(self) -> None:
        """Replay the session shown."""
        if self.session_id is None:
            self.notify("Nothing to replay yet: this session is empty.", timeout=3)
            return
        self.open_replay(self.session_id)

    # -- navigation and looks ------------------------------------------------------------

    def action_show(self, tab: str) -> None:
        """Show a pane."""
        view = self._active_view()
        if view is None:
            self._tab_wanted = tab  # pressed before the panes exist: shown once they do
            return
        view.show(tab)
        if tab == "chat" and view is self.view:
            self.prompt.focus()

    def _active_view(self) -> SessionView | None:
        """The panes on screen: the main ones, or a replay's."""
        from screens.session_view import SessionView

        if self.screen is self.screen_stack[0]:
            return self.view
        view = getattr(self.screen, "view", None)
        return view if isinstance(view, SessionView) else None

    def action_mcp(self) -> None:
        """The MCP servers: their state, tools, resources and prompts."""
        from screens.mcp import McpScreen

        if self.engine is None:
            self.notify("The workspace is still loading.", timeout=3)
        elif not isinstance(self.screen, McpScreen):
            self.push_screen(McpScreen(self.engine))

    def action_focus_prompt(self) -> None:
        """Back to the prompt."""
        if self.screen is self.screen_stack[0]:
            self.action_show("chat")

    def action_help(self) -> None:
        """Every key."""
        from screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        """Light or dark."""
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def on_resize(self, event: Resize) -> None:
        self.compact = event.size.width < 100 or event.size.height < 30

    def watch_compact(self, compact: bool) -> None:
        self.set_class(compact, "-compact")
        if self.view is not None:  # the prompt's hint says it shorter on a small terminal
            self._waiting_changed()

    # -- shutting down -------------------------------------------------------------------

    async def action_quit(self) -> None:
        """Leave. With runs in flight, ask first: quitting then stops them without ending
        them (interrupted, resumable), never cancels them. An attached TUI leaves the
        server's runs running."""
        from screens.quit import ConfirmQuit

        engine = self.engine
        interrupt = getattr(engine, "interrupt", None)
        if self._active and callable(interrupt):
            if isinstance(self.screen, ConfirmQuit):
                return
            runs = [(run_id, self._targets.get(run_id, "")) for run_id in self._active]
            self.push_screen(ConfirmQuit(runs), self._quit_answered)
            return
        await self._close_engine()
        self.exit(0)

    def _quit_answered(self, yes: bool | None) -> None:
        if yes:
            self.run_worker(self._leave_interrupted(), group="quit", exclusive=True)

    async def _leave_interrupted(self) -> None:
        engine, self.engine = self.engine, None
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        runs: list[str] = []
        if engine is not None:
            try:
                runs = await engine.interrupt()  # type: ignore[attr-defined]
            except Exception:  # leaving must not keep the terminal hostage
                runs = []
        message = None
        if runs:
            lines = [f"  workbench run --resume {r}" for r in runs]
            message = "Left interrupted, resumable:\n" + "\n".join(lines)
        self.exit(0, message=message)

    async def _close_engine(self) -> None:
        engine, self.engine = self.engine or self._opened, None
        self._opened = None
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._unbroker is not None:
            self._unbroker()
            self._unbroker = None
        if engine is not None:
            try:
                await engine.aclose()
            except Exception:  # closing must not keep the terminal hostage
                pass

    async def on_unmount(self) -> None:
        await self._close_engine()


def _failure_title(error: BaseException) -> str:
    """What failed, for a person: the file, or the engine (a store that cannot open)."""
    if type(error).__name__ in ("WorkspaceError", "PluginError"):
        return "workbench.yaml has an error"
    return "The engine could not open"


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _swap_workspace(engine: Any, workspace: Any) -> None:
    """Point the engine at a reloaded workspace (new runs use it; runs in flight keep the
    agents they built). The approval policy follows the file."""
    engine.reload(workspace)


def run_app(
    workspace: Path | None = None,
    db: str | None = None,
    replay: str | None = None,
    replay_speed: float | None = None,
    *,
    replay_file: Path | None = None,
    replay_events: list[Any] | None = None,
    engine_factory: EngineFactory | None = None,
    watch_workspace: bool = True,
    warm_up: bool | None = None,
) -> int:
    """Open the TUI; returns the exit code (see :class:`WorkbenchApp` for the options)."""
    app = WorkbenchApp(
        workspace=workspace,
        db=db,
        replay=replay,
        replay_speed=replay_speed,
        replay_file=replay_file,
        replay_events=replay_events,
        engine_factory=engine_factory,
        watch_workspace=watch_workspace,
        warm_up=warm_up,
    )
    result = app.run()
    return int(result or 0)
