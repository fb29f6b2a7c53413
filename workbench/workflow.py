"""Workflows: steps, conditions, loops, parallel blocks and routers, freely nested.

A :class:`Workflow` is a list of nodes run in order. The primitives:

:class:`Step`
    Runs an agent, a team or another workflow (each as a child run of the workflow's run,
    with its own transcript), or calls a Python function ``module:function`` from a ``.py``
    file in the workspace folder (sync or async; it receives a :class:`StepContext` and
    returns a ``str`` or a dict with ``output`` and optional ``state`` updates).
:class:`Condition`
    Runs ``then`` when its condition holds, else ``else_``.
:class:`Loop`
    Runs its body until ``until`` holds, at most ``max_iterations`` times (required).
:class:`Parallel`
    Runs its branches concurrently, each on its own copy of the state.
:class:`Router`
    A function or an agent picks one of named routes, which then runs.

Data flow: a step's input is its ``input`` template when it has one, which may use
``{input}`` (the workflow's input), ``{steps.NAME.output}`` and ``{state.KEY}``; without
one it is the previous node's output (the workflow's input for the first node). The state
is a JSON mapping that function steps update and ``output_key`` writes to. Conditions are
expressions of :func:`workbench.workspace.compile_expression` (``steps.review.output
contains 'OK' and iteration < 3``) or ``module:function`` predicates.

Parallel branches each work on a copy of the state. The merge keeps every branch's outputs
(``steps.NAME`` for each, and a Parallel output that lists them in definition order). When
two branches write different values to one key, a ``workflow.conflict`` event carries both
and the merged state keeps the value of the branch that comes first in the definition: the
result never depends on which branch finished first, and no conflict passes silently.

Step paths
----------
Every node has a path, used by the ``workflow.step.*`` events and by :meth:`Workflow.graph`:

- a node in a list is named by its name (a step, loop or router, or a named condition or
  parallel block): ``gather``; an unnamed condition is ``condN`` and an unnamed parallel
  block ``parallelN``, N counting such nodes from 1 within the same list;
- a child's path is its parent's path, ``/``, then: ``then/`` or ``else/`` and the child's
  name for a condition (``cond1/then/retry``); the child's name for a parallel block
  (``fanout/a``); the route name and the child's name for a router
  (``triage/billing/answer``);
- a loop body's nodes carry the iteration, from 1, on the loop's segment in events:
  ``polish#2/edit``. The graph uses the un-iterated form, ``polish/edit``
  (:func:`graph_path` maps one to the other).

Paths never change between runs of one definition, so they are also the checkpoints of a
durable run: a resumed workflow (``ctx.prior`` holds its earlier events) skips every node
with a ``workflow.step.completed`` in the log, taking its recorded output and state, and
asks :meth:`Engine.run_child <workbench.engine.Engine.run_child>` for the child run of an
interrupted step under the same id (derived from the path by
:func:`~workbench.team.child_run_id`), which returns a completed child's outcome or resumes
it from its own events, an approval it was waiting for included.

A step that fails fails the workflow: the run fails with the step's path and error.

Workflows come from ``workbench.yaml`` (:meth:`Workflow.from_config`, used by
:func:`build_workflow`) or from Python, and both give equal objects::

    Workflow("brief", steps=[
        Step("gather", agent="researcher"),
        Condition("steps.gather.output contains 'TODO'", then=[Step("retry", agent="researcher")]),
        Parallel([Step("a", agent="writer"), Step("b", team="desk")]),
    ])
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from workbench.events import (
    Event,
    StepKind,
    Usage,
    WorkflowConflict,
    WorkflowStepCompleted,
    WorkflowStepStarted,
)
from workbench.runtime import RunContext, RunError, RunOutcome, new_run_id, run_lifecycle
from workbench.team import child_run_id, record_answer, record_input, run_concurrently
from workbench.workspace import ExpressionError, compile_expression, is_function_ref

if TYPE_CHECKING:
    from workbench.engine import Engine
    from workbench.workspace import Node as NodeConfig
    from workbench.workspace import WorkflowConfig

__all__ = [
    "Condition",
    "GraphEdge",
    "GraphNode",
    "Loop",
    "Node",
    "Parallel",
    "Predicate",
    "RouteFunction",
    "Router",
    "Step",
    "StepContext",
    "StepFunction",
    "Workflow",
    "WorkflowGraph",
    "build_workflow",
    "graph_path",
]

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ROUTE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_ITERATION_RE = re.compile(r"#\d+(?=/|$)")
_TEMPLATE_RE = re.compile(
    r"\{(?:(input)|steps\.([A-Za-z_][A-Za-z0-9_]*)\.output|state\.([A-Za-z0-9_][A-Za-z0-9_.-]*))\}"
)


@dataclass
class StepContext:
    """What a function step, a predicate or a routing function is given."""

    input: str
    """The node's input: its template rendered, or the previous node's output."""
    workflow_input: str
    """The workflow's own input."""
    steps: dict[str, str]
    """Outputs of the nodes run so far, by name (a copy)."""
    state: dict[str, Any]
    """The workflow state (a deep copy: return ``{"state": {...}}`` to change it)."""
    path: str
    """The node's path, as in events."""
    iteration: int | None = None
    """The innermost loop's iteration (from 1), inside a loop body."""
    root: Path = field(default_factory=Path.cwd)
    """The workspace folder."""


