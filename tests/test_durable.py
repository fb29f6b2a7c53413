"""Durable runs: a process dies (SIGKILL) in the middle of a workflow or a team, and
``workbench run --resume`` / :meth:`Engine.resume` finishes the run without repeating what
was done.

The model server runs in a thread of the test process (:class:`FakeOpenAIThread`), so it
outlives the killed process and counts every model request; function steps count their
calls in a file.
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

import pytest

from tests.conftest import WriteWorkspace
from tests.support.openai_server import FakeOpenAIThread, Reply
from workbench.approvals import Resolution
from workbench.engine import Engine
from workbench.events import (
    ApprovalRequired,
    Event,
    RunStarted,
    TeamDelegated,
    ToolResult,
    WorkflowStepCompleted,
)
from workbench.store import RunInfo, Store

STEPS_PY = """
import os, time
from pathlib import Path

HERE = Path(__file__).parent

def _log(name):
    with open(HERE / "calls.log", "a") as f:
        f.write(name + "\\n")

def slow(ctx):
    _log("slow")
    if (HERE / "slow.flag").exists():
        (HERE / "slow.started").write_text(str(os.getpid()))
        time.sleep(60)
    return {"output": f"slow({ctx.input})", "state": {"third": len(ctx.input)}}

def tail(ctx):
    _log("tail")
    return f"{ctx.input} | state={sorted(ctx.state.items())}"
"""

TOOLS_PY = '''
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text to count.
    """
    return len(text.split())
