"""Glob translation: tool globs, shell-part globs and path globs as regular expressions."""

from __future__ import annotations

import functools
import re

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
