"""The REST API under ``/api``: catalogue, runs, sessions, events (JSON and SSE), approvals."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, RootModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from workbench.events import TERMINAL_TYPES, Event, dump_event
from workbench.runtime import RunError

from ._state import ServerState, state_of, wait_until

if TYPE_CHECKING:
    from workbench.approvals import PendingApproval

__all__ = ["router"]

router = APIRouter(prefix="/api")

Wb = Annotated[ServerState, Depends(state_of)]

ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"
"""What ids (sessions, runs, calls) may look like."""

SessionId = Annotated[str, Path(pattern=ID_PATTERN, description="A session id.")]
RunId = Annotated[str, Path(pattern=ID_PATTERN, description="A run id.")]
CallId = Annotated[str, Path(pattern=ID_PATTERN, description="A tool call id.")]
LastEventId = Annotated[
    str,  # not Optional: a nullable header would be documented as one that may say "null"
    Header(
        alias="Last-Event-ID",
        pattern=r"^\s*[0-9]{0,16}\s*$",
        description="The seq of the last event the client has (sent back on reconnect); "
        "empty means none.",
    ),
]
After = Annotated[
    int,
    Query(
        ge=0, le=2**53, description="Only events with a greater seq (overridden by Last-Event-ID)."
    ),
]


# -- models ---------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentOut(_Out):
    """An agent of the workspace."""

    name: str
    description: str = ""
    model: str | None = None
    tools: list[str] = Field(default_factory=list)


class TeamOut(_Out):
    """A team of the workspace."""

    name: str
    description: str = ""
    mode: str
    members: list[str]


class WorkflowOut(_Out):
    """A workflow of the workspace."""

    name: str
    description: str = ""
    steps: list[str] = Field(default_factory=list)


class CatalogueOut(_Out):
    """What the workspace can run."""

    workspace: str
    """The workspace folder on the server."""
    name: str
    """The workspace's name."""
    agents: list[AgentOut]
    teams: list[TeamOut]
    workflows: list[WorkflowOut]


class ToolOut(_Out):
    """A tool the workspace can use, with what its policy says."""

    name: str
    source: str
    description: str
    policy: str
    match_on: list[str] | None = None
    """What approval rules match on: ``[kind, argument]`` (``["shell", "command"]``)."""
    state: Literal["ready", "starting", "idle", "failed"] = "ready"
    """``ready`` for a tool that can be called. A toolkit or MCP server that is not ready
    is one row named ``<toolkit>.*`` in its state; a ``module:function`` tool that fails
    to load is a ``failed`` row under its own name."""
    error: str | None = None
    """Why it failed (an MCP server's stderr tail included)."""


class ToolkitOut(_Out):
    """An MCP server or a plugin toolkit, and where it stands."""

    name: str
    kind: Literal["plugin", "mcp"]
    state: Literal["ready", "starting", "idle", "failed"]
    detail: str = ""
    error: str | None = None
    tools: list[str] = Field(default_factory=list)
    since: float = 0.0
    required: bool = False
    instructions: str | None = None
    skipped: list[str] = Field(default_factory=list)


class RuleOut(_Out):
    """A saved approval rule."""

    id: str
    scope: str
    workspace: str
    tool: str
    pattern: str | None
    decision: str
    created_at: float
    note: str | None


class GraphNodeOut(_Out):
    """A node of a workflow graph."""

    path: str
    kind: str
    label: str
    parent: str | None
    target: str | None = None


class GraphEdgeOut(_Out):
    """An edge of a workflow graph."""

    source: str
    target: str
    label: str = ""
    back: bool = False


class GraphOut(_Out):
    """A workflow's graph, with the paths its events use."""

    nodes: list[GraphNodeOut]
    edges: list[GraphEdgeOut]


class RunIn(BaseModel):
    """Start a run."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(
        min_length=1, max_length=200, description="An agent, team or workflow name."
    )
    input: str = Field(max_length=500_000, description="The prompt or task.")
    kind: Literal["agent", "team", "workflow"] | None = Field(
        default=None, description="What the target is (found from the name when omitted)."
    )
    session_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Continue this session (its earlier turns are the history); new when omitted.",
    )
    model: str | None = Field(
        default=None,
        max_length=200,
        description="For an agent: a name from the workspace's models: (or 'test') to use instead.",
    )


class RunStartedOut(_Out):
    """A run that started."""

    run_id: str
    session_id: str
    after_seq: int
    """The session's last seq before the run: stream from here to see all of it."""


