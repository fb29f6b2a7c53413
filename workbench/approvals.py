"""Approvals: the policy that says allow, ask or deny, and the broker of pending decisions.

A tool call is checked against :class:`Rule` s before it runs. A rule names a tool (a glob
on the workspace name: ``files.*``, ``shell.run``, ``*``) and optionally a pattern (a glob on
the argument the tool's ``match_on`` names). :class:`ApprovalPolicy` holds the workspace's
``approvals:`` section; :meth:`ApprovalPolicy.evaluate` returns a :class:`Verdict`. A call
that needs a person goes to the :class:`ApprovalBroker`, which any face (TUI, server, CLI)
resolves; "allow for session / workspace / always" saves the rules that
:func:`rules_for_decision` proposes, which are never broader than what the person saw.

How matching works (the choices, written down):

Shell commands (``match_on = ("command", <arg>)``)
    :func:`split_shell` splits a command into the simple commands that will run: on ``;``,
    ``&&``, ``||``, ``|``, ``|&``, ``&`` and newlines, outside quotes. Command substitutions
    (``$(...)``, backticks, also inside double quotes and unquoted here-documents), process
    substitutions (``<(...)``, ``>(...)``), subshells ``( ... )`` and brace groups
    ``{ ...; }`` contribute their inner commands as parts of their own (recursively); the
    outer part keeps the placeholder ``$(…)`` (or ``(…)``, ``<(…)``). The payloads of
    ``sh``/``bash``/``zsh``... ``-c STRING``, ``eval``, ``su -c``, of a shell reading a
    here-document or here-string, of ``watch``, ``script -c`` and ``flock -c`` are parsed
    again as commands; the commands run by ``xargs``, ``env``, ``sudo``, ``doas``, ``nice``,
    ``nohup``, ``timeout``, ``time``, ``command``, ``exec``, ``stdbuf``, ``setsid``,
    ``chroot``, ``busybox``, ``find -exec`` and friends become parts too. Every part must be
    allowed for the command to be allowed. Reserved words (``if``, ``then``, ``do``, ``!``,
    ``{``, ``}``, ``time`` ...) at the start of a part are dropped; comments are dropped.
    Whitespace is normalised (tokens joined by one space; ``2>&1`` and ``<<EOF`` stay
    glued), quotes are kept as typed, here-document bodies are kept verbatim after a newline.
    Unbalanced quotes or parentheses raise :class:`ShellParseError`, and then the verdict is
    ask (or deny, when a deny rule or a ``deny`` default applies), never allow. What a script
    file runs (``bash script.sh``, ``. ./env.sh``) is not visible: only that part is checked.

    The grammar is bash's, and ``shell.run`` runs commands with bash. What bash may run
    otherwise than the parts show is never allowed, whatever the rules (a deny rule on a
    part still denies): :func:`shell_doubts` lists the classes (arithmetic on names,
    ``${!x}``/``${x@P}``/non-numeric subscripts, builtins that evaluate their arguments or
    change later commands such as ``[[``, ``declare``, ``read``, ``trap``, ``test -v``,
    ``printf -v``, code for another shell or from an input: ``sh -c``, ``| bash``,
    ``xargs bash -c``). Such a command asks, and no rule is offered for it.

    Patterns are globs on a part: ``*`` any text, ``?`` one character, ``[abc]`` a class;
    ``[*]`` is a literal ``*`` (what :func:`escape_pattern` writes). A trailing ``*`` is a
    word boundary: ``git status*`` (and ``git status *``) matches ``git status`` and
    ``git status --short`` but not ``git statusx``. In allow rules a wildcard never matches an
    unquoted redirection (``>``, ``<``, ``&>``, here-documents), so ``echo *`` does not allow
    ``echo x > ~/.bashrc``; write the redirection in the pattern, or allow the bare tool.
    Redirections that cannot write anywhere (``2>&1``, ``>&2``, ``2>/dev/null``) are ignored
    by matching. Leading environment assignments (``FOO=1 cmd``) stay in the part's text,
    and allow rules match that whole text: ``make*`` does not allow ``LD_PRELOAD=x.so make``
    (assignments change what a command does: ``LD_PRELOAD``, ``GIT_SSH_COMMAND``, ``PAGER``).
    Deny and ask rules match more loosely, so that ``rm -rf *`` also catches
    ``FOO=1 rm -rf x``, ``"rm" -rf x``, ``\\rm -rf x`` and ``/bin/rm -rf x``: they are tried
    on the whole text, on the text without assignments, and on the unquoted words with the
    command's directory stripped, and their wildcards match anything. A part whose command
    word is computed (``$X -rf /``, ``$(…) x``, ``{rm,-rf,/}``, ``r?``) is allowed only by
    a rule whose pattern spells the command word literally (or by the bare tool).

File paths (``match_on = ("path", <arg>)``)
    The argument (a string, or a list of strings that must each be allowed) is normalised
    with ``posixpath.normpath`` relative to the workspace root; an absolute path inside the
    root becomes relative. A path that is absolute, starts with ``~``, escapes the root
    (``../x``, ``docs/../../etc/passwd``) or, when ``root`` is given, leads out of it through
    a symbolic link, is never allowed by any rule (not even the bare tool): it asks, or is
    denied when a deny rule matches it or the default is ``deny``. In patterns ``**`` crosses
    directories (``docs/**`` is docs and everything under it, ``**/x`` is x at any depth),
    ``*`` and ``?`` stay within one segment.

Other tools, and calls without the matched argument
    Only rules without a pattern apply (a missing or ``None`` argument leaves the tool's
    own default in charge). An argument of the wrong type is never allowed.

Which rule wins
    Of the rules that match, the most specific wins: a rule with a pattern beats one
    without, then more literal (non-wildcard) characters in the pattern, then more literal
    characters in the tool glob. At equal specificity: a config ``deny`` first (a person's
    saved allow never overrides an explicit config deny of the same reach), then saved
    deny, saved ask, saved allow, config ask, config allow; so deny > ask > allow, and a
    person's saved decision beats the config's ask. Saved rules (scopes ``session``,
    ``workspace``, ``always``) are passed to :meth:`ApprovalPolicy.evaluate` as
    ``extra_rules`` and are considered together with the config's. No matching rule: the
    policy's ``default``.

Config form of a rule
    ``"tool-glob"`` or ``"tool-glob:arg-glob"``. Tool names of workspace functions contain a
    colon (``mytools:word_count``), so: when the text before the first ``:`` contains ``.``,
    ``*``, ``?`` or ``[`` it is the tool glob and the rest is the pattern; otherwise the tool
    is ``module:function`` and a pattern may follow after the next ``:``
    (``mytools:word_count:*.txt``).
"""

from __future__ import annotations

import functools
import logging
import os
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:  # asyncio, pathlib and pydantic are imported when used: this loads fast
    import asyncio
    from pathlib import Path

    from .events import ApprovalRequired, ApprovalResolved

__all__ = [
    "ApprovalBroker",
    "ApprovalConfigError",
    "ApprovalPolicy",
    "BrokerListener",
    "Decision",
    "PendingApproval",
    "Resolution",
    "ResolutionDecision",
    "ResolutionScope",
    "Rule",
    "RuleScope",
    "RuleSpec",
    "ShellParseError",
    "Verdict",
    "escape_pattern",
    "rules_for_decision",
    "shell_doubts",
    "split_shell",
]

logger = logging.getLogger(__name__)

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


class ApprovalConfigError(ValueError):
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