StepFunction: TypeAlias = Callable[
    [StepContext], str | dict[str, Any] | Awaitable[str | dict[str, Any]]
]
"""A function step: returns the output, or ``{"output": ..., "state": {...updates}}``."""
Predicate: TypeAlias = Callable[[StepContext], bool | Awaitable[bool]]
"""A condition or loop end written in Python."""
RouteFunction: TypeAlias = Callable[[StepContext], str | Awaitable[str]]
"""A router written in Python: returns a route name."""


# -- the primitives -----------------------------------------------------------------------


@dataclass
class Step:
    """Run an agent, a team, a workflow or a function. Give exactly one of them."""

    name: str
    """Unique in the workflow; ``{steps.NAME.output}`` and ``steps.NAME.output`` read it."""
    agent: str | None = None
    """An agent of the workspace."""
    team: str | None = None
    """A team of the workspace."""
    workflow: str | None = None
    """A workflow of the workspace, run as one step."""
    function: str | StepFunction | None = None
    """``module:function`` from the workspace folder, or a Python callable."""
    input: str | None = None
    """A template for the input; ``None`` means the previous node's output."""
    output_key: str | None = None
    """A state key the output is stored under."""

    def __post_init__(self) -> None:
        _check_name(self.name, "step")
        given = [k for k in ("agent", "team", "workflow", "function") if getattr(self, k)]
        if len(given) != 1:
            found = " and ".join(given) or "none"
            raise ValueError(
                f"step {self.name!r} needs exactly one of agent, team, workflow, function; "
                f"found {found}"
            )

    @property
    def kind(self) -> StepKind:
        """``function`` for a function step, else ``step``."""
        return "function" if self.function is not None else "step"

    @property
    def target(self) -> str:
        """What it runs, in words (``agent researcher``)."""
        if self.function is not None:
            return f"function {_callable_name(self.function)}"
        for k in ("agent", "team", "workflow"):
            value = getattr(self, k)
            if value:
                return f"{k} {value}"
        return ""  # pragma: no cover - __post_init__ requires a target


@dataclass
class Condition:
    """Run ``then`` when ``condition`` holds, else ``else_``."""

    condition: str | Predicate
    """An expression, a ``module:function`` or a Python predicate."""
    then: list[Node]
    """Nodes run when it holds."""
    else_: list[Node] = field(default_factory=list)
    """Nodes run when it does not (``else:`` in the file)."""
    name: str | None = None
    """An optional name (else the path says ``condN``)."""

    def __post_init__(self) -> None:
        if self.name is not None:
            _check_name(self.name, "condition")
        _check_predicate(self.condition)
        if not self.then:
            raise ValueError("a Condition needs at least one node in 'then'")

    @property
    def kind(self) -> StepKind:
        """``condition``."""
        return "condition"


@dataclass
class Loop:
    """Run ``body`` until ``until`` holds, at most ``max_iterations`` times."""

    name: str
    """The loop's name."""
    body: list[Node]
    """The nodes of one iteration."""
    until: str | Predicate | None = None
    """Checked after each iteration (``iteration`` counts from 1); the loop ends when it
    holds. ``None`` runs all ``max_iterations``."""
    max_iterations: int = 0
    """The bound, required: a loop without one could run forever."""

    def __post_init__(self) -> None:
        _check_name(self.name, "loop")
        if not self.body:
            raise ValueError(f"loop {self.name!r} needs at least one node in its body")
        if (
            isinstance(self.max_iterations, bool)
            or not isinstance(self.max_iterations, int)
            or self.max_iterations < 1
        ):
            raise ValueError(
                f"loop {self.name!r} needs max_iterations of at least 1: a loop without a "
                "bound could run forever"
            )
        if self.until is not None:
            _check_predicate(self.until)

    @property
    def kind(self) -> StepKind:
        """``loop``."""
        return "loop"


@dataclass
class Parallel:
    """Run ``branches`` concurrently, each on its own copy of the state."""

    branches: list[Node]
    """One node per branch."""
    name: str | None = None
    """An optional name (else the path says ``parallelN``)."""

    def __post_init__(self) -> None:
        if self.name is not None:
            _check_name(self.name, "parallel block")
        if not self.branches:
            raise ValueError("a Parallel needs at least one branch")

    @property
    def kind(self) -> StepKind:
        """``parallel``."""
        return "parallel"


