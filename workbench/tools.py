"""Tools and toolkits: the contract every tool source implements.

A :class:`Tool` is a named function with a JSON schema derived from its signature and its
Google-style docstring. Arguments are validated before the call; a validation error, an
exception or a timeout becomes a :class:`ToolError`, which the agent turns into a
``tool.result`` with ``error`` set and sends back to the model, never a crashed run.

A :class:`Toolkit` is what a plugin provides: a named group of tools (``files.read`` is
the tool ``read`` of the toolkit ``files``). Toolkits are registered through the entry-point
group ``workbench.plugins``; see :mod:`workbench.registry`.

Every result is capped (:func:`cap_text`) before it reaches the model and the log: past
:attr:`Tool.max_output` characters (default :data:`DEFAULT_MAX_OUTPUT`) the head and the tail
are kept and the cut is said in the text. A toolkit's ``max_output`` setting sets it for its
tools (a number, or a table of tool name -> number with ``"*"`` for the rest); ``@tool``
takes ``max_output=`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import re
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, field_validator

from workbench.errors import WorkbenchError

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "ApprovalPreview",
    "FunctionTool",
    "FunctionToolkit",
    "Media",
    "Tool",
    "ToolContext",
    "ToolDefinitionError",
    "ToolError",
    "ToolOutput",
    "Toolkit",
    "ToolkitSettings",
    "ToolkitStatus",
    "ToolNames",
    "cap_text",
    "check_output_limit",
    "format_output",
    "output_limit",
    "tool",
]

DEFAULT_MAX_OUTPUT = 100_000
"""Characters of a tool's result (or error) kept for the model and the log, unless the
toolkit or the tool says otherwise: about 25,000 tokens, the bound Claude Code puts on an MCP
result."""


class ToolError(WorkbenchError):
    """A tool call that failed in a way the model should hear about."""


class ToolDefinitionError(WorkbenchError, ValueError):
    """A function that cannot be a tool: an annotation that does not resolve or that
    pydantic cannot validate. The message names the function and the parameter."""

    def __init__(self, function: str, parameter: str | None, problem: str) -> None:
        where = f"parameter {parameter!r} of {function}()" if parameter else f"{function}()"
        super().__init__(f"{where}: {problem}")
        self.function = function
        """The function's name."""
        self.parameter = parameter
        """The parameter at fault (``None`` when it is the function as a whole)."""
        self.problem = problem
        """What is wrong."""


@dataclass(frozen=True, slots=True)
class Media:
    """An image or a sound a tool returned, for models that accept them as content parts."""

    kind: Literal["image", "audio"]
    """What it is."""
    mime_type: str
    """``image/png``, ``audio/wav`` ..."""
    data: str
    """The bytes, base64-encoded (as MCP and the providers carry them)."""

    @property
    def size(self) -> int:
        """Decoded size in bytes (about)."""
        return len(self.data) * 3 // 4 - self.data[-2:].count("=")


@dataclass(slots=True)
class ToolOutput:
    """What a call returned: the text the model reads, and what came with it."""

    text: str
    """The result as text (capped)."""
    media: list[Media] = field(default_factory=list)
    """Images and sounds (MCP ``image`` / ``audio`` content)."""
    structured: Any = None
    """Structured content (an MCP tool with an ``outputSchema``), kept for the log."""


ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]
"""``(progress, total, message)``: a long call says how far it got."""

AskFn = Callable[[str, dict[str, Any]], Awaitable[tuple[str, dict[str, Any] | None]]]
"""``(message, schema) -> (action, content)``: a tool asks the person for input (an MCP
elicitation); ``action`` is ``accept``, ``decline`` or ``cancel``."""


@dataclass
class ToolContext:
    """What a tool may know about the call it serves. Declare a parameter annotated
    ``ToolContext`` to receive it; it is not part of the schema the model sees."""

    workspace_root: Path
    """The workspace folder; file and shell tools stay inside it."""
    session_id: str = ""
    """The session of the run."""
    run_id: str = ""
    """The run that calls the tool."""
    agent: str = ""
    """The agent that calls the tool."""
    call_id: str = ""
    """The model's call id."""
    state: dict[str, Any] = field(default_factory=dict)
    """Scratch space a toolkit may use across calls of one run."""
    progress: ProgressFn | None = None
    """Report progress of this call (shown on the running call); ``None`` outside a run."""
    ask: AskFn | None = None
    """Ask the person for input through the approvals queue; ``None`` when nobody can."""


