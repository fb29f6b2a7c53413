"""The engine: loads a workspace, starts runs, persists and fans out their events.

Every face drives this one object: the CLI (``workbench run``), the TUI and the server. It
owns the store, the approval broker and the toolkits, and it is the :class:`Services` that
runs publish through: an event is appended to the store (getting its ``seq``) before any
subscriber sees it, so what a face shows is always what the log holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from workbench.events import (
    TERMINAL_TYPES,
    Event,
    EventBase,
    TargetKind,
    parse_event,
)
from workbench.runtime import (
    RUN_FENCE,
    RunContext,
    RunError,
    RunFence,
    RunHandle,
    RunOutcome,
    child_checkpoint,
    new_run_id,
    run_lifecycle,
)

if TYPE_CHECKING:
    from workbench.agent import Agent, Unavailable
    from workbench.approvals import ApprovalBroker, ApprovalPolicy, Resolution, Rule
    from workbench.models import Recording
    from workbench.store import Claim, RunInfo, SearchHit, SessionInfo, Store
    from workbench.tools import Tool, Toolkit, ToolkitStatus
    from workbench.workspace import AgentConfig, Workspace

__all__ = ["Engine", "MemoryServices", "ResolvedTools", "RunHandle", "Target"]

log = logging.getLogger("workbench.engine")

Listener = Callable[[Event], None]


class Target(Protocol):
    """Anything a run can run: an agent, a team, a workflow."""

    async def execute(
        self, ctx: RunContext, input: str, history: Sequence[dict[str, Any]] = ()
    ) -> RunOutcome:
        """Do the run's work inside its lifecycle."""
        ...


@dataclass
class ResolvedTools:
    """An agent's ``tools:`` list as the toolkits that loaded allow."""

    tools: list[Tool]
    """The tools, in order."""
    unavailable: list[Unavailable]
    """Toolkits that could not be loaded (not ``required``): the agent runs without them."""
    instructions: list[tuple[str, str]]
    """``(server, text)``: the instructions of the MCP servers it uses."""