class ApprovalPolicy:
    """The workspace's ``approvals:`` section: a default and allow/ask/deny rules.

    Example:
        ```python
        policy = ApprovalPolicy.from_config(
            {"default": "ask", "allow": ["shell.run:git status*"], "deny": ["shell.run:rm *"]}
        )
        verdict = policy.evaluate("shell.run", ("command", "cmd"), {"cmd": "git status; rm x"})
        assert verdict.decision == "deny"
        ```
    """

    default: Decision
    """What applies when no rule matches."""
    rules: list[Rule]
    """The config's rules (scope ``policy``), in the order allow, ask, deny."""

    def __init__(
        self,
        default: Decision = "ask",
        allow: Iterable[RuleSpec] = (),
        ask: Iterable[RuleSpec] = (),
        deny: Iterable[RuleSpec] = (),
    ) -> None:
        if default not in _DECISIONS:
            raise ApprovalConfigError(
                "approvals.default", f"expected allow, ask or deny, got {default!r}"
            )
        self.default = default
        self.rules = []
        lists: tuple[tuple[Decision, Iterable[RuleSpec]], ...] = (
            ("allow", allow),
            ("ask", ask),
            ("deny", deny),
        )
        for decision, specs in lists:
            if isinstance(specs, str | Mapping | Rule):
                specs = [specs]
            for index, spec in enumerate(specs):
                self.rules.append(_rule_from_spec(spec, decision, f"approvals.{decision}[{index}]"))

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any] | None, *, key: str = "approvals"
    ) -> ApprovalPolicy:
        """Build the policy from the ``approvals:`` mapping of ``workbench.yaml``.

        Each list holds strings in the config form (``"shell.run:git status*"``) or mappings
        ``{tool: ..., pattern: ..., note: ...}``.

        Args:
            section: The mapping, or ``None`` for the defaults (``default: ask``, no rules).
            key: Its dotted path, for error messages.

        Raises:
            ApprovalConfigError: naming the key that is wrong and what was expected.
        """
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ApprovalConfigError(key, f"expected a mapping, got {type(section).__name__}")
        unknown = [k for k in section if k not in ("default", "allow", "ask", "deny")]
        if unknown:
            raise ApprovalConfigError(
                f"{key}.{unknown[0]}", "unknown key; expected default, allow, ask or deny"
            )
        default = section.get("default", "ask")
        if default not in _DECISIONS:
            raise ApprovalConfigError(
                f"{key}.default", f"expected allow, ask or deny, got {default!r}"
            )
        lists: dict[str, list[Rule]] = {}
        for decision in ("allow", "ask", "deny"):
            value = section.get(decision) or []
            if isinstance(value, str | Mapping):
                value = [value]
            if not isinstance(value, list | tuple):
                raise ApprovalConfigError(
                    f"{key}.{decision}", f"expected a list of rules, got {type(value).__name__}"
                )
            lists[decision] = [
                _rule_from_spec(spec, decision, f"{key}.{decision}[{i}]")
                for i, spec in enumerate(value)
            ]
        return cls(default, lists["allow"], lists["ask"], lists["deny"])

    def to_config(self) -> dict[str, Any]:
        """The section as it would be written back to ``workbench.yaml``."""
        out: dict[str, Any] = {"default": self.default}
        for decision in ("allow", "ask", "deny"):
            texts = [r.config_text for r in self.rules if r.decision == decision]
            if texts:
                out[decision] = texts
        return out

    def evaluate(
        self,
        tool_name: str,
        match_on: tuple[str, str] | None,
        arguments: Mapping[str, Any],
        extra_rules: Sequence[Rule] = (),
        root: Path | None = None,
    ) -> Verdict:
        """Decide about one call.

        Args:
            tool_name: The workspace name of the tool (``shell.run``).
            match_on: The tool's ``match_on``: ``("command", "cmd")``, ``("path", "path")``,
                or ``None`` to match on the tool alone.
            arguments: The call's arguments.
            extra_rules: Saved rules (session, workspace, always) to consider with the config.
            root: The workspace root; paths are normalised relative to it (and symbolic links
                leading out of it are noticed).

        Returns:
            The verdict; never ``allow`` for a command that does not parse or a path outside
            the root.
        """
        rules = [r for r in (*self.rules, *extra_rules) if r.matches_tool(tool_name)]
        # A missing (or None) argument leaves the tool's own default in charge, which the
        # model did not choose: only the rules without a pattern can decide then.
        value = arguments.get(match_on[1]) if match_on is not None else None
        if match_on is not None and value is not None:
            if match_on[0] == "command":
                return self._evaluate_shell(rules, value, match_on[1])
            if match_on[0] == "path":
                return self._evaluate_paths(rules, value, match_on[1], root)
        decision, rule = self._pick(rules, _never)
        if rule is None:
            return Verdict(decision, f"policy default is {decision}", [], [], None)
        return Verdict(decision, _rule_sentence(rule), [], [], rule)

    def rules_for_decision(
        self,
        tool_name: str,
        match_on: tuple[str, str] | None,
        arguments: Mapping[str, Any],
        verdict: Verdict,
        scope: ResolutionScope,
        *,
        root: Path | None = None,
    ) -> list[Rule]:
        """The rules an "allow for session / workspace / always" would save; see
        :func:`rules_for_decision`."""
        return rules_for_decision(tool_name, match_on, arguments, verdict, scope, root=root)

    # -- internals -------------------------------------------------------------------------

    def _pick(
        self, rules: Sequence[Rule], matches: Callable[[Rule], bool]
    ) -> tuple[Decision, Rule | None]:
        best: Rule | None = None
        best_key: tuple[int, int, int, int] | None = None
        for r in rules:
            if r.pattern is not None and not matches(r):
                continue
            key = _rank(r)
            if best_key is None or key > best_key:
                best, best_key = r, key
        if best is None:
            return self.default, None
        return best.decision, best

    def _evaluate_shell(self, rules: list[Rule], command: Any, arg: str) -> Verdict:
        if not isinstance(command, str):
            return self._blind(rules, f"the {arg!r} argument is not a command string", None)
        doubts: list[str] = []
        try:
            parts = _parse(command, doubts=doubts)
        except ShellParseError as exc:
            return self._blind(
                rules, f"the command could not be split safely ({exc})", " ".join(command.split())
            )
        subjects: list[_ShellSubject] = []
        seen: set[str] = set()
        for part in parts:
            subject = _shell_subject(part)
            if subject.display not in seen:
                seen.add(subject.display)
                subjects.append(subject)
        if not subjects:
            decision, rule = self._pick(rules, _never)
            reason = "the command is empty; " + (
                _rule_sentence(rule) if rule else f"policy default is {decision}"
            )
            return Verdict(decision, reason, [], [], rule)
        items: list[_Item] = []
        for s in subjects:
            decision, rule = self._pick(rules, functools.partial(_shell_rule_matches, s))
            items.append(_Item(s.display, decision, rule, None))
        verdict = _aggregate(items, "part", self.default)
        if not doubts or verdict.decision == "deny":
            return verdict
        # What the matcher cannot classify with certainty is never allowed: it asks (a deny
        # rule on a part still denies).
        why = list(dict.fromkeys(doubts))
        more = f" (and {len(why) - 1} more)" if len(why) > 1 else ""
        reason = f"bash may run more than the parts show: {why[0]}{more}, so it needs a decision"
        texts = [it.text for it in items]
        asking = verdict.rule if verdict.decision == "ask" else None
        return Verdict("ask", reason, texts, verdict.unmatched or texts, asking)

    def _evaluate_paths(
        self, rules: list[Rule], value: Any, arg: str, root: Path | None
    ) -> Verdict:
        if isinstance(value, str):
            raws = [value]
        elif isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            raws = list(value)
        else:
            return self._blind(rules, f"the {arg!r} argument is not a path", None)
        subjects: list[_PathSubject] = []
        seen: set[str] = set()
        for raw in raws:
            subject = _path_subject(raw, root)
            if subject.text not in seen:
                seen.add(subject.text)
                subjects.append(subject)
        items: list[_Item] = []
        for s in subjects:
            if s.outside is None:
                decision, rule = self._pick(rules, functools.partial(_path_rule_matches, s))
            else:
                # Outside the root nothing allows, not even the bare tool.
                decision, rule = self._pick(
                    [r for r in rules if r.decision != "allow"],
                    functools.partial(_path_rule_matches, s),
                )
                if decision == "allow":
                    decision = "ask"
            items.append(_Item(s.text, decision, rule, s.outside))
        return _aggregate(items, "path", self.default)

    def _blind(self, rules: list[Rule], why: str, text: str | None) -> Verdict:
        """A verdict for an argument we cannot inspect: never allow; deny if a deny rule
        matches loosely (or applies to the whole tool) or the default is deny."""
        candidates = [r for r in rules if r.decision != "allow"]

        def loose(r: Rule) -> bool:
            if text is None or r.pattern is None:
                return False
            return _shell_pattern(r.pattern).loose.fullmatch(text) is not None

        decision, rule = self._pick(candidates, loose)
        parts = [text] if text else []
        if decision == "deny":
            reason = _rule_sentence(rule) if rule else f"{why} and the policy default is deny"
            return Verdict("deny", reason, parts, list(parts), rule)
        if rule is not None:
            return Verdict("ask", f"{why}; {_rule_sentence(rule)}", parts, list(parts), rule)
        return Verdict("ask", f"{why}, so it needs a decision", parts, list(parts), None)


def rules_for_decision(
    tool_name: str,
    match_on: tuple[str, str] | None,
    arguments: Mapping[str, Any],
    verdict: Verdict,
    scope: ResolutionScope,
    *,
    root: Path | None = None,
) -> list[Rule]:
    """The rules that "allow for session / workspace / always" would save (shown first).

    Never broader than what the person saw: for a shell command, one exact rule per part
    that was not allowed (the part with its wildcards escaped); for a path tool, the exact
    normalised path (paths outside the root get none: no rule could allow them); for other
    tools, the tool alone.

    Args:
        tool_name: The workspace name of the tool.
        match_on: The tool's ``match_on``.
        arguments: The arguments the verdict was about (the edited ones, if edited).
        verdict: The verdict that asked.
        scope: ``session``, ``workspace`` or ``always``; ``once`` saves nothing.
        root: The workspace root the verdict used.

    Returns:
        The allow rules, or ``[]`` when nothing can be saved safely (``once``, a verdict that
        did not ask, a command that does not parse).
    """
    if scope == "once" or scope not in _RES_SCOPES or verdict.decision != "ask":
        return []
    rule_scope: RuleScope = scope
    tool = escape_pattern(tool_name)
    if match_on is None or match_on[0] not in ("command", "path"):
        return [Rule(tool, None, "allow", rule_scope)]
    kind, arg = match_on
    value = arguments.get(arg)
    wanted = set(verdict.unmatched)
    texts: list[str] = []
    if kind == "command":
        if not isinstance(value, str):
            return []
        try:
            parts = split_shell(value)
        except ShellParseError:
            return []
        if shell_doubts(value):
            return []  # no rule could allow it: it always asks
        texts = [p for p in parts if p in wanted]
    else:
        raws = [value] if isinstance(value, str) else value
        if not isinstance(raws, list | tuple) or not all(isinstance(v, str) for v in raws):
            return []
        for raw in raws:
            subject = _path_subject(raw, root)
            if subject.outside is None and subject.text in wanted and subject.text not in texts:
                texts.append(subject.text)
    return [Rule(tool, escape_pattern(t), "allow", rule_scope) for t in dict.fromkeys(texts)]


def _rule_from_spec(spec: Any, decision: Decision, key: str) -> Rule:
    try:
        if isinstance(spec, Rule):
            if spec.decision != decision:
                raise ValueError(f"a {spec.decision} rule in the {decision} list")
            return spec
        if isinstance(spec, str):
            return Rule.parse(spec, decision)
        if isinstance(spec, Mapping):
            unknown = [k for k in spec if k not in ("tool", "pattern", "note", "id")]
            if unknown:
                raise ValueError(f"unknown key {unknown[0]!r}; expected tool, pattern, note")
            tool = spec.get("tool")
            if not isinstance(tool, str):
                raise ValueError("expected 'tool: <glob>'")
            pattern = spec.get("pattern")
            if pattern is not None and not isinstance(pattern, str):
                raise ValueError("'pattern' must be a string")
            note = spec.get("note")
            return Rule(tool, pattern, decision, "policy", spec.get("id"), note)
    except ValueError as exc:
        raise ApprovalConfigError(key, str(exc)) from None
    raise ApprovalConfigError(
        key, f"expected a rule like 'shell.run:git status*', got {type(spec).__name__}"
    )


def _never(_rule: Rule) -> bool:
    return False


_ORIGIN_RANK = {
    ("policy", "deny"): 5,
    ("saved", "deny"): 4,
    ("saved", "ask"): 3,
    ("saved", "allow"): 2,
    ("policy", "ask"): 1,
    ("policy", "allow"): 0,
}


@functools.lru_cache(maxsize=4096)
def _rank(rule: Rule) -> tuple[int, int, int, int]:
    origin = "policy" if rule.scope == "policy" else "saved"
    return (
        rule.pattern is not None,
        _literal_count(rule.pattern.strip()) if rule.pattern is not None else 0,
        _literal_count(rule.tool),
        _ORIGIN_RANK[(origin, rule.decision)],
    )


def _literal_count(pattern: str) -> int:
    return sum(1 for kind, _ in _glob_tokens(pattern) if kind == "lit")


