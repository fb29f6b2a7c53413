"""The config models: what each section of ``workbench.yaml`` may hold, validated by pydantic."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import (
    Annotated,
    Any,
    ClassVar,
    Literal,
    TypeAlias,
)

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from .errors import Loc
from .expressions import Expression, compile_expression, is_function_ref

WORKSPACE_FILE = "workbench.yaml"
"""The name of the configuration file in a workspace folder."""

BUILTIN_TOOLKITS: frozenset[str] = frozenset({"knowledge", "memory"})
"""Toolkits the engine provides itself (not through entry points); always known."""

_OFFLINE_MODELS = frozenset({"test", "replay"})
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_STEP_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TEMPLATE_STEP_RE = re.compile(r"\{steps\.([^.{}\s]+)")
_ENV_PARAMS = ("api_key", "api_base", "extra_headers")
_MAX_NODES = 200_000

# -- the models --------------------------------------------------------------------------


class _Config(BaseModel):
    """Base of every model read from ``workbench.yaml``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        validate_by_name=True,
        validate_by_alias=True,
        # Schemas are built on first use, not at import: this module is on the start-up path.
        defer_build=True,
    )

    _what: ClassVar[str] = "a table"
    _plural: ClassVar[str] = "tables"


def _expand_env(value: Any, found: set[str]) -> Any:
    """``${VAR}`` replaced by the environment's value; a missing variable gives ``""``."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            found.add(m.group(1))
            return os.environ.get(m.group(1), "")

        return _ENV_RE.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: _expand_env(v, found) for k, v in value.items()}
    return value


class ModelSpec(_Config):
    """A model: a litellm model string and the arguments litellm gets with it.

    In ``models:`` a value may be a plain string (``openai/gpt-4o``) or a table with
    ``model:`` and any litellm arguments; ``context_window`` is kept apart, everything else
    goes to :attr:`params`.
    """

    _what: ClassVar[str] = "a litellm model string or a table with a 'model' key"
    _plural: ClassVar[str] = "models"

    model: str = Field(min_length=1)
    """The litellm model string (``anthropic/claude-sonnet-4-5``), or ``test`` / ``replay``."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Other litellm arguments (``api_base``, ``api_key``, ``temperature``, ``max_tokens``,
    ``timeout``, ``extra_headers``, ...), as written; ``${VAR}`` in ``api_key``,
    ``api_base`` and ``extra_headers`` is already replaced by the environment's value
    (``""`` when the variable is not set)."""
    context_window: int | None = Field(default=None, ge=1)
    """Tokens the model accepts, when litellm does not know (local models)."""
    env_vars: tuple[str, ...] = ()
    """Environment variables that ``api_key``, ``api_base`` and ``extra_headers`` refer to
    (so ``doctor`` can report the unset ones). Computed; not read from the file."""

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"model": data}
        if not isinstance(data, Mapping):
            return data
        d = dict(data)
        if "params" not in d:
            own = ("model", "context_window")
            d = {
                **{k: d[k] for k in own if k in d},
                "params": {k: v for k, v in d.items() if k not in own},
            }
        params = d.get("params")
        if isinstance(params, Mapping):
            found: set[str] = set(d.get("env_vars") or ())
            d["params"] = {
                k: _expand_env(v, found) if k in _ENV_PARAMS else v for k, v in params.items()
            }
            d["env_vars"] = tuple(sorted(found))
        return d


class AgentConfig(_Config):
    """An agent: a model, its instructions and the tools it may call."""

    _what: ClassVar[str] = "a table of agent settings"
    _plural: ClassVar[str] = "agents"

    model: str | None = None
    """A name from ``models:``, a litellm model string (with a ``/``), ``test`` or
    ``replay``; ``None`` means the model named ``default``, else ``test``."""
    instructions: str = ""
    """The system prompt."""
    description: str = ""
    """What the agent is for; teams show it to leaders and routers."""
    tools: list[str] = Field(default_factory=list)
    """``toolkit.tool``, ``toolkit.*`` (globs after the dot), or ``module:function`` from a
    ``module.py`` in the workspace folder."""
    max_tool_rounds: int = Field(default=10, ge=1)
    """How many rounds of tool calls one run may make before it must answer."""
    output_schema: dict[str, Any] | None = None
    """A JSON Schema the final answer must satisfy (it needs a ``type``)."""
    context_window: int | None = Field(default=None, ge=1)
    """Overrides the model's context window for this agent."""
    temperature: float | None = Field(default=None, ge=0)
    """Overrides the model's temperature for this agent."""

    @field_validator("output_schema")
    @classmethod
    def _schema_has_type(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        kind = value.get("type")
        if kind is None:
            raise ValueError("a JSON Schema needs a 'type' (for example type: object)")
        if not isinstance(kind, str | list):
            raise ValueError("a JSON Schema 'type' is a string (such as object) or a list")
        return value


TeamMode: TypeAlias = Literal[
    "route", "coordinate", "broadcast", "sequential", "leader_follower", "consensus"
]
"""How a team works: ``route`` (one member answers), ``coordinate`` (a leader delegates),
``broadcast`` (every member answers), ``sequential`` (each member works on the previous
output), ``leader_follower`` and ``consensus`` (members vote over rounds)."""


def _leader_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    if isinstance(value, Mapping | AgentConfig):
        return "table"
    return None


class TeamConfig(_Config):
    """A team of agents (or other teams) working in one of the :data:`TeamMode` modes."""

    _what: ClassVar[str] = "a table of team settings"
    _plural: ClassVar[str] = "teams"

    mode: TeamMode
    """How the members work together."""
    members: list[str] = Field(min_length=1)
    """Names of agents or other teams."""
    leader: (
        Annotated[
            Annotated[str, Tag("name")] | Annotated[AgentConfig, Tag("table")],
            Discriminator(
                _leader_tag,
                custom_error_type="leader",
                custom_error_message="expected an agent name or an agent table",
            ),
        ]
        | None
    ) = None
    """The agent that leads (``coordinate``, ``leader_follower``, ``route``): a name from
    ``agents:`` or an inline agent table."""
    max_rounds: int = Field(default=3, ge=1)
    """Rounds of delegation or voting before the team must answer."""
    judge: str | None = None
    """The agent that settles a ``consensus`` team that does not agree (``consensus`` only)."""
    description: str = ""
    """What the team is for."""
    instructions: str = ""
    """Extra instructions for the leader (or every member, without a leader)."""


class StepNode(_Config):
    """A step: run an agent, a team, a workflow or a ``module:function``."""

    kind: ClassVar[Literal["step"]] = "step"
    _what: ClassVar[str] = "a workflow step"

    step: str = Field(min_length=1)
    """The step's name, unique in its workflow (``steps.NAME.output`` reads its output)."""
    agent: str | None = None
    """The agent to run."""
    team: str | None = None
    """The team to run."""
    function: str | None = None
    """A ``module:function`` from the workspace folder to call."""
    workflow: str | None = None
    """Another workflow to run as one step."""
    input: str | None = None
    """A template for the step's input: ``{input}``, ``{steps.NAME.output}``,
    ``{state.KEY}``; ``None`` means the previous step's output (or the workflow input)."""
    output_key: str | None = None
    """A state key to store the output under."""

    @model_validator(mode="after")
    def _one_target(self) -> StepNode:
        given = [k for k in ("agent", "team", "function", "workflow") if getattr(self, k)]
        if len(given) != 1:
            found = "none" if not given else " and ".join(given)
            raise ValueError(
                f"a step needs exactly one of agent, team, function, workflow; found {found}"
            )
        return self

    @property
    def target_kind(self) -> Literal["agent", "team", "function", "workflow"]:
        """What the step runs."""
        if self.agent:
            return "agent"
        if self.team:
            return "team"
        if self.function:
            return "function"
        return "workflow"

    @property
    def target(self) -> str:
        """The name (or ``module:function``) of what the step runs."""
        return self.agent or self.team or self.function or self.workflow or ""

    @property
    def name(self) -> str:
        """The step's name."""
        return self.step


class ConditionNode(_Config):
    """Run ``then`` when the condition holds, else ``else``."""

    kind: ClassVar[Literal["condition"]] = "condition"
    _what: ClassVar[str] = "a condition"

    condition: str = Field(min_length=1)
    """An expression (see :func:`compile_expression`) or a ``module:function`` returning
    a truth value."""
    then: list[Node] = Field(min_length=1)
    """The nodes to run when it holds."""
    else_: list[Node] = Field(default_factory=list, alias="else")
    """The nodes to run when it does not (``else:`` in the file)."""
    name: str | None = None
    """An optional name, shown in the graph."""

    def expression(self) -> Expression | None:
        """The compiled condition, or ``None`` for a ``module:function``."""
        return None if is_function_ref(self.condition) else compile_expression(self.condition)


class LoopNode(_Config):
    """Repeat ``steps`` until a condition holds, at most ``max_iterations`` times."""

    kind: ClassVar[Literal["loop"]] = "loop"
    _what: ClassVar[str] = "a loop"

    loop: str = Field(min_length=1)
    """The loop's name."""
    steps: list[Node] = Field(min_length=1)
    """The nodes of one iteration."""
    until: str | None = None
    """An expression (or ``module:function``) checked after each iteration; the loop
    stops when it holds. ``iteration`` counts from 1."""
    max_iterations: int = Field(ge=1)
    """The bound: required, so a loop always ends."""

    @property
    def name(self) -> str:
        """The loop's name."""
        return self.loop

    def expression(self) -> Expression | None:
        """The compiled ``until``, or ``None`` (no condition, or a ``module:function``)."""
        if self.until is None or is_function_ref(self.until):
            return None
        return compile_expression(self.until)


class ParallelNode(_Config):
    """Run the nodes at the same time; the output is every output in order."""

    kind: ClassVar[Literal["parallel"]] = "parallel"
    _what: ClassVar[str] = "a parallel block"

    parallel: list[Node] = Field(min_length=1)
    """The nodes to run concurrently."""
    name: str | None = None
    """An optional name, shown in the graph."""


class RouterNode(_Config):
    """Pick one route by asking an agent or calling a ``module:function``."""

    kind: ClassVar[Literal["router"]] = "router"
    _what: ClassVar[str] = "a router"

    router: str = Field(min_length=1)
    """The router's name."""
    by: str = Field(min_length=1)
    """An agent name (it answers with a route name) or a ``module:function`` returning one."""
    routes: dict[str, list[Node]] = Field(min_length=1)
    """Route name -> the nodes to run when it is picked."""

    @property
    def name(self) -> str:
        """The router's name."""
        return self.router


_NODE_KEYS = ("step", "condition", "loop", "parallel", "router")


def _node_tag(value: Any) -> str | None:
    if isinstance(value, Mapping):
        found = [k for k in _NODE_KEYS if k in value]
        return found[0] if len(found) == 1 else None
    kind = getattr(value, "kind", None)
    return kind if isinstance(kind, str) else None


Node: TypeAlias = Annotated[
    Annotated[StepNode, Tag("step")]
    | Annotated[ConditionNode, Tag("condition")]
    | Annotated[LoopNode, Tag("loop")]
    | Annotated[ParallelNode, Tag("parallel")]
    | Annotated[RouterNode, Tag("router")],
    Discriminator(
        _node_tag,
        custom_error_type="workflow_node",
        custom_error_message="expected a workflow node",
    ),
]
"""One node of a workflow graph, recognised by its key: ``step``, ``condition``,
``loop``, ``parallel`` or ``router``."""


def _children(node: Node) -> Iterator[tuple[Loc, list[Node]]]:
    """A node's child lists, each with its key path relative to the node."""
    if isinstance(node, ConditionNode):
        yield ("then",), node.then
        if node.else_:
            yield ("else",), node.else_
    elif isinstance(node, LoopNode):
        yield ("steps",), node.steps
    elif isinstance(node, ParallelNode):
        yield ("parallel",), node.parallel
    elif isinstance(node, RouterNode):
        for route, nodes in node.routes.items():
            yield ("routes", route), nodes


def _walk_nodes(nodes: list[Node], base: Loc) -> Iterator[tuple[Loc, Node]]:
    for i, node in enumerate(nodes):
        here = (*base, i)
        yield here, node
        for rel, kids in _children(node):
            yield from _walk_nodes(kids, here + rel)


def _node_name(node: Node) -> tuple[str | None, str]:
    """The node's name (if any) and the key that holds it."""
    if isinstance(node, StepNode):
        return node.step, "step"
    if isinstance(node, LoopNode):
        return node.loop, "loop"
    if isinstance(node, RouterNode):
        return node.router, "router"
    return node.name, "name"


class WorkflowConfig(_Config):
    """A workflow: a graph of steps, conditions, loops, parallel blocks and routers."""

    _what: ClassVar[str] = "a table of workflow settings"
    _plural: ClassVar[str] = "workflows"

    description: str = ""
    """What the workflow does."""
    steps: list[Node] = Field(min_length=1)
    """The nodes, run in order."""

    def iter_nodes(self) -> Iterator[Node]:
        """Every node, depth first, in file order."""
        for _, node in _walk_nodes(self.steps, ()):
            yield node

    def node_names(self) -> list[str]:
        """The names of the named nodes (steps, loops, routers, named blocks)."""
        out: list[str] = []
        for node in self.iter_nodes():
            name, _ = _node_name(node)
            if name:
                out.append(name)
        return out


class McpServerConfig(_Config):
    """An MCP server: a command to start (stdio) or a URL to reach (HTTP).

    ``${VAR}`` in ``env`` and ``headers`` values is replaced by the environment's value
    when the workspace loads, so secrets need not be in the file (an unset variable gives
    ``""`` in ``env``, and is an error in ``headers``: a header with an empty credential is
    never what was meant).
    """

    _what: ClassVar[str] = "a table with 'command' or 'url'"
    _plural: ClassVar[str] = "MCP servers"

    command: str | None = None
    """The program to start; the server speaks MCP on its stdin and stdout."""
    args: list[str] = Field(default_factory=list)
    """Arguments for the command."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the command."""
    cwd: str | None = None
    """The command's working folder (relative to the workspace folder)."""
    url: str | None = None
    """The server's URL (streamable HTTP or SSE)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """HTTP headers for the URL (authorisation, for instance)."""
    timeout: float = Field(default=30, gt=0)
    """Seconds to wait for each call (progress notifications restart the clock)."""
    startup_timeout: float | None = Field(default=None, gt=0)
    """Seconds the server gets to start (default: ``timeout``, but at least 30)."""
    retry_after: float = Field(default=10, ge=0)
    """Seconds after a failed start before a use tries the server again."""
    required: bool = False
    """Agents that use the server fail when it cannot start (by default they run without
    its tools, and the run says which server failed and why)."""
    max_output: int | dict[str, int] | None = None
    """Characters of a tool result kept (head and tail): a number, or a table of tool name
    (globs allowed, ``"*"`` for the rest) -> number. Default 100,000."""
    max_message_bytes: int | None = Field(default=None, ge=1024)
    """The largest message a streamable HTTP server may send (default 32 MiB)."""
    header_vars: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """Header name -> the environment variables its value refers to (so an unset one is
    an error naming it). Computed; not read from the file."""

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        d = dict(data)
        found: set[str] = set()
        if isinstance(d.get("env"), Mapping):
            d["env"] = _expand_env(d["env"], found)
        headers = d.get("headers")
        refs: dict[str, tuple[str, ...]] = {}
        d["header_vars"] = refs  # computed only, never read from the file
        if isinstance(headers, Mapping):
            expanded: dict[Any, Any] = {}
            for k, v in headers.items():
                used: set[str] = set()
                expanded[k] = _expand_env(v, used)
                if used:
                    refs[str(k)] = tuple(sorted(used))
            d["headers"] = expanded
        return d

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server needs exactly one of command (stdio) or url (HTTP)")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("args, env and cwd go with command, not with url")
        if self.command is not None and self.headers:
            raise ValueError("headers go with url, not with command")
        return self


class ApprovalsConfig(_Config):
    """The approval policy: what tool calls may run, must ask, or are refused.

    Entries are ``tool-glob`` or ``tool-glob:argument-glob`` (``"shell.run:git status*"``,
    ``"files.write:docs/**"``); see :func:`split_approval_rule`. The most specific match
    wins.
    """

    _what: ClassVar[str] = "a table with default, allow, ask and deny"

    default: Literal["allow", "ask", "deny"] = "ask"
    """The decision for a call that no entry matches."""
    allow: list[str] = Field(default_factory=list)
    """Calls that run without asking."""
    ask: list[str] = Field(default_factory=list)
    """Calls that wait for a person's decision."""
    deny: list[str] = Field(default_factory=list)
    """Calls that are refused."""


def split_approval_rule(entry: str) -> tuple[str, str | None]:
    """Split an approval entry into its tool glob and its argument glob.

    ``"shell.run:git status*"`` gives ``("shell.run", "git status*")``. A workspace
    function tool is itself named ``module:function``, so when the part before the first
    ``:`` has neither a ``.`` nor a glob character, that colon belongs to the tool name:
    ``"mytools:word_count"`` is the tool, ``"mytools:word_count:*.md"`` adds an argument
    glob.
    """
    head, sep, rest = entry.partition(":")
    if not sep:
        return entry, None
    if "." not in head and not any(c in head for c in "*?["):
        name, sep2, args = rest.partition(":")
        return f"{head}:{name}", (args if sep2 else None)
    return head, rest


class KnowledgeSource(_Config):
    """Files to index for ``knowledge.search``."""

    _what: ClassVar[str] = "a table with 'paths'"
    _plural: ClassVar[str] = "knowledge sources"

    paths: list[str] = Field(min_length=1)
    """Files, folders or globs, relative to the workspace folder."""
    description: str = ""
    """What the source holds (shown to models choosing a source)."""
    embedding_model: str | None = None
    """A litellm embedding model for vector search; ``None`` means full-text only."""
    chunk_size: int = Field(default=1200, ge=1)
    """Characters per chunk."""
    chunk_overlap: int = Field(default=200, ge=0)
    """Characters shared by neighbouring chunks (less than ``chunk_size``)."""


class _WorkspaceFile(_Config):
    """The keys of ``workbench.yaml``."""

    _what: ClassVar[str] = "a table"

    models: dict[str, ModelSpec] = Field(default_factory=dict)
    """Name -> model; the name ``default`` is used by agents without ``model:``."""
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    """Name -> agent."""
    teams: dict[str, TeamConfig] = Field(default_factory=dict)
    """Name -> team."""
    workflows: dict[str, WorkflowConfig] = Field(default_factory=dict)
    """Name -> workflow."""
    mcp: dict[str, McpServerConfig] = Field(default_factory=dict)
    """Name -> MCP server; its tools appear as ``<name>.<tool>``."""
    approvals: ApprovalsConfig = Field(default_factory=ApprovalsConfig)
    """The approval policy."""
    knowledge: dict[str, KnowledgeSource] = Field(default_factory=dict)
    """Name -> knowledge source."""
    toolkits: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Toolkit name -> its settings (``shell: {timeout: 30}``), given to the toolkit."""
    memory: dict[str, Any] = Field(default_factory=dict)
    """Long-term memory settings (``{enabled: true}``); ``memory: true`` is short for it."""

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_flag(cls, value: Any) -> Any:
        return {"enabled": value} if isinstance(value, bool) else value


class Workspace(_WorkspaceFile):
    """A loaded workspace: the validated ``workbench.yaml`` and where it lives."""

    model_config = ConfigDict(strict=False)

    root: Path
    """The workspace folder."""
    path: Path | None = None
    """The ``workbench.yaml`` it came from; ``None`` when the folder has none."""
    name: str = ""
    """The folder's name."""

    _text: str = PrivateAttr(default="")
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not data.get("name") and data.get("root"):
            return {**data, "name": Path(data["root"]).name}
        return data

    def resolve_model(self, name_or_string: str | None = None) -> ModelSpec:
        """The model for a name from ``models:`` or a litellm model string.

        ``None`` gives the model named ``default`` if there is one, else ``test``; any
        string that is not a name from ``models:`` is taken as a litellm model string.
        """
        if name_or_string is None:
            return self.models.get("default") or ModelSpec(model="test")
        spec = self.models.get(name_or_string)
        return spec if spec is not None else ModelSpec(model=name_or_string)

    def target_models(self, kind: str, name: str) -> list[ModelSpec]:
        """Every model a run of an agent, team or workflow may call: its agents', members',
        leaders', judges', steps' and routers' (teams and workflows inside it included).
        Unknown names contribute nothing."""
        out: dict[str, ModelSpec] = {}
        seen: set[tuple[str, str]] = set()

        def agent(cfg: AgentConfig | None) -> None:
            spec = self.resolve_model(cfg.model if cfg is not None else None)
            out.setdefault(spec.model_dump_json(), spec)

        def visit(kind: str, name: str) -> None:
            if (kind, name) in seen:
                return
            seen.add((kind, name))
            if kind == "agent" and name in self.agents:
                agent(self.agents[name])
            elif kind == "team" and name in self.teams:
                team = self.teams[name]
                for member in team.members:
                    visit(self.target_kind(member) or "agent", member)
                leader = team.leader
                if isinstance(leader, str):
                    visit("agent", leader)
                elif leader is not None or team.mode != "sequential":
                    agent(leader)  # an inline table, or the default leader
                if team.judge:
                    visit("agent", team.judge)
            elif kind == "workflow" and name in self.workflows:
                nodes(self.workflows[name].steps)

        def nodes(items: Sequence[Any]) -> None:
            for node in items:
                if isinstance(node, StepNode):
                    for k in ("agent", "team", "workflow"):
                        if getattr(node, k):
                            visit(k, getattr(node, k))
                elif isinstance(node, RouterNode):
                    if node.by in self.agents:
                        visit("agent", node.by)
                    for route in node.routes.values():
                        nodes(route)
                elif isinstance(node, ConditionNode):
                    nodes(node.then)
                    nodes(node.else_)
                elif isinstance(node, LoopNode):
                    nodes(node.steps)
                elif isinstance(node, ParallelNode):
                    nodes(node.parallel)

        visit(kind, name)
        return list(out.values())

    def target_kind(self, name: str) -> Literal["agent", "team", "workflow"] | None:
        """Whether ``name`` is an agent, a team or a workflow (names are unique across them)."""
        if name in self.agents:
            return "agent"
        if name in self.teams:
            return "team"
        if name in self.workflows:
            return "workflow"
        return None

    def default_agent(self) -> str | None:
        """The first agent in the file (``assistant`` in a default workspace)."""
        return next(iter(self.agents), None)

    @property
    def mcp_servers(self) -> list[str]:
        """The names of the configured MCP servers."""
        return list(self.mcp)

    def fingerprint(self) -> str:
        """SHA-256 of the ``workbench.yaml`` text (of ``""`` without a file)."""
        return hashlib.sha256(self._text.encode("utf-8")).hexdigest()

    def line_of(self, key: str) -> int | None:
        """The line where a dotted key (``agents.writer``) is written, if known."""
        return self._lines.get(key)
