"""The ``files`` toolkit: read, write, edit, list and search files inside the workspace.

Every path is relative to the workspace root (:attr:`ToolContext.workspace_root`) and must
stay inside it: absolute paths, ``..`` escapes and symlinks whose target lies outside the
root (including a symlinked parent directory) are refused with ``path 'x' is outside the
workspace``. Paths are opened one component at a time from a descriptor of the root
(``openat`` with ``O_NOFOLLOW``: :class:`_Beneath`); a symbolic link met on the way is read
and followed by hand only while it stays inside. What was checked is what is opened, even
if another process swaps a folder for a link in between.

Only regular files are read or written: a FIFO, a device or a socket is refused (and never
waited on: opens are non-blocking). A file with more than one hard link is not written (the
other names, perhaps outside, would change too). Reads stop at a byte cap: a huge file, or
one long line of zeros, costs bounded memory and time.

``write`` and ``edit`` offer an approval preview: the unified diff they would apply,
computed from the same checked path (the engine computes it off the event loop).

Config (``tools: files:`` in ``workbench.yaml``; all optional):

- ``max_read_chars`` (100000): the most text one ``read`` returns.
- ``max_results`` (1000): the most entries ``list`` and ``glob`` return.
- ``max_matches`` (200): the most lines ``grep`` returns.
- ``max_file_bytes`` (10 MB): larger files are not edited or searched (``grep`` says which
  files it did not search, and why).
- ``max_scan_bytes`` (64 MB): the most one ``read`` scans (skipping lines to an offset,
  cutting long lines) before it stops and says where to read on.
- ``exclude``: directory names ``glob`` and ``grep`` do not descend into
  (``.git``, ``node_modules``, ``__pycache__``, ``.venv`` ... by default).
- ``max_output``: the characters of a result kept, as for every toolkit
  (:class:`~workbench.tools.ToolkitSettings`).
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import stat
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import Field

from workbench.tools import (
    ApprovalPreview,
    FunctionToolkit,
    MatchOn,
    ToolContext,
    ToolError,
    ToolkitSettings,
    tool,
)

__all__ = ["FilesSettings", "FilesToolkit", "confine", "unified_diff"]

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
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)
_DIR_FLAGS = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
# Never wait on a FIFO's other end, never take a terminal: non-blocking, then fstat.
_READ_FLAGS = os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_NOCTTY | _O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | _O_NOFOLLOW | _O_NONBLOCK | _O_NOCTTY | _O_CLOEXEC
_MAX_LINKS = 40
_LINE_BYTES = _MAX_LINE_CHARS * 4 + 1


class _Refused(ToolError):
    """A path refused for a reason ``grep`` names when it passes over a file (``why``)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why
        """In a few words: ``outside the workspace``, ``a FIFO``, ``unreadable: ...``."""


def _outside(path: str) -> ToolError:
    return _Refused(f"path {path!r} is outside the workspace", "outside the workspace")


def _not_regular(rel: str, mode: int) -> ToolError:
    kind = (
        "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a file"
    )
    return _Refused(
        f"{rel} is not a regular file ({kind}): only regular files are read or written", kind
    )