class _Item:
    __slots__ = ("text", "decision", "rule", "why")

    def __init__(self, text: str, decision: Decision, rule: Rule | None, why: str | None) -> None:
        self.text = text
        self.decision: Decision = decision
        self.rule = rule
        self.why = why


def _quote(text: str, limit: int = 80) -> str:
    first, nl, _ = text.partition("\n")
    short = first if not nl else first + " …"
    if len(short) > limit:
        short = short[: limit - 1] + "…"
    short = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in short)
    return f"'{short}'"


def _rule_sentence(rule: Rule) -> str:
    if rule.decision == "allow":
        return f"allowed by rule {rule.display()}"
    if rule.decision == "deny":
        return f"denied by rule {rule.display()}"
    return f"rule {rule.display()} asks first"


def _aggregate(items: list[_Item], label: str, default: Decision) -> Verdict:
    n = len(items)
    texts = [it.text for it in items]
    unmatched = [it.text for it in items if it.decision != "allow"]

    def where(i: int) -> str:
        return f" ({label} {i + 1} of {n})" if n > 1 else ""

    for i, it in enumerate(items):
        if it.decision != "deny":
            continue
        if it.rule is not None:
            reason = f"denied by rule {it.rule.display()}"
            if n > 1:
                reason += f" for {_quote(it.text)}{where(i)}"
        elif it.why is not None:
            reason = f"{_quote(it.text)}{where(i)} {it.why} and the policy default is deny"
        else:
            reason = f"no rule allows {_quote(it.text)}{where(i)} and the policy default is deny"
        return Verdict("deny", reason, texts, unmatched, it.rule)
    asked = [(i, it) for i, it in enumerate(items) if it.decision == "ask"]
    if asked:
        clauses: list[str] = []
        for i, it in asked[:3]:
            if it.why is not None:
                clauses.append(f"{_quote(it.text)}{where(i)} {it.why}")
            elif it.rule is not None:
                clauses.append(f"rule {it.rule.display()} asks before {_quote(it.text)}{where(i)}")
            else:
                clauses.append(f"no rule allows {_quote(it.text)}{where(i)}")
        if len(asked) > 3:
            clauses.append(f"and {len(asked) - 3} more {label}s need a decision")
        rule = next((it.rule for _, it in asked if it.rule is not None), None)
        return Verdict("ask", "; ".join(clauses), texts, unmatched, rule)
    used = list(dict.fromkeys(it.rule for it in items if it.rule is not None))
    by_default = any(it.rule is None for it in items)
    if not used:
        return Verdict("allow", f"policy default is {default}", texts, [], None)
    if len(used) == 1 and not by_default:
        return Verdict("allow", _rule_sentence(used[0]), texts, [], used[0])
    tail = " or the policy default" if by_default else ""
    return Verdict(
        "allow", f"each of the {n} {label}s is allowed by a rule{tail}", texts, [], items[0].rule
    )


# -- glob translation ----------------------------------------------------------------------

_S_LT = "\ue002"
_S_GT = "\ue003"
_S_AMP = "\ue004"
_SENTINELS = _S_LT + _S_GT + _S_AMP