@dataclass
class ApprovalPreview:
    """What an ``approval.required`` shows beyond the arguments."""

    diff: str | None = None
    """The unified diff a file write or edit would apply."""
    parts: list[str] = field(default_factory=list)
    """The parts of a shell command, each of which needs a rule."""


MatchOn = Literal["command", "path"]


class Tool:
    """A callable tool with a JSON schema.

    Build one with :func:`tool`, or subclass and override :meth:`call` (MCP tools do).
    """

    name: str
    """Workspace name (``files.read``); rules and events use it."""
    description: str
    """What it does, shown to the model."""
    timeout: float | None
    """Seconds before the call is abandoned with an error; ``None`` for no limit."""
    match_on: tuple[MatchOn, str] | None
    """Which argument approval rules match on: ``("command", "cmd")`` splits a shell
    command, ``("path", "path")`` matches path globs; ``None`` matches the tool only."""
    source: str
    """Where it comes from (``plugin files``, ``mcp time``, ``workspace mytools.py``)."""
    max_output: int | None
    """Characters of its result kept (head and tail); ``None`` for
    :data:`DEFAULT_MAX_OUTPUT`."""
    idempotent: bool
    """Running it again changes nothing (a read, a search, a clock): a call that started
    before its process died and left no result is run again on resume without asking anew.
    Any other such call is offered again as an approval that says it may already have run."""

    def __init__(
        self,
        name: str,
        description: str,
        parameters: dict[str, Any] | None,
        *,
        timeout: float | None = 60.0,
        match_on: tuple[MatchOn, str] | None = None,
        source: str = "",
        preview: Callable[[dict[str, Any], ToolContext], ApprovalPreview | None] | None = None,
        max_output: int | None = None,
        idempotent: bool = False,
    ) -> None:
        self.name = name
        self.description = description
        self._parameters = parameters
        self.timeout = timeout
        self.match_on = match_on
        self.source = source
        self._preview = preview
        self.max_output = max_output
        self.idempotent = idempotent

    @property
    def parameters(self) -> dict[str, Any]:
        """JSON Schema of the arguments (an object)."""
        if self._parameters is None:
            self._parameters = self._build_parameters()
        return self._parameters

    def _build_parameters(self) -> dict[str, Any]:
        return {"type": "object", "properties": {}}

    def renamed(self, name: str, source: str | None = None) -> Tool:
        """A shallow copy under another name (toolkits prefix their tools this way)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.name = name
        if source is not None:
            clone.source = source
        return clone

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check arguments against the schema.

        Raises:
            ToolError: saying which argument is wrong and what was expected.
        """
        if not isinstance(arguments, dict):
            raise ToolError(f"arguments must be a JSON object, got {type(arguments).__name__}")
        if "__raw__" in arguments:
            raise ToolError(f"arguments are not valid JSON: {arguments['__raw__']!r}")
        props = self.parameters.get("properties", {})
        missing = [k for k in self.parameters.get("required", []) if k not in arguments]
        if missing:
            raise ToolError(f"missing required argument(s): {', '.join(missing)}")
        if self.parameters.get("additionalProperties") is False:
            extra = [k for k in arguments if k not in props]
            if extra:
                raise ToolError(f"unexpected argument(s): {', '.join(extra)}")
        return arguments

    def preview(self, arguments: dict[str, Any], ctx: ToolContext) -> ApprovalPreview | None:
        """What to show when this call needs approval (a diff, command parts)."""
        if self._preview is None:
            return None
        try:
            return self._preview(arguments, ctx)
        except Exception as exc:  # a preview must never break the approval itself
            return ApprovalPreview(diff=f"(no preview: {exc})")

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        """Run the tool with validated arguments. Subclasses implement this."""
        raise NotImplementedError

    @property
    def output_limit(self) -> int:
        """Characters of a result kept (:attr:`max_output`, else the default)."""
        return self.max_output if self.max_output is not None else DEFAULT_MAX_OUTPUT

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        """Validate, run with the timeout, format and cap the output.

        Raises:
            ToolError: for bad arguments, a failure or a timeout; its message is capped too.
        """
        args = self.validate(arguments)
        try:
            if self.timeout is None:
                result = await self.call(args, ctx)
            else:
                result = await asyncio.wait_for(self.call(args, ctx), self.timeout)
        except ToolError as exc:
            message = str(exc)
            capped = cap_text(message, self.output_limit, self._cap_hint())
            if capped is message:
                raise
            raise ToolError(capped) from exc
        except TimeoutError:
            raise ToolError(f"timed out after {self.timeout:g}s") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise ToolError(
                cap_text(f"{type(exc).__name__}: {exc}", self.output_limit, self._cap_hint())
            ) from exc
        if isinstance(result, ToolOutput):
            result.text = cap_text(result.text, self.output_limit, self._cap_hint())
            if result.structured is not None:
                # The log keeps structured content only within the cap (the text, capped,
                # carries the same result either way).
                size = len(json.dumps(result.structured, ensure_ascii=False, default=str))
                if size > self.output_limit:
                    result.structured = None
            return result
        return ToolOutput(cap_text(format_output(result), self.output_limit, self._cap_hint()))

    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        """:meth:`run`, as the text the model reads.

        Raises:
            ToolError: for bad arguments, a failure or a timeout.
        """
        return (await self.run(arguments, ctx)).text

    def _cap_hint(self) -> str:
        kit, dot, short = self.name.partition(".")
        if dot and self.source.startswith("mcp "):
            return f"raise max_output under mcp: {kit}: to keep more"
        if dot:
            return f"raise max_output under toolkits: {kit}: to keep more"
        return "raise max_output in @tool(...) to keep more"

    def openai_schema(self, safe_name: str) -> dict[str, Any]:
        """The tool as the OpenAI ``tools`` entry litellm expects."""
        return {
            "type": "function",
            "function": {
                "name": safe_name,
                "description": self.description or self.name,
                "parameters": self.parameters,
            },
        }

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"


