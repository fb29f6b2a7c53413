"""Workspaces: ``workbench.yaml`` as a validated, typed configuration.

A workspace is a folder with a ``workbench.yaml`` and, optionally, Python modules for
custom tools and step functions (``module:function``). :func:`load_workspace` reads the
file, validates it and returns a frozen :class:`Workspace`; every mistake becomes a
:class:`WorkspaceError` that names the file, the line and the key (a dotted path such as
``agents.researcher.tools[2]``) and says what was expected. Loading never writes anything
and never imports the workspace's own modules (it only reads them to check that a named
function exists).

The file is composed into a YAML node tree first, so every key and value keeps its line;
the tree is turned into plain data, validated by the pydantic models below, and each
pydantic error's ``loc`` is mapped back to its line. Checks that span the whole file
(unknown models, tools, agents; cycles; step references in expressions) run afterwards.

Workflow conditions and loop bounds use a tiny expression language, compiled by
:func:`compile_expression` into an :class:`Expression` without ``eval``: only a whitelist of
syntax (names ``input``, ``iteration``, ``state.KEY``, ``steps.NAME.output``; literals;
comparisons; ``and``/``or``/``not``; ``in``, ``not in``, ``contains``; ``len(x)``) is
accepted, and anything else is refused when the workspace loads.

This module is imported on the TUI's start-up path: it must not import litellm, lancedb
or textual.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import types
from collections.abc import Collection, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import (
    Annotated,
    Any,
    ClassVar,
    Literal,
    TypeAlias,
    Union,
    get_args,
    get_origin,
)

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "BUILTIN_TOOLKITS",
    "WORKSPACE_FILE",
    "AgentConfig",
    "ApprovalsConfig",
    "ConditionNode",
    "Expression",
    "ExpressionError",
    "KnowledgeSource",
    "LoopNode",
    "McpServerConfig",
    "ModelSpec",
    "Node",
    "ParallelNode",
    "RouterNode",
    "StepNode",
    "TeamConfig",
    "TeamMode",
    "WorkflowConfig",
    "Workspace",
    "WorkspaceError",
    "compile_expression",
    "diff_workspaces",
    "is_function_ref",
    "load_workspace",
    "split_approval_rule",
]

WORKSPACE_FILE = "workbench.yaml"
"""The name of the configuration file in a workspace folder."""

BUILTIN_TOOLKITS: frozenset[str] = frozenset({"knowledge", "memory"})
"""Toolkits the engine provides itself (not through entry points); always known."""

_OFFLINE_MODELS = frozenset({"test", "replay"})
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_STEP_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNC_REF_RE = re.compile(r"\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)\s*")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TEMPLATE_STEP_RE = re.compile(r"\{steps\.([^.{}\s]+)")
_ENV_PARAMS = ("api_key", "api_base", "extra_headers")
_MAX_NODES = 200_000

Loc: TypeAlias = tuple[str | int, ...]


# -- errors ------------------------------------------------------------------------------


class WorkspaceError(Exception):
    """A mistake in ``workbench.yaml``, located by file, line and key.

    ``str()`` reads ``/x/workbench.yaml:7: agents.researcher.model: unknown model ...``.
    When a load finds several mistakes, the first (by line) is raised and all of them are
    in :attr:`errors`, so a UI can list every one.
    """

    path: Path
    """The file (or the folder, when there is no file to blame)."""
    line: int | None
    """1-based line of the offending key or value, when known."""
    column: int | None
    """1-based column, for YAML syntax errors."""
    key: str
    """Dotted path of the offending key, such as ``agents.researcher.tools[2]``; may be empty."""
    message: str
    """What is wrong and what was expected."""
    errors: list[WorkspaceError]
    """Every mistake found by the same load (this one included)."""

    def __init__(
        self,
        path: Path,
        line: int | None,
        key: str,
        message: str,
        *,
        column: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.key = key
        self.message = message
        self.errors = [self]
        super().__init__(self._format())

    def _format(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def __str__(self) -> str:
        return self._format()

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_error,
            (self.path, self.line, self.key, self.message, self.column),
        )


def _rebuild_error(
    path: Path, line: int | None, key: str, message: str, column: int | None
) -> WorkspaceError:
    return WorkspaceError(path, line, key, message, column=column)


class ExpressionError(ValueError):
    """An expression that does not parse, uses a construct outside the whitelist, or
    cannot be evaluated against the values it met."""


# -- the expression language -------------------------------------------------------------

# Quoted strings are kept as they are while ``contains`` is rewritten around them.
_STRING_RE = re.compile(r"""('(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")""")
_IS_RE = re.compile(r"(?<![.\w])is(?!\w)")
_NOT_CONTAINS_RE = re.compile(r"(?<![.\w])not\s+contains(?!\w)")
_CONTAINS_RE = re.compile(r"(?<![.\w])contains(?!\w)")
_EXPR_NAMES = frozenset({"input", "state", "steps", "iteration"})
_EXPR_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None}
_COMPARE_OPS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)
_WORDS: dict[type[ast.AST], str] = {
    ast.BinOp: "arithmetic",
    ast.Subscript: "indexing with [...]",
    ast.Lambda: "lambda",
    ast.IfExp: "'x if y else z'",
    ast.Dict: "dict literals",
    ast.Set: "set literals",
    ast.JoinedStr: "f-strings",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.NamedExpr: "':='",
    ast.Await: "await",
    ast.Starred: "'*'",
    ast.Slice: "slices",
}


def is_function_ref(text: str) -> bool:
    """Whether ``text`` is a ``module:function`` reference rather than an expression."""
    return _FUNC_REF_RE.fullmatch(text) is not None


