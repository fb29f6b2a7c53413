"""Pydantic validation errors in plain words, each mapped back to its line."""

from __future__ import annotations

import types
from collections.abc import Mapping
from pathlib import Path
from typing import (
    Annotated,
    Any,
    Literal,
    Union,
    get_args,
    get_origin,
)

from pydantic import (
    BaseModel,
    Tag,
    ValidationError,
)

from .errors import Loc, WorkspaceError
from .models import _NODE_KEYS, AgentConfig, LoopNode, RouterNode, StepNode, _WorkspaceFile
from .yaml_lines import _dotted, _Lines

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
