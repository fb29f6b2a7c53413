"""Loading: find ``workbench.yaml``, read it, validate it, and raise every mistake at once."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import yaml
from pydantic import (
    ValidationError,
)

from .checker import _Checker
from .errors import WorkspaceError
from .models import WORKSPACE_FILE, AgentConfig, Workspace, _WorkspaceFile
from .validation_errors import _allowed_keys, _got, _translate
from .yaml_lines import _Converter, _yaml_error

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
        return _assemble(_WorkspaceFile.model_construct(), base, None)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkspaceError(file, None, "", f"cannot read the file: {exc}") from None
    return _parse(text, file, base, known_toolkits)


def _assemble(parsed: _WorkspaceFile, root: Path, file: Path | None) -> Workspace:
    """The workspace of a checked file. Its values are validated already: they are not
    validated again, which would also build the Workspace model's schema (≈ 8 ms on the
    app's start-up path, for nothing)."""
    fields = {name: getattr(parsed, name) for name in _WorkspaceFile.model_fields}
    fields["agents"] = _default_agents(parsed)
    return Workspace.model_construct(root=root, path=file, name=root.name, **fields)


def _compose(text: str) -> yaml.Node | None:
    """The YAML node tree, through libyaml when PyYAML has it (a fifth of the pure-Python
    parser's time, on the app's start-up path); a file libyaml refuses is parsed again by
    the pure-Python parser, whose error (the one raised) is worded the same on every
    install."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        try:
            return yaml.compose(text, Loader=loader)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def _parse(text: str, file: Path, root: Path, known_toolkits: Collection[str] | None) -> Workspace:
    converter = _Converter(file)
    try:
        node = _compose(text)
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
    ws = _assemble(parsed, root, file)
    ws._text = text
    ws._lines = converter.lines.dotted()
    return ws