class RunOut(_Out):
    """A run as stored."""

    id: str
    session_id: str
    parent_run_id: str | None
    target_kind: str
    target: str
    input: str
    status: str
    output: str | None
    error: str | None
    owner: str
    created_at: float
    updated_at: float
    prompt_tokens: int
    completion_tokens: int
    cost: float | None


class CancelOut(_Out):
    """What a cancel did."""

    run_id: str
    """The top-level run cancelled (cancelling a child cancels its top-level run)."""
    cancelled: bool
    """Whether the run has stopped (False: the request is queued for its process)."""
    status: str
    """The run's status now."""
    via: Literal["local", "database"]
    """Whether this process ran it, or the request went through the database."""


class SessionOut(_Out):
    """A session as stored, with where it was forked from."""

    id: str
    title: str
    workspace: str
    created_at: float
    updated_at: float
    last_seq: int
    run_count: int = 0
    forked_from: str | None = None
    """The session this one was forked from."""
    forked_from_seq: int | None = None
    """The seq it was forked at."""


class SessionDetailOut(_Out):
    """A session with its runs."""

    session: SessionOut
    runs: list[RunOut]


class ApprovalOut(_Out):
    """A tool call that waits for a person: :meth:`PendingApproval.to_json
    <workbench.approvals.PendingApproval.to_json>`, whose keys
    (:attr:`~workbench.approvals.PendingApproval.WIRE_FIELDS`) these fields are."""

    call_id: str
    run_id: str
    session_id: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    parts: list[str]
    diff: str | None
    source: str
    seq: int
    ts: float


