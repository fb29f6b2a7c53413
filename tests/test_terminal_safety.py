"""Text from models and tools never reaches a terminal as control sequences.

Real sequences: OSC 0 (window title), OSC 52 (clipboard write), CSI 2J (clear screen), a
bare ESC, the one-byte C1 CSI (``\\x9b``), a bidi override, ``\\r`` over a line. They are put
everywhere a model or a tool can put text (answers, deltas, tool arguments and results,
errors, approval reasons, diffs, session titles) and every face that prints them is read
back: ``run``, ``sessions show`` (plain and ``--json``), ``sessions list``, ``sessions
search``, ``replay --plain``, and the TUI's state (which its panes draw). The tmux tests in
tests/tui/test_e2e.py check that a real terminal's title, clipboard and screen survive.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import WriteWorkspace
from tests.support.openai_server import FakeOpenAIThread, Reply
from workbench import sessions as lib
from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    MessageCompleted,
    MessageDelta,
    RunFailed,
    RunStarted,
    TeamDelegated,
    ToolCall,
    ToolCallRequest,
    ToolProgress,
    ToolResult,
    ToolUnavailable,
    WorkflowStepCompleted,
)
from workbench.store import Store
from workbench.termsafe import UNSAFE, json_visible, safe_event, visible

OSC_TITLE = "\x1b]0;PWNED-TITLE\x07"
OSC_CLIP = "\x1b]52;c;SGVsbG8=\x07"
CLEAR = "\x1b[2J\x1b[H"
C1 = "\x9b31m"
NASTY = (
    f"start {OSC_TITLE} {OSC_CLIP} {CLEAR} bare\x1b. {C1}red \u202eevil\u202c "
    "over\rwrite\r\napproval needed: git status (read-only) [y/n]"
)
"""A model's or a tool's text that tries to take the terminal over."""


def assert_terminal_safe(text: str) -> None:
    bad = sorted({f"{ord(c):#x}" for c in UNSAFE.findall(text)})
    assert not bad, f"raw control characters {bad} in:\n{text!r}"


# -- the sanitiser ---------------------------------------------------------------------------


def test_visible_shows_every_sequence_as_an_escape() -> None:
    shown = visible(NASTY)
    assert_terminal_safe(shown)
    assert "\\x1b]0;PWNED-TITLE\\x07" in shown
    assert "\\x1b]52;c;SGVsbG8=\\x07" in shown
    assert "\\x1b[2J\\x1b[H" in shown
    assert "\\x9b31m" in shown and "\\u202eevil\\u202c" in shown
    assert "over\\x0dwrite\napproval needed" in shown  # \r\n is a newline; a lone \r is shown
    assert (
        visible("plain text, tabs\tand\nnewlines, ünïcode 🧪")
        == "plain text, tabs\tand\nnewlines, ünïcode 🧪"
    )


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_visible_leaves_nothing_a_terminal_obeys(text: str) -> None:
    shown = visible(text)
    assert_terminal_safe(shown)
    assert visible(shown) == shown  # escapes are plain text


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), st.text() | st.integers() | st.lists(st.text())))
def test_json_visible_keeps_the_value(value: dict[str, object]) -> None:
    text = json_visible(json.dumps(value, ensure_ascii=False))
    assert_terminal_safe(text.replace("\n", ""))
    assert json.loads(text) == value


def test_safe_event_copies_only_what_needs_it() -> None:
    clean = MessageDelta(message_id="m", text="hello")
    assert safe_event(clean) is clean
    ev = ToolResult(call_id="c", tool="shell.run", output=NASTY, error=None)
    shown = safe_event(ev)
    assert shown is not ev and ev.output == NASTY  # the event itself is not changed
    assert_terminal_safe(shown.output or "")
    # Arguments are JSON values: left exact (a person who edits them edits the real ones);
    # every face shows them through json_visible.
    msg = MessageCompleted(
        message_id="m",
        role="assistant",
        content=NASTY,
        tool_calls=[ToolCallRequest(id="c", tool="shell.run", arguments={"cmd": NASTY})],
    )
    shown_msg = safe_event(msg)
    assert_terminal_safe(shown_msg.content)
    assert shown_msg.tool_calls[0].arguments == {"cmd": NASTY}


# -- the CLI ---------------------------------------------------------------------------------


def wb(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        input="",
        timeout=timeout,
    )


def nasty_events(sid: str) -> list[object]:
    run = "r_nasty"
    common = {"session_id": sid, "run_id": run, "source": f"agent{C1}"}
    return [
        RunStarted(**common, target_kind="agent", target="helper", input=NASTY, model=NASTY),
        MessageCompleted(**common, message_id="m1", role="user", content=NASTY),
        MessageCompleted(
            **common,
            message_id="m2",
            role="assistant",
            content=NASTY,
            tool_calls=[ToolCallRequest(id="c1", tool="shell.run", arguments={"cmd": NASTY})],
        ),
        ApprovalRequired(
            **common,
            call_id="c1",
            tool="shell.run",
            arguments={"cmd": NASTY},
            reason=NASTY,
            parts=[NASTY],
            diff=f"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-{NASTY}\n+{NASTY}\n",
        ),
        ApprovalResolved(
            **common, call_id="c1", tool="shell.run", decision="allow", note=NASTY, rule=NASTY
        ),
        ToolCall(**common, call_id="c1", tool="shell.run", arguments={"cmd": NASTY}),
        # What a tool (an MCP server) says while it runs, and when it cannot start.
        ToolProgress(**common, call_id="c1", tool="shell.run", progress=1, total=2, message=NASTY),
        ToolUnavailable(**common, toolkit=NASTY, patterns=[NASTY], error=NASTY),
        # A server asking for input: its question and its form's descriptions are its own.
        ApprovalRequired(
            **common,
            call_id="c1#input1",
            tool="shell.run",
            arguments={"cmd": NASTY},
            reason=NASTY,
            kind="input",
            form={"type": "object", "properties": {"cmd": {"type": "string", "title": NASTY}}},
        ),
        ToolResult(**common, call_id="c1", tool="shell.run", output=NASTY),
        ToolResult(**common, call_id="c2", tool="shell.run", error=NASTY),
        TeamDelegated(**common, member=NASTY, task=NASTY, child_run_id="r_x"),
        WorkflowStepCompleted(**common, path=NASTY, kind="step", status="done", output=NASTY),
        MessageCompleted(**common, message_id="m3", role="assistant", content=NASTY),
        RunFailed(**common, error=NASTY, hint=NASTY),
    ]


@pytest.fixture
def nasty_session(db_url: str) -> str:
    sid = "s_nasty"
    with Store.open(db_url) as store:
        store.create_session(sid, title="")
        store.append_many(nasty_events(sid))  # type: ignore[arg-type]
    return sid


def test_sessions_show_prints_no_control_sequence(nasty_session: str, db_url: str) -> None:
    r = wb("sessions", "--db", db_url, "show", nasty_session)
    assert r.returncode == 0, r.stderr
    assert_terminal_safe(r.stdout + r.stderr)
    assert "\\x1b]0;PWNED-TITLE\\x07" in r.stdout  # shown, as an escape
    assert "\\x1b[2J" in r.stdout


def test_sessions_show_json_is_the_same_json_safe_to_print(nasty_session: str, db_url: str) -> None:
    r = wb("sessions", "--db", db_url, "show", nasty_session, "--json")
    assert r.returncode == 0, r.stderr
    assert_terminal_safe(r.stdout.replace("\n", ""))
    with Store.open(db_url) as store:
        stored = [e.model_dump(mode="json") for e in store.events(nasty_session)]
    assert [json.loads(line) for line in r.stdout.splitlines()] == stored


def test_sessions_list_and_search_print_no_control_sequence(
    nasty_session: str, db_url: str
) -> None:
    listed = wb("sessions", "--db", db_url, "list")
    assert listed.returncode == 0 and "s_nasty" in listed.stdout, listed.stderr
    assert_terminal_safe(listed.stdout)
    found = wb("sessions", "--db", db_url, "search", "PWNED")
    assert found.returncode == 0 and "s_nasty" in found.stdout, found.stderr
    assert_terminal_safe(found.stdout)


def test_replay_plain_prints_no_control_sequence(
    nasty_session: str, db_url: str, tmp_path: Path
) -> None:
    export = tmp_path / "nasty.jsonl"
    with Store.open(db_url) as store:
        export.write_text(lib.export_session(store, nasty_session, "jsonl"))
    r = wb("replay", str(export), "--plain", "--db", f"sqlite:///{tmp_path / 'other.db'}")
    assert r.returncode == 0, r.stderr
    assert_terminal_safe(r.stdout + r.stderr)
    assert "approval needed: git status" in r.stdout


NASTY_TOOL = '''
def noisy(text: str) -> str:
    """Print something.

    Args:
        text: Anything.
    """
    return "out " + "\\x1b]0;PWNED-TITLE\\x07\\x1b]52;c;SGVsbG8=\\x07\\x1b[2J\\x9b31m\\x1b done"
'''


def test_run_prints_no_control_sequence_from_the_model_or_a_tool(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    # The model's text arrives in many small deltas: a sequence is cut across them.
    replies = [
        Reply(tool_calls=[("mytools_-noisy", {"text": NASTY})]),
        Reply(text=NASTY, chunks=len(NASTY)),
    ]
    with FakeOpenAIThread(script=replies) as srv:
        ws = write_workspace(
            f"""
            models:
              default: {{model: openai/scripted, api_base: "{srv.base_url}", api_key: none}}
            agents:
              helper:
                tools: ["mytools:noisy"]
            approvals:
              default: allow
            """,
            {"mytools.py": NASTY_TOOL},
        )
        r = wb("run", "-w", str(ws), "--db", db_url, "go")
        assert r.returncode == 0, r.stdout + r.stderr
        assert_terminal_safe(r.stdout + r.stderr)
        assert "\\x1b]0;PWNED-TITLE\\x07" in r.stdout
        assert "approval needed: git status (read-only)" in r.stdout
        as_json = wb("run", "-w", str(ws), "--db", db_url, "--json", "go")
    assert as_json.returncode == 0, as_json.stderr
    assert_terminal_safe(as_json.stdout.replace("\n", ""))
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert any("\x1b]0;PWNED-TITLE" in (e.get("output") or "") for e in events)  # exact JSON


# -- the TUI's state (what every pane draws) --------------------------------------------------


def test_the_tui_state_holds_no_control_sequence() -> None:
    from screens.state import SessionState

    state = SessionState("s_nasty")
    state.extend(nasty_events("s_nasty"))
    texts: list[str] = []
    for run in state.runs.values():
        for item in (i for i in state.items if i.run_id == run.run_id):
            values = (getattr(item, f.name) for f in dataclasses.fields(item))
            texts.extend(v for v in values if isinstance(v, str))
    for a in state.approvals.values():
        texts += [a.reason, a.tool, a.source, a.diff or "", *a.parts]
        assert a.arguments == {"cmd": NASTY}  # exact, for editing; shown as JSON
        if a.form is not None:  # an input form: shown, never edited as is
            texts.append(json.dumps(a.form, ensure_ascii=False))
    assert any("PWNED-TITLE" in t for t in texts)
    for t in texts:
        assert_terminal_safe(t.replace("\n", "").replace("\t", ""))


def test_tui_json_of_arguments_is_escaped_and_exact() -> None:
    from screens.card import args_json as _args_json
    from screens.transcript import _json

    for render in (_args_json, _json):
        text = render({"cmd": NASTY})
        assert_terminal_safe(text.replace("\n", ""))
        assert json.loads(text) == {"cmd": NASTY}