def _glob_tokens(pattern: str) -> list[tuple[str, str]]:
    """Split a glob into ``lit`` characters, ``star``, ``star2`` (``**``), ``any`` (``?``)
    and ``class`` (a regex character class). ``[x]`` with one character is a literal."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                out.append(("star2", "**"))
                i += 2
                while i < n and pattern[i] == "*":
                    i += 1
            else:
                out.append(("star", "*"))
                i += 1
        elif c == "?":
            out.append(("any", "?"))
            i += 1
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(("lit", "["))
                i += 1
                continue
            inner = pattern[i + 1 : j]
            i = j + 1
            if len(inner) == 1 and inner not in "!^":
                out.append(("lit", inner))
                continue
            negate = inner[0] in "!^"
            body = inner[1:] if negate else inner
            escaped = "".join("\\" + ch if ch in "\\[]^&~|" else ch for ch in body)
            out.append(("class", f"[{'^' if negate else ''}{escaped}]"))
        else:
            out.append(("lit", c))
            i += 1
    return out


def _compile(regex: str, fallback: str) -> re.Pattern[str]:
    try:
        return re.compile(regex, re.DOTALL)
    except re.error:  # a malformed class such as [z-a]: match the text literally
        return re.compile(re.escape(fallback), re.DOTALL)


@functools.lru_cache(maxsize=1024)
def _tool_regex(glob: str) -> re.Pattern[str]:
    parts: list[str] = []
    for kind, text in _glob_tokens(glob):
        if kind in ("star", "star2"):
            parts.append(".*")
        elif kind == "any":
            parts.append(".")
        elif kind == "class":
            parts.append(text)
        else:
            parts.append(re.escape(text))
    return _compile("".join(parts), glob)


def _shell_glob_regex(text: str, strict: bool) -> re.Pattern[str]:
    wild = f"[^{_SENTINELS}]*" if strict else ".*"
    one = f"[^{_SENTINELS}]" if strict else "."
    toks = _glob_tokens(text)
    tail = ""
    if toks and toks[-1][0] in ("star", "star2"):
        while toks and toks[-1][0] in ("star", "star2"):
            toks.pop()
        if toks and toks[-1] == ("lit", " "):
            toks.pop()
            tail = f"(?: {wild})?"
        elif toks and toks[-1][0] == "lit":
            # `git status*`: the word, then nothing or a space and more (a word boundary).
            tail = f"(?: {wild})?"
        else:
            tail = wild
    parts: list[str] = []
    for kind, t in toks:
        if kind in ("star", "star2"):
            parts.append(wild)
        elif kind == "any":
            parts.append(one)
        elif kind == "class":
            parts.append(f"(?:(?![{_SENTINELS}]){t})" if strict else t)
        else:
            parts.append(re.escape(t))
    return _compile("".join(parts) + tail, text)


@functools.lru_cache(maxsize=1024)
def _path_regex(pattern: str) -> re.Pattern[str]:
    toks = _glob_tokens(pattern)
    parts: list[str] = []
    k = 0
    while k < len(toks):
        kind, t = toks[k]
        if kind == "star2":
            after_slash = k == 0 or toks[k - 1] == ("lit", "/")
            before_slash = k + 1 < len(toks) and toks[k + 1] == ("lit", "/")
            at_end = k + 1 == len(toks)
            if after_slash and before_slash:
                parts.append("(?:[^/]*/)*")  # `**/`: any number of directories
                k += 2
                continue
            if after_slash and at_end and k > 0:
                parts.pop()  # `dir/**`: the directory and everything under it
                parts.append("(?:/.*)?")
            else:
                parts.append(".*")
        elif kind == "star":
            parts.append("[^/]*")
        elif kind == "any":
            parts.append("[^/]")
        elif kind == "class":
            parts.append(f"(?:(?!/){t})")
        else:
            parts.append(re.escape(t))
        k += 1
    return _compile("".join(parts), pattern)


# -- paths ---------------------------------------------------------------------------------


class _PathSubject:
    __slots__ = ("text", "outside", "forms")

    def __init__(self, text: str, outside: str | None, forms: tuple[str, ...]) -> None:
        self.text = text
        """Normalised: relative to the root when inside it."""
        self.outside = outside
        """None when inside the root; else why it is not (the end of a sentence)."""
        self.forms = forms
        """The texts deny and ask rules are matched against."""


def _path_subject(raw: str, root: Path | None) -> _PathSubject:
    outside = "is outside the workspace"
    if "\x00" in raw:
        return _PathSubject(raw.replace("\x00", "\\0"), "is not a valid path", (raw,))
    if raw.startswith("~"):
        return _PathSubject(raw, outside, (raw,))
    root_text = (
        posixpath.normpath(os.path.abspath(root).replace(os.sep, "/")) if root is not None else None
    )
    if posixpath.isabs(raw):
        absolute = posixpath.normpath(raw)
        if root_text is None:
            return _PathSubject(absolute, outside, (absolute,))
        prefix = root_text.rstrip("/") + "/"
        if absolute == root_text:
            rel = "."
        elif absolute.startswith(prefix):
            rel = absolute[len(prefix) :]
        else:
            return _PathSubject(absolute, outside, (absolute,))
    else:
        rel = posixpath.normpath(raw)
        if rel == ".." or rel.startswith("../"):
            forms: tuple[str, ...] = (rel,)
            if root_text is not None:
                forms = (rel, posixpath.normpath(posixpath.join(root_text, rel)))
            return _PathSubject(rel, outside, forms)
    if root is not None:
        real = os.path.realpath(os.path.join(root, rel))
        real_root = os.path.realpath(root)
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            why = "leads outside the workspace through a symbolic link"
            return _PathSubject(rel, why, (rel, real.replace(os.sep, "/")))
    return _PathSubject(rel, None, (rel,))


def _normalise_path_pattern(pattern: str) -> str:
    return posixpath.normpath(pattern) if pattern else pattern


def _path_rule_matches(subject: _PathSubject, rule: Rule) -> bool:
    assert rule.pattern is not None
    pattern = _normalise_path_pattern(rule.pattern)
    regex = _path_regex(pattern)
    if rule.decision == "allow":
        if subject.outside is not None or posixpath.isabs(pattern):
            return False
        return regex.fullmatch(subject.text) is not None
    return any(regex.fullmatch(form) is not None for form in subject.forms)


# -- shell splitting -----------------------------------------------------------------------

_PH_SUB = "\ue000"  # a command substitution: $(…) or `…`
_PH_GROUP = "\ue001"  # a subshell or process substitution: (…)
_RESERVED_RE = re.compile("[\ue000-\ue00f]")
_MAX_DEPTH = 24
_PLAIN_RE = re.compile(r"[^ \t\n'\"\\$`;&|<>()]+")
_DQ_PLAIN_RE = re.compile(r"[^\"\\$`]+")
_ASSIGN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?\+?=")
_GLOBBY_RE = re.compile(r"[*?]|\[[^\]]*\]|\{[^}]*(?:,|\.\.)[^}]*\}")
_REDIR_OPS = ("&>>", "&>", "<<<", "<<-", "<<", "<&", "<>", "<", ">>", ">&", ">|", ">")
_GLUED_OP_RE = re.compile(r"[0-9]*(?:<&|>&|<<|<<-)")
_DUP_OP_RE = re.compile(r"[0-9]*[<>]&")
_NULL_OP_RE = re.compile(r"[0-9]*(?:>|>>|>\||<)|&>|&>>")
_KEYWORDS = frozenset(
    {"!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "time"}
)
_LITERAL_ARITH_RE = re.compile(r"[\s0-9+\-*/%<>=!&|^~?:(),]*")
"""Arithmetic on numbers only; a name (or an expansion) is evaluated as an expression."""
_PARAM_NAME = r"(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])"
_PARAM_INDEX = r"(?:\[(?:[0-9]+|[@*])\])?"
_PLAIN_PARAM_RE = re.compile(
    r"\$\{(?:#" + _PARAM_NAME + _PARAM_INDEX + r"\}|" + _PARAM_NAME + _PARAM_INDEX + r"(?:\}"
    r"|:?[-=+?]|[#%/^,]|@[QEAaULuKk]\}|:[ \t]*-?[0-9]+[ \t]*(?::[ \t]*-?[0-9]+[ \t]*)?\}))",
    re.DOTALL,
)
"""``${x}``, ``${x:-word}``, ``${x#pat}``, ``${x:1:2}``, ``${#x}``, ``${a[0]}``: forms that
evaluate nothing (a word after an operator is read as usual)."""
_DOUBT_ARITH = "bash evaluates the names in arithmetic ($((x)), $[x]) as code"
_DOUBT_ARITH_CMD = "bash evaluates an arithmetic command ((...)) as code"
_DOUBT_PARAM = (
    "the parameter expansion (${!x}, ${x@P}, a subscript or an offset that is not a number) "
    "evaluates data as code"
)
_EVALUATING_BUILTINS: dict[str, str] = {
    "[[": "evaluates its operands as arithmetic and patterns",
    "let": "evaluates arithmetic on names",
    "declare": "sets variables that later commands use (and evaluates their subscripts)",
    "typeset": "sets variables that later commands use (and evaluates their subscripts)",
    "local": "sets variables that later commands use (and evaluates their subscripts)",
    "export": "sets the environment of the commands after it",
    "readonly": "sets variables that later commands use (and evaluates their subscripts)",
    "read": "assigns to variables (and evaluates their subscripts)",
    "mapfile": "assigns to variables and may run a callback",
    "readarray": "assigns to variables and may run a callback",
    "unset": "evaluates the subscripts it is given",
    "getopts": "assigns to a variable (and evaluates its subscript)",
    "trap": "runs its argument as code",
    "alias": "changes what a command name runs",
    "hash": "changes which program a command name runs",
    "enable": "changes which builtins exist (and may load a library)",
    "shopt": "changes how the commands after it are read",
    "bind": "runs its argument as code",
    "complete": "runs its argument as code",
    "compgen": "expands its word list as code",
    "fc": "runs commands from the history",
}
"""Bash builtins whose arguments become code or change later commands: a part with one is
never classified with certainty."""
_PLAIN_SET_FLAGS = frozenset("euxvfCnE")
_PLAIN_SET_OPTIONS = frozenset(
    {"pipefail", "errexit", "nounset", "xtrace", "verbose", "noglob", "noclobber", "errtrace"}
)


class _Heredoc:
    __slots__ = ("delim", "quoted", "strip_tabs", "text", "body")

    def __init__(self, delim: str, quoted: bool, strip_tabs: bool) -> None:
        self.delim = delim
        self.quoted = quoted
        self.strip_tabs = strip_tabs
        self.text = ""
        """Body and terminator line, as shown (substitutions replaced by placeholders)."""
        self.body = ""
        """What the command reads (for a shell: code)."""


class _Tok:
    """A word or a redirection operator of a simple command."""

    __slots__ = ("raw", "value", "op", "dynamic", "quoted", "globby", "heredoc")

    def __init__(
        self,
        raw: str,
        value: str,
        *,
        op: bool = False,
        dynamic: bool = False,
        quoted: bool = False,
        globby: bool = False,
    ) -> None:
        self.raw = raw
        """As typed (quotes kept), substitutions as placeholders."""
        self.value = value
        """With quotes removed."""
        self.op = op
        """A redirection operator (its target is the next token)."""
        self.dynamic = dynamic
        """Contains an expansion or substitution."""
        self.quoted = quoted
        """Contains quotes or backslash escapes."""
        self.globby = globby
        """Contains an unquoted pathname or brace expansion."""
        self.heredoc: _Heredoc | None = None
        """For ``<<``: the here-document it introduces."""

    def word(self) -> _Tok:
        """A copy as a plain word (for a wrapper's payload)."""
        return _Tok(
            self.raw, self.value, dynamic=self.dynamic, quoted=self.quoted, globby=self.globby
        )


class _Part:
    __slots__ = ("tokens", "level")

    def __init__(self, tokens: list[_Tok], level: int) -> None:
        self.tokens = tokens
        self.level = level


class _Cmd:
    """The simple command being read: finished tokens and the word in progress."""

    __slots__ = ("tokens", "raw", "value", "in_word", "dynamic", "quoted", "globby", "want_delim")

    def __init__(self) -> None:
        self.tokens: list[_Tok] = []
        self.raw: list[str] = []
        self.value: list[str] = []
        self.in_word = False
        self.dynamic = False
        self.quoted = False
        self.globby = False
        self.want_delim: bool | None = None

    def piece(
        self,
        raw: str,
        value: str,
        *,
        dynamic: bool = False,
        quoted: bool = False,
        globby: bool = False,
    ) -> None:
        self.raw.append(raw)
        self.value.append(value)
        self.in_word = True
        self.dynamic = self.dynamic or dynamic
        self.quoted = self.quoted or quoted
        self.globby = self.globby or globby

    def take(self) -> _Tok | None:
        if not self.in_word:
            return None
        tok = _Tok(
            "".join(self.raw),
            "".join(self.value),
            dynamic=self.dynamic,
            quoted=self.quoted,
            globby=self.globby,
        )
        self.raw, self.value = [], []
        self.in_word = self.dynamic = self.quoted = self.globby = False
        return tok


_ANSI_C_RE = re.compile(
    r"\\(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}|[0-7]{1,3}|c.|.)", re.DOTALL
)
_ANSI_C_SIMPLE = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


def _decode_ansi_c(body: str) -> str:
    def one(m: re.Match[str]) -> str:
        esc = m.group(1)
        try:
            if esc[0] in "xuU" and len(esc) > 1:
                return chr(int(esc[1:], 16))
            if esc[0] in "01234567":
                return chr(int(esc, 8))
        except (ValueError, OverflowError):
            return "?"
        if esc[0] == "c" and len(esc) == 2:
            return chr(ord(esc[1]) & 0x1F)
        return _ANSI_C_SIMPLE.get(esc, "\\" + esc)

    return _ANSI_C_RE.sub(one, body)


class _Lexer:
    """Reads one string of shell into parts (appended to ``out``, inner ones first).

    ``pattern`` mode reads a rule's pattern: reserved words are kept and function
    definitions are not split, so a pattern is never broadened by the parser.
    """

    def __init__(
        self,
        text: str,
        out: list[_Part],
        depth: int,
        level: int,
        pattern: bool,
        doubts: list[str] | None = None,
    ) -> None:
        if depth > _MAX_DEPTH:
            raise ShellParseError("the command is nested too deeply")
        self.doubts: list[str] = [] if doubts is None else doubts
        """Why the command cannot be classified with certainty (shared by nested lexers)."""
        self.s = text
        self.n = len(text)
        self.i = 0
        self.out = out
        self.depth = depth
        self.level = level
        self.pattern = pattern
        self.heredocs: list[_Heredoc] = []
        self.not_arith: set[int] = set()

    def run(self) -> None:
        self._list(None, "")

    def _sub(self, text: str) -> _Lexer:
        return _Lexer(text, self.out, self.depth + 1, self.level + 1, self.pattern, self.doubts)

    # -- lists of commands -----------------------------------------------------------------

    def _list(self, close: str | None, what: str) -> None:
        s = self.s
        cmd = _Cmd()
        while True:
            if self.i >= self.n:
                if close is not None:
                    raise ShellParseError(f"unclosed {what}")
                self._end_cmd(cmd)
                self.heredocs.clear()  # a here-document at the very end has an empty body
                return
            c = s[self.i]
            if c == " " or c == "\t":
                self._end_word(cmd)
                self.i += 1
            elif c == "\\" and s.startswith("\n", self.i + 1):
                self.i += 2  # a line continuation joins the lines
            elif c == "\n":
                cmd = self._end_cmd(cmd)
                self.i += 1
                self._read_heredocs()
            elif c == ";":
                cmd = self._end_cmd(cmd)
                self.i += 1
                while self.i < self.n and s[self.i] in ";&":  # ;; ;& ;;& of case
                    self.i += 1
            elif c == "&":
                if s.startswith("&>", self.i):
                    self._redirect(cmd)
                else:
                    cmd = self._end_cmd(cmd)
                    self.i += 2 if s.startswith("&&", self.i) else 1
            elif c == "|":
                cmd = self._end_cmd(cmd)
                self.i += 2 if s.startswith(("||", "|&"), self.i) else 1
            elif c == "<" or c == ">":
                self._redirect(cmd)
            elif c == "(":
                if s.startswith("((", self.i):
                    self.doubts.append(_DOUBT_ARITH_CMD)
                self._end_word(cmd)
                self.i += 1
                self._nested(")", "parenthesis")
                cmd.tokens.append(_Tok(_PH_GROUP, _PH_GROUP, dynamic=True))
            elif c == ")":
                if close == ")":
                    self._end_cmd(cmd)
                    self.i += 1
                    return
                raise ShellParseError("unbalanced ')'")
            elif c == "#" and not cmd.in_word:
                j = s.find("\n", self.i)
                self.i = self.n if j < 0 else j
            else:
                self._word_piece(cmd)

    def _nested(self, close: str, what: str) -> None:
        self.depth += 1
        self.level += 1
        try:
            if self.depth > _MAX_DEPTH:
                raise ShellParseError("the command is nested too deeply")
            self._list(close, what)
        finally:
            self.depth -= 1
            self.level -= 1

    def _end_word(self, cmd: _Cmd) -> None:
        tok = cmd.take()
        if tok is None:
            return
        if cmd.want_delim is not None:
            hd = _Heredoc(tok.value, tok.quoted, cmd.want_delim)
            cmd.want_delim = None
            self.heredocs.append(hd)
            if cmd.tokens:
                cmd.tokens[-1].heredoc = hd
        cmd.tokens.append(tok)

    def _end_cmd(self, cmd: _Cmd) -> _Cmd:
        self._end_word(cmd)
        if cmd.want_delim is not None:
            raise ShellParseError("a here-document has no delimiter")
        if cmd.tokens and cmd.tokens[-1].op:
            raise ShellParseError(f"the redirection {cmd.tokens[-1].raw!r} has no target")
        tokens = cmd.tokens
        groups = [tokens] if self.pattern else _split_function_def(_strip_keywords(tokens))
        for toks in groups:
            if toks and not all(t.raw == _PH_GROUP for t in toks):
                self.out.append(_Part(toks, self.level))
        return _Cmd()

    # -- here-documents --------------------------------------------------------------------

    def _read_heredocs(self) -> None:
        pending, self.heredocs = self.heredocs, []
        s = self.s
        for hd in pending:
            lines: list[str] = []
            terminator: str | None = None
            while self.i < self.n:
                j = s.find("\n", self.i)
                end = self.n if j < 0 else j
                line = s[self.i : end]
                self.i = self.n if j < 0 else j + 1
                if (line.lstrip("\t") if hd.strip_tabs else line) == hd.delim:
                    terminator = line
                    break
                lines.append(line)
            body = "\n".join(lines)
            if not hd.quoted and body:
                body = self._sub(body)._scan_expanding()
            hd.body = body
            hd.text = "\n".join([*([body] if lines else []), *([terminator] if terminator else [])])

    def _scan_expanding(self) -> str:
        """Read an unquoted here-document body: substitutions run, quotes are literal."""
        s = self.s
        raw: list[str] = []
        while self.i < self.n:
            c = s[self.i]
            if c == "\\" and self.i + 1 < self.n and s[self.i + 1] in "$`\\\n":
                raw.append(s[self.i : self.i + 2])
                self.i += 2
            elif c == "$":
                raw.append(self._dollar(in_dq=True)[0])
            elif c == "`":
                self._backtick(in_dq=True)
                raw.append(_PH_SUB)
            else:
                raw.append(c)
                self.i += 1
        return "".join(raw)

    # -- redirections ----------------------------------------------------------------------

    def _redirect(self, cmd: _Cmd) -> None:
        s, i = self.s, self.i
        fd = ""
        if (
            cmd.in_word
            and not cmd.quoted
            and not cmd.dynamic
            and re.fullmatch(r"[0-9]+", "".join(cmd.raw))
        ):
            fd = "".join(cmd.raw)
            cmd.raw, cmd.value, cmd.in_word = [], [], False
        else:
            self._end_word(cmd)
        if s[i] in "<>" and s.startswith("(", i + 1):
            if fd:
                cmd.tokens.append(_Tok(fd, fd))
            self.i += 2
            self._nested(")", "process substitution")
            cmd.piece(s[i] + _PH_GROUP, s[i] + _PH_GROUP, dynamic=True)
            return
        op = next(o for o in _REDIR_OPS if s.startswith(o, i))
        if cmd.want_delim is not None or (cmd.tokens and cmd.tokens[-1].op):
            raise ShellParseError(f"a redirection {op!r} follows another redirection")
        self.i += len(op)
        cmd.tokens.append(_Tok(fd + op, fd + op, op=True))
        if op in ("<<", "<<-"):
            cmd.want_delim = op == "<<-"

    # -- words -----------------------------------------------------------------------------

    def _word_piece(self, cmd: _Cmd) -> None:
        s, i = self.s, self.i
        c = s[i]
        if c == "'":
            raw, value = self._single()
            cmd.piece(raw, value, quoted=True)
        elif c == '"':
            raw, value, dyn = self._double()
            cmd.piece(raw, value, dynamic=dyn, quoted=True)
        elif c == "\\":
            if i + 1 < self.n:
                cmd.piece(s[i : i + 2], s[i + 1], quoted=True)
                self.i += 2
            else:
                cmd.piece("\\", "\\")
                self.i += 1
        elif c == "$":
            raw, value, dyn, quoted = self._dollar(in_dq=False)
            cmd.piece(raw, value, dynamic=dyn, quoted=quoted)
        elif c == "`":
            self._backtick(in_dq=False)
            cmd.piece(_PH_SUB, _PH_SUB, dynamic=True)
        else:
            m = _PLAIN_RE.match(s, i)
            run = m.group() if m else c
            self.i += len(run)
            cmd.piece(
                run,
                run,
                dynamic=_PH_SUB in run or _PH_GROUP in run,
                globby=_GLOBBY_RE.search(run) is not None,
            )

    def _single(self) -> tuple[str, str]:
        j = self.s.find("'", self.i + 1)
        if j < 0:
            raise ShellParseError("unterminated single quote")
        raw = self.s[self.i : j + 1]
        self.i = j + 1
        return raw, raw[1:-1]

    def _double(self) -> tuple[str, str, bool]:
        s = self.s
        self.i += 1
        raw: list[str] = ['"']
        val: list[str] = []
        dyn = False
        while True:
            if self.i >= self.n:
                raise ShellParseError("unterminated double quote")
            c = s[self.i]
            if c == '"':
                raw.append('"')
                self.i += 1
                return "".join(raw), "".join(val), dyn
            if c == "\\":
                nxt = s[self.i + 1 : self.i + 2]
                if nxt and nxt in '$`"\\\n':
                    raw.append(c + nxt)
                    if nxt != "\n":
                        val.append(nxt)
                    self.i += 2
                else:
                    raw.append(c)
                    val.append(c)
                    self.i += 1
            elif c == "$":
                r, v, d, _ = self._dollar(in_dq=True)
                raw.append(r)
                val.append(v)
                dyn = dyn or d
            elif c == "`":
                self._backtick(in_dq=True)
                raw.append(_PH_SUB)
                val.append(_PH_SUB)
                dyn = True
            else:
                m = _DQ_PLAIN_RE.match(s, self.i)
                run = m.group() if m else c
                self.i += len(run)
                raw.append(run)
                val.append(run)
                dyn = dyn or _PH_SUB in run or _PH_GROUP in run

    def _dollar(self, in_dq: bool) -> tuple[str, str, bool, bool]:
        """Read from a ``$``: returns raw, value, dynamic, quoted."""
        s, i = self.s, self.i
        if s.startswith("$((", i) and i not in self.not_arith:
            arith = self._arith()
            if arith is not None:
                if not _LITERAL_ARITH_RE.fullmatch(arith[3:-2]):
                    self.doubts.append(_DOUBT_ARITH)
                return arith, arith, True, False
            self.not_arith.add(i)
        if s.startswith("$[", i):
            self.doubts.append(_DOUBT_ARITH)
        if s.startswith("$(", i):
            self.i += 2
            self._nested(")", "$( command substitution")
            return _PH_SUB, _PH_SUB, True, False
        if s.startswith("${", i):
            text = self._brace_param()
            if not _PLAIN_PARAM_RE.match(text):
                self.doubts.append(_DOUBT_PARAM)
            return text, text, True, False
        if not in_dq and s.startswith("$'", i):
            j = i + 2
            while j < self.n and s[j] != "'":
                j += 2 if s[j] == "\\" else 1
            if j >= self.n:
                raise ShellParseError("unterminated $'...' quote")
            raw = s[i : j + 1]
            self.i = j + 1
            return raw, _decode_ansi_c(raw[2:-1]), False, True
        if not in_dq and s.startswith('$"', i):
            self.i += 1
            raw, val, dyn = self._double()
            return "$" + raw, val, dyn, True
        self.i += 1
        nxt = s[i + 1 : i + 2]
        dynamic = bool(nxt) and (nxt.isalnum() or nxt in "_@*#?$!-")
        return "$", "$", dynamic, False

    def _arith(self) -> str | None:
        """Read ``$(( ... ))``; None (and nothing consumed) when it is not arithmetic."""
        s = self.s
        start, start_out, start_hd = self.i, len(self.out), len(self.heredocs)
        self.i += 3
        raw = ["$(("]
        depth = 0
        try:
            while True:
                if self.i >= self.n:
                    raise ShellParseError("unclosed $((")
                c = s[self.i]
                if c == "(":
                    depth += 1
                    raw.append(c)
                    self.i += 1
                elif c == ")":
                    if depth == 0:
                        if s.startswith("))", self.i):
                            raw.append("))")
                            self.i += 2
                            return "".join(raw)
                        raise ShellParseError("not arithmetic")
                    depth -= 1
                    raw.append(c)
                    self.i += 1
                elif c == "$":
                    raw.append(self._dollar(in_dq=True)[0])
                elif c == "`":
                    self._backtick(in_dq=False)
                    raw.append(_PH_SUB)
                elif c == "\\":
                    raw.append(s[self.i : self.i + 2])
                    self.i += 2
                elif c == '"':
                    raw.append(self._double()[0])
                elif c == "'":
                    raw.append(self._single()[0])
                else:
                    raw.append(c)
                    self.i += 1
        except ShellParseError:
            self.i = start
            del self.out[start_out:]
            del self.heredocs[start_hd:]
            return None

    def _brace_param(self) -> str:
        s = self.s
        self.i += 2
        raw = ["${"]
        while True:
            if self.i >= self.n:
                raise ShellParseError("unclosed ${")
            c = s[self.i]
            if c == "}":
                raw.append("}")
                self.i += 1
                return "".join(raw)
            if c == "$":
                raw.append(self._dollar(in_dq=True)[0])
            elif c == "`":
                self._backtick(in_dq=False)
                raw.append(_PH_SUB)
            elif c == "'":
                raw.append(self._single()[0])
            elif c == '"':
                raw.append(self._double()[0])
            elif c == "\\":
                raw.append(s[self.i : self.i + 2])
                self.i += 2
            else:
                raw.append(c)
                self.i += 1

    def _backtick(self, in_dq: bool) -> None:
        s = self.s
        j = self.i + 1
        buf: list[str] = []
        escapable = '$`\\"' if in_dq else "$`\\"
        while True:
            if j >= self.n:
                raise ShellParseError("unterminated backquote")
            c = s[j]
            if c == "\\" and j + 1 < self.n:
                nxt = s[j + 1]
                buf.append(nxt if nxt in escapable else c + nxt)
                j += 2
            elif c == "`":
                break
            else:
                buf.append(c)
                j += 1
        self.i = j + 1
        self._sub("".join(buf)).run()


def _strip_keywords(tokens: list[_Tok]) -> list[_Tok]:
    k = 0
    while k < len(tokens):
        t = tokens[k]
        if t.op or t.quoted or t.raw not in _KEYWORDS:
            break
        k += 1
        if t.raw == "time" and k < len(tokens) and tokens[k].raw == "-p":
            k += 1
    return tokens[k:]


def _split_function_def(tokens: list[_Tok]) -> list[list[_Tok]]:
    """``f() { body`` and ``function f {``: the definition runs nothing; its body is a part."""
    for k, t in enumerate(tokens):
        if k == 0 or t.op or t.quoted or t.raw != "{":
            continue
        prefix = tokens[:k]
        named = len(prefix) == 2 and prefix[1].raw == _PH_GROUP
        keyword = prefix[0].raw == "function" and len(prefix) in (2, 3)
        if named or keyword:
            return _split_function_def(_strip_keywords(tokens[k + 1 :]))
        break
    return [tokens]


def _render(text: str) -> str:
    return text.replace(_PH_SUB, "$(…)").replace(_PH_GROUP, "(…)")


def _map_ops(op: str) -> str:
    return op.replace("<", _S_LT).replace(">", _S_GT).replace("&", _S_AMP)


def _harmless(op: _Tok, target: _Tok) -> bool:
    """A redirection that cannot write anywhere: ``2>&1``, ``>&2``, ``2>/dev/null``."""
    if _DUP_OP_RE.fullmatch(op.raw):
        return re.fullmatch(r"[0-9]+|-", target.raw) is not None
    return _NULL_OP_RE.fullmatch(op.raw) is not None and target.raw == "/dev/null"


def _layout(part: _Part) -> tuple[list[_Tok], list[_Tok], list[tuple[_Tok, _Tok]]]:
    """Split a part into leading assignments, command words and redirections."""
    assigns: list[_Tok] = []
    words: list[_Tok] = []
    redirs: list[tuple[_Tok, _Tok]] = []
    toks = part.tokens
    k = 0
    while k < len(toks):
        t = toks[k]
        if t.op:
            target = toks[k + 1] if k + 1 < len(toks) else _Tok("", "")
            redirs.append((t, target))
            k += 2
            continue
        if not words and _ASSIGN_RE.match(t.raw):
            assigns.append(t)
        else:
            words.append(t)
        k += 1
    return assigns, words, redirs


_Mode = Literal["display", "strict", "bare", "values"]


def _text(part: _Part, mode: _Mode, *, heredocs: bool = True) -> str:
    """The part as text. ``display``: as shown. ``strict``: what allow rules match
    (redirection operators as sentinels, harmless redirections dropped). ``bare``: strict
    without leading assignments. ``values``: bare, with quotes removed and the command
    word's directory stripped."""
    toks = part.tokens
    out: list[str] = []
    docs: list[_Heredoc] = []
    seen_cmd = False
    k = 0
    while k < len(toks):
        t = toks[k]
        if t.op:
            target = toks[k + 1] if k + 1 < len(toks) else _Tok("", "")
            k += 2
            if t.heredoc is not None and heredocs:
                docs.append(t.heredoc)
            if mode != "display" and _harmless(t, target):
                continue
            op = t.raw if mode == "display" else _map_ops(t.raw)
            glue = "" if _GLUED_OP_RE.fullmatch(t.raw) else " "
            out.append(op + glue + (target.value if mode == "values" else target.raw))
            continue
        k += 1
        if not seen_cmd and _ASSIGN_RE.match(t.raw):
            if mode in ("bare", "values"):
                continue
        else:
            if mode == "values" and not seen_cmd:
                out.append(posixpath.basename(t.value) or t.value)
                seen_cmd = True
                continue
            seen_cmd = True
        out.append(t.value if mode == "values" else t.raw)
    text = " ".join(out)
    for hd in docs:
        if hd.text:
            text += "\n" + hd.text
    return _render(text)


# payloads: the commands a part runs on its own ------------------------------------------

_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "yash", "fish", "rbash"})
# name -> (options that take an argument, positional arguments before the command)
_WRAPPER_SPECS: dict[str, tuple[str, int]] = {
    "xargs": (
        "-a -d -E -I -L -n -P -s -R -J -S --arg-file --delimiter --eof --max-args "
        "--max-procs --max-chars --max-lines --process-slot-var",
        0,
    ),
    "env": ("-u -C --unset --chdir", 0),
    "sudo": (
        "-u -g -C -D -p -r -t -U -T -R --user --group --chdir --prompt --role --type "
        "--other-user --host --close-from --command-timeout --chroot",
        0,
    ),
    "doas": ("-u -C", 0),
    "nice": ("-n --adjustment", 0),
    "nohup": ("", 0),
    "builtin": ("", 0),
    "command": ("", 0),
    "exec": ("-a", 0),
    "setsid": ("", 0),
    "stdbuf": ("-i -o -e", 0),
    "timeout": ("-s -k --signal --kill-after", 1),
    "chroot": ("--userspec --groups", 1),
    "time": ("-f -o --format --output", 0),
    "unbuffer": ("", 0),
    "busybox": ("", 0),
    "ionice": ("-c -n -p -P -u --class --classdata", 0),
    "caffeinate": ("-t -w", 0),
    "torsocks": ("", 0),
    "proxychains": ("-f", 0),
    "proxychains4": ("-f", 0),
    "strace": ("-e -o -p -s -u -E -P -S -X -a -b", 0),
    "ltrace": ("-e -o -p -s -u -a -n", 0),
    "watch": ("-n --interval -q --equexit", 0),
    "flock": ("-w -E --timeout --wait --conflict-exit-code", 1),
}
_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    name: (frozenset(opts.split()), positional)
    for name, (opts, positional) in _WRAPPER_SPECS.items()
}