@dataclass
class Router:
    """Let a function or an agent pick one of ``routes``, and run it."""

    name: str
    """The router's name."""
    by: str | RouteFunction
    """An agent name (it answers with a route name), a ``module:function`` or a callable."""
    routes: dict[str, list[Node]]
    """Route name -> the nodes to run when it is picked."""

    def __post_init__(self) -> None:
        _check_name(self.name, "router")
        if not self.routes:
            raise ValueError(f"router {self.name!r} needs at least one route")
        for route, nodes in self.routes.items():
            if not _ROUTE_RE.fullmatch(route):
                raise ValueError(
                    f"router {self.name!r}: invalid route name {route!r} (letters, digits, '_', '-')"
                )
            if not nodes:
                raise ValueError(f"router {self.name!r}: route {route!r} has no nodes")

    @property
    def kind(self) -> StepKind:
        """``router``."""
        return "router"


Node: TypeAlias = Step | Condition | Loop | Parallel | Router
"""Any workflow node."""


# -- the graph ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphNode:
    """A node of :meth:`Workflow.graph`."""

    path: str
    """Its path (un-iterated), as events name it (strip ``#N`` with :func:`graph_path`)."""
    kind: StepKind
    """The primitive."""
    label: str
    """What to show: the name, with the condition or the bound where there is one."""
    parent: str | None
    """The container's path, for nodes inside a condition, loop, parallel block or router."""
    target: str | None = None
    """For steps: what runs (``agent researcher``, ``function mod:fn``)."""


@dataclass(frozen=True)
class GraphEdge:
    """An edge of :meth:`Workflow.graph`."""

    source: str
    """The path it leaves."""
    target: str
    """The path it reaches."""
    label: str = ""
    """``then``, ``else``, a route name, ``branch``, ``body``, ``repeat``; empty for the
    next node in a list."""
    back: bool = False
    """A loop's back-edge (from the last node of its body to the loop)."""


@dataclass
class WorkflowGraph:
    """Nodes and edges for the graph view."""

    nodes: list[GraphNode]
    """Depth first, in definition order."""
    edges: list[GraphEdge]
    """Sequence edges between siblings, entry edges into containers, loop back-edges."""

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON data."""
        return {
            "nodes": [dataclasses.asdict(n) for n in self.nodes],
            "edges": [dataclasses.asdict(e) for e in self.edges],
        }


def graph_path(path: str) -> str:
    """The graph's form of an event's path: ``polish#2/edit`` -> ``polish/edit``."""
    return _ITERATION_RE.sub("", path)


# -- the workflow -------------------------------------------------------------------------


