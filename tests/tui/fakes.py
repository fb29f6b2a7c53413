"""A scripted engine and event builders for the TUI tests: deterministic, offline, fast.

:class:`FakeEngine` has the shape of :class:`workbench.engine.Engine` that the app uses
(:class:`screens.engine_api.EngineLike`). Its runs publish scripted events with fixed
timestamps, so snapshots do not move. Real-engine behaviour (approvals changing what a
run does) is tested against the real engine with the ``test`` model.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    Event,
    EventBase,
    MessageCompleted,
    MessageDelta,
    RunCompleted,
    RunFailed,
    RunStarted,
    TeamDelegated,
    ToolCall,
    ToolCallRequest,
    ToolResult,
    Usage,
    WorkflowStepCompleted,
    WorkflowStepStarted,
    parse_event,
)

T0 = 1_700_000_000.0
"""Every scripted session starts at this timestamp (2023-11-14 22:13:20 UTC)."""


class Clock:
    """Fixed, increasing timestamps."""

    def __init__(self, start: float = T0, step: float = 0.05) -> None:
        self.t = start
        self.step = step

    def __call__(self, advance: float | None = None) -> float:
        self.t += self.step if advance is None else advance
        return round(self.t, 3)


class Script:
    """Builds a session's events with gap-free seq and fixed timestamps."""

    def __init__(self, session_id: str = "s_demo", clock: Clock | None = None) -> None:
        self.session_id = session_id
        self.clock = clock or Clock()
        self.events: list[Event] = []
        self._seq = itertools.count(1)

    def add(
        self,
        ev: EventBase,
        run_id: str,
        source: str,
        parent: str | None = None,
        dt: float | None = None,
    ) -> Event:
        ev.session_id = self.session_id
        ev.run_id = run_id
        ev.parent_run_id = parent
        ev.source = source
        ev.ts = self.clock(dt)
        ev.seq = next(self._seq)
        out = parse_event(ev.model_dump())
        self.events.append(out)
        return out

    # -- building blocks -----------------------------------------------------------------

    def start(
        self,
        run_id: str,
        kind: str,
        target: str,
        text: str,
        parent: str | None = None,
        model: str | None = "test",
    ) -> None:
        self.add(
            RunStarted(
                target_kind=kind,
                target=target,
                input=text,
                model=model if kind == "agent" else None,
            ),
            run_id,
            target,
            parent,
        )  # type: ignore[arg-type]

    def user(self, run_id: str, source: str, text: str, parent: str | None = None) -> None:
        self.add(
            MessageCompleted(
                message_id=f"m_in_{run_id}_{len(self.events)}", role="user", content=text
            ),
            run_id,
            source,
            parent,
        )

    def stream(
        self,
        run_id: str,
        source: str,
        text: str,
        parent: str | None = None,
        *,
        complete: bool = True,
        tool_calls: Sequence[ToolCallRequest] = (),
        usage: tuple[int, int] = (42, 17),
        cost: float | None = 0.0012,
    ) -> str:
        mid = f"m_{run_id}_{len(self.events)}"
        words = text.split(" ")
        for i, w in enumerate(words):
            self.add(
                MessageDelta(message_id=mid, text=w if i == 0 else " " + w),
                run_id,
                source,
                parent,
                dt=0.01,
            )
        if complete:
            self.add(
                MessageCompleted(
                    message_id=mid,
                    role="assistant",
                    content=text,
                    tool_calls=list(tool_calls),
                    model="test",
                    usage=Usage(prompt_tokens=usage[0], completion_tokens=usage[1]),
                    cost=cost,
                ),
                run_id,
                source,
                parent,
            )
        return mid

    def tool_turn(
        self,
        run_id: str,
        source: str,
        calls: Sequence[tuple[str, str, dict[str, Any]]],
        parent: str | None = None,
    ) -> None:
        self.add(
            MessageCompleted(
                message_id=f"m_{run_id}_{len(self.events)}",
                role="assistant",
                content="",
                tool_calls=[ToolCallRequest(id=c, tool=t, arguments=a) for c, t, a in calls],
                model="test",
                usage=Usage(prompt_tokens=30, completion_tokens=10),
                cost=0.0004,
            ),
            run_id,
            source,
            parent,
        )

    def ask(
        self,
        run_id: str,
        source: str,
        call_id: str,
        tool: str,
        args: dict[str, Any],
        *,
        reason: str = "policy says ask",
        parts: Sequence[str] = (),
        diff: str | None = None,
        parent: str | None = None,
    ) -> None:
        self.add(
            ApprovalRequired(
                call_id=call_id,
                tool=tool,
                arguments=args,
                reason=reason,
                parts=list(parts),
                diff=diff,
            ),
            run_id,
            source,
            parent,
        )

    def decide(
        self,
        run_id: str,
        source: str,
        call_id: str,
        tool: str,
        decision: str = "allow",
        scope: str = "once",
        note: str | None = None,
        parent: str | None = None,
    ) -> None:
        self.add(
            ApprovalResolved(call_id=call_id, tool=tool, decision=decision, scope=scope, note=note),
            run_id,
            source,
            parent,
        )  # type: ignore[arg-type]

    def tool(
        self,
        run_id: str,
        source: str,
        call_id: str,
        tool: str,
        args: dict[str, Any],
        output: str | None = "ok",
        error: str | None = None,
        ms: float = 12.0,
        parent: str | None = None,
    ) -> None:
        if error is None:
            self.add(ToolCall(call_id=call_id, tool=tool, arguments=args), run_id, source, parent)
        self.add(
            ToolResult(
                call_id=call_id,
                tool=tool,
                output=output if error is None else None,
                error=error,
                duration_ms=ms,
            ),
            run_id,
            source,
            parent,
        )

    def done(
        self,
        run_id: str,
        source: str,
        output: str,
        parent: str | None = None,
        usage: tuple[int, int] = (120, 48),
        cost: float | None = 0.0031,
        ms: float = 1834.0,
    ) -> None:
        self.add(
            RunCompleted(
                output=output,
                usage=Usage(prompt_tokens=usage[0], completion_tokens=usage[1]),
                cost=cost,
                duration_ms=ms,
            ),
            run_id,
            source,
            parent,
        )

    def fail(
        self,
        run_id: str,
        source: str,
        error: str,
        hint: str | None = None,
        parent: str | None = None,
    ) -> None:
        self.add(RunFailed(error=error, hint=hint, duration_ms=412.0), run_id, source, parent)

    def delegate(self, run_id: str, source: str, member: str, task: str, child: str) -> None:
        self.add(TeamDelegated(member=member, task=task, child_run_id=child), run_id, source)

    def step(self, run_id: str, source: str, path: str, kind: str = "step") -> None:
        self.add(WorkflowStepStarted(path=path, kind=kind), run_id, source)  # type: ignore[arg-type]

    def step_done(
        self,
        run_id: str,
        source: str,
        path: str,
        kind: str = "step",
        status: str = "done",
        output: str | None = "ok",
        error: str | None = None,
        usage: tuple[int, int] | None = (80, 20),
        cost: float | None = 0.001,
    ) -> None:
        self.add(
            WorkflowStepCompleted(
                path=path,
                kind=kind,  # type: ignore[arg-type]
                status=status,  # type: ignore[arg-type]
                output=output,
                error=error,
                usage=Usage(prompt_tokens=usage[0], completion_tokens=usage[1]) if usage else None,
                cost=cost,
            ),
            run_id,
            source,
        )