_RUNNERS = frozenset(
    {*_SHELLS, *_WRAPPERS, "eval", "find", "fd", "fdfind", "su", "script", "source", "."}
)
"""Commands that run their arguments as a command or as code."""


def _skip_options(args: list[_Tok], opts_with_arg: frozenset[str], positional: int) -> list[_Tok]:
    k = 0
    while k < len(args):
        a = args[k].value
        if a == "--":
            k += 1
            break
        if a.startswith("-") and len(a) > 1:
            k += 2 if a in opts_with_arg else 1
            continue
        break
    return args[k + positional :]


def _payloads(part: _Part, doubts: list[str]) -> list[str | list[_Tok]]:
    _, words, redirs = _layout(part)
    if not words:
        return []
    name = posixpath.basename(words[0].value)
    args = words[1:]
    if name in _SHELLS:
        return _shell_payloads(name, args, redirs, doubts)
    if name == "eval":
        return [" ".join(a.value for a in args)] if args else []
    if name in ("su", "script", "flock"):
        for k, tok in enumerate(args):
            if tok.value in ("-c", "--command") and k + 1 < len(args):
                doubts.append(f"{name} -c runs its command with another shell")
                return [args[k + 1].value]
            if tok.value.startswith("--command="):
                doubts.append(f"{name} -c runs its command with another shell")
                return [tok.value.partition("=")[2]]
        if name != "flock":
            return []
    if name in ("find", "fd", "fdfind"):
        return _exec_payloads(args, name)
    if name == "env":
        k = 0
        split: str | None = None
        assigns: list[_Tok] = []
        while k < len(args):
            a = args[k].value
            if a in ("-S", "--split-string") and k + 1 < len(args):
                split = args[k + 1].value
                k += 2
            elif a.startswith("--split-string="):
                split = a.partition("=")[2]
                k += 1
            elif a.startswith("-S") and len(a) > 2:
                split = a[2:]
                k += 1
            elif a in ("-u", "-C", "--unset", "--chdir"):
                k += 2
            elif _ASSIGN_RE.match(args[k].raw):
                # What env sets is part of the command it runs (BASH_ENV=..., LD_PRELOAD=...).
                assigns.append(args[k])
                k += 1
            elif a.startswith("-") and len(a) > 1:
                k += 1
            else:
                break
        rest = args[k:]
        if split is not None:
            doubts.append("env -S splits its string by rules of its own")
            return [" ".join([*(t.value for t in assigns), split, *(a.value for a in rest)])]
        return [assigns + rest] if rest else []
    if name == "command" and any(a.value in ("-v", "-V") for a in args[:2]):
        return []
    if name == "xargs":
        rest = _skip_options(args, *_WRAPPERS["xargs"])
        runner = posixpath.basename(rest[0].value) if rest else ""
        if runner in _RUNNERS:
            # Its input becomes arguments of a command that runs its arguments.
            doubts.append(f"xargs hands its input to {runner}, which runs it")
        return [rest] if rest else []
    spec = _WRAPPERS.get(name)
    if spec is None:
        return []
    rest = _skip_options(args, *spec)
    if not rest:
        return []
    if name == "watch":  # watch hands its arguments to `sh -c`
        doubts.append("watch runs its command with sh")
        return [" ".join(a.value for a in rest)]
    return [rest]