@dataclass
class Workflow:
    """A named list of nodes, from ``workbench.yaml`` or from Python."""

    name: str
    """Its name."""
    steps: list[Node]
    """The nodes, run in order."""
    description: str = ""
    """What it does."""
    engine: Engine | None = field(default=None, compare=False, repr=False)
    """The engine that runs its steps (set by :func:`build_workflow` or :meth:`bind`)."""

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"workflow {self.name!r} needs at least one step")
        seen: set[str] = set()
        for node in _walk(self.steps):
            name = _explicit_name(node)
            if name is None:
                continue
            if name in seen:
                raise ValueError(f"workflow {self.name!r}: the name {name!r} is used twice")
            seen.add(name)

    @classmethod
    def from_config(cls, name: str, config: WorkflowConfig) -> Workflow:
        """The workflow of a ``workflows:`` entry of ``workbench.yaml``."""
        return cls(name, [_from_config(n) for n in config.steps], description=config.description)

    def bind(self, engine: Engine) -> Workflow:
        """This workflow, run by ``engine``."""
        return dataclasses.replace(self, engine=engine)

    def graph(self) -> WorkflowGraph:
        """Nodes and edges, with the paths events use (un-iterated) and nesting."""
        nodes: list[GraphNode] = []
        edges: list[GraphEdge] = []

        def add_node(node: Node, path: str, parent: str | None) -> None:
            target = node.target if isinstance(node, Step) else None
            nodes.append(GraphNode(path, node.kind, _label(node, path), parent, target))
            if isinstance(node, Condition):
                add_list(node.then, f"{path}/then/", path, "then")
                if node.else_:
                    add_list(node.else_, f"{path}/else/", path, "else")
            elif isinstance(node, Loop):
                last = add_list(node.body, f"{path}/", path, "body")
                edges.append(GraphEdge(last, path, "repeat", back=True))
            elif isinstance(node, Parallel):
                for branch, seg in zip(node.branches, _segments(node.branches), strict=True):
                    edges.append(GraphEdge(path, f"{path}/{seg}", "branch"))
                    add_node(branch, f"{path}/{seg}", path)
            elif isinstance(node, Router):
                for route, route_nodes in node.routes.items():
                    add_list(route_nodes, f"{path}/{route}/", path, route)

        def add_list(items: list[Node], prefix: str, parent: str | None, label: str) -> str:
            """Add a list of nodes, chained; returns the last one's path."""
            prev = parent
            for i, (node, seg) in enumerate(zip(items, _segments(items), strict=True)):
                path = prefix + seg
                if prev is not None:
                    edges.append(GraphEdge(prev, path, label if i == 0 else ""))
                add_node(node, path, parent)
                prev = path
            assert prev is not None
            return prev

        add_list(self.steps, "", None, "")
        return WorkflowGraph(nodes, edges)

    async def execute(
        self, ctx: RunContext, input: str, history: Sequence[dict[str, Any]] = ()
    ) -> RunOutcome:
        """Do the workflow's work in its run; the caller wraps it in ``run_lifecycle``.

        ``history`` is accepted for the engine's sake and not used: steps start afresh, each
        with the input the workflow gives it.
        """
        if self.engine is None:
            raise RunError(
                f"workflow '{self.name}' is not bound to an engine",
                hint="use Workflow.bind(engine)",
            )
        run = _WorkflowRun(self, self.engine, ctx, input)
        await record_input(ctx, input)
        scope = _Scope(steps={}, state={})
        try:
            done = await run.run_list(self.steps, "", scope, input)
        except _StepFailed as failed:
            raise RunError(
                f"workflow '{self.name}': step '{failed.path}' failed: {failed.error}",
                hint=failed.hint,
            ) from None
        await record_answer(ctx, done.output)
        return RunOutcome("completed", output=done.output, usage=done.usage, cost=done.cost)

    async def run(self, engine: Engine, input: str, *, session_id: str | None = None) -> RunOutcome:
        """Run this workflow as a top-level run of ``engine`` (for workflows built in Python).

        Workspace workflows are run by name with :meth:`Engine.start_run`, which can also
        resume them; this is for a workflow that exists only in Python.
        """
        bound = self.bind(engine)
        if session_id is None:
            session_id = engine.store.create_session(workspace=str(engine.root)).id
        ctx = RunContext(engine, session_id=session_id, run_id=new_run_id(), source=self.name)
        return await run_lifecycle(
            ctx, "workflow", self.name, input, lambda c: bound.execute(c, input)
        )


async def build_workflow(engine: Engine, name: str) -> Workflow:
    """The workflow ``name`` of the engine's workspace, bound to the engine.

    Raises:
        RunError: no such workflow.
    """
    config = engine.workspace.workflows.get(name)
    if config is None:
        names = ", ".join(engine.workspace.workflows) or "no workflows"
        raise RunError(f"no workflow named '{name}'", hint=f"the workspace has: {names}")
    return Workflow.from_config(name, config).bind(engine)


# -- running ------------------------------------------------------------------------------


@dataclass
class _Scope:
    """What nodes can read at one point: outputs by name, the state, the loop iteration.

    Each Parallel branch works on its own fork.
    """

    steps: dict[str, str]
    state: dict[str, Any]
    iteration: int | None = None

    def fork(self) -> _Scope:
        return _Scope(dict(self.steps), copy.deepcopy(self.state), self.iteration)


@dataclass
class _Done:
    """A node's result: its output and the tokens spent under it."""

    output: str
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None


def _sum(results: Sequence[_Done]) -> tuple[Usage, float | None]:
    usage = Usage()
    cost: float | None = None
    for r in results:
        usage = usage + r.usage
        if r.cost is not None:
            cost = (cost or 0.0) + r.cost
    return usage, cost


class _StepFailed(Exception):
    """A node failed; carries the path of the node where it started."""

    def __init__(
        self,
        path: str,
        error: str,
        hint: str | None = None,
        usage: Usage | None = None,
        cost: float | None = None,
    ) -> None:
        super().__init__(f"{path}: {error}")
        self.path = path
        self.error = error
        self.hint = hint
        self.usage = usage or Usage()
        self.cost = cost