# -- scripted sessions -----------------------------------------------------------------------

ANSWER = (
    "Here is what I found:\n\n"
    "1. **Workbench** streams every event.\n"
    "2. Tool calls appear inline.\n\n"
    "```python\nprint('hello')\n```\n\nThat's all."
)


def chat_session(*, pending: bool = False, failed: bool = False, streaming: bool = False) -> Script:
    """One agent run: a prompt, a tool call (maybe waiting for approval), an answer."""
    s = Script()
    s.start("r_1", "agent", "helper", "Summarise notes.md and count its words")
    s.user("r_1", "helper", "Summarise notes.md and count its words")
    s.tool_turn(
        "r_1",
        "helper",
        [
            ("call_1", "files.read", {"path": "notes.md"}),
            ("call_2", "files.write", {"path": "summary.md", "content": "A short summary.\n"}),
        ],
    )
    s.tool(
        "r_1",
        "helper",
        "call_1",
        "files.read",
        {"path": "notes.md"},
        output="# Notes\nWorkbench streams every event.\n",
    )
    diff = "--- a/summary.md\n+++ b/summary.md\n@@ -0,0 +1 @@\n+A short summary.\n"
    s.ask(
        "r_1",
        "helper",
        "call_2",
        "files.write",
        {"path": "summary.md", "content": "A short summary.\n"},
        reason="files.write is 'ask' in the workspace policy",
        diff=diff,
    )
    if pending:
        return s
    s.decide("r_1", "helper", "call_2", "files.write")
    s.tool(
        "r_1",
        "helper",
        "call_2",
        "files.write",
        {"path": "summary.md", "content": "A short summary.\n"},
        output="wrote 17 bytes",
    )
    if failed:
        s.fail(
            "r_1",
            "helper",
            "model 'openai/gpt-x' not found (404)",
            hint="check models: in workbench.yaml",
        )
        return s
    s.stream("r_1", "helper", ANSWER, complete=not streaming)
    if not streaming:
        s.done("r_1", "helper", ANSWER)
    return s