def _shell_payloads(
    name: str, args: list[_Tok], redirs: list[tuple[_Tok, _Tok]], doubts: list[str]
) -> list[str | list[_Tok]]:
    k = 0
    c_flag = False
    stdin_flag = False
    while k < len(args):
        a = args[k].value
        if a in ("--", "-"):
            k += 1
            break
        if a.startswith("--"):
            if a in ("--rcfile", "--init-file"):
                doubts.append(f"{name} {a} reads a file of commands")
                k += 2
            else:
                k += 1
            continue
        if len(a) > 1 and a[0] in "-+":
            if a[0] == "-" and "c" in a[1:]:
                c_flag = True
            if "s" in a[1:] or "i" in a[1:]:
                stdin_flag = True
            if "O" in a[1:]:
                doubts.append(f"{name} {a} sets a shell option that changes how commands read")
            k += 2 if ("o" in a[1:] or "O" in a[1:]) else 1
            continue
        break
    other = name not in ("bash", "rbash")
    if c_flag:
        if k >= len(args):
            doubts.append(f"{name} -c has no command string here (xargs or find may supply one)")
            return []
        code = args[k].value
        if other:
            doubts.append(f"the command runs under {name}, whose grammar is not bash's")
        if "{}" in code:
            doubts.append(f"{name} -c runs a string with {{}} in it (find and xargs fill it in)")
        return [code]
    if k < len(args) and not stdin_flag:
        return []  # a script file: what it runs is not visible here
    # The shell reads its commands from stdin: here-documents and here-strings are code.
    out: list[str | list[_Tok]] = []
    for op, target in redirs:
        if op.heredoc is not None:
            out.append(op.heredoc.body)
        elif op.raw.endswith("<<<"):
            out.append(target.value)
    if not out:
        doubts.append(f"{name} reads its commands from its input, which is not visible here")
    elif other:
        doubts.append(f"the command runs under {name}, whose grammar is not bash's")
    return out


