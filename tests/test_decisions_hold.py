"""Every decision goes through the rules; a log is evidence, not authority.

- An edit is a new call: the edited arguments are judged by the rules again (a deny rule
  wins, an ask rule asks again with the edit shown), whichever face made the edit.
- A resumed run decides every unfinished call again, under the current rules; what its log
  recorded is shown, not reused. A call that started and left no result is never run again
  silently: it is offered again as an approval that says it may already have run, unless its
  tool is idempotent.
- An imported session carries no authority: ``sessions rerun`` (``--approve recorded``)
  replays only decisions this store made, for the call they were made on.

Real parts: a SQLite store, subprocesses for the CLI, a scripted OpenAI-compatible server
for the model, real tools (``shell.run`` under bash, files on disk), SIGKILL for a crash.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import WriteWorkspace
from tests.support.openai_server import FakeOpenAIThread, Reply
from workbench import sessions as lib
from workbench.approvals import Resolution
from workbench.engine import Engine
from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    Event,
    RunStarted,
    ToolCall,
    ToolResult,
    dump_event,
    parse_event,
)
from workbench.store import Store

MAIN = Path(__file__).resolve().parents[1]

TOOLS_PY = '''
import time
from pathlib import Path

from workbench.tools import tool

HERE = Path(__file__).parent


def mark(name: str) -> str:
    """Add a line to marks.log (a side effect that must not happen twice).

    Args:
        name: What to write.
    """
    with open(HERE / "marks.log", "a") as f:
        f.write(name + "\\n")
    if (HERE / "hang.flag").exists():
        (HERE / "started.flag").write_text("started")
        time.sleep(60)
    return "marked " + name


@tool(idempotent=True)
def peek(name: str) -> str:
    """Read marks.log (changes nothing).

    Args:
        name: Ignored.
    """
    with open(HERE / "peeks.log", "a") as f:
        f.write(name + "\\n")
    if (HERE / "hang.flag").exists():
        (HERE / "started.flag").write_text("started")
        time.sleep(60)
    return (HERE / "marks.log").read_text() if (HERE / "marks.log").exists() else ""
'''


def marks(root: Path, log: str = "marks.log") -> list[str]:
    path = root / log
    return path.read_text().splitlines() if path.exists() else []


def workspace(
    write_workspace: WriteWorkspace, base_url: str, approvals: str, tools: str = ""
) -> Path:
    return write_workspace(
        f"""
        models:
          default: {{model: openai/scripted, api_base: "{base_url}", api_key: none}}
        agents:
          helper:
            tools: [shell.run, "mytools:mark", "mytools:peek"{tools}]
        approvals:
{approvals}
        """,
        {"mytools.py": TOOLS_PY},
    )


async def start_and_wait_pending(engine: Engine, prompt: str = "go") -> Any:
    handle = await engine.start_run("helper", prompt)
    for _ in range(2000):
        if engine.broker.pending() or handle.task.done():
            break
        await asyncio.sleep(0.01)
    return handle


async def next_pending(engine: Engine, seen: list[ApprovalRequired]) -> Any:
    for _ in range(2000):
        pending = engine.broker.pending()
        if pending and pending[0].arguments != (seen[-1].arguments if seen else None):
            return pending[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no new approval")


# -- point 2: an edit is a new call -----------------------------------------------------------


async def test_an_edit_a_deny_rule_matches_is_denied(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    with FakeOpenAIThread(
        script=[Reply(tool_calls=[("shell__run", {"cmd": "echo hi"})]), Reply(text="ok")]
    ) as srv:
        root = workspace(
            write_workspace,
            srv.base_url,
            '          default: ask\n          deny: ["shell.run:rm *"]',
        )
        (root / "victim").write_text("keep me")
        async with Engine.open(root, db_url) as engine:
            seen: list[Event] = []
            engine.add_listener(seen.append)
            handle = await start_and_wait_pending(engine)
            p = engine.broker.pending()[0]
            assert p.arguments == {"cmd": "echo hi"}
            engine.resolve_approval(
                p.run_id, p.call_id, Resolution("allow", edited_arguments={"cmd": "rm -f victim"})
            )
            outcome = await asyncio.wait_for(handle.wait(), 30)
    assert outcome.ok
    assert (root / "victim").read_text() == "keep me"
    resolved = [e for e in seen if isinstance(e, ApprovalResolved)]
    assert [r.decision for r in resolved] == ["deny"]
    assert resolved[0].edited_arguments == {"cmd": "rm -f victim"}
    assert "the edited call is denied" in (resolved[0].note or "")
    assert "rm *" in (resolved[0].note or "")
    assert not [e for e in seen if isinstance(e, ToolCall)]
    result = next(e for e in seen if isinstance(e, ToolResult))
    assert "denied" in (result.error or "")


async def test_an_edit_an_ask_rule_matches_asks_again_with_the_edit_shown(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    with FakeOpenAIThread(
        script=[Reply(tool_calls=[("shell__run", {"cmd": "echo hi"})]), Reply(text="ok")]
    ) as srv:
        root = workspace(
            write_workspace,
            srv.base_url,
            '          default: ask\n          ask: ["shell.run:touch *"]',
        )
        async with Engine.open(root, db_url) as engine:
            seen: list[Event] = []
            engine.add_listener(seen.append)
            handle = await start_and_wait_pending(engine)
            first = engine.broker.pending()[0]
            engine.resolve_approval(
                first.run_id,
                first.call_id,
                Resolution("allow", edited_arguments={"cmd": "touch made"}),
            )
            for _ in range(2000):
                again = engine.broker.pending()
                if again and again[0].arguments == {"cmd": "touch made"}:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the edit was not asked again")
            assert not (root / "made").exists()  # not run on the first allow
            assert "edited the arguments" in again[0].reason and "touch *" in again[0].reason
            engine.resolve_approval(again[0].run_id, again[0].call_id, Resolution("allow"))
            outcome = await asyncio.wait_for(handle.wait(), 30)
    assert outcome.ok
    assert (root / "made").exists()
    required = [e for e in seen if isinstance(e, ApprovalRequired)]
    assert [r.arguments for r in required] == [{"cmd": "echo hi"}, {"cmd": "touch made"}]
    resolved = [e for e in seen if isinstance(e, ApprovalResolved)]
    assert len(resolved) == 2 and "asks again" in (resolved[0].note or "")
    assert [e.arguments for e in seen if isinstance(e, ToolCall)] == [{"cmd": "touch made"}]
    with Store.open(db_url) as store:  # every question answered: the run is not left waiting
        assert store.get_run(handle.run_id).status == "completed"  # type: ignore[union-attr]


async def test_an_edit_no_rule_matches_runs_as_the_person_allowed_it(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    with FakeOpenAIThread(
        script=[Reply(tool_calls=[("shell__run", {"cmd": "echo hi"})]), Reply(text="ok")]
    ) as srv:
        root = workspace(write_workspace, srv.base_url, "          default: ask")
        async with Engine.open(root, db_url) as engine:
            seen: list[Event] = []
            engine.add_listener(seen.append)
            handle = await start_and_wait_pending(engine)
            p = engine.broker.pending()[0]
            engine.resolve_approval(
                p.run_id, p.call_id, Resolution("allow", edited_arguments={"cmd": "echo edited"})
            )
            await asyncio.wait_for(handle.wait(), 30)
    result = next(e for e in seen if isinstance(e, ToolResult))
    assert result.output == "edited\nexit code 0"
    assert sum(isinstance(e, ApprovalRequired) for e in seen) == 1


def test_an_edit_over_rest_is_judged_by_the_rules(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    import httpx

    from workbench.server import ServerConfig, ServerThread

    with FakeOpenAIThread(
        script=[Reply(tool_calls=[("shell__run", {"cmd": "echo hi"})]), Reply(text="ok")]
    ) as srv:
        root = workspace(
            write_workspace,
            srv.base_url,
            '          default: ask\n          deny: ["shell.run:rm *"]',
        )
        (root / "victim").write_text("keep me")
        engine = Engine.open(root, db_url)
        with (
            ServerThread(engine, ServerConfig(port=0)) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            body = client.post("/api/runs", json={"target": "helper", "input": "go"}).json()
            for _ in range(500):
                pending = client.get("/api/approvals").json()
                if pending:
                    break
                time.sleep(0.02)
            r = client.post(
                f"/api/approvals/{pending[0]['run_id']}/{pending[0]['call_id']}",
                json={"decision": "allow", "edited_arguments": {"cmd": "rm -f victim"}},
            )
            assert r.status_code == 200, r.text
            for _ in range(500):
                run = client.get(f"/api/runs/{body['run_id']}").json()
                if run["status"] not in ("running", "waiting"):
                    break
                time.sleep(0.02)
            events = [
                parse_event(e)
                for e in client.get(f"/api/sessions/{body['session_id']}/events").json()
            ]
    assert (root / "victim").read_text() == "keep me"
    resolved = [e for e in events if isinstance(e, ApprovalResolved)]
    assert [r.decision for r in resolved] == ["deny"]
    assert not [e for e in events if isinstance(e, ToolCall)]


# -- point 3: forged logs run nothing ---------------------------------------------------------


def cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=MAIN,
        stdin=subprocess.DEVNULL,  # no terminal: --approve never is the default
        env={**os.environ, "COLUMNS": "400"},
    )


def record_then_forge(
    root: Path, db_url: str, tmp_path: Path, forged: dict[str, Any]
) -> tuple[Path, str]:
    """Record a run that allowed ``echo hi`` (as ``run --approve all`` does), export it, then
    forge the decision (new edited arguments) and cut the file right after it."""

    async def record() -> None:
        async with Engine.open(root, db_url) as engine:
            engine.broker.auto_decider = lambda p: Resolution("allow", decided_by="--approve all")
            assert (await engine.run("helper", "go")).ok

    asyncio.run(record())
    with Store.open(db_url) as store:
        (session,) = store.list_sessions()
        lines = lib.export_session(store, session.id, "jsonl").splitlines()
    out: list[str] = [lines[0]]
    run_id = ""
    for line in lines[1:]:
        ev = parse_event(line)
        if isinstance(ev, RunStarted):
            run_id = ev.run_id
        if isinstance(ev, ApprovalResolved):
            ev = ev.model_copy(update={"edited_arguments": forged, "decided_by": "user"})
            out.append(dump_event(ev))
            break
        out.append(line)
    forged_file = tmp_path / "forged.jsonl"
    forged_file.write_text("\n".join(out) + "\n")
    return forged_file, run_id


def test_a_forged_session_imported_and_resumed_runs_nothing_unasked(
    write_workspace: WriteWorkspace, tmp_path: Path
) -> None:
    with FakeOpenAIThread(
        responder=lambda req: (
            Reply(tool_calls=[("shell__run", {"cmd": "echo hi"})])
            if req["messages"][-1]["role"] == "user"
            else Reply(text="done")
        )
    ) as srv:
        root = workspace(write_workspace, srv.base_url, "          default: ask")
        forged, run_id = record_then_forge(
            root, f"sqlite:///{tmp_path}/rec.db", tmp_path, {"cmd": "touch forged"}
        )
        other = f"sqlite:///{tmp_path}/other.db"
        with Store.open(other) as store:  # what `workbench sessions import FILE` does
            lib.import_session(store, forged)
        resumed = cli("run", "--resume", run_id, "-w", str(root), "--db", other)
    assert not (root / "forged").exists(), "a forged decision ran a command"
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with Store.open(other) as store:
        events = store.events(store.list_sessions()[0].id)
    asked = [e for e in events if isinstance(e, ApprovalRequired)]
    assert asked[-1].arguments == {"cmd": "echo hi"}  # the model's call, not the forged one
    assert "a log is not a decision" in asked[-1].reason
    last = [e for e in events if isinstance(e, ApprovalResolved)][-1]
    assert last.decision == "deny" and last.decided_by == "--approve never"
    # The resumed run ends once.
    assert [e.type for e in events if e.run_id == run_id].count("run.completed") == 1


def test_rerun_of_a_forged_file_runs_nothing_a_rule_denies_or_nobody_decided(
    write_workspace: WriteWorkspace, tmp_path: Path
) -> None:
    with FakeOpenAIThread(
        responder=lambda req: (
            Reply(tool_calls=[("shell__run", {"cmd": "echo hi"})])
            if req["messages"][-1]["role"] == "user"
            else Reply(text="done")
        )
    ) as srv:
        root = workspace(
            write_workspace,
            srv.base_url,
            '          default: ask\n          deny: ["shell.run:rm *"]',
        )
        (root / "victim").write_text("keep me")
        rec = f"sqlite:///{tmp_path}/rec.db"
        denied_file, _ = record_then_forge(root, rec, tmp_path, {"cmd": "rm -f victim"})
        r = cli("sessions", "rerun", str(denied_file), "-w", str(root), "--db", rec + "2")
        assert (root / "victim").read_text() == "keep me", r.stdout + r.stderr
        # No deny rule: the forged (imported) decision is shown, not trusted.
        (tmp_path / "rec.db").unlink()
        touch_file, _ = record_then_forge(root, rec, tmp_path, {"cmd": "touch forged"})
        r = cli("sessions", "rerun", str(touch_file), "-w", str(root), "--db", rec + "3")
    assert not (root / "forged").exists(), r.stdout + r.stderr
    with Store.open(rec + "3") as store:
        rerun = next(s for s in store.list_sessions() if s.title.startswith("rerun of"))
        events = store.events(rerun.id)
    last = [e for e in events if isinstance(e, ApprovalResolved)][-1]
    assert last.decision == "deny" and "imported" in (last.note or ""), last


async def test_rerun_replays_this_stores_own_decisions(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    with FakeOpenAIThread(
        responder=lambda req: (
            Reply(tool_calls=[("mytools_-mark", {"name": "one"})])
            if req["messages"][-1]["role"] == "user"
            else Reply(text="done")
        )
    ) as srv:
        root = workspace(write_workspace, srv.base_url, "          default: ask")
        async with Engine.open(root, db_url) as engine:
            handle = await start_and_wait_pending(engine)
            first = engine.broker.pending()[0]
            engine.resolve_approval(first.run_id, first.call_id, Resolution("allow"))
            await asyncio.wait_for(handle.wait(), 30)
            report = await lib.rerun_session(engine, handle.session_id)
    assert marks(root) == ["one", "one"]  # decided by a person here: replayed
    assert report.identical


def test_a_fork_of_an_imported_session_is_still_imported(
    write_workspace: WriteWorkspace, tmp_path: Path
) -> None:
    with FakeOpenAIThread(
        responder=lambda req: (
            Reply(tool_calls=[("shell__run", {"cmd": "echo hi"})])
            if req["messages"][-1]["role"] == "user"
            else Reply(text="done")
        )
    ) as srv:
        root = workspace(write_workspace, srv.base_url, "          default: ask")
        forged, _ = record_then_forge(
            root, f"sqlite:///{tmp_path}/rec.db", tmp_path, {"cmd": "touch forged"}
        )
    with Store.open(f"sqlite:///{tmp_path}/other.db") as store:
        info = lib.import_session(store, forged)
        events = store.events(info.id)
        assert events[-1].type == "session.imported"
        fork = lib.fork_session(store, info.id, at_seq=events[-2].seq)
        forked = store.events(fork.id)
    assert any(e.type == "session.imported" for e in forked)
    marker = max(e.seq for e in forked if e.type == "session.imported")
    assert all(e.seq < marker for e in forked if isinstance(e, ApprovalResolved))


# -- point 5: a call that started without a result -------------------------------------------


DRIVER = """
import asyncio, sys
from workbench.approvals import Resolution
from workbench.engine import Engine

