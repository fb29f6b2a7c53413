"""The matcher and the shell agree: a differential test.

Every command here is run for real, with the argv ``shell.run`` uses (bash), in a throwaway
folder that holds a probe file, under a policy that allows only commands that cannot touch
the probe by themselves (``echo``, ``printf``, ``cat``, ``ls``, ``test`` ...) and a few
wrappers (``bash -c``, ``sh -c``, ``eval``, ``env``, ``xargs`` ...). If the probe (or anything
else in the folder) changed, something ran that no rule allows, so the matcher must have
asked (or denied): a command that touched the probe and was allowed is a bypass.

The commands come from a corpus of known tricks (the ones an adversarial review and a fuzzer
found, and the ones that held) and from hypothesis, which assembles commands out of shell
fragments: quotes of every kind, ``$'...'``, ``&>``, substitutions, here-documents,
arithmetic, parameter expansions, separators, and the probe-touching command. Bounded in
time: a few hundred commands, a few milliseconds each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.shell import ShellToolkit
from workbench.approvals import ApprovalPolicy, Verdict

SHELL = ("command", "cmd")

# Commands that cannot change a file by themselves (redirections are never allowed by a
# pattern's wildcard), and wrappers whose payload the matcher must read.
POLICY = ApprovalPolicy.from_config(
    {
        "default": "ask",
        "allow": [
            "shell.run:echo *",
            "shell.run:printf *",
            "shell.run:cat *",
            "shell.run:ls*",
            "shell.run:pwd",
            "shell.run:true",
            "shell.run:test *",
            "shell.run:[ *",
            "shell.run:wc *",
            "shell.run:read *",
            "shell.run:declare *",
            "shell.run:export *",
            "shell.run:let *",
            "shell.run:trap *",
            "shell.run:set *",
            "shell.run:bash -c *",
            "shell.run:sh -c *",
            "shell.run:eval *",
            "shell.run:env *",
            "shell.run:xargs *",
            "shell.run:command *",
            "shell.run:timeout *",
        ],
        "deny": ["shell.run:touch *", "shell.run:rm *"],
    }
)

PROBE = "probe"


def verdict(command: str) -> Verdict:
    return POLICY.evaluate("shell.run", SHELL, {"cmd": command})


class Sandbox:
    """A folder with a probe; runs a command there as ``shell.run`` would and says whether
    anything in the folder changed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.argv = ShellToolkit("shell", {}, root).argv
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root)}

    def _reset(self) -> None:
        for entry in list(self.root.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                subprocess.run(["rm", "-rf", str(entry)], check=True)
            else:
                entry.unlink()
        (self.root / PROBE).write_text("untouched\n")

    def _state(self) -> list[tuple[str, int, bytes]]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in sorted(dirnames + filenames):
                p = Path(dirpath, name)
                st = p.lstat()
                body = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
                out.append((str(p.relative_to(self.root)), st.st_mtime_ns, body))
        return sorted(out)

    def touched(self, command: str) -> bool:
        """Run ``command``; True when the folder is not as it was before."""
        self._reset()
        before = self._state()
        try:
            proc = subprocess.Popen(
                self.argv(command),
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except ValueError:  # a NUL byte: nothing can run
            return False
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        # Let what the command left in the background finish (or be stopped).
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.005)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        return self._state() != before


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    yield Sandbox(tmp_path_factory.mktemp("probe-box"))


def check(sandbox: Sandbox, command: str) -> None:
    v = verdict(command)
    if sandbox.touched(command):
        assert v.decision != "allow", f"ran unasked: {command!r} ({v.reason})"


# -- the corpus of known tricks --------------------------------------------------------------

P = "'a[$(touch probe)]'"

CORPUS = [
    # the two classes the fuzzer found (bash and dash read them differently)
    "echo hi &> /dev/null; touch probe",
    "echo hi &>probe",
    "echo hi &>/dev/null touch probe",
    "echo hi &>/dev/null rm -f probe",
    "echo $'a\\'\ntouch probe\n#'",
    "echo $'\\'\nrm -f probe\n#'",
    "echo $'\\''; touch probe; '\\''",
    "echo $'a\\'b'; touch probe; echo '",
    "echo $'\\x27'; touch probe #'",
    "echo $'\\047'; touch probe",
    'echo $"x"; touch probe',
    "sh -c \"echo \\$'\\\\''; touch probe; '\\\\''\"",
    "sh -c 'echo hi &>/dev/null touch probe'",
    # held before, kept held
    "echo ok; touch probe",
    "echo ok && touch probe",
    "echo ok || touch probe",
    "echo ok | touch probe",
    "echo ok & touch probe",
    "echo ok\ntouch probe",
    "echo $(touch probe)",
    "echo `touch probe`",
    'echo "$(touch probe)"',
    "cat <(touch probe)",
    "ls >(touch probe)",
    "(touch probe)",
    "{ touch probe; }",
    "bash -c 'touch probe'",
    "eval 'touch probe'",
    "echo probe | xargs touch",
    "env touch probe",
    "timeout 5 touch probe",
    "command touch probe",
    "echo ${x:-$(touch probe)}",
    "cat <<EOF\n$(touch probe)\nEOF",
    "bash <<EOF\ntouch probe\nEOF",
    "bash <<< 'touch probe'",
    "echo hi > probe",
    "echo hi >> probe",
    "echo hi >| probe",
    "echo hi 2>probe",
    "echo hi <>probe",
    "echo hi >&probe",
    "echo hi {fd}>probe",
    "X=1 touch probe",
    "\\touch probe",
    "/usr/bin/touch probe",
    '"touch" probe',
    "{touch,probe}",
    "f() { touch probe; }; f",
    "function f { touch probe; }; f",
    "if true; then touch probe; fi",
    "while touch probe; do break; done",
    "time touch probe",
    "! touch probe",
    "echo hi # \ntouch probe",
    "ec\\\nho hi; touch probe",
    "echo $((1+$(touch probe)))",
    # bash evaluates data as code: arithmetic, subscripts, indirection, prompt expansion
    f"test -v {P}",
    f"[ -v {P} ]",
    f"printf -v {P} x",
    f"echo $(( {P} ))",
    f"echo $[ {P} ]",
    f"x={P}; echo $((x))",
    f"x={P}; echo ${{!x}}",
    "x='$(touch probe)'; echo ${x@P}",
    f"[[ {P} -eq 1 ]]",
    f"read {P} </dev/null",
    f"declare -i x={P}",
    f"declare {P}=1",
    f"let {P}",
    f"echo ${{x[{P}]}}",
    f"x=(1); echo ${{x[@]:{P}}}",
    f"trap {P} EXIT",
    "trap 'touch probe' EXIT",
    f"printf -v x {P}; test -v 'b[x]'",
    "echo $(( $(printf 'a[$(touch probe)]') ))",
    f"export x={P}; echo $((x))",
    "mapfile -C 'touch probe' -c 1 < /etc/hostname",
    # a shell whose code comes from its input or from a placeholder
    "echo 'touch probe' | bash",
    "printf 'touch probe' | bash -s",
    "echo '\"touch probe\"' | xargs bash -c",
    "echo 'touch probe' | xargs -I{} bash -c {}",
    "env BASH_ENV=<(echo touch probe) bash -c true",
    "env 'BASH_FUNC_ls%%=() { touch probe; }' bash -c ls",
    "set -k; bash -c true BASH_ENV=<(echo touch probe)",
    'bash -c "$(echo touch probe)"',
    "bash -c '$0 probe' touch",
    'eval "$(echo touch probe)"',
    "x=touch; $x probe",
    "${x:-touch} probe",
    "echo${IFS}hi;touch probe",
    "ca\\\nt probe; touch probe",
]


@pytest.mark.parametrize("command", CORPUS)
def test_a_command_that_touches_the_probe_was_not_allowed(sandbox: Sandbox, command: str) -> None:
    check(sandbox, command)


def test_the_corpus_really_runs_what_it_hides(sandbox: Sandbox) -> None:
    """Most of the corpus does touch the probe under bash (the test would prove nothing if
    the sandbox ran nothing)."""
    touched = [c for c in CORPUS if sandbox.touched(c)]
    assert len(touched) >= len(CORPUS) * 3 // 4, sorted(set(CORPUS) - set(touched))


def test_allowed_commands_do_run(sandbox: Sandbox) -> None:
    """The allow list allows what it says (the test is not passing by asking everything)."""
    for command in ("echo hi", "ls -la", "printf '%s\\n' a b | cat", "bash -c 'echo hi'"):
        assert verdict(command).decision == "allow", command
        assert not sandbox.touched(command)


# -- generated commands -----------------------------------------------------------------------

DANGER = st.sampled_from(["touch probe", "rm -f probe", "mkdir probe.d", "touch probe2"])
SAFE_CMD = st.sampled_from(
    [
        "echo",
        "printf '%s'",
        "cat",
        "ls",
        "test",
        "true",
        "wc -c",
        "test -v",
        "printf -v",
        "read",
        "declare",
        "let",
        "trap",
        "bash -c",
        "sh -c",
        "eval",
        "xargs",
        "env",
    ]
)
# Pieces of words: glued together at random they make quoting, escaping and nesting that no
# template would (``$'`` + ``\'`` + ``; touch probe; `` + ``'`` is the trick dash and bash
# read apart).
ATOM = st.sampled_from(
    [
        "a",
        "'",
        '"',
        "$'",
        '$"',
        "\\",
        "\\'",
        "\\\\",
        "\\x27",
        "\\047",
        "\\n",
        "`",
        "$(",
        ")",
        "(",
        "${",
        "}",
        "{",
        ",",
        "$((",
        "))",
        "[",
        "]",
        "#",
        "\n",
        ";",
        "&",
        "&>",
        ">&",
        "|",
        " ",
        "=",
        "$x",
        "<<<",
        "<<E\n",
        "\nE\n",
        "touch probe",
        " touch probe",
        "; touch probe; ",
        "\ntouch probe\n",
        P,
    ]
)
WORD = st.lists(ATOM, min_size=1, max_size=6).map("".join)
SEP = st.sampled_from(["; ", " && ", " || ", " | ", " & ", "\n", " &> ", " &>/dev/null "])


@st.composite
def commands(draw: st.DrawFn) -> str:
    pieces: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 4)) == 0:
            pieces.append(draw(DANGER))
        else:
            words = draw(st.lists(WORD, min_size=1, max_size=3))
            pieces.append(" ".join([draw(SAFE_CMD), *words]))
        pieces.append(draw(SEP))
    return "".join(pieces[:-1])


FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(commands())
def test_generated_commands_that_touch_the_probe_were_not_allowed(
    sandbox: Sandbox, command: str
) -> None:
    check(sandbox, command)


@FUZZ
@given(commands(), SEP, DANGER)
def test_a_danger_after_quotes_and_fragments_is_seen(
    sandbox: Sandbox, prefix: str, glue: str, danger: str
) -> None:
    check(sandbox, prefix + glue + danger)