def team_session(*, members: int = 3, finished: bool = False) -> Script:
    """A coordinate team: the leader delegates to members, who stream concurrently."""
    s = Script()
    names = ["researcher", "writer", "critic", "editor", "analyst", "coder", "tester", "designer"][
        :members
    ]
    s.start("r_team", "team", "desk", "Write a brief about agent workbenches")
    s.user("r_team", "desk", "Write a brief about agent workbenches")
    s.start("r_lead", "agent", "lead", "Write a brief about agent workbenches", parent="r_team")
    s.user("r_lead", "lead", "Write a brief about agent workbenches", parent="r_team")
    s.stream("r_lead", "lead", "I will split the work between the members.", parent="r_team")
    s.done("r_lead", "lead", "I will split the work.", parent="r_team", usage=(50, 12), ms=900.0)
    for i, name in enumerate(names):
        child = f"r_{name}"
        s.delegate("r_team", "desk", name, f"Part {i + 1}: {name} work on the brief", child)
        s.start(child, "agent", name, f"Part {i + 1}", parent="r_team")
        s.user(child, name, f"Part {i + 1}: {name} work on the brief", parent="r_team")
    for i, name in enumerate(names):
        s.stream(
            f"r_{name}",
            name,
            f"{name.title()} notes: point one, point two and a conclusion.",
            parent="r_team",
            complete=finished or i % 2 == 0,
        )
        if finished or i % 2 == 0:
            s.done(
                f"r_{name}", name, "notes", parent="r_team", usage=(60 + i, 20 + i), ms=1200.0 + i
            )
    if finished:
        s.add(
            MessageCompleted(
                message_id="m_team_out", role="assistant", content="The brief is ready."
            ),
            "r_team",
            "desk",
        )
        s.done("r_team", "desk", "The brief is ready.", usage=(400, 160), cost=0.012)
    return s


WORKFLOW_GRAPH: dict[str, Any] = {
    "nodes": [
        {
            "path": "gather",
            "kind": "step",
            "label": "gather",
            "parent": None,
            "target": "agent researcher",
        },
        {"path": "check", "kind": "condition", "label": "check: 'TODO' in output", "parent": None},
        {
            "path": "check/then/retry",
            "kind": "step",
            "label": "retry",
            "parent": "check",
            "target": "agent researcher",
        },
        {"path": "fanout", "kind": "parallel", "label": "fanout", "parent": None},
        {
            "path": "fanout/a",
            "kind": "step",
            "label": "a",
            "parent": "fanout",
            "target": "agent writer",
        },
        {
            "path": "fanout/b",
            "kind": "step",
            "label": "b",
            "parent": "fanout",
            "target": "agent critic",
        },
        {"path": "polish", "kind": "loop", "label": "polish ≤3", "parent": None},
        {
            "path": "polish/edit",
            "kind": "step",
            "label": "edit",
            "parent": "polish",
            "target": "agent writer",
        },
        {
            "path": "publish",
            "kind": "step",
            "label": "publish",
            "parent": None,
            "target": "function pub:run",
        },
    ],
    "edges": [
        {"source": "gather", "target": "check", "label": ""},
        {"source": "check", "target": "check/then/retry", "label": "then"},
        {"source": "check", "target": "fanout", "label": ""},
        {"source": "fanout", "target": "fanout/a", "label": "branch"},
        {"source": "fanout", "target": "fanout/b", "label": "branch"},
        {"source": "fanout", "target": "polish", "label": ""},
        {"source": "polish", "target": "polish/edit", "label": "body"},
        {"source": "polish/edit", "target": "polish", "label": "repeat", "back": True},
        {"source": "polish", "target": "publish", "label": ""},
    ],
}
"""A workflow graph in the shape ``workflow.graph().to_dict()`` gives."""


