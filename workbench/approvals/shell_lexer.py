"""The shell lexer: bash's grammar read into tokens and parts, without running anything."""

from __future__ import annotations

import posixpath
import re
from typing import Literal

from .globs import _S_AMP, _S_GT, _S_LT
from .rules import ShellParseError

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
