"""`workbench run`, `sessions`, `doctor` as a user runs them: real subprocesses, a real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import WriteWorkspace
from tests.support.openai_server import FakeOpenAIThread, Reply
from workbench.events import parse_event
from workbench.store import Store

TOOLS_PY = '''
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text to count.
    """
    return len(text.split())
'''


def wb(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
        input=input if input is not None else "",
        timeout=timeout,
    )


@pytest.fixture
def demo(write_workspace: WriteWorkspace) -> Path:
    return write_workspace(
        """
        agents:
          helper:
            model: test
            instructions: Count words.
            tools: ["mytools:word_count"]
        approvals:
          default: ask
        """,
        {"mytools.py": TOOLS_PY},
    )


def test_run_streams_tool_call_and_answer_then_sessions_show_prints_it_back(
    demo: Path, db_url: str
) -> None:
    r = wb("run", "-w", str(demo), "--db", db_url, "--approve", "all", "How many words?")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "→ mytools:word_count" in out and '{"text": "test"}' in out
    assert "← mytools:word_count" in out
    assert "[test model] Tool results: 1" in out
    assert "allow mytools:word_count by --approve all" in out
    with Store.open(db_url) as store:
        sessions = store.list_sessions()
        assert len(sessions) == 1
        sid = sessions[0].id
    listed = wb("sessions", "--db", db_url, "list")
    assert sid in listed.stdout
    shown = wb("sessions", "--db", db_url, "show", sid)
    assert shown.returncode == 0
    for line in ("you: How many words?", "→ mytools:word_count", "[test model] Tool results: 1"):
        assert line in shown.stdout
    as_json = wb("sessions", "--db", db_url, "show", sid, "--json")
    events = [parse_event(line) for line in as_json.stdout.splitlines()]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert wb("sessions", "--db", db_url, "delete", sid).returncode == 0
    assert "No sessions" in wb("sessions", "--db", db_url, "list").stdout


def test_no_terminal_refuses_by_default_and_says_so(demo: Path, db_url: str) -> None:
    r = wb("run", "-w", str(demo), "--db", db_url, "count")
    assert r.returncode == 0, r.stderr
    assert "No terminal to ask on" in r.stderr and "--approve all" in r.stderr
    assert "deny mytools:word_count by --approve never" in r.stdout
    assert "→ mytools:word_count" not in r.stdout  # the tool never ran


def test_json_lines_are_the_events(demo: Path, db_url: str) -> None:
    r = wb("run", "-w", str(demo), "--db", db_url, "--json", "--approve", "all", "hi")
    assert r.returncode == 0
    events = [parse_event(line) for line in r.stdout.splitlines()]
    assert events[0].type == "run.started" and events[-1].type == "run.completed"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_interactive_prompt_on_a_terminal(demo: Path, db_url: str) -> None:
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "run",
            "-w",
            str(demo),
            "--db",
            db_url,
            "count please",
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"},
        close_fds=True,
    )
    os.close(slave)
    buf = b""

    def read_until(marker: bytes, timeout: float = 30) -> None:
        nonlocal buf
        end = time.monotonic() + timeout
        while marker not in buf:
            left = end - time.monotonic()
            assert left > 0, f"never saw {marker!r} in {buf.decode(errors='replace')[-2000:]}"
            ready, _, _ = select.select([master], [], [], left)
            if ready:
                try:
                    buf += os.read(master, 4096)
                except OSError:
                    break

    try:
        read_until(b"allow once")
        assert b"approval needed" in buf and b"mytools:word_count" in buf
        os.write(master, b"n\r")
        read_until(b"note for the model")
        os.write(master, b"not today\r")
        read_until(b"Tool results")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = buf.decode(errors="replace")
    assert "the user refused this call: not today" in text
    with Store.open(db_url) as store:
        sid = store.list_sessions()[0].id
        resolved = [e for e in store.events(sid) if e.type == "approval.resolved"]
    assert resolved and resolved[0].decision == "deny" and resolved[0].note == "not today"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("yaml_text", "line", "key", "expect"),
    [
        ("agents:\n  a: {model: test\n", 3, "", "invalid YAML"),
        ("agents:\n  a:\n    model: test\n    toolz: [x]\n", 4, "agents.a.toolz", "toolz"),
        ("agents:\n  a:\n    model: gpt5\n", 3, "agents.a.model", "unknown model"),
        (
            "agents:\n  a:\n    model: test\n    tools: [nosuchkit.read]\n",
            4,
            "agents.a.tools",
            "nosuchkit",
        ),
        (
            "agents:\n  a:\n    model: test\n    max_tool_rounds: many\n",
            4,
            "agents.a.max_tool_rounds",
            "",
        ),
    ],
)
def test_bad_workspace_names_file_line_key_and_writes_nothing(
    tmp_path: Path, yaml_text: str, line: int, key: str, expect: str
) -> None:
    ws = tmp_path / "bad"
    ws.mkdir()
    (ws / "workbench.yaml").write_text(yaml_text)
    db = tmp_path / "store.db"
    r = wb("run", "-w", str(ws), "--db", f"sqlite:///{db}", "hi")
    assert r.returncode == 2
    msg = " ".join(r.stderr.split())
    assert f"workbench.yaml:{line}" in msg, msg
    assert key in msg and expect in msg
    assert not db.exists() or Store.open(f"sqlite:///{db}").list_sessions() == []


def test_unknown_agent_is_a_usage_error(demo: Path, db_url: str) -> None:
    r = wb("run", "-w", str(demo), "--db", db_url, "--agent", "nobody", "hi")
    assert r.returncode == 2
    assert "no agent named 'nobody'" in r.stderr and "helper" in r.stderr


def test_failed_run_exits_1_with_the_hint(write_workspace: WriteWorkspace, db_url: str) -> None:
    with FakeOpenAIThread(script=[Reply(error=401, message="bad key")]) as srv:
        ws = write_workspace(
            f"""
            models:
              m: {{model: openai/fake, api_base: "{srv.base_url}", api_key: wrong}}
            agents:
              a: {{model: m}}
            """
        )
        r = wb("run", "-w", str(ws), "--db", db_url, "hi")
    assert r.returncode == 1
    assert "authentication failed" in r.stdout and "hint:" in r.stdout


def test_doctor_reports_missing_keys_and_endpoints(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    ws = write_workspace(
        """
        models:
          cloud: openai/gpt-4o
          local: {model: openai/qwen, api_base: "http://127.0.0.1:9/v1", api_key: none}
        agents:
          a: {model: cloud}
          b: {model: local}
          c: {model: test}
        """
    )
    r = wb("doctor", "-w", str(ws), "--db", db_url)
    assert r.returncode == 1
    assert "OPENAI_API_KEY" in r.stdout
    assert "cannot reach http://127.0.0.1:9/v1/models" in r.stdout
    ok = wb("doctor", "-w", str(ws), "--db", db_url, env={"OPENAI_API_KEY": "sk-test"}, timeout=60)
    assert "key found" in ok.stdout


def test_doctor_is_happy_with_the_test_model(demo: Path, db_url: str) -> None:
    r = wb("doctor", "-w", str(demo), "--db", db_url)
    assert r.returncode == 0, r.stdout
    assert "Ready." in r.stdout


def test_sigkill_loses_no_event_and_the_run_shows_interrupted(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    with FakeOpenAIThread(
        script=[Reply(text=" ".join(f"w{i}" for i in range(400)), chunk_delay=0.01)]
    ) as srv:
        ws = write_workspace(
            f"""
            models:
              m: {{model: openai/fake, api_base: "{srv.base_url}", api_key: x}}
            agents:
              a: {{model: m}}
            """
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workbench.cli",
                "run",
                "-w",
                str(ws),
                "--db",
                db_url,
                "--json",
                "talk",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        printed: list[int] = []
        for line in proc.stdout:
            printed.append(json.loads(line)["seq"])
            if len(printed) >= 60:
                break
        time.sleep(0.15)  # everything printed 100+ ms ago must be stored
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    with Store.open(db_url) as store:
        session = store.list_sessions()[0]
        stored = [e.seq for e in store.events(session.id)]
        assert set(printed) <= set(stored)
        assert stored == list(range(1, len(stored) + 1))
        run_id = store.list_runs(session.id)[0].id
    shown = wb("sessions", "--db", db_url, "show", session.id)
    assert f"agent a interrupted — resume with: workbench run --resume {run_id}" in shown.stdout
    with Store.open(db_url) as store:
        assert store.get_run(run_id).status == "interrupted"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("argv", "opened"),
    [
        ([], (None, None)),
        (["-w", "ws"], ("ws", None)),
        (["--workspace=ws", "--db", "sqlite:///x.db"], ("ws", "sqlite:///x.db")),
        (["--db=sqlite:///x.db", "--workspace", "ws"], ("ws", "sqlite:///x.db")),
    ],
)
def test_bare_workbench_opens_the_tui_without_the_full_parser(
    argv: list[str], opened: tuple[str | None, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench import cli

    seen: list[tuple[str | None, str | None]] = []

    def open_tui(args: object) -> int:
        ws = getattr(args, "workspace", None)
        seen.append((str(ws) if ws else None, getattr(args, "db", None)))
        return 0

    def no_parser() -> None:
        raise AssertionError("the full parser was built for a bare workbench")

    monkeypatch.setattr(cli, "_open_tui", open_tui)
    monkeypatch.setattr(cli, "build_parser", no_parser)
    assert cli.run_cli(argv) == 0
    assert seen == [opened]


@pytest.mark.parametrize(
    "argv",
    [
        ["-w"],  # a missing value: the full parser says so
        ["-w", "--db"],
        ["-w", "a", "-w", "b"],
        ["--serve"],
        ["--help"],
        ["sessions", "list"],
        ["-w", "ws", "run", "hi"],
        ["--db="],
    ],
)
def test_anything_more_than_a_bare_workbench_goes_to_the_full_parser(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench import cli

    class Built(Exception):
        pass

    def full_parser() -> None:
        raise Built

    monkeypatch.setattr(cli, "build_parser", full_parser)
    with pytest.raises(Built):
        cli.run_cli(argv)


@pytest.mark.parametrize(
    ("argv", "workspace", "db"),
    [
        (["-w", "A", "run", "hi"], "A", None),
        (["run", "-w", "B", "hi"], "B", None),
        (["-w", "A", "run", "-w", "B", "hi"], "B", None),  # the last one given wins
        (["--db", "sqlite:///x.db", "sessions", "list"], None, "sqlite:///x.db"),
        (["sessions", "--db", "sqlite:///x.db", "list"], None, "sqlite:///x.db"),
        (["sessions", "list", "--db", "sqlite:///x.db"], None, "sqlite:///x.db"),
        (["-w", "A", "--db", "sqlite:///x.db", "rules", "rm", "r_1"], "A", "sqlite:///x.db"),
        (["rules", "rm", "r_1", "-w", "A"], "A", None),
        (["-w", "A", "doctor"], "A", None),
        (["-w", "A", "tools"], "A", None),
        (["-w", "A", "replay", "s_1"], "A", None),
        (["-w", "A", "knowledge", "add"], "A", None),
        (["knowledge", "add", "-w", "A"], "A", None),
        (["-w", "A", "serve"], "A", None),
    ],
)
def test_workspace_and_db_before_or_after_the_subcommand_are_honoured(
    argv: list[str], workspace: str | None, db: str | None
) -> None:
    from workbench.cli import build_parser

    args = build_parser().parse_args(argv)
    assert (str(args.workspace) if args.workspace else None, args.db) == (workspace, db)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-w", "ws", "init", "x"], "-w does not apply to 'init'"),
        (["--db", "sqlite:///x.db", "init", "x"], "--db does not apply to 'init'"),
        (["--db", "sqlite:///x.db", "attach", "http://127.0.0.1:1"], "--db does not apply"),
        (["-w", "ws", "attach", "http://127.0.0.1:1"], "-w does not apply to 'attach'"),
        (["--db", "sqlite:///x.db", "knowledge", "add"], "knowledge base lives in the workspace"),
    ],
)
def test_flags_that_do_not_apply_are_refused_clearly(argv: list[str], message: str) -> None:
    out = wb(*argv)
    assert out.returncode == 2
    assert message in " ".join(out.stderr.split()), out.stderr


def test_workspace_before_run_is_the_workspace_the_run_uses(
    demo: Path, db_url: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"WORKBENCH_DB": ""}
    out = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "-w", str(demo), "--db", db_url]
        + ["run", "--approve", "all", "count these words"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env={**os.environ, **env},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "mytools:word_count" in out.stdout  # the workspace's own tool, not the default
    with Store.open(db_url) as store:
        (session,) = store.list_sessions()
    assert session.workspace == str(demo)
    missing = wb("-w", str(tmp_path / "nope"), "--db", db_url, "run", "hi")
    assert missing.returncode == 2 and "no such workspace" in missing.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["sessions", "export", "{sid}"],
        ["sessions", "export", "{sid}", "--format", "md"],
        ["sessions", "show", "{sid}", "--json"],
        ["sessions", "show", "{sid}"],
        ["replay", "{sid}", "--plain", "--speed", "0"],
    ],
    ids=["export", "export-md", "show-json", "show", "replay-plain"],
)
def test_a_reader_that_stops_early_ends_the_command_quietly(
    db_url: str, command: list[str]
) -> None:
    """``workbench sessions export ID | head``: no BrokenPipeError traceback."""
    sample = Path(__file__).resolve().parents[1] / "sample_workspaces/code-review/sessions"
    imported = wb("sessions", "import", str(sample / "review.test-model.jsonl"), "--db", db_url)
    assert imported.returncode == 0, imported.stderr
    sid = imported.stdout.split()[-1]
    argv = [a.format(sid=sid) for a in command]
    # The export is larger than a pipe's buffer: the reader is gone before it is written.
    head = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert head.stdin is not None
    proc = subprocess.run(
        [sys.executable, "-m", "workbench.cli", *argv, "--db", db_url],
        stdout=head.stdin,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    head.stdin.close()
    assert head.wait(10) == 0
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.returncode


_GC_REPORT = """
import atexit, gc, json, sys
import workbench.startup as startup
seen = {"while_paused": 0, "frozen_at_resume": None}
def count(phase, info):
    if phase == "start" and startup.collector_paused():
        seen["while_paused"] += 1
gc.callbacks.append(count)
real_resume = startup.resume_collector
def resume():
    real_resume()
    if seen["frozen_at_resume"] is None:
        seen["frozen_at_resume"] = gc.get_freeze_count()
startup.resume_collector = resume
atexit.register(lambda: print(json.dumps({**seen, "enabled": gc.isenabled()}), file=sys.stderr))
from workbench.cli import main
main()
"""


@pytest.mark.parametrize("command", ["run", "sessions"])
def test_the_command_line_pauses_the_collector_for_its_start_up_and_resumes_it(
    write_workspace: WriteWorkspace, tmp_path: Path, command: str
) -> None:
    """No collection walks the start-up's imports; the command then runs with the collector
    on, what the start-up made frozen (workbench.startup)."""
    ws = write_workspace("models:\n  default: test\nagents:\n  helper: {instructions: Hi.}\n")
    argv = {"run": ["run", "hello"], "sessions": ["sessions", "list"]}[command]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _GC_REPORT,
            *argv,
            "-w",
            str(ws),
            "--db",
            f"sqlite:///{tmp_path}/wb.db",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["while_paused"] == 0 and report["enabled"] is True
    assert report["frozen_at_resume"] > 10_000  # the imports' objects, frozen


# -- keys typed while the TUI starts ------------------------------------------------------


def test_keys_typed_while_the_tui_starts_reach_it_as_typed_and_the_terminal_comes_back() -> None:
    """Until Textual takes the terminal, line mode would echo what is typed over the shell
    and turn Enter into a line feed (ctrl+j in the app: a new line, not send). The command
    line puts the terminal in Textual's input mode at once and gives back the shell's."""
    import pty
    import termios

    from workbench.cli.common import keys_as_typed

    master, slave = pty.openpty()
    try:
        shell_mode = termios.tcgetattr(slave)
        assert shell_mode[0] & termios.ICRNL and shell_mode[3] & termios.ICANON  # line mode
        with keys_as_typed(slave):
            mode = termios.tcgetattr(slave)
            assert not mode[0] & termios.ICRNL
            assert not mode[3] & (termios.ICANON | termios.ECHO)
            assert mode[3] & termios.ISIG  # ctrl+c still interrupts the start-up
            os.write(master, b"ping\r")
            time.sleep(0.05)
            assert os.read(slave, 100) == b"ping\r"  # Enter as Enter, at once (no line wait)
            assert not _readable(master)  # nothing echoed over the shell
        assert termios.tcgetattr(slave) == shell_mode
        with pytest.raises(KeyboardInterrupt), keys_as_typed(slave):
            raise KeyboardInterrupt  # ctrl+c during the start-up
        assert termios.tcgetattr(slave) == shell_mode
    finally:
        os.close(master)
        os.close(slave)
    read, write = os.pipe()  # not a terminal: nothing to do, nothing raised
    try:
        with keys_as_typed(read):
            pass
    finally:
        os.close(read)
        os.close(write)


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0.05)[0])
