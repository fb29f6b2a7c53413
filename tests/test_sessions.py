"""Sessions: replay, export/import, fork, rerun, search, prune — through the CLI as a user
runs it (real subprocesses, a real SQLite file) and through ``workbench.sessions``."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import WriteWorkspace
from tests.support.openai_server import FakeOpenAIThread
from workbench import sessions as lib
from workbench.engine import Engine
from workbench.events import (
    ApprovalResolved,
    ContextSummarized,
    MessageCompleted,
    MessageDelta,
    RunCompleted,
    RunStarted,
    ToolCall,
    ToolResult,
    dump_event,
    parse_event,
)
from workbench.store import SNIPPET_END, SNIPPET_START, Store

NOTE_TOOL = '''
from pathlib import Path
from typing import Any


def read_note() -> str:
    """Read the note beside this module."""
    return (Path(__file__).parent / "note.txt").read_text()
'''

WORKSPACE = """
agents:
  helper:
    model: test
    instructions: Read the note.
    tools: ["mytools:read_note"]
approvals:
  default: ask
"""


def wb(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``workbench ARGS`` in a subprocess, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        input="",
        timeout=timeout,
    )


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r.stdout


@pytest.fixture
def ws(write_workspace: WriteWorkspace) -> Path:
    return write_workspace(WORKSPACE, {"mytools.py": NOTE_TOOL, "note.txt": "the secret is 42\n"})


async def record(ws: Path, db_url: str, *prompts: str, session_id: str | None = None) -> str:
    """Run the helper on each prompt in one session, tool calls allowed as
    ``workbench run --approve all`` allows them (in-process: faster than the CLI)."""
    from workbench.approvals import Resolution

    async with Engine.open(ws, db_url) as engine:
        engine.broker.auto_decider = lambda p: Resolution("allow", decided_by="--approve all")
        for prompt in prompts:
            outcome = await engine.run("helper", prompt, session_id=session_id)
            assert outcome.ok, outcome
            run = engine.store.get_run(outcome.run_id)
            assert run is not None
            session_id = run.session_id
    assert session_id is not None
    return session_id


@pytest.fixture
async def recorded(ws: Path, db_url: str) -> str:
    """A session of two runs, each reading the note (approved as --approve all does)."""
    return await record(ws, db_url, "What does the note say?", "Read it once more <b>&</b>")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        yield s


def events_of(db_url: str, session_id: str) -> list[object]:
    with Store.open(db_url) as s:
        return list(s.events(session_id))


# -- replay ---------------------------------------------------------------------------------


def test_replay_plain_prints_what_sessions_show_prints(
    recorded: str, db_url: str, tmp_path: Path
) -> None:
    shown = ok(wb("sessions", "--db", db_url, "show", recorded))
    replayed = ok(wb("replay", "--db", db_url, recorded, "--plain"))
    assert replayed == shown
    assert "you: What does the note say?" in replayed and "← mytools:read_note" in replayed
    # From an exported file (no store needed), and at a speed: the same text.
    export = tmp_path / "s.jsonl"
    ok(wb("sessions", "export", recorded, "--db", db_url, "-o", str(export)))
    assert ok(wb("replay", str(export), "--plain", "--speed", "1000")) == shown
    assert ok(wb("replay", str(export), "--plain", "--speed", "inf")) == shown


def test_replay_of_an_unknown_session_says_so(db_url: str) -> None:
    r = wb("replay", "--db", db_url, "s_nope", "--plain")
    assert r.returncode == 2 and "no session 's_nope'" in r.stderr


def test_replay_plain_is_paced_by_the_recorded_timestamps() -> None:
    from rich.console import Console

    def at(ts: float, seq: int) -> MessageCompleted:
        return MessageCompleted(
            session_id="s_1",
            run_id="r_1",
            seq=seq,
            ts=ts,
            message_id=f"m{seq}",
            role="user",
            content=f"line {seq}",
        )

    events = [at(100.0, 1), at(101.0, 2), at(101.5, 3), at(200.0, 4)]
    waits: list[float] = []
    console = Console(file=open(os.devnull, "w"), width=80)  # noqa: SIM115
    with console.file:
        n = lib.replay_plain(events, console, speed=2.0, sleep=waits.append)
        assert n == 4
        assert waits == [0.5, 0.25, 1.5]  # halved; the long idle is cut to max_gap
        waits.clear()
        lib.replay_plain(events, console, speed=math.inf, sleep=waits.append)
        assert waits == []


# -- export and import ----------------------------------------------------------------------


def test_jsonl_export_import_export_gives_identical_bytes(
    recorded: str, db_url: str, tmp_path: Path
) -> None:
    first = tmp_path / "first.jsonl"
    ok(wb("sessions", "export", recorded, "--db", db_url, "-o", str(first)))
    lines = first.read_bytes().decode().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "workbench-session" and header["version"] == 1
    assert header["session_id"] == recorded and header["title"] == "What does the note say?"
    with Store.open(db_url) as s:
        stored = [dump_event(e) for e in s.events(recorded)]
        info = s.get_session(recorded)
    assert info is not None and header["created_at"] == info.created_at
    assert lines[1:] == stored  # each event exactly as the store keeps it

    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    imported = ok(wb("sessions", "import", str(first), "--db", empty))
    assert imported.strip() == recorded
    again = ok(wb("sessions", "export", recorded, "--db", empty))  # to stdout this time
    # The same bytes, and one more event: the import's record that they came from
    # elsewhere (their approvals are evidence here, not decisions this store made).
    *same, marker = again.encode().splitlines(keepends=True)
    assert b"".join(same) == first.read_bytes()
    imported = parse_event(marker)
    assert imported.type == "session.imported" and imported.events == len(lines) - 1


def test_round_trip_is_exact_for_awkward_text(store: Store, tmp_path: Path) -> None:
    awkward = "naïve “quotes” \\ back\\slash \x00 nul, tab\t, emoji 🧪, </pre><script>x</script>"
    sid = "s_awkward"
    store.create_session(sid, title="ünïcode ⟨title⟩", workspace=str(tmp_path))
    store.append_many(
        [
            RunStarted(
                session_id=sid, run_id="r_aw", target_kind="agent", target="a", input=awkward
            ),
            MessageCompleted(
                session_id=sid, run_id="r_aw", message_id="m1", role="user", content=awkward
            ),
            ToolCall(
                session_id=sid,
                run_id="r_aw",
                call_id="c1",
                tool="files.read",
                arguments={"path": awkward, "n": 1e-7, "big": 2**60},
            ),
            ToolResult(
                session_id=sid,
                run_id="r_aw",
                call_id="c1",
                tool="files.read",
                output=awkward,
                duration_ms=0.1 + 0.2,
            ),
            RunCompleted(session_id=sid, run_id="r_aw", output=awkward, duration_ms=1 / 3),
        ]
    )
    exported = lib.export_session(store, sid, "jsonl")
    with Store.open(f"sqlite:///{tmp_path / 'other.db'}") as other:
        info = lib.import_session(other, exported.splitlines(keepends=True))
        assert info.id == sid and info.title == "ünïcode ⟨title⟩"
        again = lib.export_session(other, sid, "jsonl")
        assert again.startswith(exported)  # then the import's own session.imported event
        assert parse_event(again[len(exported) :]).type == "session.imported"


def test_import_refuses_an_existing_session_unless_as_new(
    recorded: str, db_url: str, tmp_path: Path
) -> None:
    export = tmp_path / "s.jsonl"
    ok(wb("sessions", "export", recorded, "--db", db_url, "-o", str(export)))
    again = wb("sessions", "import", str(export), "--db", db_url)
    assert again.returncode == 2
    assert f"session {recorded} is already in this store" in again.stderr
    assert "--as-new" in again.stderr
    copy = ok(wb("sessions", "import", str(export), "--db", db_url, "--as-new")).strip()
    assert copy != recorded and copy.startswith("s_")
    with Store.open(db_url) as s:
        old_runs, new_runs = s.list_runs(recorded), s.list_runs(copy)
        assert len(new_runs) == len(old_runs) == 2
        assert not {r.id for r in old_runs} & {r.id for r in new_runs}  # runs got new ids
        assert [r.status for r in old_runs] == ["completed", "completed"]
        assert [r.session_id for r in old_runs] == [recorded, recorded]
        originals = [e.model_dump(exclude={"session_id", "run_id"}) for e in s.events(recorded)]
        copies = [e.model_dump(exclude={"session_id", "run_id"}) for e in s.events(copy)]
    assert copies[:-1] == originals  # then the import's record that they came from elsewhere
    assert copies[-1]["type"] == "session.imported" and copies[-1]["events"] == len(originals)


def test_import_says_what_is_wrong_with_a_file(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(lib.ArchiveError, match="line 1: not JSON"):
        lib.import_session(store, bad)
    header = {"format": "workbench-session", "version": 99, "session_id": "s_x"}
    bad.write_text(json.dumps(header) + "\n")
    with pytest.raises(lib.ArchiveError, match="newer than this workbench reads"):
        lib.import_session(store, bad)
    header["version"] = 1
    event = MessageCompleted(
        session_id="s_x", run_id="r", seq=2, message_id="m", role="user", content="hi"
    )
    bad.write_text(json.dumps(header) + "\n" + dump_event(event) + "\n")
    with pytest.raises(lib.ArchiveError, match="found 2 where 1 belongs"):
        lib.import_session(store, bad)
    with pytest.raises(lib.ArchiveError, match="cannot read"):
        lib.import_session(store, tmp_path / "missing.jsonl")
    assert store.list_sessions() == []


def test_html_export_is_self_contained_and_shows_tools_and_approvals(
    recorded: str, db_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "s.html"
    ok(wb("sessions", "export", recorded, "--db", db_url, "-o", str(out)))
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert "mytools:read_note" in page  # the tool call
    assert "the secret is 42" in page  # its result
    assert re.search(r'<span class="dim">\d+ ms</span>', page)  # its duration
    assert "allowed once</span> by <b>--approve all</b>" in page  # the approval, and who
    assert "policy default is ask" in page  # why it was asked
    assert "Read it once more &lt;b&gt;&amp;&lt;/b&gt;" in page  # escaped
    assert "<b>&</b>" not in page
    for external in ("<script", "<link", "src=", "href=", "url(", "@import", "http:", "https:"):
        assert external not in page, external


def test_markdown_export_shows_tools_and_approvals(recorded: str, db_url: str) -> None:
    md = ok(wb("sessions", "export", recorded, "--db", db_url, "--format", "md"))
    assert md.startswith("# What does the note say?")
    assert "**→ helper calls `mytools:read_note`**" in md
    assert "```\nthe secret is 42\n```" in md
    assert "Approval: **allowed once** by **\\--approve all**" in md
    assert "> Read it once more <b>&</b>" in md  # a message, as written


# -- fork -----------------------------------------------------------------------------------


LOCAL = """
models:
  local: {{model: openai/fake, api_base: "{base}", api_key: x, retry_delay: 0.01}}