class ResolveIn(BaseModel):
    """A decision on a pending tool call (the TUI's y / s / a / n / e)."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["allow", "deny"]
    scope: Literal["once", "session", "workspace", "always"] = Field(
        default="once",
        description="How far an allow reaches: this call, this session, this workspace (a saved "
        "rule), every workspace.",
    )
    note: str | None = Field(
        default=None, max_length=10_000, description="A deny's note for the model."
    )
    edited_arguments: dict[str, Any] | None = Field(
        default=None, description="Allow with these arguments instead."
    )
    decided_by: str = Field(default="user", min_length=1, max_length=100)


class ResolveOut(_Out):
    """What a decision did."""

    call_id: str
    run_id: str
    resolved: bool
    """True once the run took the decision (False: queued for the process that holds it)."""
    via: Literal["local", "database"]


class Deleted(_Out):
    """A deleted session or rule."""

    deleted: str


EventList = RootModel[list[Event]]
"""A list of events (the protocol's discriminated union)."""


def _run_out(info: Any) -> RunOut:
    return RunOut(**{name: getattr(info, name) for name in RunOut.model_fields})


def _session_out(info: Any) -> SessionOut:
    return SessionOut(**{name: getattr(info, name) for name in SessionOut.model_fields})


def _approval_out(p: PendingApproval) -> ApprovalOut:
    return ApprovalOut.model_validate(p.to_json())


def _after(after: int, last_event_id: str) -> int:
    if last_event_id.strip():
        try:
            value = int(last_event_id.strip())
        except ValueError:
            raise HTTPException(
                400, "Last-Event-ID must be the seq of an event (an integer)"
            ) from None
        if value < 0:
            raise HTTPException(400, "Last-Event-ID must not be negative")
        return value
    return after


def _not_found(what: str, ident: str) -> HTTPException:
    return HTTPException(404, f"no {what} '{ident}'")


# -- catalogue --------------------------------------------------------------------------------


@router.get("/catalogue", response_model=CatalogueOut, tags=["catalogue"])
async def catalogue(wb: Wb) -> CatalogueOut:
    """The agents, teams and workflows of the workspace."""
    ws = wb.engine.workspace
    return CatalogueOut(
        workspace=str(ws.root),
        name=ws.name or ws.root.name,
        agents=[
            AgentOut(name=n, description=a.description, model=a.model, tools=list(a.tools))
            for n, a in ws.agents.items()
        ],
        teams=[
            TeamOut(name=n, description=t.description, mode=str(t.mode), members=list(t.members))
            for n, t in ws.teams.items()
        ],
        workflows=[
            WorkflowOut(name=n, description=w.description, steps=w.node_names())
            for n, w in ws.workflows.items()
        ],
    )


@router.get("/workspace", response_model=dict[str, Any], tags=["catalogue"])
async def workspace(wb: Wb) -> dict[str, Any]:
    """The workspace's configuration, as far as a client needs it: agents, teams and
    workflows as in ``workbench.yaml``, the approval policy, and the model names (with no
    parameters: those may hold keys). :class:`~workbench.workspace.Workspace` reads it."""
    ws = wb.engine.workspace

    def dump(items: dict[str, Any]) -> dict[str, Any]:
        return {n: c.model_dump(mode="json", by_alias=True) for n, c in items.items()}

    return {
        "root": str(ws.root),
        "name": ws.name,
        "models": {
            n: {"model": m.model, "context_window": m.context_window} for n, m in ws.models.items()
        },
        "agents": dump(ws.agents),
        "teams": dump(ws.teams),
        "workflows": dump(ws.workflows),
        "approvals": ws.approvals.model_dump(mode="json", by_alias=True),
    }


@router.get("/tools", response_model=list[ToolOut], tags=["catalogue"])
async def tools(
    wb: Wb,
    wait: Annotated[
        float, Query(ge=0, le=120, description="Seconds to wait for MCP servers still starting.")
    ] = 5.0,
) -> list[ToolOut]:
    """Every tool the workspace can use, with its approval policy; MCP servers and toolkits
    that are not ready (starting, failed with their stderr tail) as one row each."""
    engine = wb.engine
    found, statuses, broken = await engine.catalogue_tools(wait=wait)
    out: list[ToolOut] = []
    for t in {t.name: t for t in found}.values():
        verdict = engine.policy.evaluate(
            t.name, t.match_on, {}, engine.saved_rules(""), root=engine.root
        )
        out.append(
            ToolOut(
                name=t.name,
                source=t.source,
                description=(t.description or "").strip(),
                policy=verdict.decision,
                match_on=list(t.match_on) if t.match_on else None,
            )
        )
    for s in statuses:
        if s.state == "ready" or (s.kind == "plugin" and s.state == "idle"):
            continue
        out.append(
            ToolOut(
                name=f"{s.name}.*",
                source=f"{'mcp' if s.kind == 'mcp' else 'plugin'} {s.name}",
                description=s.detail,
                policy=engine.policy.evaluate(
                    f"{s.name}.*", None, {}, engine.saved_rules(""), root=engine.root
                ).decision,
                state=s.state,
                error=s.error,
            )
        )
    for spec, error in broken.items():
        out.append(
            ToolOut(
                name=spec,
                source="workspace",
                description="",
                policy=engine.policy.evaluate(
                    spec, None, {}, engine.saved_rules(""), root=engine.root
                ).decision,
                state="failed",
                error=error,
            )
        )
    out.sort(key=lambda t: t.name)
    return out


@router.get("/toolkits", response_model=list[ToolkitOut], tags=["catalogue"])
async def toolkits(wb: Wb) -> list[ToolkitOut]:
    """Every MCP server and plugin toolkit and where it stands (``idle``, ``starting``,
    ``ready``, ``failed`` with the reason and the stderr tail), without waiting."""
    return [ToolkitOut(**s.to_dict()) for s in wb.engine.toolkit_statuses()]


@router.get("/rules", response_model=list[RuleOut], tags=["approvals"])
async def rules(wb: Wb) -> list[RuleOut]:
    """The approval rules saved for this workspace (and every ``always`` rule)."""
    found = await asyncio.to_thread(wb.engine.store.list_rules, str(wb.engine.root))
    return [RuleOut(**{name: getattr(r, name) for name in RuleOut.model_fields}) for r in found]


@router.delete("/rules/{rule_id}", response_model=Deleted, tags=["approvals"])
async def delete_rule(
    wb: Wb, rule_id: Annotated[str, Path(pattern=ID_PATTERN, description="A saved rule's id.")]
) -> Deleted:
    """Remove a saved rule (as ``workbench rules rm`` does): it stops applying at the next
    tool call, in every process that shares the store."""
    if not await asyncio.to_thread(wb.engine.store.delete_rule, rule_id):
        raise _not_found("rule", rule_id)
    return Deleted(deleted=rule_id)


@router.get("/workflows/{name}/graph", response_model=GraphOut, tags=["catalogue"])
async def workflow_graph(
    wb: Wb, name: Annotated[str, Path(min_length=1, max_length=200)]
) -> GraphOut:
    """A workflow's nodes and edges, with the paths its step events use."""
    from workbench.workflow import Workflow

    config = wb.engine.workspace.workflows.get(name)
    if config is None:
        raise _not_found("workflow", name)
    graph = Workflow.from_config(name, config).graph().to_dict()
    return GraphOut.model_validate(graph)


# -- runs ---------------------------------------------------------------------------------------


@router.post("/runs", status_code=202, response_model=RunStartedOut, tags=["runs"])
async def start_run(wb: Wb, body: RunIn) -> RunStartedOut:
    """Start a run of an agent, team or workflow; answers at once with its ids."""
    engine = wb.engine
    ws = engine.workspace
    kind = ws.target_kind(body.target)
    if kind is None or (body.kind is not None and body.kind != kind):
        what = body.kind or "agent, team or workflow"
        raise HTTPException(404, f"no {what} named '{body.target}'")
    if body.model is not None and body.model != "test" and body.model not in ws.models:
        names = ", ".join(["test", *ws.models])
        raise HTTPException(400, f"unknown model '{body.model}' (the workspace has: {names})")
    after = 0
    if body.session_id is not None:  # a new session's row is made by its first event
        # in a thread: a write may wait for the database's lock, never in the event loop
        info = await asyncio.to_thread(
            engine.store.create_session, body.session_id, "", str(engine.root)
        )
        after = info.last_seq
    try:
        handle = await engine.start_run(
            body.target, body.input, session_id=body.session_id, kind=kind, model=body.model
        )
    except RunError as exc:
        raise HTTPException(400, exc.describe()) from None
    await wb.hub.started(handle.run_id, handle.task)
    return RunStartedOut(run_id=handle.run_id, session_id=handle.session_id, after_seq=after)


async def _get_run(wb: ServerState, run_id: str) -> Any:
    info = await asyncio.to_thread(wb.engine.store.get_run, run_id)
    if info is None:
        raise _not_found("run", run_id)
    return info


@router.get("/runs/{run_id}", response_model=RunOut, tags=["runs"])
async def get_run(wb: Wb, run_id: RunId) -> RunOut:
    """A run: status, output or error, usage."""
    return _run_out(await _get_run(wb, run_id))


@router.post("/runs/{run_id}/cancel", response_model=CancelOut, tags=["runs"])
async def cancel_run(wb: Wb, run_id: RunId) -> CancelOut:
    """Cancel a run and every child run, on whichever server runs it."""
    info = await _get_run(wb, run_id)
    if info.status not in ("running", "waiting", "interrupted"):
        raise HTTPException(409, f"run {run_id} is {info.status}, not running")
    via, root = await wb.control.cancel(run_id)

    async def ended() -> Any:
        now = await asyncio.to_thread(wb.engine.store.get_run, root)
        return (
            now if now is not None and now.status in ("completed", "failed", "cancelled") else None
        )

    final = await wait_until(ended, wb.config.decision_wait)
    if final is None:
        final = await asyncio.to_thread(wb.engine.store.get_run, root)
    status = final.status if final is not None else "unknown"
    return CancelOut(run_id=root, cancelled=status == "cancelled", status=status, via=via)


@router.post("/runs/{run_id}/resume", status_code=202, response_model=RunStartedOut, tags=["runs"])
async def resume_run(wb: Wb, run_id: RunId) -> RunStartedOut:
    """Continue a run whose process died, from its last checkpoint, on this server. The run
    is claimed first: of several servers asked at once exactly one resumes it, and a run
    whose server is alive (its lease holds) is refused with 409."""
    info = await _get_run(wb, run_id)
    # Read before the run goes on: its first events (run.started, resumed) come after it,
    # so a client reading from after_seq misses none of them.
    last = await asyncio.to_thread(wb.engine.store.last_seq, info.session_id)
    try:
        handle = await wb.engine.resume(run_id)
    except RunError as exc:
        raise HTTPException(409, exc.describe()) from None
    wb.approvals.changed()
    return RunStartedOut(run_id=handle.run_id, session_id=handle.session_id, after_seq=last)


@router.get(
    "/runs/{run_id}/stream",
    tags=["events"],
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
)
async def stream_run(
    wb: Wb,
    run_id: RunId,
    after: After = 0,
    last_event_id: LastEventId = "",
) -> EventSourceResponse:
    """The events of a run and its child runs as SSE (``id:`` is the session seq); ends
    after the run's terminal event."""
    info = await _get_run(wb, run_id)
    return _sse(wb, wb.hub.batches(info.session_id, _after(after, last_event_id), run_id=run_id))


# -- sessions -------------------------------------------------------------------------------------


@router.get("/sessions", response_model=list[SessionOut], tags=["sessions"])
async def list_sessions(
    wb: Wb,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
    workspace: Annotated[str | None, Query(max_length=4096)] = None,
) -> list[SessionOut]:
    """Sessions, most recently active first (only those of the ``workspace`` folder, when
    given: a path as the sessions' ``workspace`` field has it)."""
    found = await asyncio.to_thread(
        wb.engine.store.list_sessions, limit, offset, workspace=workspace
    )
    return [_session_out(s) for s in found]


async def _get_session(wb: ServerState, session_id: str) -> Any:
    info = await asyncio.to_thread(wb.engine.store.get_session, session_id)
    if info is None:
        raise _not_found("session", session_id)
    return info


@router.get("/sessions/{session_id}", response_model=SessionDetailOut, tags=["sessions"])
async def get_session(wb: Wb, session_id: SessionId) -> SessionDetailOut:
    """A session and its runs (children included)."""
    info = await _get_session(wb, session_id)
    runs = await asyncio.to_thread(wb.engine.store.list_runs, session_id)
    return SessionDetailOut(session=_session_out(info), runs=[_run_out(r) for r in runs])


@router.get(
    "/sessions/{session_id}/events",
    tags=["events"],
    response_model=EventList,
    responses={200: {"description": "The events, in seq order."}},
)
async def session_events(
    wb: Wb,
    session_id: SessionId,
    after: After = 0,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Response:
    """A session's stored events after ``after``, as a JSON array."""
    await _get_session(wb, session_id)
    events = await asyncio.to_thread(
        wb.engine.store.events, session_id, after_seq=after, limit=limit
    )
    body = "[" + ",".join(dump_event(e) for e in events) + "]"
    return Response(body, media_type="application/json")


@router.get(
    "/sessions/{session_id}/export",
    tags=["events"],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON lines."}},
)
async def export_session(wb: Wb, session_id: SessionId) -> StreamingResponse:
    """The whole event log of a session as JSON lines (one event a line)."""
    await _get_session(wb, session_id)
    store = wb.engine.store

    async def lines() -> AsyncIterator[str]:
        last = 0
        while True:
            page = await asyncio.to_thread(store.events, session_id, after_seq=last, limit=1000)
            if not page:
                return
            last = page[-1].seq
            yield "".join(dump_event(e) + "\n" for e in page)

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{session_id}.jsonl"'},
    )


@router.get(
    "/sessions/{session_id}/stream",
    tags=["events"],
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
)
async def stream_session(
    wb: Wb,
    session_id: SessionId,
    after: After = 0,
    last_event_id: LastEventId = "",
) -> EventSourceResponse:
    """A session's events as SSE: what the store has after ``after`` (or
    ``Last-Event-ID``), then live, from any server process. ``id:`` is the seq."""
    await _get_session(wb, session_id)
    return _sse(wb, wb.hub.batches(session_id, _after(after, last_event_id)))


@router.delete("/sessions/{session_id}", response_model=Deleted, tags=["sessions"])
async def delete_session(wb: Wb, session_id: SessionId) -> Deleted:
    """Delete a session with its runs and events (refused while a run in it is live)."""
    await _get_session(wb, session_id)
    runs = await asyncio.to_thread(wb.engine.store.list_runs, session_id)
    live = [r.id for r in runs if r.status in ("running", "waiting")]
    if live:
        raise HTTPException(409, f"session {session_id} has runs in flight: {', '.join(live)}")
    if not await asyncio.to_thread(wb.engine.delete_session, session_id):
        raise _not_found("session", session_id)
    return Deleted(deleted=session_id)


# -- approvals ------------------------------------------------------------------------------------


@router.get("/approvals", response_model=list[ApprovalOut], tags=["approvals"])
async def list_approvals(
    wb: Wb,
    session_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
) -> list[ApprovalOut]:
    """Tool calls waiting for a decision, on any server sharing the database, oldest first."""
    found = await wb.approvals.current()
    return [_approval_out(p) for p in found if session_id in (None, p.session_id)]


@router.get(
    "/approvals/stream",
    tags=["approvals"],
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}},
)
async def stream_approvals(wb: Wb) -> EventSourceResponse:
    """Pending approvals as SSE: ``event: snapshot`` (the whole list) first, then
    ``event: added`` / ``event: removed`` with one approval each."""

    async def events() -> AsyncIterator[ServerSentEvent]:
        known: dict[tuple[str, str], PendingApproval] = {}
        first = True
        while True:
            now = {p.key: p for p in await wb.approvals.current()}
            if first:
                first = False
                data = json.dumps([_approval_out(p).model_dump() for p in now.values()])
                yield ServerSentEvent(data=data, event="snapshot")
            else:
                for key, p in known.items():
                    if key not in now:
                        yield ServerSentEvent(
                            data=_approval_out(p).model_dump_json(), event="removed"
                        )
                for key, p in now.items():
                    if key not in known:
                        yield ServerSentEvent(
                            data=_approval_out(p).model_dump_json(), event="added"
                        )
            known = now
            await wb.approvals.wait()
            if wb.hub.closing:
                return

    return EventSourceResponse(events(), ping=wb.config.sse_ping)