'''

DRIVER = """
import asyncio, sys
from workbench.engine import Engine

async def main():
    root, db, target, prompt = sys.argv[1:5]
    async with Engine.open(root, db) as engine:
        handle = await engine.start_run(target, prompt)
        print(handle.run_id, flush=True)
        await handle.wait()

asyncio.run(main())
"""

MAIN = Path(__file__).resolve().parents[1]


def who(req: dict[str, Any]) -> str:
    system = " ".join(m["content"] for m in req["messages"] if m["role"] == "system")
    return system.removeprefix("You are ").split(".")[0] if system.startswith("You are ") else ""


def last_user(req: dict[str, Any]) -> str:
    return str(next(m["content"] for m in reversed(req["messages"]) if m["role"] == "user"))


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=MAIN,
        env={**os.environ, "COLUMNS": "400"},  # no wrapped lines in what we read back
    )


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def top_run(store: Store, target: str) -> RunInfo:
    runs = [
        r
        for s in store.list_sessions()
        for r in store.list_runs(s.id)
        if r.parent_run_id is None and r.target == target
    ]
    assert len(runs) == 1, runs
    return runs[0]


def events_of(url: str, session_id: str) -> list[Event]:
    with Store.open(url) as store:
        return store.events(session_id)


# -- a workflow killed in step 3 ----------------------------------------------------------


def test_killed_workflow_resumes_from_its_last_completed_step(
    fake_model_thread: FakeOpenAIThread, write_workspace: WriteWorkspace, tmp_path: Path
) -> None:
    srv = fake_model_thread

    def responder(req: dict[str, Any]) -> Reply | None:
        name, text = who(req), last_user(req)
        return Reply(text=text.upper() if name == "upper" else f"echo({text})")

    srv.server.responder = responder
    root = write_workspace(
        f"""
        models:
          default: {{model: openai/fake, api_base: "{srv.base_url}", api_key: x}}
        agents:
          upper: {{instructions: You are upper.}}
          echo: {{instructions: You are echo.}}
        workflows:
          five:
            steps:
              - {{step: one, agent: upper}}
              - {{step: two, agent: echo, output_key: second}}
              - {{step: three, function: "steps:slow"}}
              - {{step: four, agent: echo}}
              - {{step: five, function: "steps:tail"}}
        """,
        {"steps.py": STEPS_PY},
    )
    log = root / "calls.log"

    # The uninterrupted run (in this process, to spare a start-up), for the expected output.
    async def reference() -> str:
        async with Engine.open(root, f"sqlite:///{tmp_path}/reference.db") as engine:
            outcome = await engine.run("five", "hello world")
        assert outcome.ok, outcome.error
        return outcome.output

    expected = asyncio.run(reference())
    assert expected == (
        "echo(slow(echo(HELLO WORLD))) | state=[('second', 'echo(HELLO WORLD)'), ('third', 17)]"
    )
    log.unlink()
    srv.server.requests.clear()

    # The same run, killed while step 3 sleeps.
    url = f"sqlite:///{tmp_path}/wb.db"
    (root / "slow.flag").write_text("1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "run",
            "-w",
            str(root),
            "--db",
            url,
            "--workflow",
            "five",
            "hello world",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=MAIN,
        text=True,
    )
    try:
        wait_for((root / "slow.started").exists, "step 3 to start")
    finally:
        kill(proc)
    assert [who(r.json or {}) for r in srv.chat_requests] == ["upper", "echo"]
    with Store.open(url) as store:
        run = top_run(store, "five")
    assert run.status in ("running", "interrupted")

    (root / "slow.flag").unlink()
    resumed = cli("run", "--resume", run.id, "-w", str(root), "--db", url)
    assert resumed.returncode == 0, resumed.stderr

    # Steps 1 and 2 did not run again: one more model request (step 4), step 3 twice.
    assert [who(r.json or {}) for r in srv.chat_requests] == ["upper", "echo", "echo"]
    assert last_user(srv.chat_requests[2].json or {}) == "slow(echo(HELLO WORLD))"
    assert log.read_text().split() == ["slow", "slow", "tail"]
    with Store.open(url) as store:
        final = store.get_run(run.id)
        events = store.events(run.session_id)
    assert final is not None and final.status == "completed"
    assert final.output == expected
    steps = [e.path for e in events if isinstance(e, WorkflowStepCompleted) and e.run_id == run.id]
    assert steps == ["one", "two", "three", "four", "five"]
    starts = [e for e in events if isinstance(e, RunStarted) and e.run_id == run.id]
    assert [s.resumed for s in starts] == [False, True]
    # The answer is printed by the resumed CLI run too.
    assert expected in " ".join(resumed.stdout.split())


# -- an approval inside a Parallel branch survives a restart ------------------------------


async def test_approval_inside_parallel_is_asked_again_after_a_restart(
    fake_model_thread: FakeOpenAIThread, write_workspace: WriteWorkspace, tmp_path: Path
) -> None:
    srv = fake_model_thread

    def responder(req: dict[str, Any]) -> Reply | None:
        name = who(req)
        last = req["messages"][-1]
        if name == "counter":
            if last["role"] == "user":
                return Reply(tool_calls=[("tools_-word_count", {"text": "a b c"})])
            return Reply(text=f"counted {last['content']}")
        return Reply(text=last_user(req).upper())

    srv.server.responder = responder
    root = write_workspace(
        f"""
        models:
          default: {{model: openai/fake, api_base: "{srv.base_url}", api_key: x}}
        agents:
          counter: {{instructions: You are counter., tools: ["tools:word_count"]}}
          upper: {{instructions: You are upper.}}
        workflows:
          fan:
            steps:
              - loop: outer
                max_iterations: 1
                steps:
                  - parallel:
                      - {{step: a, agent: counter}}
                      - {{step: b, agent: upper}}
        approvals:
          default: ask
        """,
        {"tools.py": TOOLS_PY},
    )
    url = f"sqlite:///{tmp_path}/wb.db"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(root), url, "fan", "count"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=MAIN,
        text=True,
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()

        def waiting() -> bool:
            info = store.get_run(run_id)
            if info is None:
                return False
            evs = store.events(info.session_id)
            b_done = any(
                isinstance(e, WorkflowStepCompleted) and e.path == "outer#1/parallel1/b"
                for e in evs
            )
            return b_done and any(isinstance(e, ApprovalRequired) for e in evs)

        with Store.open(url) as store:
            wait_for(waiting, "the approval request and branch b")
    finally:
        kill(proc)
    with Store.open(url) as store:
        info = store.get_run(run_id)
        assert info is not None
        before = store.events(info.session_id)
    asked = next(e for e in before if isinstance(e, ApprovalRequired))
    requests_before = len(srv.chat_requests)

    async with Engine.open(root, url) as engine:
        seen: list[Event] = []
        engine.add_listener(seen.append)
        handle = await engine.resume(run_id)
        for _ in range(1000):
            if engine.broker.pending():
                break
            await asyncio.sleep(0.01)
        pending = engine.broker.pending()
        assert [p.call_id for p in pending] == [asked.call_id]
        assert pending[0].tool == "tools:word_count" and pending[0].arguments == {"text": "a b c"}
        engine.resolve_approval(
            asked.run_id, asked.call_id, Resolution(decision="allow", scope="once")
        )
        outcome = await asyncio.wait_for(handle.wait(), 30)
    assert outcome.ok, outcome.error
    assert outcome.output == "## a\ncounted 3\n\n## b\nCOUNT"
    # Only the counter's answer after the tool result was new: b and the first turn are reused.
    new = [who(r.json or {}) for r in srv.chat_requests[requests_before:]]
    assert new == ["counter"]
    assert sum(isinstance(e, ToolResult) for e in seen) == 1
    asked_again = [e for e in seen if isinstance(e, ApprovalRequired)]
    assert [e.call_id for e in asked_again] == [asked.call_id]


# -- a team killed while one member works -------------------------------------------------


async def test_killed_team_keeps_finished_members_and_resumes_the_rest(
    fake_model_thread: FakeOpenAIThread, write_workspace: WriteWorkspace, tmp_path: Path
) -> None:
    srv = fake_model_thread
    slow_calls: list[int] = []

    def responder(req: dict[str, Any]) -> Reply | None:
        name, text = who(req), last_user(req)
        if name == "slow":
            slow_calls.append(1)
            # The first attempt hangs until the process is killed; the resumed one answers.
            return Reply(text=f"slow:{text}", delay=60 if len(slow_calls) == 1 else 0)
        if name == "fast":
            return Reply(text=f"fast:{text}")
        if name == "boss":
            return Reply(
                text="combined: "
                + " + ".join(
                    line for line in text.splitlines() if line.startswith(("fast:", "slow:"))
                )
            )
        return None

    srv.server.responder = responder
    root = write_workspace(
        f"""
        models:
          default: {{model: openai/fake, api_base: "{srv.base_url}", api_key: x}}
        agents:
          fast: {{instructions: You are fast.}}
          slow: {{instructions: You are slow.}}
          boss: {{instructions: You are boss.}}
        teams:
          duo: {{mode: broadcast, leader: boss, members: [fast, slow]}}
        """
    )
    url = f"sqlite:///{tmp_path}/wb.db"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(root), url, "duo", "task"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=MAIN,
        text=True,
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()

        def fast_done() -> bool:
            return any(
                r.target == "fast" and r.status == "completed"
                for s in store.list_sessions()
                for r in store.list_runs(s.id)
            )

        with Store.open(url) as store:
            wait_for(fast_done, "the fast member")
        wait_for(lambda: bool(slow_calls), "the slow member's request")
    finally:
        kill(proc)
    assert [who(r.json or {}) for r in srv.chat_requests].count("fast") == 1

    async with Engine.open(root, url) as engine:
        handle = await engine.resume(run_id)
        outcome = await asyncio.wait_for(handle.wait(), 30)
        events = engine.session_events(handle.session_id)
    assert outcome.ok, outcome.error
    assert outcome.output == "combined: fast:task + slow:task"
    asked = [who(r.json or {}) for r in srv.chat_requests]
    assert asked.count("fast") == 1 and asked.count("slow") == 2 and asked.count("boss") == 1
    delegated = [(e.member, e.child_run_id) for e in events if isinstance(e, TeamDelegated)]
    assert len(delegated) == 2  # announced once each, not again on resume
    slow_run = dict(delegated)["slow"]
    slow_starts = [e for e in events if isinstance(e, RunStarted) and e.run_id == slow_run]
    assert [s.resumed for s in slow_starts] == [False, True]


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subprocesses inherit the test's isolated directories, nothing else of note."""
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    monkeypatch.delenv("WORKBENCH_DB", raising=False)


# -- stopped without ending (quitting the TUI with a run in flight) -----------------------


async def test_an_interrupted_run_is_left_resumable_not_cancelled(
    write_workspace: WriteWorkspace, tmp_path: Path
) -> None:
    """Engine.interrupt: no run.cancelled, every run marked interrupted, and resume offers
    the waiting calls again (two members wait on the same call id: the test model's)."""
    root = write_workspace(
        """
        models: {default: test}
        agents:
          left: {tools: ["tools:word_count"]}
          right: {tools: ["tools:word_count"]}
        teams:
          pair: {mode: broadcast, members: [left, right]}
        approvals: {default: ask}
        """,
        {"tools.py": TOOLS_PY},
    )
    url = f"sqlite:///{tmp_path}/wb.db"
    engine = Engine.open(root, url)
    handle = await engine.start_run("pair", "count")
    for _ in range(1000):
        if len(engine.broker.pending()) == 2:
            break
        await asyncio.sleep(0.01)
    asked = {(p.run_id, p.call_id) for p in engine.broker.pending()}
    assert len(asked) == 2 and len({c for _, c in asked}) == 1
    assert await engine.interrupt() == [handle.run_id]
    with Store.open(url) as store:
        events = store.events(handle.session_id)
        runs = store.list_runs(handle.session_id)
    assert not [e for e in events if e.type in ("run.cancelled", "run.failed", "run.completed")]
    assert {r.status for r in runs} == {"interrupted"} and len(runs) == 3
    async with Engine.open(root, url) as again:
        resumed = await again.resume(handle.run_id)
        for _ in range(1000):
            if len(again.broker.pending()) == 2:
                break
            await asyncio.sleep(0.01)
        assert {(p.run_id, p.call_id) for p in again.broker.pending()} == asked
        for p in again.broker.pending():
            again.resolve_approval(p.run_id, p.call_id, Resolution("allow"))
        outcome = await asyncio.wait_for(resumed.wait(), 30)
    assert outcome.ok, outcome.error