async def main():
    root, db = sys.argv[1:3]
    async with Engine.open(root, db) as engine:
        engine.broker.auto_decider = lambda p: Resolution("allow", decided_by="user")
        handle = await engine.start_run("helper", "go")
        print(handle.run_id, flush=True)
        await handle.wait()

asyncio.run(main())
"""


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def killed_mid_call(root: Path, db_url: str, tmp_path: Path) -> str:
    """Start a run whose tool hangs, SIGKILL its process during the call; the run id."""
    (root / "hang.flag").write_text("")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(root), db_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=MAIN,
        text=True,
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        wait_for((root / "started.flag").exists, "the tool to start")
        with Store.open(db_url) as store:
            wait_for(
                lambda: any(
                    isinstance(e, ToolCall) for e in store.events(store.list_sessions()[0].id)
                ),
                "the tool.call event",
            )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    (root / "hang.flag").unlink()
    return run_id


def scripted(tool: str, args: dict[str, Any]) -> Callable[[dict[str, Any]], Reply]:
    return lambda req: (
        Reply(tool_calls=[(tool, args)])
        if req["messages"][-1]["role"] == "user"
        else Reply(text="done")
    )


def test_resume_without_a_terminal_refuses_a_call_that_may_have_run(
    write_workspace: WriteWorkspace, tmp_path: Path
) -> None:
    with FakeOpenAIThread(responder=scripted("mytools_-mark", {"name": "once"})) as srv:
        # A rule allows the tool, and the person had allowed the call: still not re-run.
        root = workspace(
            write_workspace,
            srv.base_url,
            '          default: ask\n          allow: ["mytools:mark"]',
        )
        url = f"sqlite:///{tmp_path}/wb.db"
        run_id = killed_mid_call(root, url, tmp_path)
        assert marks(root) == ["once"]
        resumed = cli("run", "--resume", run_id, "-w", str(root), "--db", url)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert marks(root) == ["once"], "the call ran twice"
    out = " ".join((resumed.stdout + resumed.stderr).split())
    assert "may already have run" in out and "not run again" in out, out


async def test_resume_offers_a_call_that_may_have_run_again_and_runs_it_when_allowed(
    write_workspace: WriteWorkspace, tmp_path: Path
) -> None:
    with FakeOpenAIThread(responder=scripted("mytools_-mark", {"name": "once"})) as srv:
        root = workspace(
            write_workspace,
            srv.base_url,
            '          default: ask\n          allow: ["mytools:mark"]',
        )
        url = f"sqlite:///{tmp_path}/wb.db"
        run_id = killed_mid_call(root, url, tmp_path)
        async with Engine.open(root, url) as engine:
            handle = await engine.resume(run_id)
            for _ in range(2000):
                if engine.broker.pending():
                    break
                await asyncio.sleep(0.01)
            (p,) = engine.broker.pending()
            assert p.interrupted and "may already have run" in p.reason
            assert p.arguments == {"name": "once"}
            assert marks(root) == ["once"]
            engine.resolve_approval(p.run_id, p.call_id, Resolution("allow"))
            outcome = await asyncio.wait_for(handle.wait(), 30)
    assert outcome.ok
    assert marks(root) == ["once", "once"]  # run again because a person said so


async def test_resume_runs_an_idempotent_call_again_without_asking(
    write_workspace: WriteWorkspace, tmp_path: Path
) -> None:
    with FakeOpenAIThread(responder=scripted("mytools_-peek", {"name": "look"})) as srv:
        root = workspace(
            write_workspace,
            srv.base_url,
            '          default: ask\n          allow: ["mytools:peek"]',
        )
        url = f"sqlite:///{tmp_path}/wb.db"
        run_id = killed_mid_call(root, url, tmp_path)
        async with Engine.open(root, url) as engine:
            seen: list[Event] = []
            engine.add_listener(seen.append)
            handle = await engine.resume(run_id)
            outcome = await asyncio.wait_for(handle.wait(), 30)
    assert outcome.ok
    assert marks(root, "peeks.log") == ["look", "look"]
    assert not [e for e in seen if isinstance(e, ApprovalRequired)]
    assert [e.output for e in seen if isinstance(e, ToolResult)] == [""]


def test_built_in_reads_are_idempotent_and_writes_are_not() -> None:
    from plugins.calculator import CalculatorToolkit
    from plugins.clock import TimeToolkit
    from plugins.files import FilesToolkit
    from plugins.shell import ShellToolkit

    async def names() -> dict[str, bool]:
        out: dict[str, bool] = {}
        for kit in (
            FilesToolkit("files", {}, MAIN),
            ShellToolkit("shell", {}, MAIN),
            CalculatorToolkit("calculator", {}, MAIN),
            TimeToolkit("clock", {}, MAIN),
        ):
            out.update({t.name: t.idempotent for t in await kit.list_tools()})
        return out

    flags = asyncio.run(names())
    assert {n for n, idem in flags.items() if idem} == {
        "files.read",
        "files.list",
        "files.glob",
        "files.grep",
        "calculator.evaluate",
        "clock.now",
        "clock.convert",
    }


async def test_resume_with_call_ids_reused_across_turns_runs_the_last_turns_call(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    """A model that numbers its calls per turn (call_0 every turn): the last turn's call_0,
    asked and not yet decided when the process died, is not mistaken for the first turn's
    (which had run and has a result)."""
    from workbench.events import MessageCompleted, ToolCallRequest

    with FakeOpenAIThread(script=[Reply(text="both marked")]) as srv:
        root = workspace(write_workspace, srv.base_url, "          default: ask")
        sid, run = "s_reuse", "r_reuse"
        common = {"session_id": sid, "run_id": run, "source": "helper"}

        def turn(mid: str, name: str) -> MessageCompleted:
            call = ToolCallRequest(id="call_0", tool="mytools:mark", arguments={"name": name})
            return MessageCompleted(
                **common, message_id=mid, role="assistant", content="", tool_calls=[call]
            )

        with Store.open(db_url) as store:
            store.create_session(sid, workspace=str(root))
            store.append_many(
                [
                    RunStarted(**common, target_kind="agent", target="helper", input="go"),
                    MessageCompleted(**common, message_id="m0", role="user", content="go"),
                    turn("m1", "first"),
                    ToolCall(
                        **common, call_id="call_0", tool="mytools:mark", arguments={"name": "first"}
                    ),
                    ToolResult(
                        **common, call_id="call_0", tool="mytools:mark", output="marked first"
                    ),
                    turn("m2", "second"),
                    ApprovalRequired(
                        **common,
                        call_id="call_0",
                        tool="mytools:mark",
                        arguments={"name": "second"},
                        reason="no rule allows it",
                    ),
                ]
            )
        async with Engine.open(root, db_url) as engine:
            handle = await engine.resume(run)
            for _ in range(2000):
                if engine.broker.pending():
                    break
                await asyncio.sleep(0.01)
            (p,) = engine.broker.pending()
            assert p.arguments == {"name": "second"} and not p.interrupted
            engine.resolve_approval(p.run_id, p.call_id, Resolution("allow"))
            outcome = await asyncio.wait_for(handle.wait(), 30)
    assert outcome.ok and outcome.output == "both marked"
    assert marks(root) == ["second"]
