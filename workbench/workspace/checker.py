"""Checks across the file: names that must exist elsewhere (agents, tools, steps, functions), cycles."""

from __future__ import annotations

import ast
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import (
    Any,
)

from pydantic import (
    BaseModel,
    ValidationError,
)

from .errors import Loc, WorkspaceError
from .expressions import (
    _FUNC_REF_RE,
    ExpressionError,
    _is_number,
    compile_expression,
    is_function_ref,
)
from .models import (
    _NAME_RE,
    _OFFLINE_MODELS,
    _STEP_NAME_RE,
    _TEMPLATE_STEP_RE,
    BUILTIN_TOOLKITS,
    AgentConfig,
    ConditionNode,
    LoopNode,
    RouterNode,
    StepNode,
    _node_name,
    _walk_nodes,
    _WorkspaceFile,
    split_approval_rule,
)
from .validation_errors import _got
from .yaml_lines import _dotted, _Lines

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