class _Beneath:
    """Opens a path beneath the workspace root without ever following a link out of it.

    The walk starts from a descriptor of the (real) root and opens one component at a time
    relative to the last (``openat``) with ``O_NOFOLLOW``. A symbolic link is read
    (``readlinkat``) and its target walked the same way: from the root when absolute (and
    only if it names a place inside), from the link's folder when relative; ``..`` never
    climbs above the root. A component that changes between its ``lstat`` and its ``open``
    (a folder swapped for a link) is judged again. :meth:`close` closes every descriptor.
    """

    def __init__(self, root: Path | str, path: str) -> None:
        if not isinstance(path, str) or not path:
            raise ToolError("path must be a non-empty string")
        try:
            if "\x00" in path:
                raise ValueError("NUL byte")
            os.fsencode(path)
        except (ValueError, UnicodeError) as exc:
            raise ToolError(f"invalid path {path!r}: {exc}") from None
        if os.path.isabs(path) or path.startswith("\\"):
            raise _outside(path)
        self.path = path
        """The path as asked for (messages name it)."""
        self.root = os.path.realpath(root)
        """The real workspace root."""
        self._fds: list[int] = []
        self._names: list[str] = []

    def __enter__(self) -> _Beneath:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every descriptor the walk holds."""
        while self._fds:
            os.close(self._fds.pop())
        self._names.clear()

    def _rel(self, last: str | None = None) -> str:
        return "/".join([*self._names, *([last] if last else [])]) or "."

    def _pop(self) -> None:
        os.close(self._fds.pop())
        self._names.pop()

    def walk(self, *, create_parents: bool = False) -> tuple[int, str | None, str]:
        """Walk the path, following links that stay inside (the last component too): the
        descriptor of the folder holding the last component, its name (None when the path
        names a folder already walked into, such as ``.``), and the path as resolved,
        relative to the root. The last component may not exist.

        Raises:
            ToolError: the path leads outside, through too many links, or through something
                that is not a folder (or a folder that does not exist, unless
                ``create_parents``).
        """
        self.close()
        try:
            self._fds.append(os.open(self.root, _DIR_FLAGS & ~_O_NOFOLLOW))
        except OSError as exc:
            raise ToolError(f"cannot open the workspace: {exc.strerror or exc}") from None
        todo = deque(c for c in self.path.split("/") if c not in ("", "."))
        turns = 0
        while todo:
            turns += 1
            if turns > 4096:
                raise ToolError(f"{self.path}: too many symbolic links")
            name = todo.popleft()
            if name == "..":
                if len(self._fds) == 1:
                    raise _outside(self.path)
                self._pop()
                continue
            cur = self._fds[-1]
            try:
                st: os.stat_result | None = os.stat(name, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            except OSError as exc:
                raise ToolError(f"cannot open {self._rel(name)}: {exc.strerror or exc}") from None
            if st is not None and stat.S_ISLNK(st.st_mode):
                if turns > _MAX_LINKS * 8:
                    raise ToolError(f"{self._rel(name)}: too many symbolic links")
                self._follow(os.readlink(name, dir_fd=cur), todo)
                continue
            if not todo:
                return cur, name, self._rel(name)
            if st is None:
                if not create_parents:
                    raise ToolError(f"no such folder: {self._rel(name)}")
                try:
                    os.mkdir(name, 0o777, dir_fd=cur)
                except FileExistsError:
                    pass  # made meanwhile: the open below judges what it is
                except OSError as exc:
                    raise ToolError(
                        f"cannot make folder {self._rel(name)}: {exc.strerror or exc}"
                    ) from None
            elif not stat.S_ISDIR(st.st_mode):
                raise ToolError(f"{self._rel(name)} is not a folder")
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=cur)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    todo.appendleft(name)  # changed since the lstat: judge it again
                    continue
                raise ToolError(f"cannot open {self._rel(name)}: {exc.strerror or exc}") from None
            self._fds.append(fd)
            self._names.append(name)
        return self._fds[-1], None, self._rel()

    def _follow(self, target: str, todo: deque[str]) -> None:
        parts = [c for c in target.split("/") if c not in ("", ".")]
        if target.startswith("/"):
            real = os.path.normpath(target)
            if real != self.root and not real.startswith(self.root.rstrip("/") + "/"):
                raise _outside(self.path)
            inside = os.path.relpath(real, self.root)
            parts = [] if inside == "." else inside.split("/")
            while len(self._fds) > 1:
                self._pop()
        todo.extendleft(reversed(parts))

    def open_file(self, mode: Literal["read", "write"]) -> tuple[int, str, bool]:
        """Open the path as a regular file: its descriptor (the caller closes it), its path
        as resolved, and whether it existed. A write creates the file (and missing folders)
        but never truncates it: the caller truncates once it holds the checked file.

        Raises:
            ToolError: not a regular file (a folder, a FIFO, a device, a socket), missing (a
                read), more than one hard link (a write), or outside.
        """
        for _ in range(_MAX_LINKS):
            dir_fd, name, rel = self.walk(create_parents=mode == "write")
            if name is None:
                raise ToolError(f"{rel} is a directory")
            try:
                st: os.stat_result | None = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is None and mode == "read":
                raise ToolError(f"no such file: {rel}")
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise ToolError(f"{rel} is a directory")
            if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                raise _not_regular(rel, st.st_mode)
            flags = _READ_FLAGS if mode == "read" else _WRITE_FLAGS
            try:
                fd = os.open(name, flags, 0o666, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOENT):
                    continue  # changed since the lstat (a link now): walk again
                if exc.errno == errno.ENXIO:  # a FIFO with nobody at the other end
                    raise _Refused(
                        f"{rel} is not a regular file (a FIFO): only regular files are read "
                        "or written",
                        "a FIFO",
                    ) from None
                if exc.errno == errno.EISDIR:
                    raise ToolError(f"{rel} is a directory") from None
                verb = "read" if mode == "read" else "write"
                why = exc.strerror or str(exc)
                raise _Refused(f"cannot {verb} {rel}: {why}", f"unreadable: {why}") from None
            try:
                opened = os.fstat(fd)
                if not stat.S_ISREG(opened.st_mode):
                    raise _not_regular(rel, opened.st_mode)
                if mode == "write" and opened.st_nlink > 1:
                    raise ToolError(
                        f"{rel} has {opened.st_nlink} hard links: writing it would change the "
                        "file under its other names too (perhaps outside the workspace)"
                    )
            except BaseException:
                os.close(fd)
                raise
            return fd, rel, st is not None
        raise ToolError(f"{self.path}: it keeps changing while it is opened")

    def open_dir(self) -> tuple[int, str]:
        """Open the path as a folder: a descriptor of its own (the caller closes it) and its
        path as resolved."""
        for _ in range(_MAX_LINKS):
            dir_fd, name, rel = self.walk()
            if name is None:
                return os.dup(dir_fd), rel
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise ToolError(f"no such folder: {rel}") from None
            if not stat.S_ISDIR(st.st_mode):
                raise ToolError(f"{rel} is a file")
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=dir_fd), rel
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    continue
                raise ToolError(f"cannot list {rel}: {exc.strerror or exc}") from None
        raise ToolError(f"{self.path}: it keeps changing while it is opened")


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


class _Missing(ToolError):
    """The file (or a folder on its way) does not exist."""


def _read_text(root: Path | str, path: str, max_bytes: int) -> tuple[str, str]:
    """The whole text of a file (for edit and previews) and its resolved path; refuses
    binary files, files over ``max_bytes`` and anything but a regular file."""
    try:
        with _Beneath(root, path) as where:
            fd, rel, _ = where.open_file("read")
    except ToolError as exc:
        if str(exc).startswith(("no such file", "no such folder")):
            raise _Missing(str(exc)) from None
        raise
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise ToolError(f"{rel} is too large ({size} bytes; the limit is {max_bytes})")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ToolError(f"{rel} is too large (more than {max_bytes} bytes)")
    if _is_binary(data[:_BINARY_SNIFF]):
        raise ToolError(f"{rel} is a binary file")
    return data.decode("utf-8", errors="replace"), rel


def _write_text(root: Path | str, path: str, content: str) -> tuple[int, str, bool]:
    """Write a whole file (made if missing, with its folders): bytes written, its resolved
    path, and whether it existed."""
    data = content.encode("utf-8")
    with _Beneath(root, path) as where:
        fd, rel, existed = where.open_file("write")
    with os.fdopen(fd, "wb") as fh:
        # Truncated only now: the descriptor is the checked file (regular, one link, inside).
        os.ftruncate(fh.fileno(), 0)
        fh.write(data)
    return len(data), rel, existed


def _bounded_lines(fh: BinaryIO, budget: int) -> Iterator[tuple[bytes, bool]]:
    """The lines of a file, each at most ``_LINE_BYTES`` bytes (a longer one is cut and the
    rest skipped without keeping it), until ``budget`` bytes were read. Yields ``(line,
    cut)``; a last item ``(b"", True)`` says the budget ran out."""
    used = 0
    while True:
        raw = fh.readline(_LINE_BYTES)
        if not raw:
            return
        used += len(raw)
        cut = len(raw) == _LINE_BYTES and not raw.endswith(b"\n")
        if cut and b"\x00" not in raw:
            while used <= budget:
                rest = fh.readline(65536)
                used += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
        yield raw, cut
        if used > budget:
            yield b"", True
            return


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


class FilesSettings(ToolkitSettings):
    """``toolkits: files:`` in ``workbench.yaml`` (and ``max_output``, as every toolkit)."""

    max_read_chars: int = Field(default=100_000, gt=0)
    """The most text one ``read`` returns."""
    max_results: int = Field(default=1000, gt=0)
    """The most entries ``list`` and ``glob`` return."""
    max_matches: int = Field(default=200, gt=0)
    """The most lines ``grep`` returns."""
    max_file_bytes: int = Field(default=10_000_000, gt=0)
    """Larger files are not edited or searched."""
    max_scan_bytes: int = Field(default=64_000_000, gt=0)
    """The most bytes one ``read`` scans."""
    exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    """Folder names ``glob`` and ``grep`` skip."""


class FilesToolkit(FunctionToolkit):
    """Files in the workspace: ``read``, ``write``, ``edit``, ``list``, ``glob``, ``grep``.

    Paths are confined to the workspace root (see the module docstring). Every tool matches
    approval rules on its ``path`` argument; ``write`` and ``edit`` preview their diff.
    """

    settings = FilesSettings

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
        self.max_scan_bytes = int(config.get("max_scan_bytes", 64_000_000))
        """The most bytes one ``read`` scans before it stops and says where to read on."""
        self.exclude = frozenset(config.get("exclude", DEFAULT_EXCLUDE))
        """Directory names ``glob`` and ``grep`` skip."""
        on_path: tuple[MatchOn, str] = ("path", "path")
        self.add(tool(name="read", match_on=on_path, idempotent=True)(self.read_file))
        self.add(tool(name="write", match_on=on_path, preview=self._preview_write)(self.write_file))
        self.add(tool(name="edit", match_on=on_path, preview=self._preview_edit)(self.edit_file))
        self.add(tool(name="list", match_on=on_path, idempotent=True)(self.list_dir))
        self.add(tool(name="glob", match_on=on_path, idempotent=True)(self.glob_files))
        self.add(tool(name="grep", match_on=on_path, idempotent=True)(self.grep_files))

    # -- tools ---------------------------------------------------------------------------

    def read_file(self, ctx: ToolContext, path: str, offset: int = 0, limit: int = 2000) -> str:
        """Read a text file in the workspace, as numbered lines.

        Long files come in pages: read again with a larger ``offset`` for more.

        Args:
            path: The file, relative to the workspace root.
            offset: How many lines to skip from the start (0 reads from the first line).
            limit: The most lines to return.
        """
        if offset < 0:
            raise ToolError("offset must be 0 or more")
        if limit < 1:
            raise ToolError("limit must be 1 or more")
        with _Beneath(ctx.workspace_root, path) as where:
            try:
                fd, rel, _ = where.open_file("read")
            except ToolError as exc:
                if str(exc).endswith("is a directory"):
                    raise ToolError(f"{exc}: use {self.name}.list") from None
                raise
        with os.fdopen(fd, "rb") as fh:
            if _is_binary(fh.read(_BINARY_SNIFF)):
                size = os.fstat(fh.fileno()).st_size
                raise ToolError(f"{rel} is a binary file ({size} bytes)")
            fh.seek(0)
            out: list[str] = []
            used = 0
            lineno = 0
            more = ""
            for raw, cut in _bounded_lines(fh, self.max_scan_bytes):
                if not raw:
                    more = (
                        f"[stopped after reading {self.max_scan_bytes} bytes at line {lineno}; "
                        f"read on with offset={lineno}]"
                    )
                    break
                lineno += 1
                if b"\x00" in raw:
                    more = f"[binary data from line {lineno} on: not shown]"
                    break
                if lineno <= offset:
                    continue
                if len(out) >= limit:
                    more = f"[showing lines {offset + 1}-{lineno - 1}; read on with offset={lineno - 1}]"
                    break
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if cut or len(text) > _MAX_LINE_CHARS:
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
            if more:
                return more
            return f"({rel} has only {lineno} lines; offset {offset} is past the end)"
        return "\n".join(out) + (f"\n{more}" if more else "")

    def write_file(self, ctx: ToolContext, path: str, content: str) -> str:
        """Create or overwrite a text file in the workspace (parent folders are created).

        Args:
            path: The file, relative to the workspace root.
            content: The whole new content of the file.
        """
        n, rel, existed = _write_text(ctx.workspace_root, path, content)
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
        _, updated, n, rel = self._apply_edit(ctx.workspace_root, path, old, new, count)
        _write_text(ctx.workspace_root, path, updated)
        return f"replaced {n} occurrence{'s' if n != 1 else ''} in {rel}"

    def list_dir(self, ctx: ToolContext, path: str = ".") -> str:
        """List a folder of the workspace: folders end with ``/``, symlinks are marked.

        Args:
            path: The folder, relative to the workspace root.
        """
        with _Beneath(ctx.workspace_root, path) as where:
            try:
                fd, rel = where.open_dir()
            except ToolError as exc:
                if str(exc).endswith("is a file"):
                    raise ToolError(f"{exc}: use {self.name}.read") from None
                raise
        lines: list[str] = []
        try:
            with os.scandir(fd) as it:
                entries = sorted(it, key=lambda e: e.name)
            for entry in entries[: self.max_results]:  # while the folder's descriptor is open
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                suffix = "/" if is_dir else ""
                link = " (symlink)" if entry.is_symlink() else ""
                lines.append(f"{entry.name}{suffix}{link}")
        except OSError as exc:
            raise ToolError(f"cannot list {rel}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        if not entries:
            return f"({rel} is empty)"
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
        with _Beneath(ctx.workspace_root, path) as where:
            try:
                top, rel = where.open_dir()
            except ToolError as exc:
                if str(exc).endswith("is a file"):
                    raise ToolError(f"no such folder: {path}") from None
                raise
        regex = _glob_regex(pattern.replace("\\", "/"))
        found: list[str] = []
        total = 0
        for sub, is_dir in self._walk(top):
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
        root = ctx.workspace_root
        with _Beneath(root, path) as where:
            dir_fd, name, rel = where.walk()
            is_file = False
            if name is not None:
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    raise ToolError(f"no such file or folder: {rel}") from None
                is_file = not stat.S_ISDIR(st.st_mode)
        if is_file:
            with _Beneath(root, path) as where:  # a file named: say why it cannot be read
                fd, rel, _ = where.open_file("read")
            os.close(fd)
            files = [rel]
        else:
            with _Beneath(root, path) as where:
                top, rel = where.open_dir()
            file_regex = _glob_regex(glob.replace("\\", "/"))
            files = [
                _join(rel, sub)
                for sub, is_dir in self._walk(top)
                if not is_dir and file_regex.match(sub)
            ]
        hits: list[str] = []
        extra = 0
        skipped: list[tuple[str, str]] = []
        for file_rel in sorted(files):
            # Each file is opened from the root again: a link met on the way is followed
            # only while it stays inside, and only regular files are read.
            try:
                for lineno, line in self._grep_file(root, file_rel, regex):
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
        path = str(args.get("path", ""))
        try:
            old, rel = _read_text(ctx.workspace_root, path, self.max_file_bytes)
        except _Missing:
            old, rel = "", confine(ctx.workspace_root, path)[1]
        content = args.get("content", "")
        return ApprovalPreview(diff=unified_diff(old, str(content), rel))

    def _preview_edit(self, args: dict[str, Any], ctx: ToolContext) -> ApprovalPreview:
        count = args.get("count", 1)
        text, updated, _, rel = self._apply_edit(
            ctx.workspace_root,
            str(args.get("path", "")),
            str(args.get("old", "")),
            str(args.get("new", "")),
            count if isinstance(count, int) else 1,
        )
        return ApprovalPreview(diff=unified_diff(text, updated, rel))

    # -- helpers -------------------------------------------------------------------------

    def _apply_edit(
        self, root: Path | str, path: str, old: str, new: str, count: int
    ) -> tuple[str, str, int, str]:
        if not old:
            raise ToolError("old must not be empty: to write a whole file, use write")
        if count < 1:
            raise ToolError("count must be 1 or more")
        if old == new:
            raise ToolError("old and new are the same: nothing to change")
        text, rel = _read_text(root, path, self.max_file_bytes)
        n = text.count(old)
        if n == 0:
            raise ToolError(f"old text not found in {rel} (it must match exactly)")
        if n > count:
            raise ToolError(
                f"old text found {n} times in {rel} but count is {count}: add surrounding "
                f"text to make it unique, or pass count={n} to replace them all"
            )
        return text, text.replace(old, new), n, rel

    def _walk(self, top: int) -> Iterator[tuple[str, bool]]:
        """Paths under the folder ``top`` (a descriptor, closed here; relative,
        ``/``-separated) and whether each is a folder. Folders are opened from their parent's
        descriptor without following links: symlinked folders are listed but not entered;
        excluded folders are skipped."""
        try:
            for dirpath, dirnames, filenames, _ in os.fwalk(".", dir_fd=top, follow_symlinks=False):
                dirnames[:] = sorted(d for d in dirnames if d not in self.exclude)
                prefix = "" if dirpath == "." else Path(dirpath).as_posix().removeprefix("./") + "/"
                for d in dirnames:
                    yield prefix + d, True
                for f in sorted(filenames):
                    yield prefix + f, False
        finally:
            os.close(top)

    def _grep_file(
        self, root: Path | str, rel: str, regex: re.Pattern[str]
    ) -> Iterator[tuple[int, str]]:
        """The matching lines of one file (none for a link that dangles or a file gone
        since the walk).

        Raises:
            _Skipped: the file was not searched, saying why: a link out of the workspace,
                not a regular file, unreadable, over ``max_file_bytes``, or binary (also
                while iterating: NUL bytes past the first lines).
        """
        try:
            with _Beneath(root, rel) as where:
                fd, _, _ = where.open_file("read")
        except _Refused as exc:
            why = "a link out of the workspace" if exc.why == "outside the workspace" else exc.why
            raise _Skipped(why) from None
        except ToolError as exc:
            if str(exc).startswith("no such file"):
                return iter(())
            raise _Skipped(str(exc)) from None
        fh = os.fdopen(fd, "rb")
        size = os.fstat(fd).st_size
        if size > self.max_file_bytes:
            fh.close()
            raise _Skipped(f"{size:,} bytes")
        if _is_binary(fh.read(_BINARY_SNIFF)):
            fh.close()
            raise _Skipped("binary")
        fh.seek(0)

        def lines() -> Iterator[tuple[int, str]]:
            with fh:
                lineno = 0
                for raw, _cut in _bounded_lines(fh, self.max_file_bytes):
                    if not raw:
                        raise _Skipped(f"grew past max_file_bytes after line {lineno}")
                    if b"\x00" in raw:
                        raise _Skipped(f"binary from line {lineno + 1} on")
                    lineno += 1
                    line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                    if regex.search(line):
                        yield lineno, line

        return lines()


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
