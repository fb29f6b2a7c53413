"""YAML to plain data, keeping the line of every key and value (and YAML syntax errors located)."""

from __future__ import annotations

from pathlib import Path
from typing import (
    Any,
)

import yaml

from .errors import Loc, WorkspaceError
from .models import _MAX_NODES, _NAME_RE

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