def workflow_session(*, midway: bool = True) -> Script:
    """A workflow run: gather done, check skipped its branch, the parallel half-way (one
    branch waits for an approval), or (``midway=False``) a loop body that failed."""
    s = Script()
    wf = "r_wf"
    s.start(wf, "workflow", "brief", "Write the brief")
    s.user(wf, "brief", "Write the brief")
    s.step(wf, "brief", "gather")
    s.start("r_g", "agent", "researcher", "Write the brief", parent=wf)
    s.stream("r_g", "researcher", "Gathered three sources.", parent=wf)
    s.done("r_g", "researcher", "Gathered three sources.", parent=wf)
    s.step_done(wf, "brief", "gather", output="Gathered three sources.")
    s.step(wf, "brief", "check", "condition")
    s.step_done(wf, "brief", "check", "condition", output="false", usage=None, cost=None)
    s.step_done(
        wf, "brief", "check/then/retry", status="skipped", output=None, usage=None, cost=None
    )
    s.step(wf, "brief", "fanout", "parallel")
    s.step(wf, "brief", "fanout/a")
    s.step(wf, "brief", "fanout/b")
    s.start("r_a", "agent", "writer", "part a", parent=wf)
    s.start("r_b", "agent", "critic", "part b", parent=wf)
    s.stream("r_a", "writer", "Part A is written.", parent=wf)
    s.done("r_a", "writer", "Part A is written.", parent=wf)
    s.step_done(wf, "brief", "fanout/a", output="Part A is written.")
    cmd = {"command": "wc -l notes.md && grep -c TODO notes.md"}
    s.tool_turn("r_b", "critic", [("call_b", "shell.run", cmd)], parent=wf)
    s.ask(
        "r_b",
        "critic",
        "call_b",
        "shell.run",
        cmd,
        reason="no rule allows 'grep -c TODO notes.md'",
        parts=["wc -l notes.md", "grep -c TODO notes.md"],
        parent=wf,
    )
    if midway:
        return s
    s.decide(
        "r_b", "critic", "call_b", "shell.run", decision="deny", note="no shell today", parent=wf
    )
    s.tool(
        "r_b",
        "critic",
        "call_b",
        "shell.run",
        {},
        error="the user refused this call: no shell today",
        parent=wf,
    )
    s.stream("r_b", "critic", "Could not check.", parent=wf)
    s.done("r_b", "critic", "Could not check.", parent=wf)
    s.step_done(wf, "brief", "fanout/b", output="Could not check.")
    s.step_done(wf, "brief", "fanout", "parallel", output="2 branches")
    for i in (1, 2):
        s.step(wf, "brief", "polish", "loop") if i == 1 else None
        s.step(wf, "brief", f"polish#{i}/edit")
        s.start(f"r_e{i}", "agent", "writer", "edit", parent=wf)
        if i == 1:
            s.stream(f"r_e{i}", "writer", "Edited.", parent=wf)
            s.done(f"r_e{i}", "writer", "Edited.", parent=wf)
            s.step_done(wf, "brief", f"polish#{i}/edit", output="Edited.")
        else:
            s.fail(
                f"r_e{i}",
                "writer",
                "model call timed out after 60s",
                hint="raise timeout: in models:",
            )
            s.step_done(
                wf,
                "brief",
                f"polish#{i}/edit",
                status="failed",
                error="model call timed out after 60s",
            )
    s.step_done(wf, "brief", "polish", "loop", status="failed", error="polish#2/edit failed")
    s.fail(wf, "brief", "step 'polish#2/edit' failed: model call timed out after 60s")
    return s


# -- the fake engine -------------------------------------------------------------------------


@dataclass
class FakeModelSpec:
    model: str = "test"


@dataclass
class FakeTeam:
    mode: str = "coordinate"
    members: list[str] = field(default_factory=lambda: ["researcher", "writer", "critic"])


@dataclass
class FakeWorkspace:
    root: Path = Path("/tmp/demo")
    name: str = "demo"
    path: Path | None = None
    agents: dict[str, Any] = field(
        default_factory=lambda: {"helper": FakeModelSpec(), "researcher": FakeModelSpec()}
    )
    teams: dict[str, Any] = field(default_factory=lambda: {"desk": FakeTeam()})
    workflows: dict[str, Any] = field(default_factory=lambda: {"brief": object()})

    def resolve_model(self, name: str | None = None) -> FakeModelSpec:
        return FakeModelSpec(name if name and name != "test" else "test")


@dataclass
class FakeSession:
    id: str
    title: str
    workspace: str
    created_at: float
    updated_at: float
    last_seq: int
    run_count: int = 1


@dataclass
class FakeHandle:
    run_id: str
    session_id: str
    task: asyncio.Task[Any]

    async def wait(self) -> Any:
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            return "cancelled"