class _Fanout:
    """Listeners of published events (sync callbacks; queues are wrapped in one)."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    def add(self, fn: Listener) -> Callable[[], None]:
        self.listeners.append(fn)
        return lambda: self.listeners.remove(fn) if fn in self.listeners else None

    def send(self, event: Event) -> None:
        for fn in list(self.listeners):
            try:
                fn(event)
            except Exception:  # a broken listener must not break the run
                log.exception("event listener failed")


class MemoryServices:
    """Services for a stand-alone :meth:`Agent.run`: events in memory, every tool allowed."""

    def __init__(self, root: Path, sink: Listener | None = None) -> None:
        from workbench.approvals import ApprovalBroker, ApprovalPolicy

        self.root = root
        self.broker: ApprovalBroker = ApprovalBroker()
        self.policy: ApprovalPolicy = ApprovalPolicy(default="allow")
        self.session_id = "s_local"
        self._seq = 0
        self._fanout = _Fanout()
        if sink is not None:
            self._fanout.add(sink)

    def add_listener(self, fn: Listener) -> Callable[[], None]:
        return self._fanout.add(fn)

    async def publish(self, event: EventBase, *, durable: bool = False) -> Event:
        self._seq += 1
        ev = parse_event(event.model_dump()).model_copy(update={"seq": self._seq})
        self._fanout.send(ev)
        return ev

    def saved_rules(self, session_id: str) -> list[Rule]:
        return self.broker.session_rules(session_id)

    def save_rules(self, session_id: str, rules: Sequence[Rule], scope: str) -> None:
        self.broker.add_session_rules(session_id, list(rules))


class Engine:
    """Runs a workspace's agents, teams and workflows and keeps every event.

    Create with :meth:`open`; close with :meth:`aclose` (or ``async with``).

    The engine holds a lease in the store (:meth:`Store.hold_lease
    <workbench.store.Store.hold_lease>`): its runs are alive for every other process that
    shares the database while its heartbeat goes on, and resuming one of them elsewhere is
    refused. Should the lease be lost (another process declared this one dead), its runs
    stop here without writing anything more.

    Args:
        workspace: The loaded workspace.
        store: The store (the engine closes it).
        kind: What this process is, for other processes' messages (``serve``, ``run``,
            ``tui``).
        lease_s: The lease in seconds (default ``$WORKBENCH_LEASE``, else 10).
    """

    def __init__(
        self,
        workspace: Workspace,
        store: Store,
        *,
        kind: str = "engine",
        lease_s: float | None = None,
    ) -> None:
        from workbench.approvals import ApprovalBroker

        self.workspace = workspace
        self.store = store
        self.root = workspace.root
        self.broker: ApprovalBroker = ApprovalBroker()
        self.policy: ApprovalPolicy = _policy(workspace)
        self._fanout = _Fanout()
        self._tasks: dict[str, asyncio.Task[RunOutcome]] = {}
        self._fences: dict[str, RunFence] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._toolkits: dict[str, Toolkit] = {}
        self._toolkit_lock = asyncio.Lock()
        self._toolkit_failures: dict[str, str] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._retired: list[Toolkit] = []
        self._status_listeners: list[Callable[[ToolkitStatus], None]] = []
        self._agents: dict[tuple[str, str | None], Agent] = {}
        self._started: dict[str, str] = {}  # run id -> session, every run this engine started
        self._interrupting = False
        self.model_override: str | None = None
        store.default_workspace = str(self.root)
        store.hold_lease(kind, str(self.root), lease_s)
        self._unlease = store.on_lease_lost(self._lease_lost)

    def reload(self, workspace: Workspace) -> None:
        """Use a changed workspace for new runs; runs in flight finish on the agents they
        already built. The approval policy follows the file. A toolkit or MCP server whose
        settings changed (or that is gone) is closed and opened again, from the new
        settings, when next used (a server whose command was fixed starts again)."""
        old = self.workspace
        self.workspace = workspace
        self.policy = _policy(workspace)
        self._agents.clear()

        def changed(name: str) -> bool:
            if name in old.mcp or name in workspace.mcp:
                return old.mcp.get(name) != workspace.mcp.get(name)
            return old.toolkits.get(name) != workspace.toolkits.get(name)

        for name in [n for n in self._toolkit_failures if changed(n)]:
            del self._toolkit_failures[name]
        for name in [n for n in self._toolkits if changed(n)]:
            # Runs in flight may still call it: it is closed once none is.
            self._retired.append(self._toolkits.pop(name))
        self._close_retired()

    def _close_retired(self) -> None:
        """Close retired toolkits once no run is in flight (in the background)."""
        if not self._retired or self.running():
            return
        retired, self._retired = self._retired, []
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: nothing was started in one either
            return
        for tk in retired:
            task = loop.create_task(tk.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def warm_up(self, *, litellm: bool = True) -> bool:
        """Start in the background what the workspace's first runs would wait for: the
        price map (in a thread), litellm when one of its models needs it (in another; not
        with ``litellm=False``: the TUI imports it for the chosen target only, saying so),
        and every MCP server, concurrently (when called from a running event loop). The one
        warm-up path of ``serve`` and the TUI. Returns whether litellm is being imported."""
        from workbench.models import warm_up

        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop to start the servers in: the first run starts them
            pass
        else:
            self.warm_toolkits()
        if not litellm:
            return warm_up(())
        ws = self.workspace
        targets = [
            *(("agent", n) for n in ws.agents),
            *(("team", n) for n in ws.teams),
            *(("workflow", n) for n in ws.workflows),
        ]
        models = [ws.resolve_model(self.model_override)] if self.model_override else []
        models += [spec for kind, name in targets for spec in ws.target_models(kind, name)]
        return warm_up((spec.model, spec.params) for spec in models)

    @classmethod
    def open(
        cls,
        root: Path | str | None = None,
        db: str | None = None,
        *,
        workspace: Workspace | None = None,
        store: Store | None = None,
        kind: str = "engine",
        lease_s: float | None = None,
    ) -> Engine:
        """Load the workspace and the store (raises WorkspaceError for bad config); runs
        whose process died are marked interrupted. ``kind`` and ``lease_s``: see
        :class:`Engine`."""
        from workbench.registry import available_toolkits
        from workbench.store import Store
        from workbench.workspace import load_workspace

        ws = workspace or load_workspace(root, known_toolkits=set(available_toolkits()) | {"mcp"})
        st = store or Store.open(db)
        try:
            st.mark_interrupted()
            return cls(ws, st, kind=kind, lease_s=lease_s)
        except BaseException:
            if store is None:
                st.close()
            raise

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel runs in flight, close toolkits and the store."""
        for task in list(self._tasks.values()):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for agent in self._agents.values():
            await agent.model.aclose()
        self._agents.clear()
        for tk in [*self._toolkits.values(), *self._retired]:
            try:
                await tk.aclose()
            except Exception:
                log.exception("closing toolkit %s", tk.name)
        self._toolkits.clear()
        self._retired.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self._unlease()
        self.store.close()

    async def interrupt(self) -> list[str]:
        """Stop every run in flight without ending it, then close: no ``run.cancelled`` is
        written, every run (children too) is marked ``interrupted``, and :meth:`resume`
        continues each top-level one from its last checkpoint, a pending approval offered
        again (what quitting the TUI with a run in flight does, when the person agrees).

        Returns:
            The ids of the top-level runs that were in flight.
        """
        top = self.running()
        self._interrupting = True
        for task in list(self._tasks.values()):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        # What was appended before the stop is written first (a run.started among it must
        # not set a run back to running after it is marked).
        await asyncio.to_thread(self.store.flush)
        await asyncio.to_thread(self.store.interrupt_runs, list(self._started))
        self._started.clear()
        await self.aclose()
        return top

    # -- Services ----------------------------------------------------------------------

    async def publish(self, event: EventBase, *, durable: bool = False) -> Event:
        """Append ``event`` to the log; subscribers get it once it is committed, with its seq.

        A run does not wait for the disk (the writer thread commits in groups, within
        milliseconds), except for ``durable=True`` events: a run's terminal event waits, so
        when a run returns its whole log is stored.
        """
        if self._interrupting:
            # Stopping without ending (interrupt): nothing more is written, as if this
            # process had died here; the runs resume from what the log holds.
            return event  # type: ignore[return-value]
        if event.type == "run.started":
            self._started[event.run_id] = event.session_id
        elif event.type in TERMINAL_TYPES:
            self._started.pop(event.run_id, None)
        if not durable:
            self.store.append_nowait(event, self._stored)
            return event  # type: ignore[return-value]
        # Through the same queue and callback, so subscribers still see events in seq order.
        done: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

        def settle(stored: EventBase | None, error: BaseException | None) -> None:
            self._stored(stored, error)
            if done.done():
                return
            if error is not None or stored is None:
                done.set_exception(error or RuntimeError("event not stored"))
            else:
                done.set_result(stored)  # type: ignore[arg-type]

        self.store.append_nowait(event, settle)
        return await done

    def _stored(self, stored: EventBase | None, error: BaseException | None) -> None:
        if error is not None or stored is None:
            log.error("event not stored: %s", error)
            return
        self._fanout.send(stored)  # type: ignore[arg-type]

    def saved_rules(self, session_id: str) -> list[Rule]:
        """The rules in force for a session: its session rules, then the rules saved in the
        store for this workspace (and every ``always`` rule).

        The store is read on every call, not cached: a rule removed by ``workbench rules rm``,
        by another process or over the server stops applying at the next tool call.
        """
        from workbench.approvals import Rule

        saved = [
            Rule(
                tool=r.tool,
                pattern=r.pattern,
                decision=r.decision,
                scope="always" if r.scope == "always" else "workspace",
                id=r.id,
                note=r.note,
            )
            for r in self.store.list_rules(str(self.root))
        ]
        return self.broker.session_rules(session_id) + saved

    def save_rules(self, session_id: str, rules: Sequence[Rule], scope: str) -> None:
        if scope == "session":
            self.broker.add_session_rules(session_id, list(rules))
            return
        for r in rules:
            if r.decision == "ask":
                continue  # a person's decision is allow or deny; ask is the absence of one
            self.store.add_rule(
                scope="always" if scope == "always" else "workspace",
                workspace=str(self.root),
                tool=r.tool,
                pattern=r.pattern,
                decision=r.decision,
                note=r.note,
            )

    def remove_rule(self, rule: Rule, session_id: str = "") -> bool:
        """Remove a rule in force: a session rule from this process, a saved one from the
        store (by its id). False when it was not there (removed meanwhile)."""
        if rule.scope == "session":
            return self.broker.remove_session_rule(session_id, rule)
        return rule.id is not None and self.store.delete_rule(rule.id)

    # -- subscriptions -----------------------------------------------------------------

    def add_listener(self, fn: Listener) -> Callable[[], None]:
        """Call ``fn`` with every published event; returns a function that removes it."""
        return self._fanout.add(fn)

    async def subscribe(self, session_id: str | None = None) -> AsyncIterator[Event]:
        """Live events (of one session, or all), from now on."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        remove = self.add_listener(
            lambda e: queue.put_nowait(e) if session_id in (None, e.session_id) else None
        )
        try:
            while True:
                yield await queue.get()
        finally:
            remove()

    # -- targets -----------------------------------------------------------------------

    def target_kind(self, name: str) -> TargetKind:
        """Whether ``name`` is an agent, a team or a workflow (RunError if none)."""
        kind = self.workspace.target_kind(name)
        if kind is None:
            names = ", ".join(self.catalogue_names()) or "none"
            raise RunError(
                f"no agent, team or workflow named '{name}'", hint=f"the workspace has: {names}"
            )
        return kind

    def catalogue_names(self) -> list[str]:
        """Every runnable name."""
        ws = self.workspace
        return [*ws.agents, *ws.teams, *ws.workflows]

    async def toolkit(self, name: str) -> Toolkit:
        """The toolkit ``name`` (an MCP server or a plugin), loaded on first use.

        Raises:
            PluginError: the plugin cannot be imported (what to install), or bad settings.
        """
        async with self._toolkit_lock:
            return self._toolkit_now(name)

    def _toolkit_now(self, name: str) -> Toolkit:
        tk = self._toolkits.get(name)
        if tk is None:
            from workbench.registry import PluginError, load_toolkit

            try:
                if name in self.workspace.mcp:
                    cfg = self.workspace.mcp[name].model_dump()
                    tk = load_toolkit("mcp", cfg, self.root, name=name)
                    tk.on_status = self._toolkit_changed  # type: ignore[attr-defined]
                else:
                    tk = load_toolkit(name, dict(self.workspace.toolkits.get(name, {})), self.root)
            except PluginError as exc:
                self._toolkit_failures[name] = str(exc)
                raise
            self._toolkit_failures.pop(name, None)
            self._toolkits[name] = tk
        return tk

    # -- toolkit status ----------------------------------------------------------------

    def warm_toolkits(self, names: Sequence[str] | None = None) -> None:
        """Start MCP servers in the background, concurrently (all configured ones, or
        ``names``); returns at once. Their progress shows in :meth:`toolkit_statuses`."""
        for name in self.workspace.mcp if names is None else names:
            if name not in self.workspace.mcp:
                continue
            try:
                tk = self._toolkit_now(name)
            except Exception as exc:
                log.warning("MCP server %s: %s", name, exc)
                continue
            start = getattr(tk, "start", None)
            if start is not None:
                start()

    def toolkit_statuses(self) -> list[ToolkitStatus]:
        """Where every toolkit the workspace can use stands: each MCP server (idle until
        started), each installed plugin (ready once loaded, failed with what to install)."""
        from workbench.registry import available_toolkits
        from workbench.tools import ToolkitStatus

        out: list[ToolkitStatus] = []
        for name, server in self.workspace.mcp.items():
            tk = self._toolkits.get(name)
            status = getattr(tk, "status", None)
            if isinstance(status, ToolkitStatus):
                out.append(status)
                continue
            target = server.url or " ".join([server.command or "", *server.args]).strip()
            error = self._toolkit_failures.get(name)
            out.append(
                ToolkitStatus(
                    name=name,
                    kind="mcp",
                    state="failed" if error else "idle",
                    detail=target,
                    error=error,
                    required=server.required,
                )
            )
        for name, ep in available_toolkits().items():
            if name == "mcp" or name in self.workspace.mcp:
                continue
            tk = self._toolkits.get(name)
            error = self._toolkit_failures.get(name)
            tools = [t.name for t in getattr(tk, "_tools", None) or []]
            out.append(
                ToolkitStatus(
                    name=name,
                    kind="plugin",
                    state="failed" if error else ("ready" if tk is not None else "idle"),
                    detail=ep.value,
                    error=error,
                    tools=tools,
                )
            )
        return out

    def add_toolkit_listener(self, fn: Callable[[ToolkitStatus], None]) -> Callable[[], None]:
        """Call ``fn`` with a toolkit's new status whenever an MCP server starts, becomes
        ready or fails; returns a function that removes it."""
        self._status_listeners.append(fn)
        return lambda: self._status_listeners.remove(fn) if fn in self._status_listeners else None

    def _toolkit_changed(self, status: ToolkitStatus) -> None:
        for fn in list(self._status_listeners):
            try:
                fn(status)
            except Exception:
                log.exception("toolkit status listener failed")

    async def mcp_server(self, name: str) -> Any:
        """The MCP toolkit of server ``name`` (its resources, prompts, restart).

        Raises:
            KeyError: no such server.
        """
        if name not in self.workspace.mcp:
            raise KeyError(name)
        return await self.toolkit(name)

    # -- tool lists --------------------------------------------------------------------

    async def tools_for(self, patterns: Sequence[str]) -> list[Tool]:
        """Resolve a tool list (``toolkit.tool``, globs, ``module:function``).

        Raises:
            PluginError, ToolError: a toolkit it needs could not be loaded, or a pattern
                matches nothing.
        """
        resolved = await self.resolve_tools(patterns)
        if resolved.unavailable:
            from workbench.tools import ToolError

            raise ToolError(resolved.unavailable[0].error)
        return resolved.tools

    async def resolve_tools(self, patterns: Sequence[str]) -> ResolvedTools:
        """Resolve an agent's tool list with the toolkits that load.

        Its toolkits are loaded concurrently, and only those it names: an agent waits for
        its own MCP servers, not for the others. A toolkit that fails (an MCP server that
        cannot start, a plugin whose package is missing) is left out and reported in
        :attr:`ResolvedTools.unavailable`, unless it is an MCP server marked ``required``.

        Raises:
            PluginError: a ``module:function`` tool cannot be loaded (naming the file, the
                function and the parameter), or a pattern matches nothing.
            RunError: a ``required`` MCP server failed.
        """
        from workbench.agent import Unavailable
        from workbench.registry import PluginError, load_module_tool, resolve_tools
        from workbench.tools import ToolError

        tools: list[Tool] = []
        kit_patterns: list[str] = []
        for p in patterns:
            if ":" in p and "." not in p.split(":", 1)[0]:
                tools.append(load_module_tool(self.root, p))
            else:
                kit_patterns.append(p)
        unavailable: list[Unavailable] = []
        instructions: list[tuple[str, str]] = []
        if kit_patterns:
            needed = list(dict.fromkeys(p.split(".", 1)[0] for p in kit_patterns))

            async def load(name: str) -> Toolkit:
                tk = await self.toolkit(name)
                await tk.list_tools()  # starts an MCP server (or waits for its warm-up)
                return tk

            loaded = await asyncio.gather(*(load(n) for n in needed), return_exceptions=True)
            kits: dict[str, Toolkit] = {}
            for name, got in zip(needed, loaded, strict=True):
                if isinstance(got, BaseException):
                    if not isinstance(got, ToolError | PluginError):
                        raise got
                    server = self.workspace.mcp.get(name)
                    if server is not None and server.required:
                        raise RunError(
                            str(got),
                            hint=f"the MCP server '{name}' is marked required: agents that use "
                            "it do not run without it",
                        ) from got
                    if server is None and name not in self._toolkit_failures:
                        raise got  # bad plugin settings: a config error, not an outage
                    mine = tuple(p for p in kit_patterns if p.split(".", 1)[0] == name)
                    unavailable.append(Unavailable(name, mine, str(got)))
                    continue
                kits[name] = got
                text = getattr(got, "instructions", None)
                if isinstance(text, str) and text.strip():
                    instructions.append((name, text))
            usable = [p for p in kit_patterns if p.split(".", 1)[0] in kits]
            if usable:
                tools.extend(await resolve_tools(usable, kits, self.root))
        return ResolvedTools(tools, unavailable, instructions)

    def module_tool_specs(self) -> list[str]:
        """Every ``module:function`` tool the workspace's agents (and inline team leaders)
        list, in order, once each."""
        from workbench.workspace import AgentConfig

        configs: list[AgentConfig] = list(self.workspace.agents.values())
        configs += [
            t.leader for t in self.workspace.teams.values() if isinstance(t.leader, AgentConfig)
        ]
        specs = [
            p.strip()
            for cfg in configs
            for p in cfg.tools
            if ":" in p and "." not in p.split(":", 1)[0]
        ]
        return list(dict.fromkeys(specs))

    async def catalogue_tools(
        self, wait: float | None = None
    ) -> tuple[list[Tool], list[ToolkitStatus], dict[str, str]]:
        """What ``workbench tools`` and ``GET /api/tools`` show: every tool (plugins, MCP
        servers, the workspace's ``module:function`` tools), where each toolkit stands, and
        the ``module:function`` tools that fail to load, with why.

        Args:
            wait: Seconds to wait for servers that are starting (``None``: until each has
                started or failed).
        """
        from workbench.registry import PluginError, load_module_tool

        tools = await self.all_tools(wait=wait)
        broken: dict[str, str] = {}
        for spec in self.module_tool_specs():
            try:
                tools.append(load_module_tool(self.root, spec))
            except PluginError as exc:
                broken[spec] = str(exc)
        return tools, self.toolkit_statuses(), broken

    async def all_tools(self, wait: float | None = None) -> list[Tool]:
        """Every tool the workspace can use (for ``workbench tools``): every toolkit is
        started concurrently; those that fail, or are still starting after ``wait``
        seconds, are left out (see :meth:`toolkit_statuses` for why)."""
        from workbench.registry import available_toolkits

        # "mcp" is the adapter each server under mcp: is loaded with, not a toolkit itself
        # (alone it has no server: every listing logged "toolkit mcp unavailable").
        names = [n for n in available_toolkits() if n != "mcp"] + list(self.workspace.mcp)
        self.warm_toolkits()

        async def one(name: str) -> list[Tool]:
            try:
                return await (await self.toolkit(name)).list_tools()
            except Exception as exc:
                log.warning("toolkit %s unavailable: %s", name, exc)
                return []

        tasks = [asyncio.ensure_future(one(n)) for n in names]
        if tasks:
            await asyncio.wait(tasks, timeout=wait)
        out: list[Tool] = []
        for t in tasks:
            if t.done():
                out.extend(t.result())
            else:
                t.cancel()
        return out

    async def build_agent(self, name: str, model: str | None = None) -> Agent:
        """The agent ``name`` with its model and tools (built once; agents keep no run state)."""
        key = (name, model or self.model_override)
        agent = self._agents.get(key)
        if agent is None:
            agent = await self._make_agent(name, model)
            # An agent missing a toolkit is built again next time: the server may be up.
            if not agent.unavailable:
                self._agents[key] = agent
        return agent

    async def _make_agent(self, name: str, model: str | None) -> Agent:
        return await self.agent_from_config(name, self.workspace.agents[name], model)

    async def agent_from_config(
        self, name: str, cfg: AgentConfig, model: str | None = None
    ) -> Agent:
        """An agent from an agent table (a workspace agent, or a team's inline leader)."""
        from workbench.agent import Agent
        from workbench.models import make_model

        spec = self.workspace.resolve_model(model or self.model_override or cfg.model)
        params = dict(spec.params)
        if cfg.temperature is not None:
            params["temperature"] = cfg.temperature
        from workbench.registry import PluginError

        try:
            resolved = await self.resolve_tools(cfg.tools)
        except PluginError as exc:
            raise RunError(str(exc), hint=f"fix the tools: list of the agent '{name}'") from exc
        return Agent(
            name=name,
            model=make_model(spec.model, params, context_window=spec.context_window),
            instructions=cfg.instructions,
            tools=resolved.tools,
            unavailable=resolved.unavailable,
            tool_instructions=resolved.instructions,
            max_tool_rounds=cfg.max_tool_rounds,
            output_schema=cfg.output_schema,
            context_window=cfg.context_window or spec.context_window,
            description=cfg.description,
            model_label=spec.model,
        )

    async def build_target(self, kind: TargetKind, name: str) -> Target:
        """The runnable object for a name."""
        if kind == "agent":
            return await self.build_agent(name)
        if kind == "team":
            from workbench.team import build_team

            return await build_team(self, name)
        from workbench.workflow import build_workflow

        return await build_workflow(self, name)

    def model_label(self, kind: TargetKind, name: str) -> str | None:
        """The configured model of an agent run (shown in ``run.started``)."""
        if kind != "agent":
            return None
        cfg = self.workspace.agents[name]
        return self.workspace.resolve_model(self.model_override or cfg.model).model

    # -- runs --------------------------------------------------------------------------

    def history(self, session_id: str) -> list[dict[str, Any]]:
        """The conversation so far in a session (the next run's history)."""
        from workbench.agent import history_from_events

        return history_from_events(self.store.events(session_id))

    async def run_child(
        self,
        parent: RunContext,
        kind: TargetKind,
        name: str,
        input: str,
        *,
        history: Sequence[dict[str, Any]] = (),
        run_id: str | None = None,
    ) -> RunOutcome:
        """Run an agent, team or workflow as a child of ``parent`` (a team member, a step).

        When ``run_id`` names a child that already ended in the log (a resumed parent), its
        recorded outcome is returned and nothing runs again.
        """
        prior: list[Event] = []
        if run_id is not None:
            recorded, prior, run_id = child_checkpoint(self.store, parent.session_id, run_id)
            if recorded is not None:
                return recorded
        ctx = parent.child(name, run_id=run_id, prior=prior)
        target: Target
        label: str | None = None
        if kind == "agent":
            agent = (await self.build_agent(name)).for_run(ctx, input)
            target, label = agent, agent.model_label
        else:
            target = await self.build_target(kind, name)
        return await run_lifecycle(
            ctx,
            kind,
            name,
            input,
            lambda c: target.execute(c, input, history),
            model=label,
            resumed=bool(prior),
        )

    async def start_run(
        self,
        target: str,
        input: str,
        *,
        session_id: str | None = None,
        kind: TargetKind | None = None,
        model: str | None = None,
        recording: Recording | None = None,
    ) -> RunHandle:
        """Start a top-level run in the background; returns at once with its ids.

        Args:
            target: The agent, team or workflow.
            input: The prompt or task.
            session_id: Continue this session (its conversation is the history).
            kind: What ``target`` is (looked up when None).
            model: A model name or litellm string instead of the agent's own.
            recording: Recorded model turns every agent of the run answers with instead of
                calling its model (``sessions rerun``).

        Raises:
            RunError: the target does not exist.
        """
        from workbench.store import new_id

        kind = kind or self.target_kind(target)
        # A new session's row is made by its first event (with this workspace); an existing
        # one gives its conversation so far as history.
        history = self.history(session_id) if session_id else []
        session_id = session_id or new_id("s")
        run_id = new_run_id()
        ctx = RunContext(
            self, session_id=session_id, run_id=run_id, source=target, recording=recording
        )

        async def body(c: RunContext) -> RunOutcome:
            tgt: Target
            if kind == "agent":
                tgt = (await self.build_agent(target, model)).for_run(c, input)
            else:
                tgt = await self.build_target(kind, target)
            return await tgt.execute(c, input, history)

        if recording is not None and kind == "agent":
            label: str | None = "replay"
        elif model and kind == "agent":
            label = self.workspace.resolve_model(model).model
        else:
            label = self.model_label(kind, target)
        return self._spawn(ctx, run_lifecycle(ctx, kind, target, input, body, model=label))

    async def resume(self, run_id: str) -> RunHandle:
        """Continue a run whose process died, from its last checkpoint.

        The run is claimed first (:meth:`Store.claim_run <workbench.store.Store.claim_run>`):
        of several processes resuming one run, exactly one gets it; a run whose process
        still holds its lease is refused.

        Raises:
            RunError: unknown run, a run that already ended, a child run, or a run alive in
                this or another process.
        """
        if run_id in self._tasks:
            raise RunError(f"run {run_id} is running in this process")
        claim = await asyncio.to_thread(self.store.claim_run, run_id)
        if not claim.won:
            raise _refusal(run_id, claim)
        try:
            return self._resume_claimed(run_id)
        except BaseException:
            await asyncio.to_thread(self.store.release_run, run_id)
            raise

    def _resume_claimed(self, run_id: str) -> RunHandle:
        info = self.store.get_run(run_id)
        assert info is not None
        events = self.store.events(info.session_id)
        prior = [e for e in events if e.run_id == run_id]
        started = next(e for e in prior if e.type == "run.started")
        history = self.history_before(events, started.seq)
        kind: TargetKind = info.target_kind  # type: ignore[assignment]
        ctx = RunContext(self, info.session_id, run_id, source=info.target, prior=prior)

        async def body(c: RunContext) -> RunOutcome:
            tgt = await self.build_target(kind, info.target)
            return await tgt.execute(c, info.input, history)

        return self._spawn(
            ctx,
            run_lifecycle(
                ctx,
                kind,
                info.target,
                info.input,
                body,
                model=getattr(started, "model", None),
                resumed=True,
            ),
        )

    def history_before(self, events: Sequence[Event], seq: int) -> list[dict[str, Any]]:
        """The session's conversation before the event ``seq``."""
        from workbench.agent import history_from_events

        return history_from_events([e for e in events if e.seq < seq])

    def _spawn(self, ctx: RunContext, coro: Any) -> RunHandle:
        self._loop = asyncio.get_running_loop()
        fence = RunFence(self.store.owner)
        context = contextvars.copy_context()
        context.run(RUN_FENCE.set, fence)  # the run tree's tasks inherit it
        task: asyncio.Task[RunOutcome] = asyncio.create_task(
            coro, name=f"run {ctx.run_id}", context=context
        )
        self._tasks[ctx.run_id] = task
        self._fences[ctx.run_id] = fence

        def ended(_: object) -> None:
            self._tasks.pop(ctx.run_id, None)
            self._fences.pop(ctx.run_id, None)
            self._close_retired()

        task.add_done_callback(ended)
        return RunHandle(ctx.run_id, ctx.session_id, task)

    def _lease_lost(self, old_owner: str) -> None:
        """From the store's heartbeat thread: the runs started under ``old_owner`` are not
        this process's any more. Stop them without a word."""
        loop = self._loop
        if loop is None:
            return

        def fence() -> None:
            for run_id, f in list(self._fences.items()):
                if f.owner == old_owner:
                    f.lost = True
                    task = self._tasks.get(run_id)
                    if task is not None:
                        task.cancel()
                    log.error("run %s stopped: this process lost its lease", run_id)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs
            loop.call_soon_threadsafe(fence)

    async def run(self, target: str, input: str, **kw: Any) -> RunOutcome:
        """Start a run and wait for its outcome."""
        handle = await self.start_run(target, input, **kw)
        return await handle.wait()

    def cancel(self, run_id: str) -> bool:
        """Cancel a run in flight and every child run (cooperative). False if not running."""
        task = self._tasks.get(run_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def end_interrupted(self, run_id: str, reason: str = "cancelled") -> bool:
        """Cancel a run whose process died, without running it again: claimed (so no other
        process resumes it meanwhile), then ``run.cancelled`` for it and each of its child
        runs that had not ended.

        Returns:
            False when the run cannot be claimed (it ended, or a live process runs it).
        """
        claim = await asyncio.to_thread(self.store.claim_run, run_id)
        if not claim.won or claim.run is None:
            return False
        runs = await asyncio.to_thread(self.store.list_runs, claim.run.session_id)
        children: dict[str | None, list[RunInfo]] = {}
        for r in runs:
            children.setdefault(r.parent_run_id, []).append(r)
        todo, ending = [claim.run], []
        while todo:
            r = todo.pop()
            if r.id == run_id or r.status in ("running", "waiting", "interrupted"):
                ending.append(r)
            todo.extend(children.get(r.id, []))
        from workbench.events import RunCancelled

        events = [
            RunCancelled(
                session_id=r.session_id,
                run_id=r.id,
                parent_run_id=r.parent_run_id,
                source=r.target,
                reason=reason,
            )
            for r in reversed(ending)  # children first, as a live cancel ends them
        ]
        await asyncio.to_thread(self.store.append_many, events)
        return True

    def running(self) -> list[str]:
        """Ids of top-level runs in flight in this process."""
        return [r for r, t in self._tasks.items() if not t.done()]

    # -- approvals ---------------------------------------------------------------------

    def resolve_approval(self, run_id: str, call_id: str, resolution: Resolution) -> bool:
        """Decide the pending tool call ``call_id`` of the run ``run_id`` (any face may).

        A call id is unique within its run only (models number them), so a decision always
        names the run too. False when that call is not waiting in this process.
        """
        return self.broker.resolve(run_id, call_id, resolution)

    # -- sessions ----------------------------------------------------------------------

    def sessions(
        self, limit: int = 50, offset: int = 0, *, workspace: str | None = None
    ) -> list[SessionInfo]:
        """Sessions, newest first (only those of the ``workspace`` folder, when given)."""
        return self.store.list_sessions(limit=limit, offset=offset, workspace=workspace)

    def session_events(self, session_id: str, after_seq: int = 0) -> list[Event]:
        """A session's stored events."""
        return self.store.events(session_id, after_seq=after_seq)

    def runs(self, session_id: str) -> list[RunInfo]:
        """A session's runs."""
        return self.store.list_runs(session_id)

    def delete_session(self, session_id: str) -> bool:
        """Delete a session and everything in it."""
        return self.store.delete_session(session_id)

    def search_sessions(
        self, query: str, limit: int = 50, *, prefix: bool = False
    ) -> list[SearchHit]:
        """Sessions whose messages or tool calls contain every word of ``query``, newest
        first, each with an excerpt (see :meth:`Store.search_sessions`)."""
        return self.store.search_sessions(query, limit=limit, prefix=prefix)

    def fork_session(
        self,
        session_id: str,
        *,
        at_seq: int | None = None,
        message_id: str | None = None,
        title: str | None = None,
    ) -> SessionInfo:
        """A new session with ``session_id``'s events up to ``at_seq`` (or the message
        ``message_id``); a run started in it continues from there (see
        :func:`workbench.sessions.fork_session`)."""
        from workbench.sessions import fork_session

        return fork_session(
            self.store, session_id, at_seq=at_seq, message_id=message_id, title=title
        )

    # -- the same, for faces that must not block their event loop ----------------------
    # (the TUI calls these: an attached one's engine answers over HTTP, a local one reads
    # its store in a thread)

    async def asessions(
        self, limit: int = 50, offset: int = 0, *, workspace: str | None = None
    ) -> list[SessionInfo]:
        """:meth:`sessions`, off the event loop."""
        return await asyncio.to_thread(self.sessions, limit, offset, workspace=workspace)

    async def asession_events(self, session_id: str, after_seq: int = 0) -> list[Event]:
        """:meth:`session_events`, off the event loop."""
        return await asyncio.to_thread(self.session_events, session_id, after_seq)

    async def aruns(self, session_id: str) -> list[RunInfo]:
        """:meth:`runs`, off the event loop."""
        return await asyncio.to_thread(self.runs, session_id)

    async def adelete_session(self, session_id: str) -> bool:
        """:meth:`delete_session`, off the event loop."""
        return await asyncio.to_thread(self.delete_session, session_id)

    async def asearch_sessions(
        self, query: str, limit: int = 50, *, prefix: bool = False
    ) -> list[SearchHit]:
        """:meth:`search_sessions`, off the event loop."""
        return await asyncio.to_thread(self.search_sessions, query, limit, prefix=prefix)

    async def afork_session(
        self,
        session_id: str,
        *,
        at_seq: int | None = None,
        message_id: str | None = None,
        title: str | None = None,
    ) -> SessionInfo:
        """:meth:`fork_session`, off the event loop."""
        return await asyncio.to_thread(
            self.fork_session, session_id, at_seq=at_seq, message_id=message_id, title=title
        )

    async def asaved_rules(self, session_id: str) -> list[Rule]:
        """:meth:`saved_rules`, off the event loop."""
        return await asyncio.to_thread(self.saved_rules, session_id)

    async def aremove_rule(self, rule: Rule, session_id: str = "") -> bool:
        """:meth:`remove_rule`, off the event loop."""
        return await asyncio.to_thread(self.remove_rule, rule, session_id)


def _refusal(run_id: str, claim: Claim) -> RunError:
    """Why a run cannot be resumed, as the error the faces show."""
    if claim.reason == "missing":
        return RunError(f"no run with id '{run_id}'", hint="see 'workbench sessions show SESSION'")
    if claim.reason == "child" and claim.run is not None:
        parent = claim.run.parent_run_id
        return RunError(
            claim.explain(), hint=f"resume the top-level run: workbench run --resume {parent}"
        )
    if claim.reason == "alive":
        lease = f"{claim.holder.lease_s:g} s" if claim.holder is not None else "its lease"
        return RunError(
            claim.explain(),
            hint="cancel it there or let it finish; if that process is gone, the run can be "
            f"resumed once its lease runs out (within {lease})",
        )
    return RunError(claim.explain())


def _policy(workspace: Workspace) -> ApprovalPolicy:
    """The approval policy of a workspace's ``approvals:`` section."""
    from workbench.approvals import ApprovalPolicy

    a = workspace.approvals
    return ApprovalPolicy(
        default=a.default, allow=list(a.allow), ask=list(a.ask), deny=list(a.deny)
    )
