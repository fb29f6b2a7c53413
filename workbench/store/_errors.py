"""What went wrong with a store, in words that name the database and say what to do.

SQLite and SQLAlchemy report a damaged, read-only or full database as ``DatabaseError:
file is not a database`` or ``OperationalError: disk I/O error``, naming neither the file
nor a fix. :func:`store_error` turns such an error into a :class:`StoreError`: the message
names the database (its file, or its URL without the password) and the problem; the hint
says what to do (``workbench doctor --repair`` for a damaged file, which moves it aside only
when asked).
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Literal

from workbench.errors import WorkbenchError

from ._db import sqlite_url_path

__all__ = ["StoreError", "StoreProblem", "describe_url", "sqlite_path", "store_error"]

StoreProblem = Literal["damaged", "read-only", "full", "unreachable", "io"]
"""What is wrong with a store."""


class StoreError(WorkbenchError):
    """The store cannot be used; ``str()`` says which and why, :attr:`hint` what to do."""

    def __init__(
        self, message: str, hint: str, problem: StoreProblem, path: Path | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        """The database and what is wrong with it."""
        self.hint: str = hint
        """What to do about it."""
        self.problem = problem
        """Which kind of problem it is."""
        self.path = path
        """The SQLite file, when it is one."""


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one)."""
    plain = sqlite_url_path(url)
    if plain is not None:  # the usual URL, read without SQLAlchemy
        return Path(plain).absolute()
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    database = parsed.database
    if database == ":memory:" or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):
        database = database[len("file:") :].partition("?")[0]
    return Path(database).expanduser().absolute()


def describe_url(url: str) -> str:
    """The database as people should read it: the file, or the URL without its password."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the database"


def _disk_full(path: Path | None) -> bool:
    if path is None:
        return False
    try:
        return shutil.disk_usage(path.parent).free < 64 * 1024
    except OSError:
        return False


def store_error(exc: BaseException, url: str) -> StoreError | None:
    """The :class:`StoreError` that ``exc`` (raised while using the store at ``url``) means,
    or None when it is not a problem of the database itself (a bug to report as it is).

    The same for a driver's error as for SQLAlchemy's wrapping of it: a SQLite file is
    used through plain :mod:`sqlite3` (see :mod:`._db`)."""
    if isinstance(exc, StoreError):
        return exc
    original: BaseException = exc
    # SQLAlchemy's errors, when it is loaded: an error cannot be one of them otherwise
    # (and importing it to find out would cost ≈ 150 ms of an error message).
    sa_exc = sys.modules.get("sqlalchemy.exc")
    wrapped = sa_exc is not None and isinstance(exc, sa_exc.DBAPIError)
    if wrapped and getattr(exc, "orig", None) is not None:
        original = exc.orig  # type: ignore[attr-defined]
    path = sqlite_path(url)
    where = describe_url(url)
    text = str(original).lower()
    repair = (
        "run `workbench doctor --repair` to move it aside and start an empty store, or pass "
        "--db (or set WORKBENCH_DB) to use another"
    )
    if isinstance(original, sqlite3.Error | OSError) or wrapped:
        if any(w in text for w in ("not a database", "malformed", "encrypted", "corrupt")):
            return StoreError(
                f"the store {where} is not a readable SQLite database ({original})",
                repair,
                "damaged",
                path,
            )
        if (
            "disk is full" in text
            or getattr(original, "errno", None) == errno.ENOSPC
            or (("disk i/o error" in text or "unable to open" in text) and _disk_full(path))
        ):
            return StoreError(
                f"the disk holding the store {where} is full",
                "free some space on it, or pass --db to use a store on another disk",
                "full",
                path,
            )
        if (
            "readonly" in text
            or "read-only" in text
            or "unable to open database file" in text
            or "permission denied" in text
            or getattr(original, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM)
        ):
            return StoreError(
                f"cannot write the store {where}: it is read-only ({original})",
                "check the permissions of the file and of its folder (SQLite writes a -wal and "
                "a -shm file beside it), or pass --db to use another store",
                "read-only",
                path,
            )
        if "disk i/o error" in text:
            return StoreError(
                f"the store {where} cannot be read or written ({original})",
                "check the disk it is on (space, permissions, errors in the system log)",
                "io",
                path,
            )
    # A database that is away or busy (locked): SQLAlchemy's OperationalError and
    # InterfaceError, or sqlite3's own when it is used directly.
    if isinstance(exc, sqlite3.OperationalError | sqlite3.InterfaceError) or (
        sa_exc is not None and isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    ):
        return StoreError(
            f"cannot use the database {where}: {original}",
            "check that it is running and reachable, and the URL (--db or WORKBENCH_DB)",
            "unreachable",
            path,
        )
    if isinstance(original, OSError) and path is not None:
        return StoreError(
            f"cannot open the store {where}: {os.strerror(original.errno or 0) or original}",
            "check the folder it is in, or pass --db to use another store",
            "io",
            path,
        )
    return None
