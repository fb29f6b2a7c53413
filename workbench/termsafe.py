"""Text from models and tools, made safe to show on a terminal.

A model's answer or a tool's output may hold bytes a terminal obeys: ``ESC ] 0 ; title BEL``
renames the window, ``ESC ] 52`` writes the clipboard, ``ESC [ 2 J`` clears the screen,
``\\x9b`` is the same CSI in one byte, ``\\r`` and ``\\b`` draw over what was printed, and
bidirectional overrides (U+202E) show text in another order than it runs. Printed raw, a
command's output can clear the screen and draw a fake "approval needed: git status" line
above the real prompt.

Every face that shows such text to a terminal passes it through here first: the CLI's
transcript printer (``run``, ``sessions show``, ``replay --plain``), its approval prompt, and
the TUI (where events enter the session state, which the chat, the team lanes, the graph,
the replay view and the approvals pane draw). What a terminal would obey becomes a visible
escape (``\\x1b``, ``\\x9b``, ``\\u202e``); newlines and tabs stay, ``\\r\\n`` becomes a
newline. The store keeps the text as it came: this is for display only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_origin

__all__ = ["JSON_FIELDS", "UNSAFE", "json_visible", "safe_event", "visible"]

UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 but tab and newline, DEL, C1 (\x9b is CSI)
    "\u061c\u200b\u200e\u200f"  # Arabic letter mark, zero width space, LRM, RLM
    "\u2028\u2029\u202a-\u202e\u2066-\u2069"  # line separators, bidi embeddings and isolates
    "\ufeff\ufff9-\ufffb"  # zero width no-break space, interlinear annotations
    "\ud800-\udfff]"  # lone surrogates (no terminal encoding can write them)
)
"""Characters a terminal obeys (or that change how a line reads) instead of showing."""


_ASCII_SAFE = bytes(range(0x20, 0x7F)) + b"\n\t"


def _unsafe(text: str) -> bool:
    """Whether ``text`` holds anything :data:`UNSAFE` (long ASCII text is checked as bytes:
    several times faster than the regex)."""
    if len(text) > 64 and text.isascii():
        return bool(text.encode("ascii").translate(None, _ASCII_SAFE))
    return UNSAFE.search(text) is not None


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def visible(text: str) -> str:
    """``text`` with every character a terminal would obey shown as an escape.

    Example:
        ```python
        visible("\\x1b]0;pwned\\x07done\\r\\n")  # "\\\\x1b]0;pwned\\\\x07done\\n"
        ```

    Args:
        text: Text from a model, a tool or a log.

    Returns:
        The same text when it holds nothing unsafe (the common case costs one search).
    """
    if not _unsafe(text):
        return text
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return UNSAFE.sub(_escape, text)


def _json_escape(m: re.Match[str]) -> str:
    return f"\\u{ord(m.group()):04x}"


def json_visible(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with every unsafe character
    written as a ``\\uXXXX`` escape: the same JSON value, safe to print.

    JSON already escapes C0 controls; C1 controls, bidi overrides and the like it writes raw.
    Outside strings JSON has none of them, so this never changes what the text means.
    """
    if not _unsafe(text):
        return text
    return UNSAFE.sub(_json_escape, text)


_E = TypeVar("_E")


def _clean(value: Any) -> tuple[Any, bool]:
    """``value`` with its strings made visible (dicts and lists walked); and whether
    anything changed. Unchanged values are returned as they are (no copy)."""
    if isinstance(value, str):
        safe = visible(value)
        return safe, safe is not value
    if isinstance(value, Mapping):
        changed = False
        out: dict[Any, Any] = {}
        for k, v in value.items():
            cv, c = _clean(v)
            ck, ckc = _clean(k) if isinstance(k, str) else (k, False)
            out[ck] = cv
            changed = changed or c or ckc
        return (out, True) if changed else (value, False)
    if isinstance(value, list | tuple):
        items = [_clean(v) for v in value]
        if any(c for _, c in items):
            cleaned = [v for v, _ in items]
            return (type(value)(cleaned) if isinstance(value, tuple) else cleaned), True
        return value, False
    if hasattr(type(value), "model_fields") and hasattr(value, "model_copy"):
        update: dict[str, Any] = {}
        for name in type(value).model_fields:
            if name in JSON_FIELDS:
                continue
            cv, c = _clean(getattr(value, name))
            if c:
                update[name] = cv
        return (value.model_copy(update=update), True) if update else (value, False)
    return value, False


JSON_FIELDS = frozenset({"arguments", "edited_arguments", "structured"})
"""Fields that hold JSON values: faces show them as JSON, through :func:`json_visible`, which
escapes without changing the value (a person who edits the arguments edits the real ones)."""


_PLANS: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}
_PLAIN_TYPES: tuple[Any, ...] = (int, float, bool, int | None, float | None, bool | None)


def _plan(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """An event class's text fields, and its other fields that may hold text (lists,
    models), once per class: the common case is a handful of regex searches."""
    plan = _PLANS.get(cls)
    if plan is None:
        texts: list[str] = []
        others: list[str] = []
        for name, info in cls.model_fields.items():  # type: ignore[attr-defined]
            ann = info.annotation
            if name in JSON_FIELDS or ann in _PLAIN_TYPES or get_origin(ann) is Literal:
                continue
            (texts if ann in (str, str | None) else others).append(name)
        plan = _PLANS[cls] = (tuple(texts), tuple(others))
    return plan


def safe_event(event: _E) -> _E:
    """A copy of an event (any pydantic model) whose every text, at any depth, is
    :func:`visible`; the event itself when nothing in it needs escaping. The JSON values in
    :data:`JSON_FIELDS` are left as they are: render them with :func:`json_visible`."""
    if not hasattr(type(event), "model_fields"):
        cleaned, _ = _clean(event)
        return cleaned  # type: ignore[no-any-return]
    texts, others = _plan(type(event))
    update: dict[str, Any] = {}
    for name in texts:
        value = getattr(event, name)
        if value is not None and _unsafe(value):
            update[name] = visible(value)
    for name in others:
        value, changed = _clean(getattr(event, name))
        if changed:
            update[name] = value
    return event.model_copy(update=update) if update else event  # type: ignore[attr-defined]
