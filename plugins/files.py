"""The ``files`` toolkit: read, write, edit, list and search files inside the workspace.

Every path is relative to the workspace root (:attr:`ToolContext.workspace_root`) and must
stay inside it: absolute paths, ``..`` escapes and symlinks whose target lies outside the
root (including a symlinked parent directory) are refused with ``path 'x' is outside the
workspace``. The check resolves the whole path with :func:`os.path.realpath` and the tool
then works on that resolved path, so what was checked is what is opened.

``write`` and ``edit`` offer an approval preview: the unified diff they would apply,
computed from the same checked path.

Config (``tools: files:`` in ``workbench.yaml``; all optional):

- ``max_read_chars`` (100000): the most text one ``read`` returns.
- ``max_results`` (1000): the most entries ``list`` and ``glob`` return.
- ``max_matches`` (200): the most lines ``grep`` returns.
- ``max_file_bytes`` (10 MB): larger files are not edited or searched.
- ``exclude``: directory names ``glob`` and ``grep`` do not descend into
  (``.git``, ``node_modules``, ``__pycache__``, ``.venv`` ... by default).
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workbench.tools import (
    ApprovalPreview,
    FunctionToolkit,
    MatchOn,
    ToolContext,
    ToolError,
    tool,
)

__all__ = ["FilesToolkit", "confine", "unified_diff"]

DEFAULT_EXCLUDE = (
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "__pycache__",
    ".venv",
    "venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
)
"""Directories that ``glob`` and ``grep`` skip unless configured otherwise."""

_MAX_LINE_CHARS = 2000
_MAX_GREP_LINE = 400
_BINARY_SNIFF = 8192
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _outside(path: str) -> ToolError:
    return ToolError(f"path {path!r} is outside the workspace")


def confine(root: Path | str, path: str) -> tuple[str, str]:
    """Resolve ``path`` inside the workspace ``root``.

    Returns:
        The resolved absolute path and its form relative to the (resolved) root, with
        ``/`` separators (``.`` for the root itself).

    Raises:
        ToolError: the path is absolute, escapes with ``..``, passes through a symlink to
            somewhere outside the root, or is not a valid path.
    """
    if not isinstance(path, str) or not path:
        raise ToolError("path must be a non-empty string")
    try:
        if "\x00" in path:
            raise ValueError("NUL byte")
        os.fsencode(path)  # lone surrogates and the like are not paths on this system
        if os.path.isabs(path) or path.startswith("\\"):
            raise _outside(path)
        real_root = os.path.realpath(root)
        real = os.path.realpath(os.path.join(real_root, path))
        if os.path.commonpath([real_root, real]) != real_root:
            raise _outside(path)
    except (ValueError, UnicodeError) as exc:
        raise ToolError(f"invalid path {path!r}: {exc}") from None
    rel = os.path.relpath(real, real_root)
    return real, Path(rel).as_posix()


def unified_diff(old: str, new: str, rel: str) -> str:
    """A git-style unified diff (``a/`` and ``b/`` paths) of one file's old and new text."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{rel}",
        tofile=f"b/{rel}",
    )
    out: list[str] = []
    for line in lines:
        if line.endswith("\n"):
            out.append(line)
        else:
            out.append(f"{line}\n\\ No newline at end of file\n")
    return "".join(out)


def _is_binary(head: bytes) -> bool:
    return b"\x00" in head