@router.post("/approvals/{run_id}/{call_id}", response_model=ResolveOut, tags=["approvals"])
async def resolve_approval(wb: Wb, run_id: RunId, call_id: CallId, body: ResolveIn) -> ResolveOut:
    """Decide the pending tool call ``call_id`` of the run ``run_id``: allow (once, for the
    session, for the workspace, always), deny with a note, or allow with edited arguments.
    A call id is unique within its run only, so the run is part of the address. Works on
    any server."""
    from workbench.approvals import Resolution

    key = (run_id, call_id)
    pending = next((p for p in await wb.approvals.current() if p.key == key), None)
    if pending is None:
        # The log may be a moment behind the broker of this process.
        pending = wb.engine.broker.get(run_id, call_id)
    if pending is None:
        run = await asyncio.to_thread(wb.engine.store.get_run, run_id)
        if run is not None and run.status == "interrupted":
            raise HTTPException(
                409,
                f"run {run_id} is interrupted (its process died): resume it "
                f"(POST /api/runs/{run_id}/resume) and it asks again",
            )
        raise HTTPException(404, f"no pending approval for call '{call_id}' of run '{run_id}'")
    if body.edited_arguments is not None and body.decision != "allow":
        raise HTTPException(422, "edited_arguments go with decision 'allow'")
    resolution = Resolution(
        decision=body.decision,
        scope=body.scope if body.decision == "allow" else "once",
        note=body.note,
        edited_arguments=body.edited_arguments,
        decided_by=body.decided_by,
    )
    via = await wb.control.resolve(pending.run_id, call_id, resolution)
    wb.approvals.changed()
    if via == "local":
        return ResolveOut(call_id=call_id, run_id=pending.run_id, resolved=True, via=via)
    store = wb.engine.store

    async def taken() -> bool | None:
        events = await asyncio.to_thread(
            store.events, pending.session_id, after_seq=pending.seq, run_id=pending.run_id
        )
        hit = any(
            e.type == "approval.resolved" and getattr(e, "call_id", "") == call_id for e in events
        )
        if hit:
            return True
        # the run ended first (cancelled, say): the decision was not taken
        return False if any(e.type in TERMINAL_TYPES for e in events) else None

    done = await wait_until(taken, wb.config.decision_wait)
    return ResolveOut(call_id=call_id, run_id=pending.run_id, resolved=bool(done), via=via)


# -- SSE ----------------------------------------------------------------------------------------------


def _sse(wb: ServerState, batches: AsyncGenerator[list[Event], None]) -> EventSourceResponse:
    async def encode() -> AsyncIterator[bytes]:
        async with contextlib.aclosing(batches):  # unsubscribes at once when the client leaves
            async for batch in batches:
                yield b"".join(wb.hub.sse(ev) for ev in batch)

    return EventSourceResponse(encode(), ping=wb.config.sse_ping, sep="\n")