class Expression:
    """A compiled condition: safe to evaluate, no ``eval`` involved.

    The context is a mapping with the keys ``input`` (the workflow input), ``steps``
    (step name -> a mapping or object with ``output``), ``state`` (the workflow state) and
    ``iteration`` (the loop iteration, from 1). Missing keys read as ``None``. Attribute
    access on a mapping reads its key (``state.lang`` is ``state["lang"]``).

    Comparison rules, chosen for model output: a number compared with a string that
    holds a number compares as numbers (``steps.score.output >= 8`` with output ``"9"``);
    two strings compare without leading and trailing whitespace; ``<``, ``>`` and the like
    with ``None`` on either side are false; ``x in None`` is false; ``a contains b`` is
    ``b in a`` (with ``b`` turned into text when ``a`` is text).
    """

    __slots__ = ("_tree", "names", "text")

    text: str
    """The source text, as written in the workspace."""
    names: frozenset[str]
    """The step names it references through ``steps.NAME``."""

    def __init__(self, text: str, tree: ast.Expression, names: frozenset[str]) -> None:
        self.text = text
        self.names = names
        self._tree = tree

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def evaluate(self, ctx: Mapping[str, Any]) -> bool:
        """The truth of the expression for ``ctx``.

        Raises:
            ExpressionError: values of types that cannot be compared or measured.
        """
        return bool(_evaluate(self._tree.body, ctx))


@lru_cache(maxsize=512)
def compile_expression(text: str) -> Expression:
    """Parse and check an expression of the workflow condition language.

    Args:
        text: such as ``"steps.review.output contains 'APPROVED' and iteration < 3"``.

    Raises:
        ExpressionError: it does not parse, or uses something outside the whitelist.
    """
    source = " ".join(text.strip().splitlines())
    if not source:
        raise ExpressionError("empty expression")
    if is_function_ref(source):
        raise ExpressionError(
            f"{source!r} is a module:function reference, not an expression; "
            "the workflow calls it instead of compiling it"
        )
    rewritten = _rewrite_contains(source)
    try:
        tree = ast.parse(rewritten, mode="eval")
    except (SyntaxError, ValueError) as exc:
        msg = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise ExpressionError(f"cannot parse expression {source!r}: {msg}") from None
    names: set[str] = set()
    _check_node(tree.body, names)
    return Expression(source, tree, frozenset(names))


def _rewrite_contains(source: str) -> str:
    """``a contains b`` becomes ``a is b`` (and ``not contains`` ``is not``).

    ``is`` is otherwise refused, so in the tree an ``Is`` can only mean ``contains``, and
    it parses with the precedence of ``in``.
    """
    parts = _STRING_RE.split(source)
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(part)
            continue
        if _IS_RE.search(part):
            raise ExpressionError("'is' is not allowed in an expression; use == or !=")
        part = _NOT_CONTAINS_RE.sub(" is not ", part)
        out.append(_CONTAINS_RE.sub(" is ", part))
    return "".join(out)


def _refuse(what: str) -> ExpressionError:
    return ExpressionError(f"{what} is not allowed in an expression")


def _attribute_chain(node: ast.Attribute) -> tuple[ast.expr, list[str]]:
    attrs: list[str] = []
    cur: ast.expr = node
    while isinstance(cur, ast.Attribute):
        attrs.append(cur.attr)
        cur = cur.value
    attrs.reverse()
    return cur, attrs


def _check_node(node: ast.expr, names: set[str]) -> None:
    """Refuse anything outside the whitelist; collect referenced step names."""
    if isinstance(node, ast.Constant):
        if node.value is not None and not isinstance(node.value, str | int | float | bool):
            raise _refuse(f"the literal {node.value!r}")
        return
    if isinstance(node, ast.Name):
        if node.id == "steps":
            raise ExpressionError("'steps' needs a step name: write steps.NAME.output")
        if node.id not in _EXPR_NAMES and node.id not in _EXPR_CONSTANTS:
            raise ExpressionError(
                f"unknown name {node.id!r}; an expression may use input, iteration, "
                "state.KEY and steps.NAME.output"
            )
        return
    if isinstance(node, ast.Attribute):
        base, attrs = _attribute_chain(node)
        for a in attrs:
            if a.startswith("_"):
                raise _refuse(f"the attribute {a!r} (names starting with '_')")
        if not isinstance(base, ast.Name) or base.id not in _EXPR_NAMES:
            raise _refuse("attribute access other than on input, state and steps")
        if base.id == "steps":
            names.add(attrs[0])
        return
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check_node(v, names)
        return
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            _check_node(node.operand, names)
            return
        if isinstance(node.op, ast.USub | ast.UAdd) and isinstance(node.operand, ast.Constant):
            if isinstance(node.operand.value, int | float) and not isinstance(
                node.operand.value, bool
            ):
                return
        raise _refuse("this unary operator")
    if isinstance(node, ast.Compare):
        for op in node.ops:
            if not isinstance(op, (*_COMPARE_OPS, ast.Is, ast.IsNot)):
                raise _refuse(f"the operator {type(op).__name__}")
        _check_node(node.left, names)
        for c in node.comparators:
            _check_node(c, names)
        return
    if isinstance(node, ast.Call):
        fname = node.func.id if isinstance(node.func, ast.Name) else None
        if fname != "len":
            shown = repr(fname) if fname else "a function"
            raise ExpressionError(
                f"calling {shown} is not allowed in an expression (the only function is len(x))"
            )
        if len(node.args) != 1 or node.keywords or isinstance(node.args[0], ast.Starred):
            raise ExpressionError("len takes exactly one argument: len(x)")
        _check_node(node.args[0], names)
        return
    if isinstance(node, ast.List | ast.Tuple):
        for e in node.elts:
            _check_node(e, names)
        return
    raise _refuse(_WORDS.get(type(node), type(node).__name__))


