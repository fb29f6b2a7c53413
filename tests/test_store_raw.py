"""A SQLite file used through plain sqlite3: its URL is the file SQLAlchemy would open, and
its errors are the same problems as those SQLAlchemy wrapped."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from workbench.store import StoreError, store_error
from workbench.store._db import sqlite_file


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        (sqlite3.DatabaseError("file is not a database"), "damaged"),
        (sqlite3.DatabaseError("database disk image is malformed"), "damaged"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
        (sqlite3.OperationalError("database or disk is full"), "full"),
        (sqlite3.OperationalError("database is locked"), "unreachable"),
        (sqlite3.OperationalError("disk I/O error"), "io"),
        (sqlite3.InterfaceError("bad parameter or other API misuse"), "unreachable"),
    ],
)
def test_a_raw_sqlite_error_means_what_sqlalchemy_s_wrapping_of_it_meant(
    tmp_path: Path, error: sqlite3.Error, problem: str
) -> None:
    url = f"sqlite:///{tmp_path / 'wb.db'}"
    wrapper = (
        sa_exc.InterfaceError
        if isinstance(error, sqlite3.InterfaceError)
        else sa_exc.OperationalError
        if isinstance(error, sqlite3.OperationalError)
        else sa_exc.DatabaseError
    )
    wrapped = store_error(wrapper("SELECT 1", None, error), url)
    raw = store_error(error, url)
    assert isinstance(wrapped, StoreError) and isinstance(raw, StoreError)
    assert (raw.problem, raw.message, raw.hint, raw.path) == (
        wrapped.problem,
        wrapped.message,
        wrapped.hint,
        wrapped.path,
    )
    assert raw.problem == problem


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///wb.db",
        "sqlite:///rel/dir/wb.db",
        "sqlite:////tmp/x/wb.db",
        "sqlite:////tmp/a folder/wb.db",
        "sqlite+pysqlite:////tmp/x/wb.db",
        "sqlite:////tmp/x/../y/wb.db",
    ],
)
def test_a_plain_sqlite_url_is_the_file_sqlalchemy_would_open(url: str) -> None:
    # As SQLAlchemy's pysqlite dialect turns the URL into the file it connects to.
    assert sqlite_file(url) == os.path.abspath(str(make_url(url).database))


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file:wb?mode=memory&cache=shared&uri=true",
        "sqlite:////tmp/x/wb.db?mode=ro&uri=true",
        "sqlite:////tmp/x/wb.db?timeout=3",
        "sqlite:////tmp/a%20b/wb.db",
        "sqlite:///~/wb.db",
        "sqlite:////tmp/x/wb.db#frag",
        "postgresql+psycopg://u:p@localhost/db",
        "sqlite+aiosqlite:////tmp/x/wb.db",
    ],
)
def test_anything_unusual_is_left_to_sqlalchemy(url: str) -> None:
    assert sqlite_file(url) is None


@pytest.mark.parametrize(
    "url", ["sqlite:///wb.db", "sqlite:////tmp/x/../y/wb.db", "sqlite:////tmp/a folder/wb.db"]
)
def test_the_file_named_in_messages_is_the_one_sqlalchemy_s_url_names(url: str) -> None:
    from workbench.store._errors import sqlite_path

    assert sqlite_path(url) == Path(str(make_url(url).database)).expanduser().absolute()