agents:
  chat:
    model: local
    instructions: Chat.
"""


async def test_fork_then_continue_sends_only_the_forked_history(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    with FakeOpenAIThread() as srv:  # answers "echo: <last message>"
        root = write_workspace(LOCAL.format(base=srv.base_url), name="local")
        async with Engine.open(root, db_url) as engine:  # the recording (in-process: faster)
            first = await engine.run("chat", "first question")
            run = engine.store.get_run(first.run_id)
            assert first.ok and run is not None
            sid = run.session_id
            assert (await engine.run("chat", "second question", session_id=sid)).ok
        events = events_of(db_url, sid)
        answer = next(
            e
            for e in events
            if isinstance(e, MessageCompleted) and e.content == "echo: first question"
        )
        new = ok(wb("sessions", "fork", sid, "--at", str(answer.seq), "--db", db_url)).strip()
        assert new.startswith("s_") and new != sid
        ok(wb("run", "-w", str(root), "--db", db_url, "--session", new, "third question"))
        sent = srv.chat_requests[-1].messages
    said = [(m["role"], m.get("content")) for m in sent if m["role"] != "system"]
    assert said == [
        ("user", "first question"),
        ("assistant", "echo: first question"),
        ("user", "third question"),
    ]
    with Store.open(db_url) as s:
        info = s.get_session(new)
        assert info is not None
        assert info.title == "fork of first question"
        assert (info.forked_from, info.forked_from_seq) == (sid, answer.seq)
        forked = s.events(new)
    assert [e.seq for e in forked] == list(range(1, len(forked) + 1))
    assert forked[answer.seq - 1].model_dump(exclude={"session_id", "run_id"}) == (
        answer.model_dump(exclude={"session_id", "run_id"})
    )


async def test_fork_copies_up_to_the_message_and_leaves_the_original_alone(
    ws: Path, db_url: str
) -> None:
    sid = await record(ws, db_url, "one", "two")
    async with Engine.open(ws, db_url) as engine:
        first = engine.store.list_runs(sid)[0]
        store = engine.store
        events = store.events(sid)
        call = next(e for e in events if isinstance(e, ToolCall))
        assistant = next(
            e
            for e in events
            if isinstance(e, MessageCompleted) and e.role == "assistant" and e.tool_calls
        )
        fork = lib.fork_session(store, sid, message_id=assistant.message_id)
        copied = store.events(fork.id)
        assert [e.type for e in copied[:-1]] == [e.type for e in events[: assistant.seq]]
        assert copied[-1].type == "run.cancelled"  # the run had not ended there
        assert "forked at event" in copied[-1].reason  # type: ignore[union-attr]
        assert call.seq > assistant.seq
        runs = store.list_runs(fork.id)
        assert [r.status for r in runs] == ["cancelled"]
        assert runs[0].id != first.id
        assert [r.status for r in store.list_runs(sid)] == ["completed", "completed"]
        assert store.get_run(first.id) == first
        # The history a run in the fork gets: the question and the unanswered tool call.
        history = engine.history(fork.id)
        assert [m["role"] for m in history] == ["user", "assistant", "tool"]
        assert history[-1]["content"] == "Error: interrupted"
        with pytest.raises(lib.SessionsError, match="cannot fork at 999"):
            lib.fork_session(store, sid, at_seq=999)
        with pytest.raises(lib.SessionsError, match="no message"):
            lib.fork_session(store, sid, message_id="m_nope")
        with pytest.raises(lib.SessionNotFoundError):
            lib.fork_session(store, "s_nope", at_seq=1)


# -- rerun ----------------------------------------------------------------------------------


def test_rerun_is_identical_until_a_tool_result_changes(
    recorded: str, ws: Path, db_url: str
) -> None:
    same = wb("sessions", "rerun", recorded, "-w", str(ws), "--db", db_url)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "identical: 2 tool results and 2 answers as recorded" in same.stdout
    (ws / "note.txt").write_text("the secret is 43\n")
    changed = wb("sessions", "rerun", recorded, "-w", str(ws), "--db", db_url)
    assert changed.returncode == 1, changed.stdout + changed.stderr
    out = changed.stdout
    assert "changed" in out and "2 of 2 tool results differ" in out
    assert "-the secret is 42" in out and "+the secret is 43" in out
    with Store.open(db_url) as s:
        sessions = {x.title: x for x in s.list_sessions()}
        rerun = sessions["rerun of What does the note say?"]
        models = [e.model for e in s.events(rerun.id) if isinstance(e, RunStarted)]
    assert models == ["replay", "replay"]  # no model was called


async def test_rerun_decides_approvals_as_recorded(ws: Path, db_url: str) -> None:
    from workbench.approvals import Resolution

    async with Engine.open(ws, db_url) as engine:
        engine.broker.auto_decider = lambda p: Resolution("deny", note="no", decided_by="me")
        outcome = await engine.run("helper", "read it")
        sid = engine.store.get_run(outcome.run_id).session_id  # type: ignore[union-attr]
        engine.broker.auto_decider = None
        report = await lib.rerun_session(engine, sid)
        assert report.identical, report
        new = engine.store.events(report.session_id)
        decided = [e for e in new if isinstance(e, ApprovalResolved)]
        assert [(d.decision, d.decided_by) for d in decided] == [("deny", "rerun: recorded me")]
        assert [c.status for c in report.runs[0].calls] == ["same"]
        assert report.runs[0].calls[0].old_error == "the user refused this call: no"
        assert engine.broker.auto_decider is None  # put back
        # Allowing everything now changes the result: the tool runs.
        allowed = await lib.rerun_session(engine, sid, approve="all")
        assert not allowed.identical
        diff = allowed.differing_calls[0]
        assert diff.status == "changed" and diff.new_output == "the secret is 42\n"
        assert "-Error: the user refused this call: no" in diff.unified_diff()


async def test_recording_serves_each_recorded_run_once_by_agent_and_input() -> None:
    from workbench.models import ModelError, Recording

    def turn(text: str) -> MessageCompleted:
        return MessageCompleted(message_id=f"m_{text}", role="assistant", content=text)

    async def answer(rec: Recording, agent: str, input: str) -> str:
        model = rec.model_for(agent, input)
        return "".join([item async for item in model.stream([]) if isinstance(item, str)])

    rec = Recording()
    rec.add(
        "critic",
        "draft 1",
        [MessageCompleted(message_id="m_u", role="user", content="x"), turn("weak")],
    )
    rec.add("critic", "draft 2", [turn("better")])
    rec.add("writer", "topic", [turn("draft")])
    assert await answer(rec, "critic", "draft 2") == "better"  # by input, not by order
    assert rec.unused == ["critic", "writer"]
    # An input the recording never saw (an upstream result changed) takes the agent's next
    # unused run; the user turn of the recording is not served.
    assert await answer(rec, "critic", "draft 3") == "weak"
    with pytest.raises(ModelError, match="no more model responses"):
        await answer(rec, "critic", "draft 1")  # each recorded run is served once
    with pytest.raises(ModelError, match="no more model responses"):
        await answer(rec, "nobody", "topic")
    assert rec.unused == ["writer"]


async def test_rerun_serves_recorded_context_summaries(
    fake_model: Any, write_workspace: WriteWorkspace, db_url: str
) -> None:
    """A recorded run whose history outgrew the context window made a summary with a
    model call; the re-run makes it again from the recording, not from a recorded answer."""
    from tests.support.openai_server import Reply

    root = write_workspace(
        f"""
        models:
          local: {{model: openai/fake, api_base: "{fake_model.base_url}", api_key: x, context_window: 200}}
        agents:
          helper: {{model: local}}
        """
    )
    async with Engine.open(root, db_url) as engine:
        fake_model.push(Reply(text="first answer " + "x " * 200))
        first = await engine.start_run("helper", "first question " + "y " * 200)
        await first.wait()
        fake_model.push(Reply(text="SUMMARY: the first question"), Reply(text="second answer"))
        second = await engine.start_run("helper", "second question", session_id=first.session_id)
        assert (await second.wait()).ok
        asked = len(fake_model.chat_requests)
        report = await lib.rerun_session(engine, first.session_id)
        assert report.identical, report
        assert len(fake_model.chat_requests) == asked  # no model call
        new = engine.store.events(report.session_id)
    summaries = [e.summary for e in new if isinstance(e, ContextSummarized)]
    assert summaries == ["SUMMARY: the first question"]
    assert [r.new_output for r in report.runs] == ["first answer " + "x " * 200, "second answer"]


# -- search ---------------------------------------------------------------------------------


async def test_search_finds_messages_and_tool_results_newest_first(
    recorded: str, ws: Path, db_url: str
) -> None:
    await record(ws, db_url, "Something else entirely")
    by_message = ok(wb("sessions", "search", "once", "more", "--db", db_url, "--json"))
    hits = [json.loads(line) for line in by_message.splitlines()]
    assert [h["session_id"] for h in hits] == [recorded]
    assert hits[0]["type"] == "message.completed" and "Read it once more" in hits[0]["snippet"]
    by_result = ok(wb("sessions", "search", "secret", "--db", db_url, "--json"))
    hits = [json.loads(line) for line in by_result.splitlines()]
    assert len(hits) == 2 and hits[0]["session_id"] != recorded  # newest first
    assert {h["type"] for h in hits} == {"tool.result"}
    assert all("secret is 42" in h["snippet"] for h in hits)
    table = ok(wb("sessions", "search", "secret", "--db", db_url))
    assert recorded in table and "the secret is 42" in table
    assert "No session matches." in ok(wb("sessions", "search", "zyzzyva", "--db", db_url))


@pytest.mark.parametrize("probe_from", [4000, 1], ids=["group-matches", "walk-sessions"])
async def test_search_in_the_library(
    store: Store, probe_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.store import search as store_module

    # Both of SQLite's plans: group every match (few matches) or walk sessions (many).
    monkeypatch.setattr(store_module, "_SEARCH_PROBE_FROM", probe_from)

    def session(sid: str, *events: object) -> None:
        store.append_many([e.model_copy(update={"session_id": sid}) for e in events])  # type: ignore[attr-defined]

    session(
        "s_a",
        MessageCompleted(run_id="r_a", message_id="m1", role="user", content="Deploy the rockets"),
        MessageDelta(run_id="r_a", message_id="m2", text="launching"),
        ToolCall(run_id="r_a", call_id="c1", tool="files.read", arguments={"path": "docs/moon.md"}),
    )
    session(
        "s_b",
        ToolResult(run_id="r_b", call_id="c2", tool="shell.run", error="rocket exploded"),
    )
    hits = lib.search_sessions(store, "rocket")
    assert [h.session_id for h in hits] == ["s_b", "s_a"]  # stemmed: rockets ~ rocket
    assert hits[0].snippet == f"shell.run  {SNIPPET_START}rocket{SNIPPET_END} exploded"
    assert hits[1].parts() == [("Deploy the ", False), ("rockets", True)]
    assert hits[1].text == "Deploy the rockets"
    assert [h.session_id for h in lib.search_sessions(store, "moon")] == ["s_a"]  # arguments
    assert lib.search_sessions(store, "launching") == []  # deltas are not indexed
    assert [h.session_id for h in lib.search_sessions(store, "explo", prefix=True)] == ["s_b"]
    assert lib.search_sessions(store, "explo") == []
    assert lib.search_sessions(store, '"* OR ( NEAR') == []  # no query syntax gets through
    assert lib.search_sessions(store, "   ") == []
    store.delete_session("s_b")
    assert [h.session_id for h in lib.search_sessions(store, "rocket")] == ["s_a"]


# -- prune ----------------------------------------------------------------------------------


async def test_prune_deletes_sessions_not_updated_within_the_age(
    recorded: str, ws: Path, db_url: str
) -> None:
    await record(ws, db_url, "fresh one")
    with Store.open(db_url) as s:
        fresh = next(x.id for x in s.list_sessions() if x.id != recorded)
        with s.engine.begin() as conn:  # make the recorded session 40 days old
            conn.execute(
                text("UPDATE sessions SET updated_at = :t WHERE id = :id"),
                {"t": time.time() - 40 * 86400, "id": recorded},
            )
    dry = ok(wb("sessions", "prune", "--older-than", "30d", "--dry-run", "--db", db_url))
    assert f"would delete {recorded}" in dry and "would delete 1 session" in dry
    assert len(events_of(db_url, recorded)) > 0
    done = ok(wb("sessions", "prune", "--older-than", "30d", "--db", db_url))
    assert "deleted 1 session" in done
    with Store.open(db_url) as s:
        assert s.get_session(recorded) is None and s.get_session(fresh) is not None
        assert s.events(recorded) == [] and s.list_runs(recorded) == []
        assert s.search_sessions("once more") == []
        with s.engine.connect() as conn:  # the index lost the deleted events' text too
            indexed = conn.execute(text("SELECT COUNT(*) FROM events_fts")).scalar()
            searchable = conn.execute(
                text(
                    "SELECT COUNT(*) FROM events WHERE type IN "
                    "('message.completed', 'tool.call', 'tool.result')"
                )
            ).scalar()
        assert indexed == searchable > 0
    assert "deleted 0 sessions" in ok(wb("sessions", "prune", "--older-than", "2w", "--db", db_url))
    bad = wb("sessions", "prune", "--older-than", "soon", "--db", db_url)
    assert bad.returncode == 2 and "not an age" in bad.stderr


def test_prune_keeps_sessions_with_live_runs(store: Store) -> None:
    store.hold_lease()  # runs as an engine does: its runs are alive while its lease holds
    store.append_many(
        [
            RunStarted(
                session_id="s_live", run_id="r_live", target_kind="agent", target="a", input="x"
            ),
            RunStarted(
                session_id="s_done", run_id="r_done", target_kind="agent", target="a", input="x"
            ),
            RunCompleted(session_id="s_done", run_id="r_done", output="y"),
        ]
    )
    later = time.time() + 3600
    gone = lib.prune_sessions(store, 60, now=later)  # the live run's process is this one
    assert [s.id for s in gone] == ["s_done"]
    assert store.get_session("s_live") is not None


def test_parse_age() -> None:
    assert lib.parse_age("30d") == 30 * 86400
    assert lib.parse_age("12h") == 12 * 3600
    assert lib.parse_age("45m") == 45 * 60
    assert lib.parse_age("2w") == 14 * 86400
    assert lib.parse_age("1.5 h") == 5400
    for bad in ("", "30", "d", "-1d", "3y"):
        with pytest.raises(ValueError, match="not an age"):
            lib.parse_age(bad)


def test_events_parse_back_from_every_export_line(recorded: str, db_url: str) -> None:
    lines = ok(wb("sessions", "export", recorded, "--db", db_url)).splitlines()
    assert [parse_event(line).seq for line in lines[1:]] == list(range(1, len(lines)))


def test_replay_opens_the_tui_on_the_session_or_on_an_imported_file(
    recorded: str, ws: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from screens import app as tui
    from workbench.cli import run_cli

    opened: list[dict[str, object]] = []

    def run_app(
        workspace: Path | None = None,
        db: str | None = None,
        replay: str | None = None,
        replay_speed: float | None = None,
        replay_file: Path | None = None,
        replay_events: list[object] | None = None,
    ) -> int:
        replayed = replay_events if replay_file else events_of(str(db), str(replay))
        opened.append(
            {
                "workspace": workspace,
                "db": db,
                "replay": replay,
                "replay_speed": replay_speed,
                "events": len(replayed or []),
                "file": replay_file,
            }
        )
        return 0

    monkeypatch.setattr(tui, "run_app", run_app)
    monkeypatch.chdir(tmp_path)  # no workbench.yaml here: the recorded workspace is used
    assert run_cli(["replay", "--db", db_url, recorded, "--speed", "10"]) == 0
    total = len(events_of(db_url, recorded))
    assert opened[-1] == {
        "workspace": ws,
        "db": db_url,
        "replay": recorded,
        "replay_speed": 10.0,
        "events": total,
        "file": None,
    }
    export = tmp_path / "s.jsonl"
    with Store.open(db_url) as s:
        export.write_text(lib.export_session(s, recorded, "jsonl"))
    assert run_cli(["replay", "--db", db_url, str(export), "--speed", "0"]) == 0
    assert opened[-1]["replay"] == recorded and opened[-1]["events"] == total
    # The file is replayed from memory on the store given (it used to go into a throwaway
    # store, where whatever was typed after the replay was lost).
    assert opened[-1]["db"] == db_url and opened[-1]["file"] == export
    assert opened[-1]["replay_speed"] == math.inf
    assert run_cli(["replay", "--db", db_url, "s_nope"]) == 2