def _evaluate(node: ast.expr, ctx: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in _EXPR_CONSTANTS:
            return _EXPR_CONSTANTS[node.id]
        return ctx.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _evaluate(node.value, ctx)
        if base is None:
            return None
        if isinstance(base, Mapping):
            return base.get(node.attr)
        return getattr(base, node.attr, None)
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = _evaluate(v, ctx)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = _evaluate(v, ctx)
            if result:
                return result
        return result
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, ctx)
        if isinstance(node.op, ast.Not):
            return not value
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, ctx)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comp, ctx)
            if not _compare(op, left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        value = _evaluate(node.args[0], ctx)
        if value is None:
            return 0
        try:
            return len(value)
        except TypeError:
            raise ExpressionError(f"len() of {type(value).__name__} {value!r}") from None
    if isinstance(node, ast.List | ast.Tuple):
        return [_evaluate(e, ctx) for e in node.elts]
    raise ExpressionError(f"cannot evaluate {type(node).__name__}")  # refused at compile time


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _normalise_pair(a: Any, b: Any) -> tuple[Any, Any]:
    if (_is_number(a) and isinstance(b, str)) or (isinstance(a, str) and _is_number(b)):
        na, nb = _as_number(a), _as_number(b)
        if na is not None and nb is not None:
            return na, nb
    if isinstance(a, str) and isinstance(b, str):
        return a.strip(), b.strip()
    return a, b


def _contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    if isinstance(container, str):
        return (item if isinstance(item, str) else str(item)) in container
    try:
        return bool(item in container)
    except TypeError:
        raise ExpressionError(
            f"cannot look for {item!r} in {type(container).__name__} {container!r}"
        ) from None


def _compare(op: ast.cmpop, a: Any, b: Any) -> bool:
    if isinstance(op, ast.In):
        return _contains(b, a)
    if isinstance(op, ast.NotIn):
        return not _contains(b, a)
    if isinstance(op, ast.Is):  # rewritten ``contains``
        return _contains(a, b)
    if isinstance(op, ast.IsNot):  # rewritten ``not contains``
        return not _contains(a, b)
    a, b = _normalise_pair(a, b)
    if isinstance(op, ast.Eq):
        return bool(a == b)
    if isinstance(op, ast.NotEq):
        return bool(a != b)
    if a is None or b is None:
        return False
    try:
        if isinstance(op, ast.Lt):
            return bool(a < b)
        if isinstance(op, ast.LtE):
            return bool(a <= b)
        if isinstance(op, ast.Gt):
            return bool(a > b)
        return bool(a >= b)
    except TypeError:
        raise ExpressionError(
            f"cannot compare {type(a).__name__} {a!r} with {type(b).__name__} {b!r}"
        ) from None


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


# -- YAML to data, keeping lines ---------------------------------------------------------


class _Lines:
    """Lines of every key and value, by path."""

    def __init__(self) -> None:
        self.keys: dict[Loc, int] = {}
        self.values: dict[Loc, int] = {}

    def line(self, path: Loc) -> int | None:
        """The line of ``path``, or of its nearest ancestor that is in the file."""
        for i in range(len(path), -1, -1):
            p = path[:i]
            if p in self.keys:
                return self.keys[p]
            if p in self.values:
                return self.values[p]
        return None

    def dotted(self) -> dict[str, int]:
        out = {_dotted(p): line for p, line in self.values.items()}
        out.update({_dotted(p): line for p, line in self.keys.items()})
        return out


def _dotted(path: Loc) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME_RE.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


class _Converter:
    """Turns a composed YAML node tree into plain data, recording lines."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.lines = _Lines()
        self.errors: list[WorkspaceError] = []
        self.error_paths: list[Loc] = []
        """Paths already reported; validation errors under them would only repeat them."""
        self.constructor = yaml.constructor.SafeConstructor()
        self._active: set[int] = set()
        self._count = 0

    def error(self, path: Loc, line: int, message: str) -> None:
        self.errors.append(WorkspaceError(self.file, line, _dotted(path), message))
        self.error_paths.append(path)

    def convert(self, node: yaml.Node, path: Loc) -> Any:
        line = node.start_mark.line + 1
        self.lines.values.setdefault(path, line)
        self._count += 1
        if self._count > _MAX_NODES:
            raise WorkspaceError(
                self.file, line, _dotted(path), "the file expands to too much data"
            )
        if id(node) in self._active:
            self.error(path, line, "an alias refers to a node that contains it")
            return None
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.constructor.construct_object(node, deep=True)
            except yaml.MarkedYAMLError as exc:
                self.error(path, line, f"invalid value: {exc.problem}")
                return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            return self._mapping(node, path)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Loc) -> dict[str, Any]:
        explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        self.constructor.flatten_mapping(node)
        n_merged = len(node.value) - explicit
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(path, key_line, "a key must be a plain name, not a list or a table")
                continue
            key = str(key_node.value)
            here = (*path, key)
            if index >= n_merged:
                if key in first_line:
                    self.error(
                        here,
                        key_line,
                        f"duplicate key '{key}' (first on line {first_line[key]})",
                    )
                    continue
                first_line[key] = key_line
            self.lines.keys[here] = key_line
            self.lines.values.pop(here, None)  # an explicit key replaces a merged one
            out[key] = self.convert(value_node, here)
        return out


def _syntax_error_path(text: str) -> Loc:
    """The key path where parsing stopped, replayed from the parser's events."""
    # A frame is ["map", last key, expecting a key] or ["seq", index].
    frames: list[list[Any]] = []

    def advance() -> None:
        if frames:
            top = frames[-1]
            if top[0] == "map":
                top[2] = True
            else:
                top[1] += 1

    try:
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(ev, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                frames.pop()
                advance()
                continue
            if not isinstance(
                ev,
                yaml.MappingStartEvent
                | yaml.SequenceStartEvent
                | yaml.ScalarEvent
                | yaml.AliasEvent,
            ):
                continue
            top = frames[-1] if frames else None
            if top is not None and top[0] == "map" and top[2]:
                if not isinstance(ev, yaml.ScalarEvent):
                    break  # a complex key: the path so far is the best answer
                top[1] = ev.value
                top[2] = False
                continue
            if isinstance(ev, yaml.MappingStartEvent):
                frames.append(["map", None, True])
            elif isinstance(ev, yaml.SequenceStartEvent):
                frames.append(["seq", 0])
            else:
                advance()
    except yaml.YAMLError:
        pass
    path: list[str | int] = []
    for i, f in enumerate(frames):
        if f[0] == "seq":
            path.append(f[1])
        elif f[1] is not None and not (i == len(frames) - 1 and f[2]):
            path.append(str(f[1]))
        else:
            break
    return tuple(path)


_YAML_HINTS = (
    ("mapping values are not allowed", "quote a value that contains ': '"),
    ("'\\t'", "indent with spaces, not tabs"),
    ("expected <block end>", "check the indentation"),
    ("did not find expected key", "check the indentation"),
    ("could not find expected ':'", "a key needs ': ' after it"),
)


def _yaml_error(file: Path, text: str, exc: yaml.YAMLError) -> WorkspaceError:
    line = column = None
    message = "invalid YAML"
    if isinstance(exc, yaml.MarkedYAMLError):
        if exc.problem_mark is not None:
            line = exc.problem_mark.line + 1
            column = exc.problem_mark.column + 1
        message = f"invalid YAML: {exc.problem}"
        if exc.context:
            message += f" ({exc.context}"
            if exc.context_mark is not None and exc.context_mark.line + 1 != line:
                message += f" on line {exc.context_mark.line + 1}"
            message += ")"
        hint = next((h for k, h in _YAML_HINTS if k in str(exc.problem)), None)
        if hint:
            message += f"; {hint}"
    return WorkspaceError(file, line, _dotted(_syntax_error_path(text)), message, column=column)


# -- pydantic errors in plain words ------------------------------------------------------


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _child_type(tp: Any, elem: str | int) -> tuple[Any, bool]:
    """The type at ``elem`` under ``tp``, and whether ``elem`` is a key in the file
    (a union's tag is not)."""
    tp = _unwrap(tp)
    if _is_union(tp):
        members = [m for m in get_args(tp) if m is not type(None)]
        for m in members:
            if get_origin(m) is Annotated and any(
                isinstance(meta, Tag) and meta.tag == elem for meta in get_args(m)[1:]
            ):
                return _unwrap(m), False
        for m in members:
            child, is_key = _child_type(m, elem)
            if child is not None:
                return child, is_key
        return None, True
    if _is_model(tp):
        for fname, finfo in tp.model_fields.items():
            if (finfo.alias or fname) == elem:
                return finfo.annotation, True
        return None, True
    origin = get_origin(tp)
    if origin in (list, tuple) and isinstance(elem, int):
        return get_args(tp)[0], True
    if origin is dict and isinstance(elem, str):
        return get_args(tp)[1], True
    return None, True


def _walk_loc(loc: Loc) -> tuple[Loc, Any, Any]:
    """A pydantic ``loc`` as a path in the file, the type there and its parent's type."""
    tp: Any = _WorkspaceFile
    parent: Any = None
    path: list[str | int] = []
    for elem in loc:
        child, is_key = _child_type(tp, elem) if tp is not None else (None, True)
        if is_key:
            path.append(elem)
            parent = _unwrap(tp) if tp is not None else None
        tp = child
    return tuple(path), tp, parent


def _node_union(tp: Any) -> bool:
    return _is_union(tp) and any(_unwrap(m) is StepNode for m in get_args(tp))


def _describe(tp: Any) -> str:
    tp = _unwrap(tp)
    if tp is None or tp is Any:
        return "a value"
    if _node_union(tp):
        return f"a workflow node (a table with one of the keys {', '.join(_NODE_KEYS)})"
    if _is_union(tp):
        members = [m for m in get_args(tp) if m is not type(None)]
        if any(_unwrap(m) is AgentConfig for m in members) and any(
            _unwrap(m) is str for m in members
        ):
            return "an agent name or an agent table"
        return " or ".join(dict.fromkeys(_describe(m) for m in members))
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        return f"a list of {_plural(get_args(tp)[0])}"
    if origin is dict:
        value = _unwrap(get_args(tp)[1])
        return "a table" if value is Any else f"a table of {_plural(value)}"
    if _is_model(tp):
        return str(getattr(tp, "_what", "a table"))
    return {
        str: "a string",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        Path: "a path",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _plural(tp: Any) -> str:
    tp = _unwrap(tp)
    if _node_union(tp):
        return "workflow nodes"
    if _is_model(tp):
        return str(getattr(tp, "_plural", "tables"))
    origin = get_origin(tp)
    if origin is dict:
        return "tables"
    if origin in (list, tuple):
        return "lists"
    return {str: "strings", int: "whole numbers", float: "numbers", bool: "true/false values"}.get(
        tp, "values"
    )


def _got(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"bool ({'true' if value else 'false'})"
    if isinstance(value, int | float):
        return f"{type(value).__name__} ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string ({shown!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


def _allowed_keys(model: Any) -> list[str]:
    if not _is_model(model):
        return []
    return [f.alias or n for n, f in model.model_fields.items() if n != "env_vars"]


def _node_message(value: Any) -> str:
    keys = ", ".join(_NODE_KEYS)
    if not isinstance(value, Mapping):
        return f"expected a workflow node (a table with one of the keys {keys}), got {_got(value)}"
    found = [k for k in _NODE_KEYS if k in value]
    if not found:
        has = ", ".join(map(str, value)) or "none"
        return f"a workflow node needs one of the keys {keys}; found none (its keys: {has})"
    return f"a workflow node has exactly one of the keys {keys}; found " + " and ".join(
        f"'{k}'" for k in found
    )


def _message(err: Mapping[str, Any], tp: Any, parent: Any, key: str | int) -> str:
    kind: str = err["type"]
    value = err.get("input")
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    if kind == "missing":
        msg = f"missing required key '{key}'"
        if parent is LoopNode and key == "max_iterations":
            msg += ": a loop without a bound could run forever"
        return msg
    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(parent))
        return f"unknown key '{key}'; expected one of: {allowed}"
    if kind == "workflow_node":
        return _node_message(value)
    if kind == "leader":
        return f"expected an agent name or an agent table, got {_got(value)}"
    if kind == "value_error":
        return str(ctx.get("error", err.get("msg", "")))
    if kind == "too_short":
        if isinstance(value, Mapping):
            if parent is RouterNode:
                return "a router needs at least one route"
            return "needs at least one entry"
        n = ctx.get("min_length", 1)
        return f"needs at least {n} item{'s' if n != 1 else ''}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}, got {_got(value)}"
    if kind == "greater_than":
        return f"must be more than {ctx.get('gt')}, got {_got(value)}"
    if kind.endswith(("_type", "_parsing")) or kind in ("literal_error", "int_from_float"):
        expected = _describe(tp) if tp is not None else None
        if expected is None:
            return str(err.get("msg", "invalid value"))
        msg = f"expected {expected}, got {_got(value)}"
        if "a string" in expected and isinstance(value, bool | int | float):
            msg += "; put it in quotes if you mean the text"
        return msg
    return str(err.get("msg", "invalid value"))


def _translate(exc: ValidationError, file: Path, lines: _Lines) -> list[tuple[WorkspaceError, Loc]]:
    out: list[tuple[WorkspaceError, Loc]] = []
    seen: set[tuple[int | None, str, str]] = set()
    for err in exc.errors(include_url=False):
        path, tp, parent = _walk_loc(tuple(err["loc"]))
        last = path[-1] if path else ""
        message = _message(err, tp, parent, last)
        line = lines.line(path)
        key = _dotted(path)
        if (line, key, message) in seen:
            continue
        seen.add((line, key, message))
        out.append((WorkspaceError(file, line, key, message), path))
    return out


# -- checks across the file --------------------------------------------------------------


def _names(items: Collection[str]) -> str:
    return ", ".join(items) if items else "none"


def _cycles(graph: Mapping[str, list[tuple[str, Loc]]]) -> list[tuple[Loc, list[str]]]:
    """Each cycle once, with the location of the edge that closes it."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []
    found: list[tuple[Loc, list[str]]] = []
    reported: set[frozenset[str]] = set()

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m, loc in graph.get(n, []):
            if state.get(m) == 1:
                cycle = [*stack[stack.index(m) :], m]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    found.append((loc, cycle))
            elif m not in state and m in graph:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n)
    return found


class _Checker:
    """Checks that need the whole file: names, references, cycles."""

    def __init__(
        self,
        ws: _WorkspaceFile,
        root: Path,
        file: Path,
        lines: _Lines,
        known_toolkits: Collection[str] | None,
    ) -> None:
        self.ws = ws
        self.root = root
        self.file = file
        self.lines = lines
        self.known = None if known_toolkits is None else set(known_toolkits)
        self.errors: list[WorkspaceError] = []
        self._modules: dict[Path, tuple[set[str] | None, str | None]] = {}

    def error(self, path: Loc, message: str) -> None:
        self.errors.append(WorkspaceError(self.file, self.lines.line(path), _dotted(path), message))

    def run(self) -> list[WorkspaceError]:
        self.check_names()
        self.check_models()
        for name, agent in self.ws.agents.items():
            self.check_agent(("agents", name), agent)
        self.check_teams()
        self.check_workflows()
        self.check_toolkits()
        self.check_mcp()
        self.check_approvals()
        self.check_knowledge()
        return self.errors

    # names ---------------------------------------------------------------------------

    def check_names(self) -> None:
        ws = self.ws
        sections: dict[str, Collection[str]] = {
            "models": ws.models,
            "agents": ws.agents,
            "teams": ws.teams,
            "workflows": ws.workflows,
            "mcp": ws.mcp,
            "knowledge": ws.knowledge,
        }
        for section, names in sections.items():
            for name in names:
                if not _NAME_RE.fullmatch(name):
                    self.error(
                        (section, name),
                        f"invalid name {name!r}: use letters, digits, '_' and '-'",
                    )
        owner: dict[str, str] = {}
        for section in ("agents", "teams", "workflows"):
            for name in sections[section]:
                if name in owner:
                    self.error(
                        (section, name),
                        f"{name!r} is already defined in {owner[name]}: agents, teams and "
                        "workflows share one set of names",
                    )
                else:
                    owner[name] = section

    # models --------------------------------------------------------------------------

    def check_models(self) -> None:
        for name, spec in self.ws.models.items():
            base: Loc = ("models", name)
            if ("models", name, "params") in self.lines.values:
                base = (*base, "params")
            p = spec.params
            for key in ("temperature", "timeout"):
                if key in p and not _is_number(p[key]):
                    self.error((*base, key), f"expected a number, got {_got(p[key])}")
            if "max_tokens" in p and not (
                isinstance(p["max_tokens"], int)
                and not isinstance(p["max_tokens"], bool)
                and p["max_tokens"] >= 1
            ):
                self.error(
                    (*base, "max_tokens"),
                    f"expected a whole number of at least 1, got {_got(p['max_tokens'])}",
                )
            for key in ("api_base", "api_key"):
                if key in p and not isinstance(p[key], str):
                    self.error((*base, key), f"expected a string, got {_got(p[key])}")
            headers = p.get("extra_headers")
            if headers is not None and not (
                isinstance(headers, Mapping) and all(isinstance(v, str) for v in headers.values())
            ):
                self.error((*base, "extra_headers"), "expected a table of strings")

    def model_known(self, model: str) -> bool:
        return model in self.ws.models or "/" in model or model in _OFFLINE_MODELS

    # agents and tools ----------------------------------------------------------------

    def check_agent(self, path: Loc, agent: AgentConfig) -> None:
        if agent.model is not None and not self.model_known(agent.model):
            self.error(
                (*path, "model"),
                f"unknown model {agent.model!r}; expected a name from models: "
                f"({_names(self.ws.models)}) or a litellm model string like 'openai/gpt-4o'",
            )
        for i, entry in enumerate(agent.tools):
            self.check_tool((*path, "tools", i), entry)
        if agent.output_schema is not None:
            self.check_output_schema((*path, "output_schema"), agent.output_schema)

    def check_output_schema(self, path: Loc, schema: dict[str, Any]) -> None:
        """The schema is a JSON Schema (checked against the draft 2020-12 meta-schema), so a
        typo fails here, at load, and not at the end of a run."""
        import jsonschema  # only a workspace with an output schema pays for it

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            inner: Loc = tuple(exc.absolute_path)
            self.error(
                (*path, *inner),
                f"not a valid JSON Schema: {exc.message} (the output schema must be a JSON "
                "Schema, draft 2020-12)",
            )

    def check_tool(self, path: Loc, entry: str) -> None:
        entry = entry.strip()
        if not entry:
            self.error(path, "empty tool name")
            return
        if ":" in entry:
            if not is_function_ref(entry):
                self.error(
                    path,
                    f"bad tool {entry!r}: expected 'module:function' naming a function in a "
                    ".py file of the workspace folder",
                )
                return
            self.check_function_ref(path, entry)
            return
        toolkit, dot, tool_part = entry.partition(".")
        if not dot or not toolkit or not tool_part:
            self.error(
                path,
                f"bad tool {entry!r}: expected 'toolkit.tool', 'toolkit.*' or "
                f"'module:function' (write '{toolkit or entry}.*' for all of a toolkit's tools)",
            )
            return
        if any(c in toolkit for c in "*?[]"):
            self.error(path, f"bad tool {entry!r}: the toolkit part must be a name, not a pattern")
            return
        if toolkit in self.ws.mcp or toolkit in BUILTIN_TOOLKITS:
            return
        if self.known is not None and toolkit not in self.known:
            self.error(
                path,
                f"unknown tool {entry!r}: no toolkit {toolkit!r} (installed toolkits: "
                f"{_names(sorted(self.known | BUILTIN_TOOLKITS))}; MCP servers: "
                f"{_names(self.ws.mcp)})",
            )

    def check_function_ref(self, path: Loc, ref: str) -> None:
        m = _FUNC_REF_RE.fullmatch(ref)
        if m is None:
            self.error(path, f"expected 'module:function', got {ref!r}")
            return
        module, func = m.group(1), m.group(2)
        parts = module.split(".")
        candidates = [
            Path(self.root, *parts[:-1], f"{parts[-1]}.py"),
            Path(self.root, *parts, "__init__.py"),
        ]
        file = next((c for c in candidates if c.is_file()), None)
        if file is None:
            self.error(
                path,
                f"{ref.strip()!r}: no file {candidates[0].relative_to(self.root).as_posix()} "
                f"in the workspace folder {self.root}",
            )
            return
        names, problem = self.module_names(file)
        shown = file.relative_to(self.root).as_posix()
        if problem is not None:
            self.error(path, f"{ref.strip()!r}: {shown} does not parse: {problem}")
        elif names is not None and func not in names:
            self.error(path, f"{ref.strip()!r}: {shown} defines no {func!r}")

    def module_names(self, file: Path) -> tuple[set[str] | None, str | None]:
        """Top-level names a module binds (``None`` if it may bind any), or a parse problem.

        The module is read, never imported: loading a workspace runs none of its code.
        """
        if file in self._modules:
            return self._modules[file]
        result: tuple[set[str] | None, str | None]
        try:
            tree = ast.parse(file.read_text(encoding="utf-8-sig"), filename=str(file))
        except SyntaxError as exc:
            result = (None, f"line {exc.lineno}: {exc.msg}")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            result = (None, str(exc))
        else:
            result = (_bound_names(tree), None)
        self._modules[file] = result
        return result

    # teams ---------------------------------------------------------------------------

    def check_teams(self) -> None:
        ws = self.ws
        graph: dict[str, list[tuple[str, Loc]]] = {}
        for tname, team in ws.teams.items():
            base: Loc = ("teams", tname)
            edges = graph.setdefault(tname, [])
            seen: set[str] = set()
            for i, member in enumerate(team.members):
                here = (*base, "members", i)
                if member in seen:
                    self.error(here, f"{member!r} is listed twice")
                seen.add(member)
                if member in ws.teams:
                    edges.append((member, here))
                elif member not in ws.agents:
                    self.error(
                        here,
                        f"unknown agent or team {member!r} (agents: {_names(ws.agents)}; "
                        f"teams: {_names(ws.teams)})",
                    )
            if isinstance(team.leader, AgentConfig):
                self.check_agent((*base, "leader"), team.leader)
            elif isinstance(team.leader, str) and team.leader not in ws.agents:
                self.error(
                    (*base, "leader"),
                    f"unknown agent {team.leader!r}: a leader is a name from agents: "
                    f"({_names(ws.agents)}) or an inline agent table",
                )
            if team.judge is not None:
                if team.mode != "consensus":
                    self.error((*base, "judge"), "judge is only used with mode: consensus")
                elif team.judge not in ws.agents:
                    self.error(
                        (*base, "judge"),
                        f"unknown agent {team.judge!r}: a judge is a name from agents: "
                        f"({_names(ws.agents)})",
                    )
        for loc, cycle in _cycles(graph):
            self.error(loc, f"cycle: {' -> '.join(cycle)} (a team cannot contain itself)")

    # workflows -----------------------------------------------------------------------

    def check_workflows(self) -> None:
        ws = self.ws
        graph: dict[str, list[tuple[str, Loc]]] = {}
        for wname, wf in ws.workflows.items():
            base: Loc = ("workflows", wname, "steps")
            edges = graph.setdefault(wname, [])
            nodes = list(_walk_nodes(wf.steps, base))
            defined: dict[str, Loc] = {}
            for path, node in nodes:
                name, name_key = _node_name(node)
                if name is None:
                    continue
                where = (*path, name_key)
                if not _STEP_NAME_RE.fullmatch(name):
                    self.error(
                        where,
                        f"invalid step name {name!r}: use letters, digits and '_' "
                        "(expressions read it as steps.NAME)",
                    )
                if name in defined:
                    self.error(
                        where,
                        f"step name {name!r} is used twice in workflow {wname!r} "
                        f"(first on line {self.lines.line(defined[name])})",
                    )
                else:
                    defined[name] = where
            known = set(defined)
            for path, node in nodes:
                if isinstance(node, StepNode):
                    self.check_step(path, node, known, wname, edges)
                elif isinstance(node, ConditionNode):
                    self.check_condition((*path, "condition"), node.condition, known, wname)
                elif isinstance(node, LoopNode) and node.until is not None:
                    self.check_condition((*path, "until"), node.until, known, wname)
                elif isinstance(node, RouterNode):
                    if is_function_ref(node.by):
                        self.check_function_ref((*path, "by"), node.by)
                    elif node.by not in ws.agents:
                        self.error(
                            (*path, "by"),
                            f"unknown agent {node.by!r}: a router's 'by' is an agent "
                            f"(agents: {_names(ws.agents)}) or a 'module:function'",
                        )
        for loc, cycle in _cycles(graph):
            self.error(loc, f"cycle: workflow {' -> '.join(cycle)} (a workflow cannot run itself)")

    def check_step(
        self,
        path: Loc,
        step: StepNode,
        known: set[str],
        wname: str,
        edges: list[tuple[str, Loc]],
    ) -> None:
        ws = self.ws
        if step.agent is not None and step.agent not in ws.agents:
            hint = (
                f"; {step.agent!r} is a team: write team: {step.agent}"
                if step.agent in ws.teams
                else ""
            )
            self.error(
                (*path, "agent"),
                f"unknown agent or team {step.agent!r} (agents: {_names(ws.agents)}){hint}",
            )
        if step.team is not None and step.team not in ws.teams:
            hint = (
                f"; {step.team!r} is an agent: write agent: {step.team}"
                if step.team in ws.agents
                else ""
            )
            self.error(
                (*path, "team"),
                f"unknown agent or team {step.team!r} (teams: {_names(ws.teams)}){hint}",
            )
        if step.function is not None:
            self.check_function_ref((*path, "function"), step.function)
        if step.workflow is not None:
            if step.workflow in ws.workflows:
                edges.append((step.workflow, (*path, "workflow")))
            else:
                self.error(
                    (*path, "workflow"),
                    f"unknown workflow {step.workflow!r} (workflows: {_names(ws.workflows)})",
                )
        if step.input is not None:
            for ref in _TEMPLATE_STEP_RE.findall(step.input):
                if ref not in known:
                    self.error(
                        (*path, "input"),
                        f"unknown step {ref!r} in {{steps.{ref}...}}; steps in workflow "
                        f"{wname!r}: {_names(sorted(known))}",
                    )

    def check_condition(self, path: Loc, text: str, known: set[str], wname: str) -> None:
        if is_function_ref(text):
            self.check_function_ref(path, text)
            return
        try:
            expr = compile_expression(text)
        except ExpressionError as exc:
            self.error(path, str(exc))
            return
        for ref in sorted(expr.names - known):
            self.error(
                path,
                f"unknown step {ref!r} in steps.{ref}; steps in workflow {wname!r}: "
                f"{_names(sorted(known))}",
            )

    # the rest ------------------------------------------------------------------------

    def check_toolkits(self) -> None:
        for name, settings in self.ws.toolkits.items():
            if self.known is None:
                # Toolkits unknown here (no plugin is looked at): what every toolkit takes.
                self.check_toolkit_settings(name, settings, None)
                continue
            if name not in self.known and name not in BUILTIN_TOOLKITS:
                self.error(
                    ("toolkits", name),
                    f"settings for unknown toolkit {name!r} (installed toolkits: "
                    f"{_names(sorted(self.known | BUILTIN_TOOLKITS))})",
                )
                continue
            from workbench.registry import toolkit_settings

            self.check_toolkit_settings(name, settings, toolkit_settings(name))

    def check_toolkit_settings(
        self, name: str, settings: dict[str, Any], model: type[BaseModel] | None
    ) -> None:
        """A toolkit that declares its settings (``Toolkit.settings``) has them checked
        here, at load, with the line and key of each mistake. ``max_output``, which every
        toolkit takes (:class:`~workbench.tools.ToolkitSettings`), is checked for those
        whose model does not have it (or that declare none)."""
        from workbench.tools import check_output_limit

        if model is None or "max_output" not in model.model_fields:
            try:
                check_output_limit(settings.get("max_output"))
            except ValueError as exc:
                self.error(("toolkits", name, "max_output"), str(exc))
            settings = {k: v for k, v in settings.items() if k != "max_output"}
        if model is None:
            return
        try:
            model.model_validate(settings)
        except ValidationError as exc:
            known = ", ".join(model.model_fields)
            for err in exc.errors(include_url=False):
                loc: Loc = ("toolkits", name, *err["loc"])
                if err["type"] == "extra_forbidden":
                    message = f"unknown setting {err['loc'][-1]!r}; {name} takes {known}"
                elif err["type"] == "value_error":  # our validators' own words
                    message = str(err["ctx"]["error"])
                else:
                    message = f"{err['msg']}, got {_got(err.get('input'))}"
                self.error(loc, message)

    def check_mcp(self) -> None:
        from workbench.tools import check_output_limit

        for name, server in self.ws.mcp.items():
            for header, names in server.header_vars.items():
                unset = [v for v in names if v not in os.environ]
                if unset:
                    listed = ", ".join(f"${{{v}}}" for v in unset)
                    self.error(
                        ("mcp", name, "headers", header),
                        f"{listed} is not set in the environment (the header would be sent "
                        "with an empty value); set it, or remove the header",
                    )
            try:
                check_output_limit(server.max_output)
            except ValueError as exc:
                self.error(("mcp", name, "max_output"), str(exc))

    def check_approvals(self) -> None:
        a = self.ws.approvals
        for key, entries in (("allow", a.allow), ("ask", a.ask), ("deny", a.deny)):
            for i, entry in enumerate(entries):
                tool_glob, _ = split_approval_rule(entry.strip())
                if not tool_glob:
                    self.error(
                        ("approvals", key, i),
                        f"bad rule {entry!r}: expected 'tool-glob' or 'tool-glob:argument-glob'",
                    )

    def check_knowledge(self) -> None:
        for name, src in self.ws.knowledge.items():
            if src.chunk_overlap >= src.chunk_size:
                self.error(
                    ("knowledge", name, "chunk_overlap"),
                    f"must be less than chunk_size ({src.chunk_size}), got {src.chunk_overlap}",
                )
            if src.embedding_model is not None and not (
                src.embedding_model in self.ws.models or "/" in src.embedding_model
            ):
                self.error(
                    ("knowledge", name, "embedding_model"),
                    f"unknown model {src.embedding_model!r}; expected a name from models: "
                    f"({_names(self.ws.models)}) or a litellm model string like "
                    "'openai/text-embedding-3-small'",
                )


def _bound_names(tree: ast.Module) -> set[str] | None:
    """Names bound at a module's top level; ``None`` when it can bind names dynamically."""
    names: set[str] = set()

    def targets(t: ast.expr) -> None:
        if isinstance(t, ast.Name):
            names.add(t.id)
        elif isinstance(t, ast.Tuple | ast.List):
            for e in t.elts:
                targets(e)

    def visit(stmts: list[ast.stmt]) -> bool:
        for s in stmts:
            if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(s.name)
            elif isinstance(s, ast.Assign):
                for t in s.targets:
                    targets(t)
            elif isinstance(s, ast.AnnAssign | ast.AugAssign):
                targets(s.target)
            elif isinstance(s, ast.Import | ast.ImportFrom):
                for alias in s.names:
                    if alias.name == "*":
                        return False
                    names.add((alias.asname or alias.name).split(".")[0])
            elif isinstance(s, ast.If | ast.Try | ast.With | ast.For | ast.While):
                blocks: list[list[ast.stmt]] = [s.body]
                if isinstance(s, ast.If | ast.For | ast.While | ast.Try):
                    blocks.append(s.orelse)
                if isinstance(s, ast.Try):
                    blocks.append(s.finalbody)
                    blocks.extend(h.body for h in s.handlers)
                if isinstance(s, ast.For):
                    targets(s.target)
                if isinstance(s, ast.With):
                    for item in s.items:
                        if item.optional_vars is not None:
                            targets(item.optional_vars)
                if not all(visit(b) for b in blocks):
                    return False
        return True

    if not visit(tree.body) or "__getattr__" in names:
        return None
    return names


# -- loading -----------------------------------------------------------------------------


def _raise(errors: list[WorkspaceError]) -> None:
    errors = sorted(errors, key=lambda e: (e.line is None, e.line or 0))
    first = errors[0]
    first.errors = errors
    raise first


def _locate(root: Path | str | None) -> tuple[Path, Path | None]:
    base = Path.cwd() if root is None else Path(root).expanduser()
    base = base.resolve()
    if base.is_file():
        return base.parent, base
    if not base.is_dir():
        raise WorkspaceError(base, None, "", "no such workspace folder")
    file = base / WORKSPACE_FILE
    if file.exists() and not file.is_file():
        raise WorkspaceError(
            file,
            None,
            "",
            "is a folder, not a file: workbench reads its settings from a file named "
            f"{WORKSPACE_FILE}; rename or remove the folder",
        )
    return base, (file if file.is_file() else None)


_MAX_DEPTH = 100
"""Nesting at which a file is reported as too deep (YAML reading recurses per level)."""


def _deepest_line(text: str) -> int | None:
    """The line where the nesting first passes :data:`_MAX_DEPTH` (found with YAML's
    tokenizer, which does not recurse)."""
    depth = 0
    starts: tuple[type[yaml.Token], ...] = (
        yaml.FlowSequenceStartToken,
        yaml.FlowMappingStartToken,
        yaml.BlockSequenceStartToken,
        yaml.BlockMappingStartToken,
    )
    ends = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, starts):
                depth += 1
                if depth > _MAX_DEPTH:
                    return int(token.start_mark.line) + 1
            elif isinstance(token, ends):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None


def _default_agents(ws: _WorkspaceFile) -> dict[str, AgentConfig]:
    if ws.agents or "assistant" in ws.teams or "assistant" in ws.workflows:
        return dict(ws.agents)
    return {"assistant": AgentConfig(description="A general assistant.")}


def load_workspace(
    root: Path | str | None = None,
    *,
    known_toolkits: Collection[str] | None = None,
) -> Workspace:
    """Read and validate a workspace.

    Args:
        root: the workspace folder (or its ``workbench.yaml``); ``None`` means the current
            folder. A folder without ``workbench.yaml`` gives a default workspace (one agent,
            ``assistant``, on the ``test`` model; ``path`` is ``None``), so the app opens.
        known_toolkits: names of the installed plugin toolkits; a tool whose toolkit is
            none of these, no ``mcp:`` server and no built-in toolkit is an error. ``None``
            skips that check.

    Returns:
        The workspace. A file that defines no agent gets the default ``assistant`` too.

    Raises:
        WorkspaceError: the first mistake by line; ``.errors`` holds all of them.
    """
    base, file = _locate(root)
    if file is None:
        return Workspace(root=base, path=None, agents=_default_agents(_WorkspaceFile()))
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkspaceError(file, None, "", f"cannot read the file: {exc}") from None
    return _parse(text, file, base, known_toolkits)


def _parse(text: str, file: Path, root: Path, known_toolkits: Collection[str] | None) -> Workspace:
    converter = _Converter(file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = {} if node is None else converter.convert(node, ())
    except yaml.YAMLError as exc:
        raise _yaml_error(file, text, exc) from None
    except RecursionError:
        raise WorkspaceError(
            file,
            _deepest_line(text),
            "",
            f"nested too deeply (more than {_MAX_DEPTH} levels of lists and tables): flatten it",
        ) from None
    errors = list(converter.errors)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        allowed = ", ".join(_allowed_keys(_WorkspaceFile))
        errors.append(
            WorkspaceError(
                file,
                converter.lines.line(()),
                "",
                f"expected a table of settings ({allowed}) at the top level, got {_got(data)}",
            )
        )
        _raise(errors)
    try:
        parsed = _WorkspaceFile.model_validate(data)
    except ValidationError as exc:
        reported = converter.error_paths
        errors.extend(
            e
            for e, path in _translate(exc, file, converter.lines)
            if not any(path[: len(p)] == p for p in reported)
        )
        _raise(errors)
    if errors:
        _raise(errors)
    errors = _Checker(parsed, root, file, converter.lines, known_toolkits).run()
    if errors:
        _raise(errors)
    fields = {name: getattr(parsed, name) for name in _WorkspaceFile.model_fields}
    fields["agents"] = _default_agents(parsed)
    ws = Workspace(root=root, path=file, **fields)
    ws._text = text
    ws._lines = converter.lines.dotted()
    return ws


# -- reload ------------------------------------------------------------------------------

_SECTIONS: tuple[tuple[str, str], ...] = (
    ("models", "model"),
    ("agents", "agent"),
    ("teams", "team"),
    ("workflows", "workflow"),
    ("mcp", "mcp server"),
    ("knowledge", "knowledge source"),
    ("toolkits", "toolkit settings"),
)


def _changed_fields(old: Any, new: Any) -> list[str]:
    if isinstance(old, BaseModel) and isinstance(new, BaseModel) and type(old) is type(new):
        return [
            f.alias or n
            for n, f in type(old).model_fields.items()
            if getattr(old, n) != getattr(new, n)
        ]
    return [] if old == new else ["settings"]


def diff_workspaces(old: Workspace, new: Workspace) -> list[str]:
    """What changed between two loads, one human line each.

    Lines read ``+ agent critic``, ``- team desk``, ``agent writer: instructions changed``,
    ``approvals: allow, deny changed``. Values are never shown (they may hold keys).
    """
    out: list[str] = []
    for section, label in _SECTIONS:
        before: Mapping[str, Any] = getattr(old, section)
        after: Mapping[str, Any] = getattr(new, section)
        out.extend(f"- {label} {n}" for n in before if n not in after)
        out.extend(f"+ {label} {n}" for n in after if n not in before)
        for n in before:
            if n in after:
                changed = _changed_fields(before[n], after[n])
                if changed:
                    out.append(f"{label} {n}: {', '.join(changed)} changed")
    changed = _changed_fields(old.approvals, new.approvals)
    if changed:
        out.append(f"approvals: {', '.join(changed)} changed")
    if old.memory != new.memory:
        out.append("memory: settings changed")
    return out