class FunctionTool(Tool):
    """A tool made from a Python function by :func:`tool`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = 60.0,
        match_on: tuple[MatchOn, str] | None = None,
        source: str = "",
        preview: Callable[[dict[str, Any], ToolContext], ApprovalPreview | None] | None = None,
        max_output: int | None = None,
        idempotent: bool = False,
    ) -> None:
        self.fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)
        self._description = description
        self._sig: _Signature | None = None
        super().__init__(
            name or fn.__name__,
            "",
            None,
            timeout=timeout,
            match_on=match_on,
            source=source or f"python {fn.__module__}",
            preview=preview,
            max_output=max_output,
            idempotent=idempotent,
        )

    # The signature is analysed on first use, and once per function: creating many agents
    # that share a tool costs almost nothing (see bench/engine_overhead.py).
    @property
    def description(self) -> str:
        """The docstring's summary, unless given."""
        if self._description is None:
            self._description = self._signature().summary
        return self._description

    @description.setter
    def description(self, value: str) -> None:
        if value:
            self._description = value

    def _build_parameters(self) -> dict[str, Any]:
        return self._signature().schema

    def _signature(self) -> _Signature:
        if self._sig is None:
            self._sig = _analyse(self.fn)
        return self._sig

    def check(self) -> None:
        """Analyse the signature now, not at the first call.

        Raises:
            ToolDefinitionError: naming the parameter whose annotation does not resolve or
                cannot be validated.
        """
        self._signature()

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(arguments, dict):
            raise ToolError(f"arguments must be a JSON object, got {type(arguments).__name__}")
        if "__raw__" in arguments:
            raise ToolError(f"arguments are not valid JSON: {arguments['__raw__']!r}")
        try:
            model = self._signature().model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ToolError(f"invalid arguments: {problems}") from None
        return {(f.alias or k): getattr(model, k) for k, f in type(model).model_fields.items()}

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        kwargs = dict(arguments)
        ctx_param = self._signature().ctx_param
        if ctx_param:
            kwargs[ctx_param] = ctx
        if self._is_async:
            return await self.fn(**kwargs)
        # Sync tools run in a thread so a slow one never blocks the event loop or the UI.
        return await asyncio.to_thread(self.fn, **kwargs)