class _WorkflowRun:
    """One execution of a workflow: its context and what an earlier attempt recorded."""

    def __init__(self, wf: Workflow, engine: Engine, ctx: RunContext, input: str) -> None:
        self.wf = wf
        self.engine = engine
        self.ctx = ctx
        self.input = input
        self.done: dict[str, WorkflowStepCompleted] = {}
        self.started: set[str] = set()
        self.conflicts: set[tuple[str, str]] = set()
        for e in ctx.prior:
            if isinstance(e, WorkflowStepCompleted) and e.status in ("done", "skipped"):
                self.done[e.path] = e
            elif isinstance(e, WorkflowStepStarted):
                self.started.add(e.path)
            elif isinstance(e, WorkflowConflict):
                self.conflicts.add((e.path, e.key))
        self._functions: dict[str, Callable[..., Any]] = {}

    # -- nodes ------------------------------------------------------------------------

    async def run_list(self, nodes: list[Node], prefix: str, scope: _Scope, current: str) -> _Done:
        results: list[_Done] = []
        for node, seg in zip(nodes, _segments(nodes), strict=True):
            result = await self.run_node(node, prefix + seg, scope, current)
            results.append(result)
            current = result.output
        usage, cost = _sum(results)
        return _Done(current, usage, cost)

    async def run_node(self, node: Node, path: str, scope: _Scope, current: str) -> _Done:
        recorded = self.done.get(path)
        if recorded is not None:
            return self.restore(node, path, recorded, scope, current)
        step_input = (
            self.render(node.input, scope)
            if isinstance(node, Step) and node.input is not None
            else current
        )
        if path not in self.started:
            await self.ctx.emit(WorkflowStepStarted(path=path, kind=node.kind, input=step_input))
        try:
            if isinstance(node, Step):
                result = await self.run_step(node, path, scope, step_input)
            elif isinstance(node, Condition):
                result = await self.run_condition(node, path, scope, current)
            elif isinstance(node, Loop):
                result = await self.run_loop(node, path, scope, current)
            elif isinstance(node, Parallel):
                result = await self.run_parallel(node, path, scope, current)
            else:
                result = await self.run_router(node, path, scope, current)
        except _StepFailed as failed:
            if failed.path == path:
                spent = _Done("", failed.usage, failed.cost)
                await self.completed(
                    node, path, scope, status="failed", result=spent, error=failed.error
                )
            else:
                error = f"step '{failed.path}' failed: {failed.error}"
                await self.completed(node, path, scope, status="failed", error=error)
            raise
        except asyncio.CancelledError:
            await asyncio.shield(self.completed(node, path, scope, status="cancelled"))
            raise
        name = _explicit_name(node)
        if name is not None:
            scope.steps[name] = result.output
        if isinstance(node, Step) and node.output_key:
            scope.state[node.output_key] = result.output
        await self.completed(node, path, scope, status="done", result=result)
        return result

    async def completed(
        self,
        node: Node,
        path: str,
        scope: _Scope,
        *,
        status: Literal["done", "failed", "skipped", "cancelled"],
        result: _Done | None = None,
        error: str | None = None,
    ) -> None:
        await self.ctx.emit(
            WorkflowStepCompleted(
                path=path,
                kind=node.kind,
                status=status,
                output=result.output if result is not None else None,
                error=error,
                state=copy.deepcopy(scope.state),
                usage=result.usage if result is not None else None,
                cost=result.cost if result is not None else None,
            )
        )

    def restore(
        self, node: Node, path: str, rec: WorkflowStepCompleted, scope: _Scope, current: str
    ) -> _Done:
        """Take a node that completed before a restart from the log, without running it."""
        if rec.status == "skipped":
            return _Done(current)
        self.replay_names(node, path, scope)
        if rec.state is not None:
            scope.state = copy.deepcopy(rec.state)
        return _Done(rec.output or "", rec.usage or Usage(), rec.cost)

    def replay_names(self, node: Node, path: str, scope: _Scope) -> None:
        """Put the recorded outputs of a completed node and of the nodes inside it in scope."""
        for child, child_path in _children_at(node, path, self.done):
            self.replay_names(child, child_path, scope)
        rec = self.done.get(path)
        name = _explicit_name(node)
        if rec is not None and rec.status == "done" and name is not None:
            scope.steps[name] = rec.output or ""

    async def skip(self, nodes: list[Node], prefix: str, scope: _Scope) -> None:
        """Mark the nodes of a branch not taken as skipped (for the graph view)."""
        for node, seg in zip(nodes, _segments(nodes), strict=True):
            path = prefix + seg
            if path not in self.done:
                await self.completed(node, path, scope, status="skipped")

    # -- primitives -------------------------------------------------------------------

    async def run_step(self, step: Step, path: str, scope: _Scope, step_input: str) -> _Done:
        if step.function is not None:
            return _Done(await self.call_function(step.function, path, scope, step_input))
        if step.agent:
            outcome = await self.run_child("agent", step.agent, step_input, path)
        elif step.team:
            outcome = await self.run_child("team", step.team, step_input, path)
        else:
            assert step.workflow is not None
            outcome = await self.run_child("workflow", step.workflow, step_input, path)
        if not outcome.ok:
            raise _StepFailed(
                path, outcome.error or outcome.status, outcome.hint, outcome.usage, outcome.cost
            )
        return _Done(outcome.output, outcome.usage, outcome.cost)

    async def run_child(
        self, kind: Literal["agent", "team", "workflow"], name: str, input: str, key: str
    ) -> RunOutcome:
        """A child run whose id is derived from ``key``; errors become a failed outcome."""
        run_id = child_run_id(self.ctx.run_id, key)
        try:
            return await self.engine.run_child(self.ctx, kind, name, input, run_id=run_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # it could not even be built (a plugin that fails to load)
            error = str(exc) or type(exc).__name__
            return RunOutcome("failed", error=error, hint=getattr(exc, "hint", None), run_id=run_id)

    async def call_function(
        self, function: str | StepFunction, path: str, scope: _Scope, step_input: str
    ) -> str:
        sctx = self.step_context(path, scope, step_input)
        try:
            output, updates = _function_result(await self.call(function, sctx))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = str(exc) if isinstance(exc, RunError) else f"{type(exc).__name__}: {exc}"
            raise _StepFailed(path, error, getattr(exc, "hint", None)) from None
        scope.state.update(updates)
        return output

    async def run_condition(self, node: Condition, path: str, scope: _Scope, current: str) -> _Done:
        holds = await self.check(node.condition, path, scope, current)
        taken, other = (node.then, node.else_) if holds else (node.else_, node.then)
        taken_seg, other_seg = ("then", "else") if holds else ("else", "then")
        await self.skip(other, f"{path}/{other_seg}/", scope)
        if not taken:
            return _Done(current)
        return await self.run_list(taken, f"{path}/{taken_seg}/", scope, current)

    async def run_loop(self, node: Loop, path: str, scope: _Scope, current: str) -> _Done:
        results: list[_Done] = []
        outer = scope.iteration
        try:
            for i in range(1, node.max_iterations + 1):
                scope.iteration = i
                result = await self.run_list(node.body, f"{path}#{i}/", scope, current)
                results.append(result)
                current = result.output
                if node.until is not None and await self.check(node.until, path, scope, current):
                    break
        finally:
            scope.iteration = outer
        usage, cost = _sum(results)
        return _Done(current, usage, cost)

    async def run_parallel(self, node: Parallel, path: str, scope: _Scope, current: str) -> _Done:
        segs = _segments(node.branches)
        forks = [scope.fork() for _ in node.branches]
        results = await run_concurrently(
            [
                self.run_node(branch, f"{path}/{seg}", fork, current)
                for branch, seg, fork in zip(node.branches, segs, forks, strict=True)
            ]
        )
        for fork in forks:
            scope.steps.update(fork.steps)
        scope.state = await self.merge_state(
            path, scope.state, [f"{path}/{s}" for s in segs], forks
        )
        output = "\n\n".join(f"## {seg}\n{r.output}" for seg, r in zip(segs, results, strict=True))
        usage, cost = _sum(results)
        return _Done(output, usage, cost)

    async def merge_state(
        self, path: str, base: dict[str, Any], branch_paths: list[str], forks: list[_Scope]
    ) -> dict[str, Any]:
        """Each branch's writes; the first branch in definition order wins a conflict."""
        writes: dict[str, dict[str, Any]] = {}  # key -> branch path -> value, in branch order
        for bpath, fork in zip(branch_paths, forks, strict=True):
            for key, value in fork.state.items():
                if key not in base or base[key] != value:
                    writes.setdefault(key, {})[bpath] = value
        merged = dict(base)
        for key, by_branch in writes.items():
            values = list(by_branch.values())
            if any(v != values[0] for v in values[1:]) and (path, key) not in self.conflicts:
                self.conflicts.add((path, key))
                await self.ctx.emit(WorkflowConflict(path=path, key=key, values=dict(by_branch)))
            merged[key] = values[0]
        return merged

    async def run_router(self, node: Router, path: str, scope: _Scope, current: str) -> _Done:
        routes = list(node.routes)
        spent: list[_Done] = []
        if callable(node.by) or is_function_ref(node.by):
            try:
                picked = await self.call(node.by, self.step_context(path, scope, current))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise _StepFailed(
                    path, f"the routing function failed: {type(exc).__name__}: {exc}"
                ) from None
            route = str(picked).strip() if picked is not None else ""
            if route not in node.routes:
                raise _StepFailed(
                    path, f"the routing function chose {route!r}, not a route ({', '.join(routes)})"
                )
        else:
            ask = (
                f"{current}\n\n(Choose the route for the input above. Routes: "
                f"{', '.join(routes)}. Reply with the route name only.)"
            )
            outcome = await self.run_child("agent", node.by, ask, f"{path}/by")
            spent.append(_Done("", outcome.usage, outcome.cost))
            if not outcome.ok:
                raise _StepFailed(
                    path, f"the routing agent '{node.by}' failed: {outcome.error}", outcome.hint
                )
            chosen = _pick_route(outcome.output, routes)
            if chosen is None:
                raise _StepFailed(
                    path,
                    f"the routing agent '{node.by}' answered {outcome.output.strip()[:200]!r}, "
                    f"which names no route ({', '.join(routes)})",
                )
            route = chosen
        for other in routes:
            if other != route:
                await self.skip(node.routes[other], f"{path}/{other}/", scope)
        result = await self.run_list(node.routes[route], f"{path}/{route}/", scope, current)
        usage, cost = _sum([*spent, result])
        return _Done(result.output, usage, cost)

    # -- helpers ----------------------------------------------------------------------

    def step_context(self, path: str, scope: _Scope, step_input: str) -> StepContext:
        return StepContext(
            input=step_input,
            workflow_input=self.input,
            steps=dict(scope.steps),
            state=copy.deepcopy(scope.state),
            path=path,
            iteration=scope.iteration,
            root=self.engine.root,
        )

    def render(self, template: str, scope: _Scope) -> str:
        """A step's ``input:`` template with ``{input}``, ``{steps.N.output}``, ``{state.K}``.

        Anything else in braces is left as written, so JSON in a template is safe.
        """

        def sub(m: re.Match[str]) -> str:
            if m.group(1):
                return self.input
            if m.group(2):
                return scope.steps.get(m.group(2), "")
            value: Any = scope.state
            for part in m.group(3).split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if value is None:
                return ""
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

        return _TEMPLATE_RE.sub(sub, template)

    async def check(
        self, predicate: str | Predicate, path: str, scope: _Scope, current: str
    ) -> bool:
        """Evaluate a condition or a loop's end."""
        try:
            if callable(predicate) or is_function_ref(predicate):
                return bool(await self.call(predicate, self.step_context(path, scope, current)))
            expr = compile_expression(predicate)
            return expr.evaluate(
                {
                    "input": self.input,
                    "steps": {k: {"output": v} for k, v in scope.steps.items()},
                    "state": scope.state,
                    "iteration": scope.iteration,
                }
            )
        except asyncio.CancelledError:
            raise
        except ExpressionError as exc:
            raise _StepFailed(path, f"condition {predicate!r}: {exc}") from None
        except Exception as exc:
            raise _StepFailed(path, f"condition failed: {type(exc).__name__}: {exc}") from None

    async def call(self, fn: str | Callable[..., Any], sctx: StepContext) -> Any:
        """Call a function of the workspace (or a callable) with a step context.

        Sync functions run in a thread, so a slow one never blocks the other branches,
        the event stream or the UI.
        """
        func = self.resolve(fn) if isinstance(fn, str) else fn
        if inspect.iscoroutinefunction(func):
            value = await func(sctx)
        else:
            value = await asyncio.to_thread(func, sctx)
        if inspect.isawaitable(value):
            value = await value
        return value

    def resolve(self, ref: str) -> Callable[..., Any]:
        """``module:function`` from the workspace folder."""
        func = self._functions.get(ref)
        if func is None:
            func = _load_function(self.engine.root, ref)
            self._functions[ref] = func
        return func


# -- helpers ------------------------------------------------------------------------------


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid {what} name {name!r}: use letters, digits and '_' (not starting with a digit)"
        )


