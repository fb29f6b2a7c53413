"""Errors that were tracebacks: each is a message that names the file (line and key where
there is one) and says what to do; a damaged store is moved aside only when asked.

Real parts: the CLI in a subprocess, real YAML, real SQLite files (garbage, truncated), a
read-only and a full filesystem (tmpfs mounts; skipped where mounting is not allowed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import WriteWorkspace
from workbench.events import RunStarted
from workbench.store import Store
from workbench.workspace import WorkspaceError, load_workspace

MAIN = Path(__file__).resolve().parents[1]


def wb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd or MAIN,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )


def no_traceback(r: subprocess.CompletedProcess[str]) -> str:
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    return " ".join(out.split())


# -- workbench.yaml ---------------------------------------------------------------------------


def test_a_deeply_nested_file_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "workbench.yaml").write_text(
        "models:\n  default: test\nagents:\n  a:\n    instructions: " + "[" * 5000 + "]" * 5000
    )
    with pytest.raises(WorkspaceError) as err:
        load_workspace(tmp_path)
    assert err.value.path == tmp_path / "workbench.yaml"
    assert err.value.line == 5
    assert "nested too deeply" in err.value.message
    r = wb("run", "-w", str(tmp_path), "hi")
    assert r.returncode == 2
    out = no_traceback(r)
    assert f"{tmp_path / 'workbench.yaml'}:5" in out and "nested too deeply" in out
    assert len(r.stderr.splitlines()) <= 3


@pytest.mark.parametrize(
    ("schema", "key", "words"),
    [
        ("{type: blah}", "agents.a.output_schema.type", "'blah' is not valid"),
        (
            "{type: object, properties: {x: {type: 5}}}",
            "agents.a.output_schema.properties.x.type",
            "5 is not valid",
        ),
        ("{type: object, required: yes}", "agents.a.output_schema.required", "not of type"),
    ],
)
def test_a_bad_output_schema_is_refused_at_load(
    write_workspace: WriteWorkspace, schema: str, key: str, words: str
) -> None:
    root = write_workspace(
        f"""
        agents:
          a:
            model: test
            output_schema: {schema}
        """
    )
    with pytest.raises(WorkspaceError) as err:
        load_workspace(root)
    assert err.value.key == key and err.value.line == 5, str(err.value)
    assert words in err.value.message and "JSON Schema" in err.value.message


@pytest.mark.parametrize(
    ("settings", "key", "words"),
    [
        ("shell: {timeout: soon}", "toolkits.shell.timeout", "a number"),
        ("shell: {max_output: -5}", "toolkits.shell.max_output", "greater than 0"),
        ("shell: {timout: 5}", "toolkits.shell.timout", "unknown setting"),
        ("files: {max_read_chars: lots}", "toolkits.files.max_read_chars", "an integer"),
        ("files: {exclude: .git}", "toolkits.files.exclude", "valid list"),
        # max_output, which every toolkit takes: in a declared model, and without one.
        ("files: {max_output: -5}", "toolkits.files.max_output", "positive number"),
        ("files: {max_output: {read: lots}}", "toolkits.files.max_output", "for 'read'"),
        ("calculator: {max_output: 0}", "toolkits.calculator.max_output", "positive number"),
    ],
)
def test_toolkit_settings_are_checked_at_load(
    write_workspace: WriteWorkspace, settings: str, key: str, words: str
) -> None:
    from workbench.registry import available_toolkits

    root = write_workspace(
        f"""
        agents:
          a: {{model: test, tools: [shell.run, files.read]}}
        toolkits:
          {settings}
        """
    )
    with pytest.raises(WorkspaceError) as err:
        load_workspace(root, known_toolkits=set(available_toolkits()))
    assert err.value.key == key and err.value.line == 5, str(err.value)
    assert words in err.value.message, err.value.message


def test_good_toolkit_settings_load(write_workspace: WriteWorkspace) -> None:
    from workbench.registry import available_toolkits

    root = write_workspace(
        """
        toolkits:
          shell: {timeout: 5, max_timeout: 60, max_output: 1000}
          files: {max_read_chars: 10, max_results: 5, exclude: [.git, build], max_output: 5000}
          calculator: {max_output: {evaluate: 300, "*": 1000}}
        """
    )
    ws = load_workspace(root, known_toolkits=set(available_toolkits()))
    assert ws.toolkits["shell"]["timeout"] == 5
    assert ws.toolkits["files"]["max_output"] == 5000


def test_a_folder_named_workbench_yaml_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "workbench.yaml").mkdir()
    with pytest.raises(WorkspaceError, match="is a folder, not a file"):
        load_workspace(tmp_path)
    out = no_traceback(wb("run", "-w", str(tmp_path), "hi"))
    assert "workbench.yaml" in out and "is a folder" in out


# -- the store --------------------------------------------------------------------------------


def make_store(path: Path) -> None:
    with Store.open(f"sqlite:///{path}") as store:
        store.create_session("s_one", title="one session")
        store.append_sync(
            RunStarted(
                session_id="s_one", run_id="r_one", target_kind="agent", target="a", input="x"
            )
        )


def test_a_garbage_store_names_the_file_and_the_fix(tmp_path: Path) -> None:
    db = tmp_path / "wb.db"
    db.write_bytes(b"this is not a database " * 200)
    r = wb("sessions", "--db", f"sqlite:///{db}", "list")
    assert r.returncode == 2
    out = no_traceback(r)
    assert str(db) in out and "not a readable SQLite database" in out
    assert "workbench doctor --repair" in out
    assert db.read_bytes() == b"this is not a database " * 200  # not moved without asking


def test_a_truncated_store_names_the_file_and_the_fix(tmp_path: Path) -> None:
    db = tmp_path / "wb.db"
    make_store(db)
    with open(db, "r+b") as fh:
        fh.truncate(3000)
    for args in (
        ("sessions", "--db", f"sqlite:///{db}", "list"),
        ("run", "--db", f"sqlite:///{db}", "hi"),
    ):
        r = wb(*args, cwd=tmp_path)
        assert r.returncode == 2, r.stdout + r.stderr
        out = no_traceback(r)
        assert str(db) in out and "workbench doctor --repair" in out, out


def test_doctor_repair_moves_a_damaged_store_aside_only_when_asked(tmp_path: Path) -> None:
    db = tmp_path / "wb.db"
    db.write_bytes(b"garbage" * 500)
    looked = wb("doctor", "--offline", "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert looked.returncode == 1
    out = no_traceback(looked)
    assert "store" in out and "workbench doctor --repair" in out
    assert db.read_bytes() == b"garbage" * 500 and not list(tmp_path.glob("wb.db.corrupt-*"))
    repaired = wb("doctor", "--offline", "--repair", "--db", f"sqlite:///{db}", cwd=tmp_path)
    out = no_traceback(repaired)
    (aside,) = tmp_path.glob("wb.db.corrupt-*")
    assert aside.read_bytes() == b"garbage" * 500
    assert str(aside) in out and "new, empty store" in out
    with Store.open(f"sqlite:///{db}") as store:
        assert store.list_sessions() == []
    again = wb("doctor", "--offline", "--repair", "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert "nothing to repair" in no_traceback(again)
    assert len(list(tmp_path.glob("wb.db.corrupt-*"))) == 1


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small filesystem of our own (root only: skipped elsewhere)."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_read_only_store_is_read_and_a_write_says_why(tmpfs: Path, tmp_path: Path) -> None:
    make_store(tmpfs / "wb.db")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    url = f"sqlite:///{tmpfs / 'wb.db'}"
    listed = wb("sessions", "--db", url, "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "one session" in listed.stdout
    assert "read-only" in listed.stderr
    run = wb("run", "--db", url, "hi", cwd=tmp_path)
    assert run.returncode == 2
    out = no_traceback(run)
    assert str(tmpfs / "wb.db") in out and "read-only" in out


def test_a_full_disk_still_lists_sessions_and_a_run_says_why(tmpfs: Path, tmp_path: Path) -> None:
    make_store(tmpfs / "wb.db")
    with open(tmpfs / "fill", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    url = f"sqlite:///{tmpfs / 'wb.db'}"
    listed = wb("sessions", "--db", url, "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "one session" in listed.stdout and "full" in listed.stderr
    shown = wb("sessions", "--db", url, "show", "s_one")
    assert shown.returncode == 0, shown.stderr
    run = wb("run", "--db", url, "hi", cwd=tmp_path)
    assert run.returncode == 2
    out = no_traceback(run)
    assert str(tmpfs / "wb.db") in out and "full" in out and "free some space" in out
