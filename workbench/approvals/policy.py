"""The policy: which rule decides a call, and the rules a person's decision would save.

The choices behind matching are written down in :mod:`workbench.approvals`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # asyncio and pathlib are imported when used: this loads fast
    from pathlib import Path


from .globs import _glob_tokens
from .paths import _path_rule_matches, _path_subject, _PathSubject
from .rules import (
    _DECISIONS,
    _RES_SCOPES,
    ApprovalConfigError,
    Decision,
    ResolutionScope,
    Rule,
    RuleScope,
    RuleSpec,
    ShellParseError,
    Verdict,
    escape_pattern,
)
from .shell import (
    _parse,
    _shell_pattern,
    _shell_rule_matches,
    _shell_subject,
    _ShellSubject,
    shell_doubts,
    split_shell,
)


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