def _check_predicate(predicate: str | Callable[..., Any]) -> None:
    if callable(predicate) or is_function_ref(predicate):
        return
    compile_expression(predicate)  # raises ExpressionError with what is wrong


def _callable_name(fn: str | Callable[..., Any]) -> str:
    if isinstance(fn, str):
        return fn.strip()
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def _explicit_name(node: Node) -> str | None:
    """The name a node was given (``None`` for an unnamed condition or parallel block)."""
    return node.name


def _segments(nodes: Sequence[Node]) -> list[str]:
    """The path segment of each node of a list (see the module docstring)."""
    taken = {n for n in (_explicit_name(x) for x in nodes) if n is not None}
    counters = {"condition": 0, "parallel": 0}
    out: list[str] = []
    for node in nodes:
        name = _explicit_name(node)
        if name is None:
            stem = "cond" if isinstance(node, Condition) else "parallel"
            kind = "condition" if isinstance(node, Condition) else "parallel"
            while True:
                counters[kind] += 1
                name = f"{stem}{counters[kind]}"
                if name not in taken:
                    break
        out.append(name)
    return out


def _walk(nodes: Sequence[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        if isinstance(node, Condition):
            yield from _walk(node.then)
            yield from _walk(node.else_)
        elif isinstance(node, Loop):
            yield from _walk(node.body)
        elif isinstance(node, Parallel):
            yield from _walk(node.branches)
        elif isinstance(node, Router):
            for route_nodes in node.routes.values():
                yield from _walk(route_nodes)


def _children_at(node: Node, path: str, done: Mapping[str, Event]) -> Iterator[tuple[Node, str]]:
    """The children of a node with their event paths (every recorded loop iteration)."""

    def of(nodes: list[Node], prefix: str) -> Iterator[tuple[Node, str]]:
        for child, seg in zip(nodes, _segments(nodes), strict=True):
            yield child, prefix + seg

    if isinstance(node, Condition):
        yield from of(node.then, f"{path}/then/")
        yield from of(node.else_, f"{path}/else/")
    elif isinstance(node, Loop):
        for i in range(1, node.max_iterations + 1):
            prefix = f"{path}#{i}/"
            if not any(p.startswith(prefix) for p in done):
                break
            yield from of(node.body, prefix)
    elif isinstance(node, Parallel):
        yield from of(node.branches, f"{path}/")
    elif isinstance(node, Router):
        for route, nodes in node.routes.items():
            yield from of(nodes, f"{path}/{route}/")


def _label(node: Node, path: str) -> str:
    if isinstance(node, Condition):
        return (
            f"if {_callable_name(node.condition) if callable(node.condition) else node.condition}"
        )
    if isinstance(node, Loop):
        until = ""
        if node.until is not None:
            text = _callable_name(node.until) if callable(node.until) else node.until
            until = f" until {text}"
        return f"{node.name}{until} (max {node.max_iterations})"
    if isinstance(node, Router):
        return f"{node.name} (by {_callable_name(node.by) if callable(node.by) else node.by})"
    return path.rsplit("/", 1)[-1]


def _function_result(value: Any) -> tuple[str, dict[str, Any]]:
    """A step function's return value as (output, state updates)."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, Mapping):
        unknown = set(value) - {"output", "state"}
        if "output" not in value or unknown:
            raise RunError(
                "a step function returns a str or a dict with 'output' and optional 'state'"
                + (f"; got keys {sorted(map(str, value))}" if value else "; got {}")
            )
        output = value["output"]
        updates = value.get("state") or {}
        if not isinstance(updates, Mapping):
            raise RunError(f"'state' must be a dict of updates, got {type(updates).__name__}")
        updates = dict(updates)
        try:
            json.dumps(updates)
        except (TypeError, ValueError) as exc:
            raise RunError(
                f"the state must be JSON data (it is kept in the event log): {exc}"
            ) from None
        if not isinstance(output, str):
            output = json.dumps(output, ensure_ascii=False, default=str)
        return output, updates
    raise RunError(
        f"a step function returns a str or a dict with 'output' and optional 'state', "
        f"got {type(value).__name__}"
    )


def _load_function(root: Path, ref: str) -> Callable[..., Any]:
    """Import ``module:function`` from ``<root>/module.py`` the way tool modules are."""
    from workbench.registry import PluginError, _import_workspace_module

    module_name, _, func_name = ref.strip().partition(":")
    parts = module_name.split(".")
    path = Path(root, *parts[:-1], f"{parts[-1]}.py")
    if not path.is_file():
        raise RunError(f"{ref!r}: no file {path}")
    try:
        module = _import_workspace_module(root, module_name, path)
    except PluginError as exc:
        raise RunError(str(exc)) from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise RunError(f"{ref!r}: {path} has no function {func_name!r}")
    return func  # type: ignore[no-any-return]


def _pick_route(answer: str, routes: Sequence[str]) -> str | None:
    """The route an agent named: the whole answer, a JSON ``{"route": ...}``, or the
    route mentioned first."""
    text = answer.strip().strip("`'\".").strip()
    by_lower = {r.lower(): r for r in routes}
    if text.lower() in by_lower:
        return by_lower[text.lower()]
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict) and str(value.get("route", "")).lower() in by_lower:
        return by_lower[str(value["route"]).lower()]
    best: tuple[int, str] | None = None
    for r in routes:
        m = re.search(rf"(?<![\w-]){re.escape(r)}(?![\w-])", answer, re.I)
        if m is not None and (best is None or m.start() < best[0]):
            best = (m.start(), r)
    return best[1] if best else None


def _from_config(node: NodeConfig) -> Node:
    from workbench.workspace import ConditionNode, LoopNode, ParallelNode, RouterNode, StepNode

    if isinstance(node, StepNode):
        return Step(
            node.step,
            agent=node.agent,
            team=node.team,
            workflow=node.workflow,
            function=node.function,
            input=node.input,
            output_key=node.output_key,
        )
    if isinstance(node, ConditionNode):
        return Condition(
            node.condition,
            then=[_from_config(n) for n in node.then],
            else_=[_from_config(n) for n in node.else_],
            name=node.name,
        )
    if isinstance(node, LoopNode):
        return Loop(
            node.loop,
            [_from_config(n) for n in node.steps],
            until=node.until,
            max_iterations=node.max_iterations,
        )
    if isinstance(node, ParallelNode):
        return Parallel([_from_config(n) for n in node.parallel], name=node.name)
    assert isinstance(node, RouterNode)
    return Router(
        node.router,
        node.by,
        {route: [_from_config(n) for n in nodes] for route, nodes in node.routes.items()},
    )
