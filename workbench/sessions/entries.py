"""What the Markdown and HTML exports share: each tool call gathered with its approval and result,
and the words and numbers they print alike."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    Event,
    MessageDelta,
    RunStarted,
    SessionImported,
    ToolCall,
    ToolProgress,
    ToolResult,
    ToolUnavailable,
)


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _seconds(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


@dataclass
class _Entry:
    """One tool call and what became of it, gathered across its events."""

    call_id: str
    tool: str
    arguments: dict[str, Any] | None = None
    required: ApprovalRequired | None = None
    resolved: ApprovalResolved | None = None
    result: ToolResult | None = None


def _gather(events: Iterable[Event]) -> tuple[list[Event], dict[tuple[str, str], _Entry]]:
    """The events to show, and each tool call's approval and result by (run, call id).

    A tool call is shown once, where it first appears (its approval request, or the call),
    with its approval, arguments and result together.
    """
    shown: list[Event] = []
    entries: dict[tuple[str, str], _Entry] = {}
    for e in events:
        if e.type == "message.delta":
            continue
        if isinstance(e, ApprovalRequired | ApprovalResolved | ToolCall | ToolResult):
            key = (e.run_id, e.call_id)
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = _Entry(e.call_id, e.tool)
                shown.append(e)
            if isinstance(e, ApprovalRequired):
                entry.required = e
                entry.arguments = entry.arguments or e.arguments
            elif isinstance(e, ApprovalResolved):
                entry.resolved = e
            elif isinstance(e, ToolCall):
                entry.arguments = e.arguments
            else:
                entry.result = e
            continue
        shown.append(e)
    return shown, entries


def _depths(events: Iterable[Event]) -> dict[str, int]:
    depth: dict[str, int] = {}
    for e in events:
        if isinstance(e, RunStarted):
            depth[e.run_id] = depth.get(e.parent_run_id or "", -1) + 1 if e.parent_run_id else 0
    return depth


def _decision_words(r: ApprovalResolved) -> str:
    if r.decision == "deny":
        return "denied"
    return "allowed once" if r.scope == "once" else f"allowed for {r.scope}"


class _ExportRenderer:
    """What the Markdown and HTML renderers share: each tool call's entry, each run's depth,
    and the kinds of event an export leaves out (shown by what completes them, or not at
    all)."""

    def __init__(self, entries: dict[tuple[str, str], _Entry], depth: dict[str, int]) -> None:
        self._entries = entries
        self._depth = depth

    def message_delta(self, e: MessageDelta) -> None:
        return None  # the completed message is shown

    def tool_progress(self, e: ToolProgress) -> None:
        return None  # the result is shown

    def tool_unavailable(self, e: ToolUnavailable) -> None:
        return None

    def session_imported(self, e: SessionImported) -> None:
        return None
