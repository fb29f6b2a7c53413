"""What changed between two loads of a workspace, in lines a person reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import (
    Any,
)

from pydantic import (
    BaseModel,
)

from .models import Workspace

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