class FakeEngine:
    """Enough of the engine for the app: scripted runs, a list of sessions, approvals.

    Args:
        scripts: target name -> a function (session_id, run_id, prompt) giving the events
            of one run; a run publishes them with ``delay`` seconds between events.
        sessions: stored sessions (id -> Script) for the sessions screen and replay.
    """

    def __init__(
        self,
        scripts: dict[str, Callable[[str, str, str], Iterable[Event]]] | None = None,
        sessions: dict[str, Script] | None = None,
        delay: float = 0.0,
        workspace: FakeWorkspace | None = None,
    ) -> None:
        self.workspace = workspace or FakeWorkspace()
        self.root = self.workspace.root
        self.policy = None
        self.broker = None
        self.scripts = scripts or {}
        self.stored = dict(sessions or {})
        self.delay = delay
        self.listeners: list[Callable[[Any], None]] = []
        self.resolutions: list[tuple[str, str, Any]] = []
        self.cancelled: list[str] = []
        self.started: list[tuple[str, str, str | None]] = []
        self.closed = False
        self._runs = itertools.count(1)
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def add_listener(self, fn: Callable[[Any], None]) -> Callable[[], None]:
        self.listeners.append(fn)
        return lambda: self.listeners.remove(fn) if fn in self.listeners else None

    def publish(self, ev: Event) -> None:
        for fn in list(self.listeners):
            fn(ev)

    def catalogue_names(self) -> list[str]:
        ws = self.workspace
        return [*ws.agents, *ws.teams, *ws.workflows]

    def target_kind(self, name: str) -> str:
        ws = self.workspace
        return "agent" if name in ws.agents else "team" if name in ws.teams else "workflow"

    async def start_run(
        self,
        target: str,
        input: str,
        *,
        session_id: str | None = None,
        kind: Any = None,
        model: str | None = None,
    ) -> FakeHandle:
        session_id = session_id or "s_live"
        run_id = f"r_live{next(self._runs)}"
        self.started.append((target, input, session_id))
        script = self.scripts.get(target)
        events = list(script(session_id, run_id, input)) if script else []

        async def play() -> str:
            for ev in events:
                if self.delay:
                    await asyncio.sleep(self.delay)
                else:
                    await asyncio.sleep(0)
                self.publish(ev)
            return "completed"

        task = asyncio.create_task(play())
        self._tasks[run_id] = task
        return FakeHandle(run_id, session_id, task)

    async def resume(self, run_id: str) -> FakeHandle:
        raise RuntimeError("nothing to resume")

    def cancel(self, run_id: str) -> bool:
        self.cancelled.append(run_id)
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    def resolve_approval(self, run_id: str, call_id: str, resolution: Any) -> bool:
        self.resolutions.append((run_id, call_id, resolution))
        return True

    def saved_rules(self, session_id: str) -> list[Any]:
        return []

    async def tools_for(self, patterns: Sequence[str]) -> list[Any]:
        return []

    async def build_target(self, kind: Any, name: str) -> Any:
        class _Wf:
            def graph(self) -> Any:
                return WORKFLOW_GRAPH

        return _Wf()

    def sessions(
        self, limit: int = 50, offset: int = 0, *, workspace: str | None = None
    ) -> list[FakeSession]:
        out = []
        for i, (sid, script) in enumerate(self.stored.items()):
            first = script.events[0]
            title = getattr(first, "input", "") or sid
            out.append(
                FakeSession(
                    sid,
                    title,
                    str(self.root),
                    T0 + i * 3600,
                    T0 + i * 3600 + 60,
                    len(script.events),
                )
            )
        out = [s for s in out if workspace is None or s.workspace == workspace]
        return sorted(out, key=lambda s: s.updated_at, reverse=True)[offset : offset + limit]

    def session_events(self, session_id: str, after_seq: int = 0) -> list[Event]:
        script = self.stored.get(session_id)
        return [e for e in script.events if e.seq > after_seq] if script else []

    def runs(self, session_id: str) -> list[Any]:
        return []

    def delete_session(self, session_id: str) -> bool:
        return self.stored.pop(session_id, None) is not None

    async def asessions(
        self, limit: int = 50, offset: int = 0, *, workspace: str | None = None
    ) -> list[FakeSession]:
        return self.sessions(limit, offset, workspace=workspace)

    async def asession_events(self, session_id: str, after_seq: int = 0) -> list[Event]:
        return self.session_events(session_id, after_seq)

    async def aruns(self, session_id: str) -> list[Any]:
        return self.runs(session_id)

    async def adelete_session(self, session_id: str) -> bool:
        return self.delete_session(session_id)

    async def asaved_rules(self, session_id: str) -> list[Any]:
        return self.saved_rules(session_id)

    async def aremove_rule(self, rule: Any, session_id: str = "") -> bool:
        return False

    async def aclose(self) -> None:
        self.closed = True
        for t in self._tasks.values():
            t.cancel()
