"""A SQLite file whose schema is current is used through plain sqlite3: opening it, appending,
the lease, noticing a dead process, reading the saved rules and closing never import
SQLAlchemy (≈ 150 ms of every start-up); a typed read imports it then. Errors of such a
store are the same problems as those SQLAlchemy wrapped.

Real SQLite files; each "does it import SQLAlchemy" question is asked of a fresh process.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from workbench.events import RunStarted
from workbench.store import Store, StoreError, store_error
from workbench.store._db import sqlite_file

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from workbench.events import MessageCompleted, RunCompleted, RunStarted, Usage
    from workbench.store import Store

    url, ws = sys.argv[1], sys.argv[2]
    report = {}
    store = Store.open(url)
    try:
        store.hold_lease("run", ws)
        report["marked"] = store.mark_interrupted()
        sid, run = "s_raw", "run_raw"
        common = {"session_id": sid, "run_id": run}
        store.append_many([
            RunStarted(target_kind="agent", target="helper", input="hello there", **common),
            MessageCompleted(message_id="m1", role="assistant", content="hi", **common),
        ])
        store.append_sync(RunCompleted(output="hi", usage=Usage(prompt_tokens=3,
                                       completion_tokens=2), cost=None, **common))
        report["rules"] = [r.tool for r in store.list_rules(ws)]
        report["events"] = [e.type for e in store.events(sid)]
        report["last_seq"] = store.last_seq(sid)
        report["before"] = sorted(m for m in ("sqlalchemy", "sqlmodel") if m in sys.modules)
        info = store.get_run(run)  # a typed read: SQLAlchemy and sqlmodel, now
        report["run"] = [info.status, info.output, info.prompt_tokens, info.owner == store.owner]
        report["after"] = "sqlalchemy" in sys.modules
    finally:
        store.close()
    print(json.dumps(report))
    """
)


def _in_a_fresh_process(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_a_current_sqlite_file_is_written_without_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wb.db'}"
    ws = str(tmp_path)
    with Store.open(url) as store:  # migrated here, in this process
        store.add_rule("workspace", ws, "files.read", None, "allow")
        # A run nobody owns any more (a store without a lease wrote it): the next opener
        # marks it interrupted.
        store.append_sync(
            RunStarted(
                session_id="s_old", run_id="run_old", target_kind="agent", target="a", input="x"
            )
        )
    report = _in_a_fresh_process(url, ws)
    assert report["marked"] == ["run_old"]
    assert report["rules"] == ["files.read"]
    assert report["events"] == ["run.started", "message.completed", "run.completed"]
    assert report["last_seq"] == 3
    assert report["before"] == [], "opened, leased, appended and read without SQLAlchemy"
    assert report["run"] == ["completed", "hi", 3, True]
    assert report["after"] is True  # the typed read brought it, lazily
    with sqlite3.connect(tmp_path / "wb.db") as conn:
        statuses = dict(conn.execute("SELECT id, status FROM runs"))
        interrupted = conn.execute(
            "SELECT session_id, run_id FROM events WHERE type = 'run.interrupted'"
        ).fetchall()
        processes = conn.execute("SELECT count(*) FROM processes").fetchone()
    assert statuses == {"run_old": "interrupted", "run_raw": "completed"}
    assert interrupted == [("s_old", "run_old")]
    assert processes == (0,)  # the lease was released on close


def test_a_garbage_file_is_a_damaged_store_without_sqlalchemy(tmp_path: Path) -> None:
    db = tmp_path / "wb.db"
    db.write_bytes(b"this is not a database " * 200)
    code = textwrap.dedent(
        """
        import json, sys
        from workbench.store import Store, StoreError
        try:
            Store.open(sys.argv[1])
        except StoreError as exc:
            print(json.dumps([exc.problem, str(exc), exc.hint, "sqlalchemy" in sys.modules]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=True,
    )
    problem, message, hint, imported = json.loads(done.stdout)
    assert problem == "damaged" and str(db) in message and "not a readable SQLite" in message
    assert "workbench doctor --repair" in hint
    assert imported is False


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


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite:///~/wb.db", "wb.db"),
        ("sqlite+pysqlite:///~/sub/wb.db", "sub/wb.db"),
        ("sqlite:///~/wb.db?timeout=3", "wb.db"),  # through SQLAlchemy's engine
    ],
)
async def test_a_sqlite_url_under_the_home_folder_opens_there(
    url: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.store._errors import sqlite_path

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    with Store.open(url) as store:
        await store.append(
            RunStarted(session_id="s1", run_id="r1", target="a", target_kind="agent", input="hi")
        )
    assert (home / name).is_file()
    assert not (work / "~").exists()  # SQLAlchemy alone makes a folder named "~" here
    # Messages about the store name that same file.
    if "?" not in url:
        assert sqlite_path(url) == home / name
