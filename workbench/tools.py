"""Tools and toolkits: the contract every tool source implements.

A :class:`Tool` is a named function with a JSON schema derived from its signature and its
Google-style docstring. Arguments are validated before the call; a validation error, an
exception or a timeout becomes a :class:`ToolError`, which the agent turns into a
``tool.result`` with ``error`` set and sends back to the model, never a crashed run.

A :class:`Toolkit` is what a plugin provides: a named group of tools (``files.read`` is
the tool ``read`` of the toolkit ``files``). Toolkits are registered through the entry-point
group ``workbench.plugins``; see :mod:`workbench.registry`.
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

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

__all__ = [
    "ApprovalPreview",
    "FunctionToolkit",
    "Tool",
    "ToolContext",
    "ToolError",
    "Toolkit",
    "ToolNames",
    "format_output",
    "tool",
]


class ToolError(Exception):
    """A tool call that failed in a way the model should hear about."""


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
        idempotent: bool = False,
    ) -> None:
        self.name = name
        self.description = description
        self._parameters = parameters
        self.timeout = timeout
        self.match_on = match_on
        self.source = source
        self._preview = preview
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

    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        """Validate, run with the timeout, and format the output.

        Raises:
            ToolError: for bad arguments, a failure or a timeout.
        """
        args = self.validate(arguments)
        try:
            if self.timeout is None:
                result = await self.call(args, ctx)
            else:
                result = await asyncio.wait_for(self.call(args, ctx), self.timeout)
        except ToolError:
            raise
        except TimeoutError:
            raise ToolError(f"timed out after {self.timeout:g}s") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from exc
        return format_output(result)

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
    idempotent: bool = False,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a tool of a sync or async function.

    The schema comes from the type hints, the description from the docstring's summary and
    each argument's description from its ``Args:`` section. A parameter annotated
    :class:`ToolContext` receives the call's context and is hidden from the model.
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
            idempotent=idempotent,
        )

    if fn is not None:
        return wrap(fn)
    return wrap


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

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the toolkit holds (processes, connections)."""


class FunctionToolkit(Toolkit):
    """A toolkit of :func:`tool` functions; the usual base of first-party plugins."""

    def __init__(
        self, name: str, config: dict[str, Any], root: Path, tools: Iterable[Tool] = ()
    ) -> None:
        super().__init__(name, config, root)
        self._tools = [t.renamed(f"{name}.{t.name}", f"plugin {name}") for t in tools]

    def add(self, t: Tool) -> None:
        """Add a tool (named ``<toolkit>.<tool.name>``)."""
        self._tools.append(t.renamed(f"{self.name}.{t.name}", f"plugin {self.name}"))

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
        ctx_param, model = _signature_model(fn, arg_docs)
        schema = model.model_json_schema()
        _strip_titles(schema)
        schema.setdefault("properties", {})
        sig = _Signature(summary, model, schema, ctx_param)
        with contextlib.suppress(TypeError):
            _signatures[fn] = sig
    return sig


def _signature_model(
    fn: Callable[..., Any], arg_docs: dict[str, str]
) -> tuple[str | None, type[BaseModel]]:
    sig = inspect.signature(fn)
    try:
        hints = get_type_hints(fn)
    except Exception:
        hints = {}
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


async def timed(coro: Awaitable[str]) -> tuple[str | None, str | None, float]:
    """Await a tool call; return ``(output, error, duration_ms)``, never raising ToolError."""
    t0 = time.perf_counter()
    try:
        out = await coro
        return out, None, (time.perf_counter() - t0) * 1000
    except ToolError as exc:
        return None, str(exc), (time.perf_counter() - t0) * 1000