def _exec_payloads(args: list[_Tok], name: str) -> list[str | list[_Tok]]:
    out: list[str | list[_Tok]] = []
    k = 0
    while k < len(args):
        a = args[k].value
        if name == "find" and a in ("-exec", "-execdir", "-ok", "-okdir"):
            j = k + 1
            while j < len(args) and args[j].value not in (";", "+"):
                j += 1
            if j > k + 1:
                out.append(args[k + 1 : j])
            k = j + 1
        elif name != "find" and (a in ("-x", "-X", "--exec", "--exec-batch")):
            j = k + 1
            while j < len(args) and args[j].value != ";":
                j += 1
            if j > k + 1:
                out.append(args[k + 1 : j])
            k = j + 1
        else:
            k += 1
    return out


def _part_doubts(part: _Part, doubts: list[str]) -> None:
    """Note the bash builtins that evaluate their arguments (names, subscripts, code)."""
    _, words, _ = _layout(part)
    if not words or words[0].quoted or words[0].dynamic:
        return
    name = words[0].value
    values = [w.value for w in words[1:]]
    if name in _EVALUATING_BUILTINS:
        doubts.append(f"{name} {_EVALUATING_BUILTINS[name]}")
    elif name in ("test", "[") and any(v in ("-v", "-R") for v in values):
        doubts.append(f"{name} -v evaluates the subscript of the variable it names")
    elif name == "printf" and values and values[0].startswith("-v"):
        doubts.append("printf -v assigns to a variable (and evaluates its subscript)")
    elif name == "wait" and any(v.startswith("-") and "p" in v for v in values):
        doubts.append("wait -p assigns to a variable (and evaluates its subscript)")
    elif name == "set" and not _plain_set(values):
        doubts.append("set changes how the commands after it are read or run")


def _plain_set(values: list[str]) -> bool:
    """``set -e``, ``set -o pipefail`` and the like: options that change no meaning."""
    k = 0
    while k < len(values):
        v = values[k]
        if v == "--":
            return True
        if len(v) > 1 and v[0] in "-+" and set(v[1:]) <= _PLAIN_SET_FLAGS | {"o"}:
            if "o" in v[1:]:  # `-o NAME`, also glued: `-euo pipefail`
                if k + 1 >= len(values) or values[k + 1] not in _PLAIN_SET_OPTIONS:
                    return False
                k += 1
            k += 1
            continue
        return False
    return True


def _parse(
    command: str, depth: int = 0, level: int = 0, doubts: list[str] | None = None
) -> list[_Part]:
    """Every part a command runs, payloads included, in order (inner before outer).

    ``doubts`` collects why the command cannot be classified with certainty."""
    if depth == 0 and _RESERVED_RE.search(command):
        raise ShellParseError("the command contains reserved characters (U+E000 to U+E00F)")
    if doubts is None:
        doubts = []
    raw: list[_Part] = []
    _Lexer(command, raw, depth, level, pattern=False, doubts=doubts).run()
    out: list[_Part] = []
    for part in raw:
        out.extend(_expand(part, depth, doubts))
    return out


def _expand(part: _Part, depth: int, doubts: list[str]) -> list[_Part]:
    if depth > _MAX_DEPTH:
        raise ShellParseError("the command is nested too deeply")
    _part_doubts(part, doubts)
    out = [part]
    for payload in _payloads(part, doubts):
        if isinstance(payload, str):
            out.extend(_parse(payload, depth + 1, part.level + 1, doubts))
        else:
            toks = [t.word() for t in payload]
            out.extend(_expand(_Part(toks, part.level + 1), depth + 1, doubts))
    return out


def shell_doubts(command: str) -> list[str]:
    """Why bash may run ``command`` otherwise than :func:`split_shell` reads it.

    The matcher classifies a command with certainty only when every part is a plain simple
    command. These ask, whatever the rules say (a deny rule still denies):

    - arithmetic on names or expansions (``$((x))``, ``$[...]``, ``((...))``, ``let``): bash
      evaluates a variable's value, and a subscript in it, as code;
    - parameter expansions beyond the plain forms: indirection ``${!x}``, the prompt
      transformation ``${x@P}``, subscripts and offsets that are not numbers (``${a[i]}``);
    - builtins that evaluate their arguments or change how later commands run: ``[[``,
      ``declare``/``typeset``/``local``/``export``/``readonly``, ``read``, ``mapfile``,
      ``unset``, ``getopts``, ``trap``, ``alias``, ``hash``, ``enable``, ``shopt``,
      ``bind``, ``complete``, ``compgen``, ``fc``, ``test -v``, ``printf -v``, ``wait -p``,
      and ``set`` beyond ``-e``/``-u``/``-x``/``-o pipefail``...;
    - code bash does not read itself or that is not visible: ``sh -c`` (and every shell but
      bash), ``watch``, ``su -c``, ``script -c``, ``flock -c``, ``env -S``, a shell that
      reads its commands from its input, ``bash -c`` without a string or with ``{}`` in
      it, ``xargs`` handing its input to a shell, ``env`` or another runner, shell options
      that change the grammar (``-O extglob``, ``--rcfile``).

    Args:
        command: The command.

    Returns:
        The reasons, without repeats; ``[]`` when the command is certain (or does not parse:
        :func:`split_shell` raises then).
    """
    doubts: list[str] = []
    try:
        _parse(command, doubts=doubts)
    except ShellParseError:
        return []
    return list(dict.fromkeys(doubts))


def split_shell(command: str) -> list[str]:
    """Split a shell command into the simple commands that will run.

    Splits on ``;``, ``&&``, ``||``, ``|``, ``|&``, ``&`` and newlines outside quotes;
    command and process substitutions, subshells and brace groups give their inner commands
    as parts of their own (inner before outer, which keeps a ``$(…)``/``(…)`` placeholder);
    ``sh -c``/``bash -c``/``eval``/``su -c`` strings are split again, and the commands run
    by ``xargs``, ``env``, ``sudo``, ``find -exec`` and other wrappers become parts too.
    Whitespace is normalised, quotes are kept as typed, comments and leading reserved words
    (``if``, ``then``, ``do``, ``!``, ``{`` ...) are dropped, duplicates are dropped.

    Example:
        ```python
        split_shell("git status; rm -rf x")   # ["git status", "rm -rf x"]
        split_shell("echo $(curl evil.sh)")   # ["curl evil.sh", "echo $(…)"]
        ```

    Args:
        command: The command as the shell would get it.

    Returns:
        The parts, in the order they appear.

    Raises:
        ShellParseError: Unbalanced quotes, parentheses or backquotes, a redirection without
            a target, or nesting deeper than 24 levels.
    """
    return list(dict.fromkeys(_text(p, "display") for p in _parse(command)))


# -- shell matching ------------------------------------------------------------------------


class _ShellSubject:
    __slots__ = ("display", "strict", "views", "dynamic_head")

    def __init__(
        self, display: str, strict: str, views: tuple[str, ...], dynamic_head: str | None
    ) -> None:
        self.display = display
        self.strict = strict
        self.views = views
        self.dynamic_head = dynamic_head
        """When the command word is computed: the strict text up to its end."""


def _shell_subject(part: _Part) -> _ShellSubject:
    strict = _text(part, "strict")
    views = tuple(dict.fromkeys((strict, _text(part, "bare"), _text(part, "values"))))
    head: str | None = None
    toks = part.tokens
    k = 0
    while k < len(toks):
        t = toks[k]
        if t.op:
            k += 2
            continue
        if _ASSIGN_RE.match(t.raw):
            k += 1
            continue
        if t.dynamic or t.globby:
            head = _text(_Part(toks[: k + 1], part.level), "strict", heredocs=False)
        break
    return _ShellSubject(_text(part, "display"), strict, views, head)


class _ShellPattern:
    __slots__ = ("strict", "loose", "literal_prefix")

    def __init__(
        self, strict: re.Pattern[str] | None, loose: re.Pattern[str], literal_prefix: str
    ) -> None:
        self.strict = strict
        """What allow rules use; None when the pattern is not one shell command."""
        self.loose = loose
        """What deny and ask rules use: wildcards match anything."""
        self.literal_prefix = literal_prefix
        """The strict text before the first wildcard: a computed command word must lie
        entirely in it."""


@functools.lru_cache(maxsize=4096)
def _shell_pattern(pattern: str) -> _ShellPattern:
    text: str | None = None
    if not _RESERVED_RE.search(pattern):
        out: list[_Part] = []
        try:
            _Lexer(pattern, out, 0, 0, pattern=True).run()
        except ShellParseError:
            out = []
        top = [p for p in out if p.level == 0]
        if len(top) == 1:
            text = _text(top[0], "strict")
    if text is None:
        loose_text = " ".join(pattern.split())
        return _ShellPattern(None, _shell_glob_regex(loose_text, strict=False), "")
    prefix: list[str] = []
    for kind, t in _glob_tokens(text):
        if kind != "lit":
            break
        prefix.append(t)
    return _ShellPattern(
        _shell_glob_regex(text, strict=True),
        _shell_glob_regex(text, strict=False),
        "".join(prefix),
    )


def _shell_rule_matches(subject: _ShellSubject, rule: Rule) -> bool:
    assert rule.pattern is not None
    pat = _shell_pattern(rule.pattern)
    if rule.decision == "allow":
        if pat.strict is None:
            return False
        if subject.dynamic_head is not None and not pat.literal_prefix.startswith(
            subject.dynamic_head
        ):
            return False  # a computed command word must be spelled out by the rule
        return pat.strict.fullmatch(subject.strict) is not None
    return any(pat.loose.fullmatch(view) is not None for view in subject.views)


# -- the broker ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    """A decision on a pending call."""

    decision: ResolutionDecision
    """``allow`` or ``deny``."""
    scope: ResolutionScope = "once"
    """How far an allow reaches: this call, this session, this workspace, everywhere."""
    note: str | None = None
    """A deny's note, sent back to the model."""
    edited_arguments: dict[str, Any] | None = None
    """Arguments a person changed before allowing (the call runs with these)."""
    decided_by: str = "user"
    """Who decided: ``user``, ``policy``, ``rule:<id>``, ``--approve`` ..."""

    def __post_init__(self) -> None:
        if self.decision not in _RES_DECISIONS:
            raise ValueError(f"a decision is allow or deny, not {self.decision!r}")
        if self.scope not in _RES_SCOPES:
            raise ValueError(f"a scope is once, session, workspace or always, not {self.scope!r}")