def _read_text(real: str, rel: str, max_bytes: int) -> str:
    """The whole text of a file (for edit and previews); refuses binary and huge files."""
    try:
        st = os.stat(real)
    except FileNotFoundError:
        raise ToolError(f"no such file: {rel}") from None
    except OSError as exc:
        raise ToolError(f"cannot read {rel}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ToolError(f"{rel} is a directory")
    if st.st_size > max_bytes:
        raise ToolError(f"{rel} is too large ({st.st_size} bytes; the limit is {max_bytes})")
    data = _read_bytes(real, rel)
    if _is_binary(data[:_BINARY_SNIFF]):
        raise ToolError(f"{rel} is a binary file")
    return data.decode("utf-8", errors="replace")


def _read_bytes(real: str, rel: str) -> bytes:
    try:
        fd = os.open(real, os.O_RDONLY | _O_NOFOLLOW)
    except OSError as exc:
        raise ToolError(f"cannot read {rel}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def _write_text(real: str, rel: str, content: str) -> int:
    data = content.encode("utf-8")
    try:
        parent = os.path.dirname(real)
        os.makedirs(parent, exist_ok=True)
        # O_NOFOLLOW: the checked path is already resolved; never follow a link that
        # appeared at its end since.
        fd = os.open(real, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_NOFOLLOW, 0o666)
    except IsADirectoryError:
        raise ToolError(f"{rel} is a directory") from None
    except OSError as exc:
        raise ToolError(f"cannot write {rel}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return len(data)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a glob over ``/``-separated relative paths; ``**`` spans directories."""
    segments = [s for s in pattern.split("/") if s not in ("", ".")]
    if not segments:
        segments = ["*"]
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
            continue
        out.append(_translate_segment(seg))
        if not last:
            out.append("/")
    return re.compile("".join(out) + r"/?\Z", re.DOTALL)


def _translate_segment(seg: str) -> str:
    out: list[str] = []
    i, n = 0, len(seg)
    while i < n:
        c = seg[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i
            if j < n and seg[j] in "!^":
                j += 1
            if j < n and seg[j] == "]":
                j += 1
            while j < n and seg[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
                continue
            body = seg[i:j].replace("\\", "\\\\")
            i = j + 1
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body}]")
        else:
            out.append(re.escape(c))
    return "".join(out)


def _check_pattern(pattern: str) -> None:
    if not pattern:
        raise ToolError("pattern must not be empty")
    if os.path.isabs(pattern) or pattern.startswith("\\"):
        raise ToolError(f"pattern {pattern!r} is outside the workspace: make it relative")
    if ".." in pattern.replace("\\", "/").split("/"):
        raise ToolError(f"pattern {pattern!r} is outside the workspace: it may not contain '..'")


class FilesToolkit(FunctionToolkit):
    """Files in the workspace: ``read``, ``write``, ``edit``, ``list``, ``glob``, ``grep``.

    Paths are confined to the workspace root (see the module docstring). Every tool matches
    approval rules on its ``path`` argument; ``write`` and ``edit`` preview their diff.
    """

    def __init__(self, name: str, config: dict[str, Any], root: Path) -> None:
        super().__init__(name, config, root)
        self.max_read_chars = int(config.get("max_read_chars", 100_000))
        """The most text one ``read`` returns."""
        self.max_results = int(config.get("max_results", 1000))
        """The most entries ``list`` and ``glob`` return."""
        self.max_matches = int(config.get("max_matches", 200))
        """The most lines ``grep`` returns."""
        self.max_file_bytes = int(config.get("max_file_bytes", 10_000_000))
        """Larger files are not edited or searched."""
        self.exclude = frozenset(config.get("exclude", DEFAULT_EXCLUDE))
        """Directory names ``glob`` and ``grep`` skip."""
        on_path: tuple[MatchOn, str] = ("path", "path")
        self.add(tool(name="read", match_on=on_path)(self.read_file))
        self.add(tool(name="write", match_on=on_path, preview=self._preview_write)(self.write_file))
        self.add(tool(name="edit", match_on=on_path, preview=self._preview_edit)(self.edit_file))
        self.add(tool(name="list", match_on=on_path)(self.list_dir))
        self.add(tool(name="glob", match_on=on_path)(self.glob_files))
        self.add(tool(name="grep", match_on=on_path)(self.grep_files))

    # -- tools ---------------------------------------------------------------------------

    def read_file(self, ctx: ToolContext, path: str, offset: int = 0, limit: int = 2000) -> str:
        """Read a text file in the workspace, as numbered lines.

        Long files come in pages: read again with a larger ``offset`` for more.

        Args:
            path: The file, relative to the workspace root.
            offset: How many lines to skip from the start (0 reads from the first line).
            limit: The most lines to return.
        """
        real, rel = confine(ctx.workspace_root, path)
        if offset < 0:
            raise ToolError("offset must be 0 or more")
        if limit < 1:
            raise ToolError("limit must be 1 or more")
        if os.path.isdir(real):
            raise ToolError(f"{rel} is a directory: use {self.name}.list")
        try:
            fd = os.open(real, os.O_RDONLY | _O_NOFOLLOW)
        except FileNotFoundError:
            raise ToolError(f"no such file: {rel}") from None
        except OSError as exc:
            raise ToolError(f"cannot read {rel}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as fh:
            if _is_binary(fh.read(_BINARY_SNIFF)):
                size = os.fstat(fh.fileno()).st_size
                raise ToolError(f"{rel} is a binary file ({size} bytes)")
            fh.seek(0)
            out: list[str] = []
            used = 0
            lineno = 0
            more = ""
            for raw in fh:
                lineno += 1
                if lineno <= offset:
                    continue
                if len(out) >= limit:
                    more = f"[showing lines {offset + 1}-{lineno - 1}; read on with offset={lineno - 1}]"
                    break
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if len(text) > _MAX_LINE_CHARS:
                    text = f"{text[:_MAX_LINE_CHARS]} [... line cut at {_MAX_LINE_CHARS} chars]"
                entry = f"{lineno:>6}\t{text}"
                if out and used + len(entry) > self.max_read_chars:
                    more = (
                        f"[showing lines {offset + 1}-{lineno - 1} ({self.max_read_chars} chars "
                        f"cap); read on with offset={lineno - 1}]"
                    )
                    break
                out.append(entry)
                used += len(entry) + 1
        if not out:
            if lineno == 0:
                return f"({rel} is empty)"
            return f"({rel} has only {lineno} lines; offset {offset} is past the end)"
        return "\n".join(out) + (f"\n{more}" if more else "")

    def write_file(self, ctx: ToolContext, path: str, content: str) -> str:
        """Create or overwrite a text file in the workspace (parent folders are created).

        Args:
            path: The file, relative to the workspace root.
            content: The whole new content of the file.
        """
        real, rel = confine(ctx.workspace_root, path)
        existed = os.path.lexists(real)
        n = _write_text(real, rel, content)
        return f"{'overwrote' if existed else 'created'} {rel} ({n} bytes)"

    def edit_file(self, ctx: ToolContext, path: str, old: str, new: str, count: int = 1) -> str:
        """Replace an exact piece of text in a file.

        ``old`` must occur in the file, and at most ``count`` times; every occurrence is
        replaced. Include enough surrounding text to make it unique.

        Args:
            path: The file, relative to the workspace root.
            old: The exact text to replace (whitespace and indentation included).
            new: The text to put in its place.
            count: How many occurrences may be replaced (1 unless you mean several).
        """
        real, rel = confine(ctx.workspace_root, path)
        _, updated, n = self._apply_edit(real, rel, old, new, count)
        _write_text(real, rel, updated)
        return f"replaced {n} occurrence{'s' if n != 1 else ''} in {rel}"

    def list_dir(self, ctx: ToolContext, path: str = ".") -> str:
        """List a folder of the workspace: folders end with ``/``, symlinks are marked.

        Args:
            path: The folder, relative to the workspace root.
        """
        real, rel = confine(ctx.workspace_root, path)
        try:
            with os.scandir(real) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            raise ToolError(f"no such folder: {rel}") from None
        except NotADirectoryError:
            raise ToolError(f"{rel} is a file: use {self.name}.read") from None
        except OSError as exc:
            raise ToolError(f"cannot list {rel}: {exc.strerror or exc}") from None
        if not entries:
            return f"({rel} is empty)"
        lines: list[str] = []
        for entry in entries[: self.max_results]:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            suffix = "/" if is_dir else ""
            link = " (symlink)" if entry.is_symlink() else ""
            lines.append(f"{entry.name}{suffix}{link}")
        if len(entries) > self.max_results:
            lines.append(f"[... {len(entries) - self.max_results} more entries]")
        return "\n".join(lines)

    def glob_files(self, ctx: ToolContext, pattern: str, path: str = ".") -> str:
        """Find files and folders whose path matches a glob, e.g. ``**/*.py``.

        ``*`` and ``?`` stay within one folder, ``**`` spans any number of folders.
        Results are relative to the workspace root; folders end with ``/``.

        Args:
            pattern: The glob, relative to ``path``.
            path: The folder to search from, relative to the workspace root.
        """
        _check_pattern(pattern)
        real, rel = confine(ctx.workspace_root, path)
        if not os.path.isdir(real):
            raise ToolError(f"no such folder: {rel}")
        regex = _glob_regex(pattern.replace("\\", "/"))
        found: list[str] = []
        total = 0
        for sub, is_dir in self._walk(real):
            if regex.match(sub):
                total += 1
                if len(found) < self.max_results:
                    found.append(_join(rel, sub) + ("/" if is_dir else ""))
        if not found:
            return f"no paths match {pattern!r} in {rel}"
        found.sort()
        if total > len(found):
            found.append(f"[... {total - len(found)} more; narrow the pattern]")
        return "\n".join(found)

    def grep_files(
        self, ctx: ToolContext, pattern: str, path: str = ".", glob: str = "**/*"
    ) -> str:
        """Search file contents for a regular expression; lines come as ``path:line: text``.

        Args:
            pattern: A Python regular expression, searched in each line.
            path: A file or folder to search, relative to the workspace root.
            glob: Which files under ``path`` to search, e.g. ``**/*.py``.
        """
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolError(f"bad regular expression {pattern!r}: {exc}") from None
        _check_pattern(glob)
        real, rel = confine(ctx.workspace_root, path)
        real_root = os.path.realpath(ctx.workspace_root)
        if os.path.isfile(real):
            files = [(real, rel)]
        elif os.path.isdir(real):
            file_regex = _glob_regex(glob.replace("\\", "/"))
            files = [
                (os.path.join(real, sub), _join(rel, sub))
                for sub, is_dir in self._walk(real)
                if not is_dir and file_regex.match(sub)
            ]
        else:
            raise ToolError(f"no such file or folder: {rel}")
        hits: list[str] = []
        extra = 0
        skipped: list[tuple[str, str]] = []
        for file_real, file_rel in sorted(files, key=lambda f: f[1]):
            # A symlink met on the way may point anywhere: check where it lands.
            target = os.path.realpath(file_real)
            if os.path.commonpath([real_root, target]) != real_root:
                skipped.append((file_rel, "a link out of the workspace"))
                continue
            try:
                for lineno, line in self._grep_lines(target, regex):
                    if len(hits) >= self.max_matches:
                        extra += 1
                        continue
                    if len(line) > _MAX_GREP_LINE:
                        line = line[:_MAX_GREP_LINE] + " [...]"
                    hits.append(f"{file_rel}:{lineno}: {line}")
            except _Skipped as why:
                skipped.append((file_rel, str(why)))
        if not hits:
            hits.append(f"no matches for {pattern!r} in {rel}")
        elif extra:
            hits.append(f"[... {extra} more matches; narrow the pattern or the path]")
        note = _skipped_note(skipped, self.max_file_bytes)
        if note:
            hits.append(note)
        return "\n".join(hits)

    # -- previews ------------------------------------------------------------------------

    def _preview_write(self, args: dict[str, Any], ctx: ToolContext) -> ApprovalPreview:
        real, rel = confine(ctx.workspace_root, str(args.get("path", "")))
        old = ""
        if os.path.lexists(real):
            old = _read_text(real, rel, self.max_file_bytes)
        content = args.get("content", "")
        return ApprovalPreview(diff=unified_diff(old, str(content), rel))

    def _preview_edit(self, args: dict[str, Any], ctx: ToolContext) -> ApprovalPreview:
        real, rel = confine(ctx.workspace_root, str(args.get("path", "")))
        count = args.get("count", 1)
        text, updated, _ = self._apply_edit(
            real,
            rel,
            str(args.get("old", "")),
            str(args.get("new", "")),
            count if isinstance(count, int) else 1,
        )
        return ApprovalPreview(diff=unified_diff(text, updated, rel))

    # -- helpers -------------------------------------------------------------------------

    def _apply_edit(
        self, real: str, rel: str, old: str, new: str, count: int
    ) -> tuple[str, str, int]:
        if not old:
            raise ToolError("old must not be empty: to write a whole file, use write")
        if count < 1:
            raise ToolError("count must be 1 or more")
        if old == new:
            raise ToolError("old and new are the same: nothing to change")
        text = _read_text(real, rel, self.max_file_bytes)
        n = text.count(old)
        if n == 0:
            raise ToolError(f"old text not found in {rel} (it must match exactly)")
        if n > count:
            raise ToolError(
                f"old text found {n} times in {rel} but count is {count}: add surrounding "
                f"text to make it unique, or pass count={n} to replace them all"
            )
        return text, text.replace(old, new), n

    def _walk(self, top: str) -> Iterator[tuple[str, bool]]:
        """Paths under ``top`` (relative, ``/``-separated) and whether each is a folder.
        Symlinked folders are listed but not entered; excluded folders are skipped."""
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in self.exclude)
            base = os.path.relpath(dirpath, top)
            prefix = "" if base == "." else Path(base).as_posix() + "/"
            for d in dirnames:
                yield prefix + d, True
            for f in sorted(filenames):
                yield prefix + f, False

    def _grep_lines(self, real: str, regex: re.Pattern[str]) -> Iterator[tuple[int, str]]:
        """The matching lines of a file.

        Raises:
            _Skipped: the file was not searched (too large, binary, unreadable), saying why.
        """
        try:
            if not os.path.isfile(real):
                return
            size = os.path.getsize(real)
            if size > self.max_file_bytes:
                raise _Skipped(f"{size:,} bytes")
            fd = os.open(real, os.O_RDONLY | _O_NOFOLLOW)
        except OSError as exc:
            raise _Skipped(f"unreadable: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as fh:
            if _is_binary(fh.read(_BINARY_SNIFF)):
                raise _Skipped("binary")
            fh.seek(0)
            for lineno, raw in enumerate(fh, 1):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if regex.search(line):
                    yield lineno, line


class _Skipped(Exception):
    """A file grep did not search, and why."""


_SKIPS_NAMED = 10
"""Skipped files named one by one in a grep result; the rest are counted."""


def _skipped_note(skipped: list[tuple[str, str]], max_bytes: int) -> str:
    """One line saying which files grep did not search and why ("" when none): too large
    and unreadable ones by name, binary ones by name when few."""
    if not skipped:
        return ""
    binary = [f for f, why in skipped if why == "binary"]
    named = [(f, why) for f, why in skipped if why != "binary"]
    if len(binary) <= 3:
        named += [(f, "binary") for f in binary]
        binary = []
    named.sort()
    parts = [f"{f} ({why})" for f, why in named[:_SKIPS_NAMED]]
    if len(named) > _SKIPS_NAMED:
        parts.append(f"{len(named) - _SKIPS_NAMED} more")
    if binary:
        parts.append(f"{len(binary)} binary files")
    large = any(why.endswith(" bytes") for _, why in named)
    limit = f"; max_file_bytes is {max_bytes:,}" if large else ""
    return f"[not searched: {', '.join(parts)}{limit}]"


def _join(rel: str, sub: str) -> str:
    return sub if rel == "." else f"{rel}/{sub}"
