"""File paths: how a path argument is normalised against the workspace root and matched."""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # asyncio and pathlib are imported when used: this loads fast
    from pathlib import Path


from .globs import _path_regex
from .rules import Rule

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