@dataclass(eq=False)
class PendingApproval:
    """A tool call waiting for a decision; the broker sets :attr:`future` when it registers it."""

    call_id: str
    """The model's call id; decisions refer to it."""
    tool: str
    """Workspace name of the tool."""
    arguments: dict[str, Any]
    """The arguments as the model sent them."""
    reason: str = ""
    """Why it asks (the verdict's reason)."""
    parts: list[str] = field(default_factory=list)
    """Shell: the command's parts. Paths: the normalised paths."""
    diff: str | None = None
    """For file writes and edits: the unified diff the call would apply."""
    session_id: str = ""
    """The session of the run that asks."""
    run_id: str = ""
    """The run that asks."""
    source: str = ""
    """The agent (team, workflow) that asks."""
    created_at: float = field(default_factory=time.time)
    """When it started waiting (seconds since the epoch)."""
    verdict: Verdict | None = None
    """The policy's verdict, when the engine has it (for :meth:`rules_for`)."""
    match_on: tuple[str, str] | None = None
    """The tool's ``match_on`` (for :meth:`rules_for`)."""
    kind: Literal["tool", "input"] = "tool"
    """``tool``: a call waits to run. ``input``: a running tool asks the person for input (an
    MCP elicitation): ``arguments`` are the form's values, :attr:`form` its schema; allow
    sends them (edited, if edited), deny declines. Never decided by rules."""
    form: dict[str, Any] | None = None
    """For ``input``: the JSON schema of the form."""
    interrupted: bool = False
    """The call started in a process that stopped before it gave a result: it may already
    have run (a resumed run offers it again instead of running it silently)."""
    future: asyncio.Future[Resolution] | None = field(default=None, repr=False)
    """Resolved with the decision; set by :meth:`ApprovalBroker.request`."""

    @property
    def resolved(self) -> bool:
        """True once decided (or abandoned)."""
        return self.future is not None and self.future.done()

    @classmethod
    def from_event(cls, event: ApprovalRequired) -> PendingApproval:
        """Rebuild a pending call from its ``approval.required`` event (after a restart)."""
        return cls(
            call_id=event.call_id,
            tool=event.tool,
            arguments=dict(event.arguments),
            reason=event.reason,
            parts=list(event.parts),
            diff=event.diff,
            session_id=event.session_id,
            run_id=event.run_id,
            source=event.source,
            created_at=event.ts,
            kind=event.kind,
            form=event.form,
        )

    def required_event(self, parent_run_id: str | None = None) -> ApprovalRequired:
        """The ``approval.required`` event announcing this call."""
        from .events import ApprovalRequired

        return ApprovalRequired(
            session_id=self.session_id,
            run_id=self.run_id,
            parent_run_id=parent_run_id,
            source=self.source,
            call_id=self.call_id,
            tool=self.tool,
            arguments=self.arguments,
            reason=self.reason,
            parts=list(self.parts),
            diff=self.diff,
            kind=self.kind,
            form=self.form,
        )

    def resolved_event(
        self,
        resolution: Resolution,
        saved: Sequence[Rule] = (),
        parent_run_id: str | None = None,
    ) -> ApprovalResolved:
        """The ``approval.resolved`` event (the audit trail) for a decision on this call.

        Args:
            resolution: The decision.
            saved: The rules the decision saved, shown as :meth:`Rule.display` lines.
            parent_run_id: The run's parent, if any.
        """
        from .events import ApprovalResolved

        return ApprovalResolved(
            session_id=self.session_id,
            run_id=self.run_id,
            parent_run_id=parent_run_id,
            source=self.source,
            call_id=self.call_id,
            tool=self.tool,
            decision=resolution.decision,
            scope=resolution.scope,
            note=resolution.note,
            edited_arguments=resolution.edited_arguments,
            decided_by=resolution.decided_by,
            rule="\n".join(r.display() for r in saved) or None,
        )

    def rules_for(self, scope: ResolutionScope, root: Path | None = None) -> list[Rule]:
        """The rules "allow for ``scope``" would save, to show before saving.

        Args:
            scope: ``session``, ``workspace`` or ``always``.
            root: The workspace root.
        """
        if self.verdict is None or self.kind != "tool":
            return []
        return rules_for_decision(
            self.tool, self.match_on, self.arguments, self.verdict, scope, root=root
        )


BrokerListener: TypeAlias = Callable[[Literal["added", "removed"], PendingApproval], None]
"""Called on the event loop's thread when a pending approval is added or removed."""


def _settle(fut: asyncio.Future[Resolution], resolution: Resolution) -> None:
    if not fut.done():
        fut.set_result(resolution)


class ApprovalBroker:
    """Holds the calls that wait for a person, and the session-scoped rules.

    The engine ``await`` s :meth:`request`; any face calls :meth:`resolve` (from the event
    loop or from another thread). Cancelling the awaiting task withdraws the request.
    """

    auto_decider: Callable[[PendingApproval], Resolution | None] | None
    """When set and it returns a Resolution, a request resolves at once without waiting
    (``workbench run --approve all|never`` with no terminal). ``None`` from it means ask a
    person; an exception from it denies (it fails closed)."""

    def __init__(
        self, auto_decider: Callable[[PendingApproval], Resolution | None] | None = None
    ) -> None:
        self.auto_decider = auto_decider
        self._lock = threading.Lock()
        # Keyed by (run_id, call_id): a model's call ids are unique within a run only (the
        # test model and some local servers number them), so concurrent runs may repeat one.
        self._pending: dict[
            tuple[str, str], tuple[PendingApproval, asyncio.AbstractEventLoop, int]
        ] = {}
        self._seq = 0
        self._listeners: list[BrokerListener] = []
        self._session_rules: dict[str, list[Rule]] = {}

    async def request(self, p: PendingApproval) -> Resolution:
        """Register a pending call and wait for its decision.

        Args:
            p: The call; its :attr:`~PendingApproval.future` is replaced by a new one.

        Returns:
            The decision.

        Raises:
            ValueError: A call with the same id is already pending in the same run.
            asyncio.CancelledError: The awaiting task was cancelled (the call is withdrawn).
        """
        if self.auto_decider is not None:
            try:
                decided = self.auto_decider(p)
            except Exception as exc:
                logger.exception("the approval auto_decider failed on %s", p.call_id)
                decided = Resolution(
                    "deny", note=f"the approval hook failed: {exc}", decided_by="auto_decider"
                )
            if decided is not None:
                return decided
        import asyncio

        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Resolution] = loop.create_future()
        key = (p.run_id, p.call_id)
        with self._lock:
            if key in self._pending:
                raise ValueError(f"call {p.call_id!r} is already waiting for a decision")
            p.future = fut
            self._seq += 1
            self._pending[key] = (p, loop, self._seq)
        self._notify("added", p)
        try:
            return await fut
        finally:
            with self._lock:
                entry = self._pending.get(key)
                if entry is not None and entry[0] is p:
                    del self._pending[key]
            if not fut.done():
                fut.cancel()
            self._notify("removed", p)

    def resolve(self, run_id: str, call_id: str, resolution: Resolution) -> bool:
        """Decide on a pending call. Safe from any thread.

        Args:
            run_id: The run that asks.
            call_id: The call's id (unique within its run only: never guess the run).
            resolution: The decision.

        Returns:
            False if no such call is pending (unknown, already resolved or withdrawn).
        """
        key = (run_id, call_id)
        with self._lock:
            entry = self._pending.get(key)
            if entry is None:
                return False
            p, loop, _ = entry
            fut = p.future
            if fut is None or fut.done():
                return False
            del self._pending[key]
        import asyncio

        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            _settle(fut, resolution)
        else:
            try:
                loop.call_soon_threadsafe(_settle, fut, resolution)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return False
        return True

    def get(self, run_id: str, call_id: str) -> PendingApproval | None:
        """The pending call ``call_id`` of the run ``run_id``, if any."""
        with self._lock:
            entry = self._pending.get((run_id, call_id))
        return entry[0] if entry else None

    def pending(self, session_id: str | None = None) -> list[PendingApproval]:
        """Pending calls, newest first.

        Args:
            session_id: Only this session's; None for all.
        """
        with self._lock:
            entries = list(self._pending.values())
        entries.sort(key=lambda e: (e[0].created_at, e[2]), reverse=True)
        return [p for p, _, _ in entries if session_id is None or p.session_id == session_id]

    def subscribe(self, callback: BrokerListener) -> Callable[[], None]:
        """Call ``callback(kind, pending)`` when a call is added or removed.

        Returns:
            A function that unsubscribes.
        """
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def _notify(self, kind: Literal["added", "removed"], p: PendingApproval) -> None:
        for callback in list(self._listeners):
            try:
                callback(kind, p)
            except Exception:  # a face's bug must not break the run that waits
                logger.exception("approval listener failed")

    # -- session rules ---------------------------------------------------------------------

    def add_session_rules(self, session_id: str, rules: Iterable[Rule]) -> list[Rule]:
        """Keep rules for one session (they are given scope ``session``).

        Returns:
            The rules added (those not already held).
        """
        added: list[Rule] = []
        with self._lock:
            held = self._session_rules.setdefault(session_id, [])
            keys = {(r.tool, r.pattern, r.decision) for r in held}
            for r in rules:
                if r.scope != "session":
                    r = replace(r, scope="session")
                key = (r.tool, r.pattern, r.decision)
                if key not in keys:
                    keys.add(key)
                    held.append(r)
                    added.append(r)
        return added

    def session_rules(self, session_id: str) -> list[Rule]:
        """The rules saved for a session, oldest first."""
        with self._lock:
            return list(self._session_rules.get(session_id, ()))

    def remove_session_rule(self, session_id: str, rule: Rule) -> bool:
        """Forget a session rule (matched on tool, pattern and decision).

        Returns:
            False if the session had no such rule.
        """
        key = (rule.tool, rule.pattern, rule.decision)
        with self._lock:
            held = self._session_rules.get(session_id, [])
            for i, r in enumerate(held):
                if (r.tool, r.pattern, r.decision) == key:
                    del held[i]
                    return True
        return False

    def clear_session(self, session_id: str) -> None:
        """Forget every rule of a session."""
        with self._lock:
            self._session_rules.pop(session_id, None)