@overload
def tool(fn: Callable[..., Any], /) -> FunctionTool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = 60.0,
    match_on: tuple[MatchOn, str] | None = None,
    preview: Callable[[dict[str, Any], ToolContext], ApprovalPreview | None] | None = None,
    max_output: int | None = None,
    idempotent: bool = False,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = 60.0,
    match_on: tuple[MatchOn, str] | None = None,
    preview: Callable[[dict[str, Any], ToolContext], ApprovalPreview | None] | None = None,
    max_output: int | None = None,
    idempotent: bool = False,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a tool of a sync or async function.

    The schema comes from the type hints, the description from the docstring's summary and
    each argument's description from its ``Args:`` section. A parameter annotated
    :class:`ToolContext` receives the call's context and is hidden from the model.
    ``max_output`` bounds the characters of its result (see :func:`cap_text`).
    ``idempotent=True`` says running it twice changes nothing (see :attr:`Tool.idempotent`).

    Example:
        ```python
        @tool
        def word_count(text: str) -> int:
            \"\"\"Count the words in a text.

            Args:
                text: The text to count.
            \"\"\"
            return len(text.split())
        ```
    """

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(
            f,
            name=name,
            description=description,
            timeout=timeout,
            match_on=match_on,
            preview=preview,
            max_output=max_output,
            idempotent=idempotent,
        )

    if fn is not None:
        return wrap(fn)
    return wrap


ToolkitState = Literal["idle", "starting", "ready", "failed"]
"""``idle``: not started (an MCP server starts on first use or when warmed). ``starting``:
on its way. ``ready``: its tools can be called. ``failed``: it could not start (see
:attr:`ToolkitStatus.error`); it is tried again on a later use."""


@dataclass
class ToolkitStatus:
    """Where a toolkit (a plugin or an MCP server) stands, for ``workbench tools``,
    ``GET /api/tools`` and the TUI's MCP pane."""

    name: str
    """The toolkit's name (an MCP server's name under ``mcp:``)."""
    kind: Literal["plugin", "mcp"]
    """A plugin toolkit or an MCP server."""
    state: ToolkitState
    """See :data:`ToolkitState`."""
    detail: str = ""
    """What it is: the command line or URL of an MCP server, a plugin's entry point."""
    error: str | None = None
    """Why it failed, with an MCP server's stderr tail."""
    tools: list[str] = field(default_factory=list)
    """Its tools' names once known."""
    since: float = 0.0
    """When it entered this state (seconds since the epoch)."""
    required: bool = False
    """An MCP server marked ``required``: agents that use it fail when it does."""
    instructions: str | None = None
    """What an MCP server says about how to use it (added to its agents' context)."""
    skipped: list[str] = field(default_factory=list)
    """Tools not offered, each with why (an MCP tool that requires tasks)."""

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready data."""
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "detail": self.detail,
            "error": self.error,
            "tools": list(self.tools),
            "since": self.since,
            "required": self.required,
            "instructions": self.instructions,
            "skipped": list(self.skipped),
        }


class ToolkitSettings(BaseModel):
    """What any toolkit's table in ``workbench.yaml`` (``toolkits: <name>:``) may hold. A
    toolkit's own :attr:`Toolkit.settings` model extends it, so these are checked with its
    other settings, at load, with their line and key."""

    model_config = ConfigDict(extra="forbid")

    max_output: int | dict[str, int] | None = None
    """Characters of a tool result kept (head and tail): a number for every tool, or a table
    of tool name (globs allowed, ``"*"`` for the rest) -> number (see :func:`output_limit`).
    Default :data:`DEFAULT_MAX_OUTPUT`."""

    @field_validator("max_output", mode="before")
    @classmethod
    def _max_output(cls, value: Any) -> Any:
        check_output_limit(value)
        return value


class Toolkit(ABC):
    """A named group of tools: what a plugin provides.

    Implementers provide :attr:`name` (set by the registry from the workspace) and
    :meth:`list_tools`; they may override :meth:`aclose` to release processes or
    connections. The constructor receives the toolkit's table from ``workbench.yaml``
    (or ``{}``) and the workspace root.
    """

    name: str
    """The prefix of its tools' names (``files``)."""
    settings: ClassVar[type[BaseModel] | None] = None
    """A model of its table in ``workbench.yaml`` (``toolkits: <name>:``), when it declares
    one: the workspace is checked against it at load (unknown keys, types, bounds), so a
    bad setting fails with its file, line and key before anything runs."""

    def __init__(self, name: str, config: dict[str, Any], root: Path) -> None:
        self.name = name
        self.config = config
        self.root = root

    @abstractmethod
    async def list_tools(self) -> list[Tool]:
        """The tools, named ``<toolkit>.<tool>``. May be called again to notice changes."""

    def output_limit(self, tool: str) -> int | None:
        """The ``max_output`` its config sets for ``tool`` (its name without the prefix).

        Raises:
            ValueError: the setting is not a positive number or a table of them.
        """
        return output_limit(self.config.get("max_output"), tool)

    def apply_limits(self, tools: Iterable[Tool]) -> None:
        """Set each tool's :attr:`Tool.max_output` from the config (where it says one).

        A toolkit that enforces ``max_output`` itself while it produces the output (``shell``
        caps a command's output as it reads it) says so with an integer ``max_output``
        attribute: its tools are left to it, with the default cap behind it.
        """
        if isinstance(getattr(self, "max_output", None), int):
            return
        for t in tools:
            limit = self.output_limit(t.name.removeprefix(f"{self.name}."))
            if limit is not None:
                t.max_output = limit

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the toolkit holds (processes, connections)."""


class FunctionToolkit(Toolkit):
    """A toolkit of :func:`tool` functions; the usual base of first-party plugins."""

    def __init__(
        self, name: str, config: dict[str, Any], root: Path, tools: Iterable[Tool] = ()
    ) -> None:
        super().__init__(name, config, root)
        self._tools = [t.renamed(f"{name}.{t.name}", f"plugin {name}") for t in tools]
        self.apply_limits(self._tools)

    def add(self, t: Tool) -> None:
        """Add a tool (named ``<toolkit>.<tool.name>``)."""
        added = t.renamed(f"{self.name}.{t.name}", f"plugin {self.name}")
        self.apply_limits([added])
        self._tools.append(added)

    async def list_tools(self) -> list[Tool]:
        return list(self._tools)


class ToolNames:
    """The provider-safe names of one set of tools, and the way back.

    Providers accept ``^[a-zA-Z0-9_-]{1,64}$`` only. ``.`` becomes ``__`` and ``:`` becomes
    ``_-``; anything else outside the set becomes ``-`` followed by its hex code. Names still
    too long or colliding get a short hash suffix. The table keeps the way back exact.
    """

    _SAFE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

    def __init__(self, names: Iterable[str]) -> None:
        self._to_safe: dict[str, str] = {}
        self._to_name: dict[str, str] = {}
        for n in names:
            s = self.encode(n)
            if s in self._to_name and self._to_name[s] != n:
                s = self._shorten(s, n, force=True)
            self._to_safe[n] = s
            self._to_name[s] = n

    @classmethod
    def encode(cls, name: str) -> str:
        """The safe form of ``name`` (deterministic)."""
        out: list[str] = []
        for ch in name:
            if ch == ".":
                out.append("__")
            elif ch == ":":
                out.append("_-")
            elif re.match(r"[a-zA-Z0-9_-]", ch):
                out.append(ch)
            else:
                out.append(f"-{ord(ch):x}")
        return cls._shorten("".join(out) or "tool", name)

    @staticmethod
    def _shorten(safe: str, name: str, force: bool = False) -> str:
        if len(safe) <= 64 and not force:
            return safe
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        return f"{safe[:55]}-{digest}"

    def safe(self, name: str) -> str:
        """The name a model sees."""
        return self._to_safe[name]

    def name(self, safe: str) -> str | None:
        """The workspace name of what a model called, or ``None`` if it is not offered."""
        return self._to_name.get(safe)


def output_limit(setting: Any, tool: str) -> int | None:
    """The limit a ``max_output`` setting gives ``tool``: a number for every tool, or a
    table of tool name (globs allowed) -> number, ``"*"`` for the others; ``None`` when it
    says nothing about the tool.

    Raises:
        ValueError: not a positive whole number, or a table of them.
    """
    if setting is None:
        return None
    if isinstance(setting, dict):
        import fnmatch

        found = setting.get(tool)
        if found is None:
            found = next(
                (v for k, v in setting.items() if k != "*" and fnmatch.fnmatchcase(tool, k)),
                setting.get("*"),
            )
        return None if found is None else output_limit(found, tool)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(
            f"max_output must be a positive number of characters, or a table of tool name -> "
            f"number; got {setting!r}"
        )
    return setting


def check_output_limit(setting: Any) -> None:
    """Check a whole ``max_output`` setting: ``None``, a positive whole number, or a table
    of tool name -> positive whole number.

    Raises:
        ValueError: what is wrong, naming the table's entry when one is.
    """
    if isinstance(setting, dict):
        for tool, limit in setting.items():
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(
                    f"max_output for {str(tool)!r} must be a positive number of characters; "
                    f"got {limit!r}"
                )
        return
    output_limit(setting, "")


_CUT = "[... {cut:,} characters cut from the middle: {total:,} in all, {limit:,} kept{hint} ...]"


def cap_text(text: str, limit: int, hint: str = "") -> str:
    """``text`` within ``limit`` characters: its head and tail, and between them a line that
    says how much was cut (and ``hint``: how to keep more). Unchanged (the same object) when it
    fits. Cuts snap to a line break when one is near, so lines stay whole where they can.
    """
    if len(text) <= limit:
        return text
    limit = max(limit, 2)
    head_n = limit // 2
    tail_n = limit - head_n
    head = text[:head_n]
    tail = text[len(text) - tail_n :]
    slack = max(1, limit // 20)  # give up at most 5% to end on a whole line
    nl = head.rfind("\n")
    if nl >= head_n - slack:
        head = head[: nl + 1]
    nl = tail.find("\n")
    if 0 <= nl < slack:
        tail = tail[nl + 1 :]
    cut = len(text) - len(head) - len(tail)
    marker = _CUT.format(cut=cut, total=len(text), limit=limit, hint=f"; {hint}" if hint else "")
    sep_head = "" if head.endswith("\n") else "\n"
    sep_tail = "" if tail.startswith("\n") else "\n"
    return f"{head}{sep_head}{marker}{sep_tail}{tail}"


def format_output(result: Any) -> str:
    """A tool's return value as the text the model reads."""
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    try:
        return json.dumps(result, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(result)


# -- schema from signature ---------------------------------------------------------------

_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google docstring into its description and per-argument descriptions."""
    lines = doc.splitlines()
    summary_lines: list[str] = []
    args: dict[str, str] = {}
    i = 0
    while i < len(lines) and not _ARGS_HEADER.match(lines[i]):
        if _SECTION.match(lines[i]):
            break
        summary_lines.append(lines[i])
        i += 1
    if i < len(lines) and _ARGS_HEADER.match(lines[i]):
        i += 1
        current: str | None = None
        indent: int | None = None
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            this_indent = len(line) - len(line.lstrip())
            if indent is None:
                indent = this_indent
            if this_indent < indent or (this_indent == 0 and _SECTION.match(line)):
                break
            m = _ARG_LINE.match(line)
            if this_indent == indent and m:
                current = m.group(1).lstrip("*")
                args[current] = m.group(3).strip()
            elif current is not None:
                args[current] = f"{args[current]} {line.strip()}".strip()
            i += 1
    summary = "\n".join(summary_lines).strip()
    return summary, args


@dataclass(frozen=True)
class _Signature:
    summary: str
    model: type[BaseModel]
    schema: dict[str, Any]
    ctx_param: str | None


_signatures: weakref.WeakKeyDictionary[Callable[..., Any], _Signature] = weakref.WeakKeyDictionary()


def _analyse(fn: Callable[..., Any]) -> _Signature:
    """Schema, validator and description of a function, computed once per function."""
    try:
        sig = _signatures.get(fn)
    except TypeError:  # not weakly referenceable
        sig = None
    if sig is None:
        summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
        try:
            ctx_param, model = _signature_model(fn, arg_docs)
            schema = model.model_json_schema()
        except ToolDefinitionError:
            raise
        except Exception as exc:
            raise _definition_error(fn, exc) from exc
        _strip_titles(schema)
        schema.setdefault("properties", {})
        sig = _Signature(summary, model, schema, ctx_param)
        with contextlib.suppress(TypeError):
            _signatures[fn] = sig
    return sig


def _definition_error(fn: Callable[..., Any], exc: Exception) -> ToolDefinitionError:
    """Which parameter made building ``fn``'s argument model fail, and why: each
    parameter's annotation is tried alone."""
    name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
    problem = str(exc).split("\n\nFor further information", 1)[0].strip() or type(exc).__name__
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return ToolDefinitionError(name, None, problem)
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        ann = param.annotation
        if ann is inspect.Parameter.empty:
            continue
        try:
            ann = _resolve_annotation(fn, ann)
            if ann is ToolContext:
                continue
            model = create_model(
                "_probe",
                __config__=ConfigDict(arbitrary_types_allowed=True),
                value=(ann, ...),
            )
            model.model_json_schema()
        except Exception as sub:
            text = str(sub).split("\n\nFor further information", 1)[0].strip()
            return ToolDefinitionError(name, param.name, text or type(sub).__name__)
    return ToolDefinitionError(name, None, problem)


def _resolve_annotation(fn: Callable[..., Any], ann: Any) -> Any:
    """A (possibly string) annotation as a type, in ``fn``'s module.

    Raises:
        NameError: it names something the module does not define.
    """
    if not isinstance(ann, str):
        return ann
    try:
        return eval(ann, getattr(fn, "__globals__", {}))  # noqa: S307 - the tool's own module
    except NameError as exc:
        raise NameError(f"the annotation {ann!r} names {exc.name!r}, which is not defined") from exc


def _signature_model(
    fn: Callable[..., Any], arg_docs: dict[str, str]
) -> tuple[str | None, type[BaseModel]]:
    sig = inspect.signature(fn)
    try:
        hints = get_type_hints(fn)
    except Exception as exc:
        raise _definition_error(fn, exc) from exc
    fields: dict[str, Any] = {}
    ctx_param: str | None = None
    from pydantic import Field

    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        ann = hints.get(pname, param.annotation)
        if ann is ToolContext:
            ctx_param = pname
            continue
        if ann is inspect.Parameter.empty:
            ann = Any
        default = ... if param.default is inspect.Parameter.empty else param.default
        desc = arg_docs.get(pname)
        # A parameter named like a BaseModel attribute (``json``, ``copy``) gets an inner name
        # and keeps its own as the alias the model sees.
        inner = f"{pname}_" if hasattr(BaseModel, pname) else pname
        fields[inner] = (ann, Field(default, description=desc, alias=pname))
    model = create_model(
        f"{fn.__name__}_args",
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        **fields,
    )
    return ctx_param, model


def _strip_titles(schema: Any) -> None:
    """Drop pydantic's generated ``title`` keys (noise for a model), never a property."""
    if isinstance(schema, dict):
        if isinstance(schema.get("title"), str):
            del schema["title"]
        for key, v in schema.items():
            if key in ("properties", "$defs", "definitions") and isinstance(v, dict):
                for sub in v.values():
                    _strip_titles(sub)
            elif isinstance(v, dict):
                _strip_titles(v)
            elif isinstance(v, list):
                for item in v:
                    _strip_titles(item)


async def timed(
    coro: Awaitable[ToolOutput | str],
) -> tuple[ToolOutput | None, str | None, float]:
    """Await a tool call; return ``(output, error, duration_ms)``, never raising ToolError."""
    t0 = time.perf_counter()
    try:
        out = await coro
        if isinstance(out, str):
            out = ToolOutput(out)
        return out, None, (time.perf_counter() - t0) * 1000
    except ToolError as exc:
        return None, str(exc), (time.perf_counter() - t0) * 1000
