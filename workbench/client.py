"""RemoteEngine: the Engine interface over a workbench server's REST API and SSE.

``workbench attach URL`` opens the TUI with one of these in place of a local
:class:`~workbench.engine.Engine`: the panes cannot tell the difference, because both give
them the same events, the same approvals and the same session data.

Events come from one SSE subscription per watched session (a run started here watches its
session; :meth:`RemoteEngine.watch` adds others). A dropped stream reconnects with
``Last-Event-ID`` and misses nothing. Pending approvals come from the server's approvals
stream, which lists the calls waiting on any server sharing its database.

    async with await RemoteEngine.connect("http://127.0.0.1:8765", token) as engine:
        engine.add_listener(print)
        handle = await engine.start_run("assistant", "hello")
        outcome = await handle.wait()

The methods that the local Engine has as plain (synchronous) calls are synchronous here
too (``sessions``, ``session_events``, ``runs``, ``delete_session``, ``search_sessions``,
``fork_session``, ``saved_rules``): they make a blocking HTTP request. A UI uses their
``a``-prefixed async twins, which both engines have (the TUI never blocks its event loop
on the server). ``cancel`` and ``resolve_approval`` return at once and send in the
background.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import httpx

from workbench.events import TERMINAL_TYPES, Event, Usage, parse_event
from workbench.runtime import RunError, RunHandle, RunOutcome

if TYPE_CHECKING:
    from workbench.approvals import ApprovalPolicy, PendingApproval, Resolution, Rule
    from workbench.store import RunInfo, SearchHit, SessionInfo
    from workbench.workflow import WorkflowGraph
    from workbench.workspace import Workspace

__all__ = [
    "RemoteBroker",
    "RemoteEngine",
    "RemoteError",
    "RemoteRunHandle",
    "RemoteTool",
    "SseMessage",
    "iter_sse",
]

log = logging.getLogger("workbench.client")

Listener = Callable[[Event], None]
BrokerListener = Callable[[Literal["added", "removed"], "PendingApproval"], None]

_RULES_TTL_S = 5.0
"""Seconds the saved rules are cached."""
_ENDED_KEPT = 1000
"""Outcomes of ended top-level runs remembered (a handle may be made after its run ended)."""


@dataclass(frozen=True)
class RemoteTool:
    """A tool of the server's workspace, as far as a client needs to know it."""

    name: str
    """Workspace name (``files.read``)."""
    source: str
    """Where it comes from."""
    description: str
    """What it does."""
    policy: str
    """What the policy says with no saved rule: allow, ask or deny."""
    match_on: tuple[str, str] | None = None
    """What approval rules match on."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RemoteTool:
        """From ``GET /api/tools``."""
        m = data.get("match_on")
        return cls(
            name=data["name"],
            source=data.get("source", ""),
            description=data.get("description", ""),
            policy=data.get("policy", "ask"),
            match_on=(str(m[0]), str(m[1])) if m else None,
        )


class RemoteError(RunError):
    """The server refused a request, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def _raise_for(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    message = resp.reason_phrase or "error"
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        message = str(resp.json()["error"]["message"])
    hint = "check the token (--token or WORKBENCH_TOKEN)" if resp.status_code == 401 else None
    raise RemoteError(f"{message} (HTTP {resp.status_code})", status=resp.status_code, hint=hint)


# -- SSE --------------------------------------------------------------------------------------


@dataclass
class SseMessage:
    """One server-sent event."""

    data: str
    """The data lines, joined with newlines."""
    event: str = "message"
    """The event name."""
    id: str | None = None
    """The ``id:`` field, if any."""


async def iter_sse(response: httpx.Response) -> AsyncIterator[SseMessage]:
    """Parse a ``text/event-stream`` response (comments and ``retry:`` are skipped)."""
    data: list[str] = []
    event = "message"
    ident: str | None = None
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SseMessage("\n".join(data), event, ident)
            data, event, ident = [], "message", None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            ident = value
    if data:
        yield SseMessage("\n".join(data), event, ident)


# -- runs ---------------------------------------------------------------------------------------


class RemoteRunHandle(RunHandle):
    """A run started through a server: a :class:`~workbench.engine.RunHandle` whose task
    ends with the run's outcome once its terminal event arrived."""


def _outcome(event: Event) -> RunOutcome:
    data = event.__dict__
    usage = data.get("usage") or Usage()
    if event.type == "run.completed":
        return RunOutcome(
            "completed",
            output=data["output"],
            usage=usage,
            cost=data.get("cost"),
            structured=data.get("structured"),
            run_id=event.run_id,
        )
    if event.type == "run.failed":
        return RunOutcome(
            "failed",
            error=data["error"],
            hint=data.get("hint"),
            usage=usage,
            cost=data.get("cost"),
            run_id=event.run_id,
        )
    return RunOutcome("cancelled", run_id=event.run_id)


# -- approvals ------------------------------------------------------------------------------------


class RemoteBroker:
    """The broker-like view of the server's pending approvals (fed by its approvals stream)."""

    def __init__(self, engine: RemoteEngine) -> None:
        self._engine = engine
        self._pending: dict[tuple[str, str], PendingApproval] = {}
        self._listeners: list[BrokerListener] = []
        self.synced = asyncio.Event()
        """Set once the first snapshot arrived."""

    def pending(self, session_id: str | None = None) -> list[PendingApproval]:
        """Pending calls, newest first (like :meth:`ApprovalBroker.pending`)."""
        items = sorted(self._pending.values(), key=lambda p: p.created_at, reverse=True)
        return [p for p in items if session_id is None or p.session_id == session_id]

    def get(self, run_id: str, call_id: str) -> PendingApproval | None:
        """The pending call ``call_id`` of the run ``run_id``, if any."""
        return self._pending.get((run_id, call_id))

    def subscribe(self, callback: BrokerListener) -> Callable[[], None]:
        """Call ``callback(kind, pending)`` when a call is added or removed."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def resolve(self, run_id: str, call_id: str, resolution: Resolution) -> bool:
        """Decide a pending call (sent to the server in the background)."""
        return self._engine.resolve_approval(run_id, call_id, resolution)

    def session_rules(self, session_id: str) -> list[Any]:
        """Session rules live on the server that runs the session: none here."""
        return []

    def _notify(self, kind: Literal["added", "removed"], p: PendingApproval) -> None:
        for callback in list(self._listeners):
            try:
                callback(kind, p)
            except Exception:
                log.exception("approval listener failed")

    def _from_json(self, data: dict[str, Any]) -> PendingApproval:
        from workbench.approvals import PendingApproval

        p = PendingApproval.from_json(data)
        p.future = asyncio.get_running_loop().create_future()
        return p

    def _add(self, data: dict[str, Any]) -> None:
        key = (data["run_id"], data["call_id"])
        if key in self._pending:
            return
        p = self._from_json(data)
        self._pending[key] = p
        self._notify("added", p)

    def _remove(self, run_id: str, call_id: str) -> PendingApproval | None:
        p = self._pending.pop((run_id, call_id), None)
        if p is None:
            return None
        if p.future is not None and not p.future.done():
            p.future.cancel()
        self._notify("removed", p)
        return p

    def _snapshot(self, items: list[dict[str, Any]]) -> None:
        keep = {(d["run_id"], d["call_id"]) for d in items}
        for run_id, call_id in [k for k in self._pending if k not in keep]:
            self._remove(run_id, call_id)
        for d in items:
            self._add(d)
        self.synced.set()


# -- the engine ---------------------------------------------------------------------------------


@dataclass
class _Watch:
    session_id: str
    last_seq: int
    task: asyncio.Task[None] | None = None


class RemoteEngine:
    """The Engine interface, served by a workbench server.

    Create with :meth:`connect` (it loads the workspace and starts following approvals);
    close with :meth:`aclose`.

    Args:
        url: The server's base URL (``http://127.0.0.1:8765``).
        token: Its API token, if it has one.
        timeout: Seconds for each request (streams have no read timeout).
    """

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=self._timeout)
        self._sync = httpx.Client(base_url=self.url, headers=headers, timeout=self._timeout)
        self.broker = RemoteBroker(self)
        """Pending approvals (``pending()``, ``subscribe()``), like the engine's broker."""
        self._workspace: Workspace | None = None
        self.root = Path(".")
        """The workspace folder on the server."""
        self.model_override: str | None = None
        """Sent as ``model`` with agent runs when set."""
        self._policy: ApprovalPolicy | None = None
        self._rules_cache: tuple[float, list[Rule]] | None = None
        self._tools_cache: list[RemoteTool] | None = None
        self._asked: dict[tuple[str, str], str] = {}
        self._listeners: list[Listener] = []
        self._watches: dict[str, _Watch] = {}
        self._outcomes: dict[str, asyncio.Future[RunOutcome]] = {}
        self._ended: OrderedDict[str, RunOutcome] = OrderedDict()
        self._live: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._approvals_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    async def connect(
        cls, url: str, token: str | None = None, *, timeout: float = 30.0
    ) -> RemoteEngine:
        """Reach the server, load its workspace, start following its approvals.

        Raises:
            RemoteError: The server cannot be reached or refuses the token.
        """
        engine = cls(url, token, timeout=timeout)
        try:
            await engine.refresh_workspace()
        except BaseException:
            await engine.aclose()
            raise
        engine._ensure_started()
        return engine

    @classmethod
    def open(cls, url: str, token: str | None = None, *, timeout: float = 30.0) -> RemoteEngine:
        """Like :meth:`connect`, from synchronous code (the TUI opens engines in a thread).

        Streams start on first use from the event loop that then drives the engine.

        Raises:
            RemoteError: The server cannot be reached or refuses the token.
        """
        engine = cls(url, token, timeout=timeout)
        try:
            engine._set_workspace(engine._request_sync("GET", "/api/workspace"))
        except BaseException:
            engine._sync.close()
            raise
        return engine

    def _ensure_started(self) -> None:
        """Adopt the running loop and start following approvals (once)."""
        if self._loop is not None or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self._approvals_task = self._loop.create_task(
            self._follow_approvals(), name="workbench-approvals"
        )

    async def __aenter__(self) -> RemoteEngine:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop every stream and close the connections (runs go on on the server)."""
        self._closed = True
        tasks = [w.task for w in self._watches.values() if w.task is not None]
        tasks += list(self._tasks)
        if self._approvals_task is not None:
            tasks.append(self._approvals_task)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watches.clear()
        for fut in self._outcomes.values():
            if not fut.done():
                fut.cancel()
        await self._http.aclose()
        self._sync.close()

    async def _request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = await self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise RemoteError(f"cannot reach {self.url}: {exc}") from exc
        _raise_for(resp)
        return resp.json()

    def _request_sync(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self._sync.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise RemoteError(f"cannot reach {self.url}: {exc}") from exc
        _raise_for(resp)
        return resp.json()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a request in the background (from the loop's thread or any other)."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and (self._loop is None or running is self._loop):
            task = running.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._background_done)
        elif self._loop is not None:
            asyncio.run_coroutine_threadsafe(coro, self._loop)
        else:
            coro.close()
            raise RemoteError("the remote engine is not connected")

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("request to %s failed: %s", self.url, task.exception())

    # -- workspace ---------------------------------------------------------------------

    async def refresh_workspace(self) -> Workspace:
        """Load (again) the server's workspace."""
        return self._set_workspace(await self._request("GET", "/api/workspace"))

    def _set_workspace(self, data: dict[str, Any]) -> Workspace:
        from workbench.approvals import ApprovalPolicy
        from workbench.workspace import Workspace

        ws = Workspace.model_validate_json(json.dumps(data))
        self._workspace = ws
        self.root = ws.root
        a = ws.approvals
        self._policy = ApprovalPolicy(
            default=a.default, allow=list(a.allow), ask=list(a.ask), deny=list(a.deny)
        )
        return ws

    def saved_rules(self, session_id: str) -> list[Rule]:
        """The rules saved on the server for this workspace (blocking; cached for a few
        seconds; session rules stay on the server that runs the session)."""
        now = time.monotonic()
        if self._rules_cache is None or now - self._rules_cache[0] > _RULES_TTL_S:
            self._rules_cache = (now, _rules(self._request_sync("GET", "/api/rules")))
        return list(self._rules_cache[1])

    async def asaved_rules(self, session_id: str) -> list[Rule]:
        """:meth:`saved_rules`, without blocking."""
        now = time.monotonic()
        if self._rules_cache is None or now - self._rules_cache[0] > _RULES_TTL_S:
            self._rules_cache = (now, _rules(await self._request("GET", "/api/rules")))
        return list(self._rules_cache[1])

    def remove_rule(self, rule: Rule, session_id: str = "") -> bool:
        """Remove a saved rule on the server (blocking). Session rules stay on the server
        that runs the session: not removable from here (False)."""
        if rule.scope == "session" or not rule.id:
            return False
        try:
            self._request_sync("DELETE", f"/api/rules/{rule.id}")
        except RemoteError as exc:
            if exc.status == 404:
                return False
            raise
        finally:
            self._rules_cache = None
        return True

    async def aremove_rule(self, rule: Rule, session_id: str = "") -> bool:
        """:meth:`remove_rule`, without blocking."""
        if rule.scope == "session" or not rule.id:
            return False
        try:
            await self._request("DELETE", f"/api/rules/{rule.id}")
        except RemoteError as exc:
            if exc.status == 404:
                return False
            raise
        finally:
            self._rules_cache = None
        return True

    async def tools_for(self, patterns: Sequence[str]) -> list[RemoteTool]:
        """The server's tools matching the patterns (``toolkit.tool``, globs)."""
        if self._tools_cache is None:
            self._tools_cache = [
                RemoteTool.from_json(t) for t in await self._request("GET", "/api/tools")
            ]
        return [
            t for t in self._tools_cache if any(fnmatch.fnmatchcase(t.name, p) for p in patterns)
        ]

    async def build_target(self, kind: str, name: str) -> Any:
        """The runnable object of a name: here, only a workflow (for its graph)."""
        from workbench.workflow import Workflow

        ws = self._ws()
        if kind == "workflow" and name in ws.workflows:
            return Workflow.from_config(name, ws.workflows[name])
        raise RunError(
            f"a remote engine cannot build the {kind} '{name}' here: it runs on the server"
        )

    @property
    def workspace(self) -> Workspace:
        """The server's workspace (agents, teams, workflows, model names).

        Raises:
            RemoteError: Not connected (:meth:`connect` and :meth:`open` load it).
        """
        return self._ws()

    @property
    def policy(self) -> ApprovalPolicy:
        """The workspace's approval policy (for previews; the server decides).

        Raises:
            RemoteError: Not connected (:meth:`connect` and :meth:`open` load it).
        """
        self._ws()
        assert self._policy is not None  # loaded with the workspace
        return self._policy

    def _ws(self) -> Workspace:
        if self._workspace is None:
            raise RemoteError("not connected: use RemoteEngine.connect()")
        return self._workspace

    def catalogue_names(self) -> list[str]:
        """Every runnable name."""
        ws = self._ws()
        return [*ws.agents, *ws.teams, *ws.workflows]

    def target_kind(self, name: str) -> Literal["agent", "team", "workflow"]:
        """Whether ``name`` is an agent, a team or a workflow (RunError if none)."""
        kind = self._ws().target_kind(name)
        if kind is None:
            names = ", ".join(self.catalogue_names()) or "none"
            raise RunError(
                f"no agent, team or workflow named '{name}'", hint=f"the workspace has: {names}"
            )
        return kind

    async def workflow_graph(self, name: str) -> WorkflowGraph:
        """A workflow's graph, as the server draws it."""
        from workbench.workflow import GraphEdge, GraphNode, WorkflowGraph

        data = await self._request("GET", f"/api/workflows/{name}/graph")
        return WorkflowGraph(
            nodes=[GraphNode(**n) for n in data["nodes"]],
            edges=[GraphEdge(**e) for e in data["edges"]],
        )

    async def all_tools(self) -> list[dict[str, Any]]:
        """Every tool the server's workspace can use: name, source, description, policy."""
        found: list[dict[str, Any]] = await self._request("GET", "/api/tools")
        return found

    # -- events ------------------------------------------------------------------------

    def add_listener(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn`` with every event of the watched sessions; returns a remover."""
        with contextlib.suppress(RuntimeError):  # no loop yet: started on first use
            self._ensure_started()
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    async def subscribe(self, session_id: str | None = None) -> AsyncIterator[Event]:
        """Live events (of one session, or of every watched session), from now on."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        remove = self.add_listener(
            lambda e: queue.put_nowait(e) if session_id in (None, e.session_id) else None
        )
        try:
            if session_id is not None:
                self.watch(session_id)
            while True:
                yield await queue.get()
        finally:
            remove()

    def _dispatch(self, event: Event) -> None:
        if event.type == "run.started" and event.parent_run_id is None:
            self._live.add(event.run_id)
        if event.type in TERMINAL_TYPES:
            self._live.discard(event.run_id)
            if event.parent_run_id is None:  # a handle may be made after its run ended
                self._ended[event.run_id] = _outcome(event)
                while len(self._ended) > _ENDED_KEPT:
                    self._ended.popitem(last=False)
            for key in [k for k in self._asked if k[0] == event.run_id]:
                del self._asked[key]
            fut = self._outcomes.get(event.run_id)
            if fut is not None and not fut.done():
                fut.set_result(_outcome(event))
        elif event.type == "approval.required":
            self._asked[(event.run_id, getattr(event, "call_id", ""))] = event.session_id
        elif event.type == "approval.resolved":
            call_id = getattr(event, "call_id", "")
            self._asked.pop((event.run_id, call_id), None)
            self.broker._remove(event.run_id, call_id)
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:
                log.exception("event listener failed")

    def watch(self, session_id: str, after_seq: int | None = None) -> None:
        """Follow a session's events (from ``after_seq``; from its start when None).

        Watching a session already followed does nothing.
        """
        if session_id in self._watches or self._closed:
            return
        self._ensure_started()
        w = _Watch(session_id, after_seq or 0)
        w.task = asyncio.create_task(self._follow(w), name=f"workbench-watch {session_id}")
        self._watches[session_id] = w

    def unwatch(self, session_id: str) -> None:
        """Stop following a session."""
        w = self._watches.pop(session_id, None)
        if w is not None and w.task is not None:
            w.task.cancel()

    async def _follow(self, w: _Watch) -> None:
        backoff = 0.1
        while not self._closed:
            try:
                async with self._http.stream(
                    "GET",
                    f"/api/sessions/{w.session_id}/stream",
                    headers={"Last-Event-ID": str(w.last_seq), "Accept": "text/event-stream"},
                    timeout=httpx.Timeout(self._timeout.connect, read=None),
                ) as resp:
                    if resp.status_code in (401, 403, 404):
                        await resp.aread()
                        _raise_for(resp)
                    resp.raise_for_status()
                    backoff = 0.1
                    async for msg in iter_sse(resp):
                        ev = parse_event(msg.data)
                        if ev.seq <= w.last_seq:
                            continue
                        w.last_seq = ev.seq
                        self._dispatch(ev)
            except asyncio.CancelledError:
                raise
            except RemoteError as exc:
                log.warning("stopped following session %s: %s", w.session_id, exc)
                self._watches.pop(w.session_id, None)
                return
            except Exception as exc:  # dropped or refused: reconnect with Last-Event-ID
                log.info("session %s stream dropped (%s); reconnecting", w.session_id, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _follow_approvals(self) -> None:
        backoff = 0.1
        while not self._closed:
            try:
                async with self._http.stream(
                    "GET",
                    "/api/approvals/stream",
                    headers={"Accept": "text/event-stream"},
                    timeout=httpx.Timeout(self._timeout.connect, read=None),
                ) as resp:
                    resp.raise_for_status()
                    backoff = 0.1
                    async for msg in iter_sse(resp):
                        data = json.loads(msg.data)
                        if msg.event == "snapshot":
                            self.broker._snapshot(data)
                        elif msg.event == "added":
                            self.broker._add(data)
                        elif msg.event == "removed":
                            self.broker._remove(data["run_id"], data["call_id"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("approvals stream dropped (%s); reconnecting", exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    # -- runs --------------------------------------------------------------------------

    def _handle(self, data: dict[str, Any]) -> RemoteRunHandle:
        run_id, session_id = data["run_id"], data["session_id"]
        fut: asyncio.Future[RunOutcome] = asyncio.get_running_loop().create_future()
        ended = self._ended.get(run_id)
        if ended is not None:  # its events outran the answer to the request that started it
            fut.set_result(ended)
        else:
            self._outcomes[run_id] = fut
            self._live.add(run_id)

        async def outcome() -> RunOutcome:
            try:
                return await fut
            finally:
                self._outcomes.pop(run_id, None)

        self.watch(session_id, data.get("after_seq", 0))
        task = asyncio.create_task(outcome(), name=f"run {run_id}")
        return RemoteRunHandle(run_id, session_id, task)

    async def start_run(
        self,
        target: str,
        input: str,
        *,
        session_id: str | None = None,
        kind: Literal["agent", "team", "workflow"] | None = None,
        model: str | None = None,
    ) -> RemoteRunHandle:
        """Start a run on the server; returns at once (its events arrive as they happen).

        Raises:
            RemoteError: The server refused (no such target, bad model...).
        """
        body: dict[str, Any] = {"target": target, "input": input}
        if session_id is not None:
            body["session_id"] = session_id
        if kind is not None:
            body["kind"] = kind
        model = model or (
            self.model_override if (kind or self.target_kind(target)) == "agent" else None
        )
        if model is not None:
            body["model"] = model
        data = await self._request("POST", "/api/runs", json=body)
        return self._handle(data)

    async def run(self, target: str, input: str, **kw: Any) -> RunOutcome:
        """Start a run and wait for its outcome."""
        handle = await self.start_run(target, input, **kw)
        return await handle.wait()

    async def resume(self, run_id: str) -> RemoteRunHandle:
        """Continue, on the server, a run whose process died."""
        data = await self._request("POST", f"/api/runs/{run_id}/resume")
        return self._handle(data)

    def cancel(self, run_id: str) -> bool:
        """Ask the server to cancel a run (and its children); returns at once."""
        self._spawn(self.acancel(run_id))
        return True

    async def acancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a run and wait for the server's answer (``cancelled``, ``status``...)."""
        result: dict[str, Any] = await self._request("POST", f"/api/runs/{run_id}/cancel")
        return result

    def running(self) -> list[str]:
        """Top-level runs known here to be in flight (started here or seen starting)."""
        return sorted(self._live)

    async def get_run(self, run_id: str) -> RunInfo | None:
        """A run as the server stores it."""
        from workbench.store import RunInfo

        try:
            data = await self._request("GET", f"/api/runs/{run_id}")
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise
        return RunInfo(**data)

    # -- approvals ---------------------------------------------------------------------

    def resolve_approval(self, run_id: str, call_id: str, resolution: Resolution) -> bool:
        """Decide the pending call ``call_id`` of the run ``run_id``; returns at once (False
        if no such call is pending).

        The call leaves :attr:`broker` at once; the server's events confirm it.

        Args:
            run_id: The run that asks.
            call_id: The call (unique within its run only).
            resolution: The decision.
        """
        if self.broker.get(run_id, call_id) is not None:
            self.broker._remove(run_id, call_id)
        elif (run_id, call_id) not in self._asked:
            return False  # neither listed nor known from the events of a watched session
        self._asked.pop((run_id, call_id), None)
        self._spawn(self.aresolve_approval(run_id, call_id, resolution))
        return True

    async def aresolve_approval(self, run_id: str, call_id: str, resolution: Resolution) -> bool:
        """Decide a pending call and wait for the server's answer (True once taken up)."""
        body: dict[str, Any] = {
            "decision": resolution.decision,
            "scope": resolution.scope,
            "note": resolution.note,
            "edited_arguments": resolution.edited_arguments,
            "decided_by": resolution.decided_by,
        }
        data = await self._request("POST", f"/api/approvals/{run_id}/{call_id}", json=body)
        return bool(data["resolved"])

    # -- sessions ----------------------------------------------------------------------

    def sessions(
        self, limit: int = 50, offset: int = 0, *, workspace: str | None = None
    ) -> list[SessionInfo]:
        """Sessions, newest first (blocking); only those of the ``workspace`` folder when
        given."""
        from workbench.store import SessionInfo

        data = self._request_sync(
            "GET", "/api/sessions", params=_sessions_query(limit, offset, workspace)
        )
        return [SessionInfo(**d) for d in data]

    async def asessions(
        self, limit: int = 50, offset: int = 0, *, workspace: str | None = None
    ) -> list[SessionInfo]:
        """:meth:`sessions`, without blocking."""
        from workbench.store import SessionInfo

        data = await self._request(
            "GET", "/api/sessions", params=_sessions_query(limit, offset, workspace)
        )
        return [SessionInfo(**d) for d in data]

    def session_events(self, session_id: str, after_seq: int = 0) -> list[Event]:
        """A session's stored events (blocking)."""
        resp = self._sync.get(f"/api/sessions/{session_id}/events", params={"after": after_seq})
        _raise_for(resp)
        return _events(resp.content)

    async def asession_events(self, session_id: str, after_seq: int = 0) -> list[Event]:
        """A session's stored events."""
        resp = await self._http.get(
            f"/api/sessions/{session_id}/events", params={"after": after_seq}
        )
        _raise_for(resp)
        return _events(resp.content)

    def runs(self, session_id: str) -> list[RunInfo]:
        """A session's runs (blocking)."""
        from workbench.store import RunInfo

        data = self._request_sync("GET", f"/api/sessions/{session_id}")
        return [RunInfo(**r) for r in data["runs"]]

    async def aruns(self, session_id: str) -> list[RunInfo]:
        """A session's runs."""
        from workbench.store import RunInfo

        data = await self._request("GET", f"/api/sessions/{session_id}")
        return [RunInfo(**r) for r in data["runs"]]

    def search_sessions(
        self, query: str, limit: int = 50, *, prefix: bool = False
    ) -> list[SearchHit]:
        """The server's full-text search (blocking), as :meth:`Engine.search_sessions
        <workbench.engine.Engine.search_sessions>` gives it."""
        data = self._request_sync(
            "GET",
            "/api/sessions/search",
            params={"q": query, "limit": limit, "prefix": "true" if prefix else "false"},
        )
        return [_search_hit(d) for d in data]

    async def asearch_sessions(
        self, query: str, limit: int = 50, *, prefix: bool = False
    ) -> list[SearchHit]:
        """:meth:`search_sessions`, without blocking."""
        data = await self._request(
            "GET",
            "/api/sessions/search",
            params={"q": query, "limit": limit, "prefix": "true" if prefix else "false"},
        )
        return [_search_hit(d) for d in data]

    def fork_session(
        self,
        session_id: str,
        *,
        at_seq: int | None = None,
        message_id: str | None = None,
        title: str | None = None,
    ) -> SessionInfo:
        """Fork a session on the server (blocking); see :meth:`Engine.fork_session
        <workbench.engine.Engine.fork_session>`.

        Raises:
            RemoteError: no such session (404) or no such place in it (400).
        """
        from workbench.store import SessionInfo

        body = {"at_seq": at_seq, "message_id": message_id, "title": title}
        data = self._request_sync(
            "POST",
            f"/api/sessions/{session_id}/fork",
            json={k: v for k, v in body.items() if v is not None},
        )
        return SessionInfo(**data)

    async def afork_session(
        self,
        session_id: str,
        *,
        at_seq: int | None = None,
        message_id: str | None = None,
        title: str | None = None,
    ) -> SessionInfo:
        """:meth:`fork_session`, without blocking."""
        from workbench.store import SessionInfo

        body = {"at_seq": at_seq, "message_id": message_id, "title": title}
        data = await self._request(
            "POST",
            f"/api/sessions/{session_id}/fork",
            json={k: v for k, v in body.items() if v is not None},
        )
        return SessionInfo(**data)

    def delete_session(self, session_id: str) -> bool:
        """Delete a session (blocking). False if it does not exist."""
        try:
            self._request_sync("DELETE", f"/api/sessions/{session_id}")
        except RemoteError as exc:
            if exc.status == 404:
                return False
            raise
        self.unwatch(session_id)
        return True

    async def adelete_session(self, session_id: str) -> bool:
        """Delete a session. False if it does not exist."""
        try:
            await self._request("DELETE", f"/api/sessions/{session_id}")
        except RemoteError as exc:
            if exc.status == 404:
                return False
            raise
        self.unwatch(session_id)
        return True


def _search_hit(data: dict[str, Any]) -> SearchHit:
    """A search hit as the server sends it (plain snippet, highlight offsets), with the
    matched words marked again as the store marks them."""
    from workbench.store import SNIPPET_END, SNIPPET_START, SearchHit

    plain: str = data["snippet"]
    marked, at = "", 0
    for start, end in data.get("highlights", []):
        marked += plain[at:start] + SNIPPET_START + plain[start:end] + SNIPPET_END
        at = end
    return SearchHit(
        session_id=data["session_id"],
        title=data["title"],
        workspace=data["workspace"],
        updated_at=data["updated_at"],
        seq=data["seq"],
        type=data["type"],
        snippet=marked + plain[at:],
        matches=data["matches"],
    )


def _rules(found: list[dict[str, Any]]) -> list[Rule]:
    """Saved rules as ``GET /api/rules`` lists them."""
    from workbench.approvals import Rule

    return [
        Rule(
            tool=r["tool"],
            pattern=r["pattern"],
            decision=r["decision"],
            scope="always" if r["scope"] == "always" else "workspace",
            id=r["id"],
            note=r["note"],
        )
        for r in found
    ]


def _events(body: bytes) -> list[Event]:
    return [parse_event(item) for item in json.loads(body)]


def _sessions_query(limit: int, offset: int, workspace: str | None) -> dict[str, Any]:
    """The query of ``GET /api/sessions`` (the server filters by workspace folder)."""
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if workspace is not None:
        params["workspace"] = workspace
    return params
