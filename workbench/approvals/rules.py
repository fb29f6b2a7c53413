"""Rules and verdicts: what a rule says (tool glob, argument glob, decision) and what the policy answers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from workbench.errors import WorkbenchError

from .globs import _tool_regex

Decision: TypeAlias = Literal["allow", "ask", "deny"]
"""What the policy says about a call."""
RuleScope: TypeAlias = Literal["policy", "session", "workspace", "always"]
"""Where a rule comes from: the workspace config, or a person's decision of that reach."""
ResolutionDecision: TypeAlias = Literal["allow", "deny"]
"""What a person (or ``--approve``) decided."""
ResolutionScope: TypeAlias = Literal["once", "session", "workspace", "always"]
"""How far an allow reaches."""

_DECISIONS: tuple[str, ...] = ("allow", "ask", "deny")
_RULE_SCOPES: tuple[str, ...] = ("policy", "session", "workspace", "always")
_RES_DECISIONS: tuple[str, ...] = ("allow", "deny")
_RES_SCOPES: tuple[str, ...] = ("once", "session", "workspace", "always")


class ShellParseError(ValueError):
    """A shell command that cannot be split safely (unbalanced quotes or parentheses)."""


class ApprovalConfigError(WorkbenchError, ValueError):
    """A bad ``approvals:`` section; :attr:`key` says where (``approvals.allow[2]``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        """The dotted path of the offending key."""
        self.message = message
        """What was wrong and what was expected."""


# -- rules ---------------------------------------------------------------------------------


def escape_pattern(text: str) -> str:
    """A glob that matches exactly ``text``: ``*``, ``?`` and ``[`` become ``[*]``, ``[?]``, ``[[]``.

    Args:
        text: A command part, a path or a tool name.

    Returns:
        The pattern, with no wildcard left.
    """
    return re.sub(r"([*?\[])", r"[\1]", text)


@dataclass(frozen=True, slots=True)
class Rule:
    """One approval rule: a tool glob, an optional argument glob, and a decision."""

    tool: str
    """Glob on the workspace tool name (``files.*``, ``shell.run``, ``*``)."""
    pattern: str | None
    """Glob on the argument the tool's ``match_on`` names; ``None`` matches any arguments."""
    decision: Decision
    """``allow``, ``ask`` or ``deny``."""
    scope: RuleScope = "policy"
    """``policy`` for the workspace config; ``session``/``workspace``/``always`` when a
    person saved it."""
    id: str | None = None
    """The store's id of a saved rule (``decided_by`` says ``rule:<id>``)."""
    note: str | None = None
    """Why the rule exists."""

    def __post_init__(self) -> None:
        if not isinstance(self.tool, str) or not self.tool.strip():
            raise ValueError("a rule needs a tool name or glob")
        if self.tool != self.tool.strip():
            object.__setattr__(self, "tool", self.tool.strip())
        if self.pattern is not None and (not isinstance(self.pattern, str) or not self.pattern):
            raise ValueError("a rule's pattern must be a non-empty string, or None for any")
        if self.decision not in _DECISIONS:
            raise ValueError(f"a rule's decision must be allow, ask or deny, not {self.decision!r}")
        if self.scope not in _RULE_SCOPES:
            raise ValueError(
                f"a rule's scope must be policy, session, workspace or always, not {self.scope!r}"
            )

    @classmethod
    def parse(
        cls,
        text: str,
        decision: Decision,
        scope: RuleScope = "policy",
        *,
        id: str | None = None,
        note: str | None = None,
    ) -> Rule:
        """Read the config form ``"tool-glob"`` or ``"tool-glob:arg-glob"``.

        When the text before the first ``:`` contains ``.``, ``*``, ``?`` or ``[``, it is the
        tool glob and everything after that colon is the pattern (which may contain colons).
        Otherwise the tool is a ``module:function`` name and a pattern may follow after the
        next colon.

        Args:
            text: The rule as written in ``workbench.yaml``.
            decision: The list it appeared in.
            scope: ``policy`` for the config.
            id: The store's id, for saved rules.
            note: Why it exists.

        Raises:
            ValueError: An empty tool or an empty pattern after a colon.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a rule must be a non-empty string like 'shell.run:git status*'")
        head, sep, rest = text.partition(":")
        pattern: str | None
        if not sep:
            return cls(text.strip(), None, decision, scope, id, note)
        if any(ch in head for ch in ".*?["):
            tool, pattern = head, rest
        else:
            fn, sep2, pat = rest.partition(":")
            tool, pattern = f"{head}:{fn}", (pat if sep2 else None)
            if not fn.strip():
                raise ValueError(f"{text!r}: expected 'module:function' after {head!r}")
        if pattern is not None and not pattern.strip():
            raise ValueError(
                f"{text!r}: the pattern after ':' is empty (drop the ':' to match any)"
            )
        if pattern is not None:
            # "shell.run: git *" reads naturally; trailing whitespace may be escaped (`\ `).
            pattern = pattern.lstrip()
        return cls(tool.strip(), pattern, decision, scope, id, note)

    @classmethod
    def from_saved(cls, saved: Any) -> Rule:
        """A rule from anything with ``tool``, ``pattern``, ``decision``, ``scope``, ``id`` and
        ``note`` attributes (the store's ``RuleInfo``)."""
        return cls(
            saved.tool,
            saved.pattern,
            saved.decision,
            saved.scope,
            getattr(saved, "id", None),
            getattr(saved, "note", None),
        )

    @property
    def config_text(self) -> str:
        """The rule in the config form, which :meth:`parse` reads back to an equal rule.

        Raises:
            ValueError: A pattern on a tool name with neither ``.`` nor a glob character nor
                ``module:function`` form, which the config form cannot express.
        """
        if self.pattern is None:
            return self.tool
        head = self.tool.partition(":")[0]
        if any(ch in head for ch in ".*?["):
            return f"{self.tool}:{self.pattern}"
        if ":" in self.tool and self.tool.count(":") == 1:
            return f"{self.tool}:{self.pattern}"
        raise ValueError(f"the rule on {self.tool!r} with a pattern has no config form")

    def display(self) -> str:
        """The rule as it will be saved, for people: ``allow shell.run "git status*"``."""
        if self.pattern is None:
            return f"{self.decision} {self.tool}"
        import json  # only a face that shows rules pays for it

        return f"{self.decision} {self.tool} {json.dumps(self.pattern, ensure_ascii=False)}"

    def matches_tool(self, tool_name: str) -> bool:
        """Whether the tool glob matches a workspace tool name (``*`` crosses ``.`` and ``:``)."""
        return _tool_regex(self.tool).fullmatch(tool_name) is not None

    def __str__(self) -> str:
        return self.display()


# -- verdicts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the policy says about one call, and why."""

    decision: Decision
    """``allow``, ``ask`` or ``deny``."""
    reason: str
    """A plain sentence for the person: ``no rule allows 'rm -rf x' (part 2 of 2)``."""
    parts: list[str] = field(default_factory=list)
    """Shell: the parts of the command, each of which must be allowed. Paths: the normalised
    paths. Empty for other tools."""
    unmatched: list[str] = field(default_factory=list)
    """The parts (or paths) that are not allowed: what needs a decision."""
    rule: Rule | None = None
    """The rule that decided (the denying one; the asking one; the allowing one for a single
    part), or ``None`` when the policy default or the parser decided."""

    @property
    def allowed(self) -> bool:
        """True when the call may run without asking."""
        return self.decision == "allow"


RuleSpec: TypeAlias = "str | Rule | Mapping[str, Any]"
"""A rule in a config list: ``"tool-glob[:pattern]"``, a :class:`Rule`, or a mapping
``{tool: ..., pattern: ..., note: ...}``."""
